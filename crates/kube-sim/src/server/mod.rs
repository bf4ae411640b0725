//! The HTTP front of the simulated apiserver: routes Kubernetes API paths to the store, applies faults,
//! authentication and RBAC, records every request, and renders results as JSON, Tables or watch streams.

mod discovery;
mod event_view;
mod exec;
mod hostile;
mod logs;
mod openapi;
mod sim_debug;
mod table;
mod watch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::clock::SimClock;
use crate::faults::{FaultAction, Faults};
use crate::patch::{PatchType, apply_patch};
use crate::paths::{self, Route};
use crate::pod_logs::PodLogs;
use crate::rbac::{self, Attributes, Tokens, UserInfo};
use crate::requests::{RequestLog, RequestShape};
use crate::resources::{ResourceInfo, is_virtual};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{ListOptions, Part, Store};

/// Largest request body accepted (the apiserver's limit is 3 MiB per object; apply of lists can be larger).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Everything the request handlers share.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Object store.
    pub store: Arc<Store>,
    /// Container output of the stored pods (a companion of the store: dropped with the pod).
    pub logs: Arc<PodLogs>,
    /// Simulated clock.
    pub clock: SimClock,
    /// Injected faults.
    pub faults: Faults,
    /// Request counters.
    pub requests: RequestLog,
    /// Bearer tokens.
    pub tokens: Tokens,
    /// Whether RBAC is enforced for non-admin identities.
    pub rbac: bool,
    /// State directory (PVC backing dirs, snapshot store).
    pub state_dir: PathBuf,
}

/// The full router: the exec route (`/api/v1/namespaces/{ns}/pods/{name}/exec`) in front of the fallback that
/// serves every other path.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            &paths::exec_template(),
            axum::routing::get(exec::handle).post(exec::handle),
        )
        .fallback(handle)
        .with_state(shared)
}

/// JSON response with a status code.
pub fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A metav1.Status error response.
pub fn error_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = json_response(code, &e.to_status());
    if e.code == 429
        && let Ok(v) = "1".parse()
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    q.and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn is_true(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key).is_some_and(|v| v == "true" || v == "1")
}

/// The Kubernetes verb of a request.
fn verb_of(method: &Method, has_name: bool, q: &HashMap<String, String>) -> &'static str {
    match *method {
        Method::GET | Method::HEAD if is_true(q, "watch") => "watch",
        Method::GET | Method::HEAD if has_name => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if has_name => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = query_map(req.uri().query());
    let headers = req.headers().clone();
    let body = match to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return error_response(&ApiError::bad_request(format!("reading request body: {e}")));
        }
    };
    let Some(route) = paths::parse(&path) else {
        shared.requests.record(method.as_str(), &path);
        return error_response(&ApiError::no_route());
    };
    match route {
        Route::Version => json_response(StatusCode::OK, &discovery::version()),
        Route::Health => (StatusCode::OK, "ok").into_response(),
        Route::Api => json_response(StatusCode::OK, &discovery::api_versions()),
        Route::Apis => json_response(
            StatusCode::OK,
            &discovery::api_group_list(&shared.store.registry()),
        ),
        Route::Group(g) => match discovery::api_group(&shared.store.registry(), &g) {
            Some(v) => json_response(StatusCode::OK, &v),
            None => error_response(&ApiError::no_route()),
        },
        Route::GroupVersion(g, v) => {
            match discovery::resource_list(&shared.store.registry(), &g, &v) {
                Some(v) => json_response(StatusCode::OK, &v),
                None => error_response(&ApiError::no_route()),
            }
        }
        Route::OpenApiV2 => openapi::v2(&shared.store.registry()),
        Route::OpenApiV3(rest) => openapi::v3(&shared.store.registry(), &rest),
        Route::Sim(rest) => sim_debug::handle(&shared, &method, &rest, &query, &body),
        Route::Resource {
            group,
            version,
            plural,
            namespace,
            name,
            sub,
        } => {
            let verb = verb_of(&method, name.is_some(), &query);
            let logged = match &sub {
                Some(s) => format!("{plural}/{s}"),
                None => plural.clone(),
            };
            shared.requests.record(verb, &logged);
            shared.requests.record_shape(&RequestShape {
                verb: verb.to_string(),
                group: group.clone(),
                version: version.clone(),
                resource: logged.clone(),
                namespaced: namespace.is_some(),
                query: query
                    .keys()
                    .cloned()
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                media_type: (!body.is_empty())
                    .then(|| headers.get(header::CONTENT_TYPE))
                    .flatten()
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.split(';').next().unwrap_or_default().trim().to_string()),
            });
            if let Some(n) = &name {
                shared
                    .requests
                    .record_object(verb, &logged, namespace.as_deref(), n);
            }
            let fault = shared.faults.on_request(verb, &logged);
            match fault {
                None | Some(FaultAction::LostAnswer) => {}
                Some(FaultAction::SlowAnswer { after }) => tokio::time::sleep(after).await,
                Some(action) if action.alters_answer() => {}
                Some(action) => {
                    return fault_response(
                        action,
                        &group,
                        &plural,
                        name.as_deref().unwrap_or_default(),
                    )
                    .await;
                }
            }
            let call = Call {
                group,
                version,
                plural,
                namespace,
                name,
                sub,
                verb,
                query,
                headers,
                body: body.to_vec(),
            };
            let answer = match resource_request(&shared, call).await {
                Ok(r) => r,
                Err(e) => error_response(&e),
            };
            match fault {
                // The request took effect; its answer is lost with the connection.
                Some(FaultAction::LostAnswer) => {
                    fault_response(FaultAction::ConnectionReset, "", "", "").await
                }
                Some(action) if action.alters_answer() => {
                    hostile::alter(action, verb, answer).await
                }
                _ => answer,
            }
        }
    }
}

async fn fault_response(action: FaultAction, group: &str, plural: &str, name: &str) -> Response {
    let e = match action {
        FaultAction::InternalError => ApiError::internal("kube-sim injected fault: internal error"),
        FaultAction::ServiceUnavailable => ApiError::new(
            503,
            "ServiceUnavailable",
            "kube-sim injected fault: the server is currently unable to handle the request",
        ),
        FaultAction::ConnectionReset | FaultAction::LostAnswer => {
            // Unwinding out of the handler ends hyper's connection task, which drops the socket before any
            // answer: the client sees the connection closed, as when a load balancer resets it.
            // `resume_unwind` skips the panic hook, so nothing is printed.
            std::panic::resume_unwind(Box::new("kube-sim injected fault: connection reset"))
        }
        FaultAction::TooManyRequests => ApiError::new(
            429,
            "TooManyRequests",
            "kube-sim injected fault: too many requests, please try again later",
        ),
        FaultAction::Conflict => ApiError::conflict(group, plural, name),
        FaultAction::Timeout { after } => {
            tokio::time::sleep(after).await;
            ApiError::new(
                504,
                "Timeout",
                "kube-sim injected fault: the server was unable to return a response in the time allotted",
            )
        }
        // A request with no JSON answer to alter (an exec upgrade) gets the proxy's page for these too; the
        // resource route carries out a slow or altered request before it gets here.
        FaultAction::GarbageBody
        | FaultAction::SlowAnswer { .. }
        | FaultAction::OversizedAnswer { .. }
        | FaultAction::TruncatedJson
        | FaultAction::LabelsAsList
        | FaultAction::ReadyAsString
        | FaultAction::UnknownFields => return hostile::garbage(),
    };
    error_response(&e)
}

/// One resource request, decomposed.
struct Call {
    group: String,
    version: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    verb: &'static str,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Call {
    fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }
    fn strict(&self) -> bool {
        self.query
            .get("fieldValidation")
            .is_some_and(|v| v == "Strict")
    }
    /// Refuse undeclared fields under `fieldValidation=Strict` (custom resources; built-ins have no schema here).
    fn check_strict(&self, res: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
        if !self.strict() {
            return Ok(());
        }
        let unknown = crate::validation::unknown_fields(res, &self.version, obj);
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(crate::validation::strict_error(
                res,
                &self.version,
                &unknown,
            ))
        }
    }
    fn dry_run(&self) -> bool {
        self.query.get("dryRun").is_some_and(|v| v == "All")
    }
    fn wants_table(&self) -> bool {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| {
                a.split(',')
                    .next()
                    .is_some_and(|first| first.contains("as=Table"))
            })
    }
    fn body_json(&self) -> Result<Value, ApiError> {
        let ct = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        if ct.starts_with(crate::protobuf::CONTENT_TYPE) {
            return crate::protobuf::decode(&self.body);
        }
        if ct.contains("yaml") {
            let text = std::str::from_utf8(&self.body)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            return serde_saphyr::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}")))
    }
}

fn with_version(mut obj: Value, res: &ResourceInfo, version: &str) -> Value {
    obj["apiVersion"] = json!(res.api_version(version));
    obj
}

/// Authenticate a request (bearer token → identity; no token → admin, or anonymous in RBAC mode) and, in RBAC
/// mode, authorize `attrs` against the stored RBAC objects. Reviews (SelfSubjectAccessReview, ...) are always
/// allowed, as every authenticated user may ask about themselves.
pub fn authorize_request(
    shared: &Shared,
    headers: &HeaderMap,
    attrs: &Attributes,
) -> Result<UserInfo, ApiError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let user = match shared.tokens.authenticate(auth)? {
        Some(u) => u,
        None if shared.rbac => UserInfo::anonymous(),
        None => UserInfo::admin(),
    };
    if shared.rbac
        && !is_virtual(&attrs.group, &attrs.resource)
        && !rbac::authorize(&shared.store, &user, attrs)
    {
        return Err(rbac::forbidden(&user, attrs));
    }
    Ok(user)
}

/// Everything the generic API path does before serving, for routes served elsewhere (the exec route):
/// count the request in the request log, apply injected request faults (as `verb` on `resource/sub`), all of the
/// last of `checks`, then authenticate and authorize each of `checks` in order (the first refusal is the answer).
/// `Err` is the response to send instead.
pub async fn admit(
    shared: &Shared,
    headers: &HeaderMap,
    checks: &[&Attributes],
) -> Result<UserInfo, Response> {
    let Some((attrs, before)) = checks.split_last() else {
        return Err(error_response(&ApiError::internal(
            "no authorization check",
        )));
    };
    let logged = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    shared.requests.record(&attrs.verb, &logged);
    shared.requests.record_shape(&RequestShape {
        verb: attrs.verb.clone(),
        group: attrs.group.clone(),
        version: "v1".into(),
        resource: logged.clone(),
        namespaced: !attrs.namespace.is_empty(),
        query: Vec::new(),
        media_type: None,
    });
    match shared.faults.on_request(&attrs.verb, &logged) {
        None => {}
        Some(FaultAction::SlowAnswer { after }) => tokio::time::sleep(after).await,
        Some(action) => {
            return Err(fault_response(action, &attrs.group, &attrs.resource, &attrs.name).await);
        }
    }
    for check in before {
        authorize_request(shared, headers, check).map_err(|e| error_response(&e))?;
    }
    authorize_request(shared, headers, attrs).map_err(|e| error_response(&e))
}

async fn resource_request(shared: &Arc<Shared>, c: Call) -> Result<Response, ApiError> {
    let res = shared
        .store
        .resource(&c.group, &c.plural)
        .filter(|r| r.serves(&c.version))
        .ok_or_else(ApiError::no_route)?;
    if res.namespaced != c.namespace.is_some() && c.name.is_some() {
        return Err(ApiError::no_route());
    }
    let attrs = Attributes {
        verb: c.verb.to_string(),
        group: c.group.clone(),
        resource: c.plural.clone(),
        subresource: c.sub.clone().unwrap_or_default(),
        namespace: c.ns().to_string(),
        name: c.name().to_string(),
    };
    let user = authorize_request(shared, &c.headers, &attrs)?;
    if is_virtual(&c.group, &c.plural) {
        return review(shared, &c, &user);
    }
    if crate::events::is_view(&res.group, &res.plural) {
        return event_view::serve(shared, c).await;
    }
    dispatch(shared, res, c)
}

/// Serve an authorized request on `res`.
fn dispatch(shared: &Arc<Shared>, res: ResourceInfo, c: Call) -> Result<Response, ApiError> {
    match (c.sub.as_deref(), c.verb) {
        (Some("token"), "create") if res.plural == "serviceaccounts" => {
            token_request(shared, &res, &c)
        }
        (Some("exec" | "attach" | "portforward"), _) => Err(ApiError::bad_request(format!(
            "kube-sim serves pods/exec only at {}; attach and portforward are not simulated",
            paths::resource("", "v1", "pods", Some("NS"), Some("NAME"), Some("exec"))
        ))),
        (Some("log"), "get") if res.plural == "pods" => {
            logs::serve(shared.clone(), &res, c.ns(), c.name(), &c.query)
        }
        (Some("scale"), _) => scale(shared, &res, &c),
        (Some(s), _) if s != "status" || !res.has_status() => Err(ApiError::no_route()),
        (_, "get") => {
            let obj = with_version(shared.store.get(&res, c.ns(), c.name())?, &res, &c.version);
            if c.wants_table() {
                return Ok(json_response(
                    StatusCode::OK,
                    &table::table(
                        &res,
                        &c.version,
                        std::slice::from_ref(&obj),
                        None,
                        None,
                        &shared.clock,
                    ),
                ));
            }
            Ok(json_response(StatusCode::OK, &obj))
        }
        (None, "list") => list(shared, &res, &c),
        (None, "watch") => watch::serve(
            shared.clone(),
            res,
            c.version.clone(),
            c.namespace.clone(),
            c.name.clone(),
            &c.query,
        ),
        (None, "create") if c.name.is_some() => Err(ApiError::method_not_allowed()),
        (None, "create") => {
            let body = c.body_json()?;
            c.check_strict(&res, &body)?;
            let obj =
                shared
                    .store
                    .create(&res, &c.version, c.ns(), body, Part::Main, c.dry_run())?;
            Ok(json_response(StatusCode::CREATED, &obj))
        }
        (_, "update") => {
            let body = c.body_json()?;
            c.check_strict(&res, &body)?;
            let part = if c.sub.is_some() {
                Part::Status
            } else {
                Part::Main
            };
            let obj = shared.store.modify(
                &res,
                &c.version,
                c.ns(),
                c.name(),
                part,
                c.dry_run(),
                |_old| Ok(body),
            )?;
            Ok(json_response(StatusCode::OK, &obj))
        }
        (_, "patch") => patch(shared, &res, &c),
        (None, "delete") => {
            // DeleteOptions (preconditions, dryRun) in JSON; a body the simulator cannot decode (helm sends
            // DeleteOptions as protobuf) counts as none.
            let opts: Value = if c.body.is_empty() {
                json!({})
            } else {
                c.body_json().unwrap_or(json!({}))
            };
            let uid = opts.pointer("/preconditions/uid").and_then(Value::as_str);
            let rv = opts
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str);
            let dry = c.dry_run()
                || opts
                    .get("dryRun")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
            let obj = shared.store.delete(&res, c.ns(), c.name(), uid, rv, dry)?;
            let held = obj.pointer("/metadata/deletionTimestamp").is_some();
            if !held && !returns_deleted_object(&res) {
                return Ok(json_response(StatusCode::OK, &deleted_status(&res, &obj)));
            }
            let code = if held {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &with_version(obj, &res, &c.version)))
        }
        (None, "deletecollection") => {
            let page = shared
                .store
                .list(&res, c.namespace.as_deref(), &list_options(&c.query)?)?;
            for item in &page.items {
                let ns = item
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let name = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                // Already gone is fine for a collection delete.
                let _ = shared.store.delete(&res, ns, name, None, None, c.dry_run());
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Whether the apiserver answers a DELETE that removed the object with the object itself: the registries of
/// these built-ins set ReturnDeletedObject (a namespace is always answered with itself). Every other resource,
/// custom ones included, is answered with a Success Status naming it, unless a finalizer keeps it.
fn returns_deleted_object(res: &ResourceInfo) -> bool {
    res.group.is_empty()
        && matches!(
            res.plural.as_str(),
            "pods"
                | "persistentvolumeclaims"
                | "persistentvolumes"
                | "serviceaccounts"
                | "services"
                | "namespaces"
                | "nodes"
        )
}

/// The Success Status the apiserver answers for a removed object: its name, group, resource and uid.
fn deleted_status(res: &ResourceInfo, obj: &Value) -> Value {
    let mut details = json!({"name": obj.pointer("/metadata/name").cloned().unwrap_or_default(),
                             "kind": res.plural,
                             "uid": obj.pointer("/metadata/uid").cloned().unwrap_or_default()});
    if !res.group.is_empty() {
        details["group"] = json!(res.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

fn list_options(q: &HashMap<String, String>) -> Result<ListOptions, ApiError> {
    Ok(ListOptions {
        labels: q
            .get("labelSelector")
            .filter(|s| !s.is_empty())
            .map(|s| LabelSelector::parse(s))
            .transpose()?,
        fields: q
            .get("fieldSelector")
            .filter(|s| !s.is_empty())
            .map(|s| FieldSelector::parse(s))
            .transpose()?,
        limit: q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0),
        continue_token: q.get("continue").filter(|s| !s.is_empty()).cloned(),
    })
}

fn list(shared: &Arc<Shared>, res: &ResourceInfo, c: &Call) -> Result<Response, ApiError> {
    let opts = list_options(&c.query)?;
    let page = shared.store.list(res, c.namespace.as_deref(), &opts)?;
    let items: Vec<Value> = page
        .items
        .into_iter()
        .map(|o| with_version(o, res, &c.version))
        .collect();
    if c.wants_table() {
        return Ok(json_response(
            StatusCode::OK,
            &table::table(
                res,
                &c.version,
                &items,
                Some(page.rv),
                page.continue_token.as_deref(),
                &shared.clock,
            ),
        ));
    }
    let mut meta = json!({"resourceVersion": page.rv.to_string()});
    if let Some(t) = &page.continue_token {
        meta["continue"] = json!(t);
    } else if res.from_crd {
        // Custom resources are listed as unstructured objects, whose list metadata keeps an empty continue.
        meta["continue"] = json!("");
    }
    if let Some(n) = page.remaining {
        meta["remainingItemCount"] = json!(n);
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(&c.version), "metadata": meta, "items": items}),
    ))
}

/// The patch type of a PATCH request's content type (415 for any other).
fn patch_type(c: &Call) -> Result<PatchType, ApiError> {
    let ct = c
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    PatchType::from_content_type(ct).ok_or_else(|| {
        ApiError::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {ct:?})"))
    })
}

fn patch(shared: &Arc<Shared>, res: &ResourceInfo, c: &Call) -> Result<Response, ApiError> {
    let kind = patch_type(c)?;
    let part = if c.sub.is_some() {
        Part::Status
    } else {
        Part::Main
    };
    let strategic_ok = !res.from_crd;
    let result = shared.store.modify(
        res,
        &c.version,
        c.ns(),
        c.name(),
        part,
        c.dry_run(),
        |old| {
            let mut doc = old.clone();
            apply_patch(&mut doc, kind, &c.body, strategic_ok)?;
            c.check_strict(res, &doc)?;
            Ok(doc)
        },
    );
    match result {
        Ok(obj) => Ok(json_response(StatusCode::OK, &obj)),
        // Server-side apply creates missing objects.
        Err(e) if e.code == 404 && kind == PatchType::Apply && c.sub.is_none() => {
            let body = c.body_json()?;
            let obj =
                shared
                    .store
                    .create(res, &c.version, c.ns(), body, Part::Main, c.dry_run())?;
            Ok(json_response(StatusCode::CREATED, &obj))
        }
        Err(e) => Err(e),
    }
}

fn scale(shared: &Arc<Shared>, res: &ResourceInfo, c: &Call) -> Result<Response, ApiError> {
    let to_scale = |o: &Value| {
        json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
               "metadata": {"name": o["metadata"]["name"], "namespace": o["metadata"]["namespace"], "resourceVersion": o["metadata"]["resourceVersion"], "uid": o["metadata"]["uid"]},
               "spec": {"replicas": o.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
               "status": {"replicas": o.pointer("/status/replicas").cloned().unwrap_or(json!(0))}})
    };
    match c.verb {
        "get" => Ok(json_response(
            StatusCode::OK,
            &to_scale(&shared.store.get(res, c.ns(), c.name())?),
        )),
        "update" | "patch" => {
            let obj = shared.store.modify(
                res,
                &c.version,
                c.ns(),
                c.name(),
                Part::Main,
                c.dry_run(),
                |old| {
                    let mut scale = to_scale(old);
                    if c.verb == "update" {
                        scale = c.body_json()?;
                    } else {
                        let ct = c
                            .headers
                            .get(header::CONTENT_TYPE)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        let kind = PatchType::from_content_type(ct).unwrap_or(PatchType::Merge);
                        apply_patch(&mut scale, kind, &c.body, true)?;
                    }
                    let mut new = old.clone();
                    new["spec"]["replicas"] =
                        scale.pointer("/spec/replicas").cloned().unwrap_or(json!(1));
                    Ok(new)
                },
            )?;
            Ok(json_response(StatusCode::OK, &to_scale(&obj)))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn token_request(shared: &Arc<Shared>, res: &ResourceInfo, c: &Call) -> Result<Response, ApiError> {
    shared.store.get(res, c.ns(), c.name())?;
    let body: Value = if c.body.is_empty() {
        json!({})
    } else {
        c.body_json()?
    };
    let secs = body
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    let token = shared.tokens.issue(c.ns(), c.name());
    let exp = shared.clock.now() + chrono::Duration::seconds(secs);
    let mut out = body.clone();
    out["kind"] = json!("TokenRequest");
    out["apiVersion"] = json!("authentication.k8s.io/v1");
    out["metadata"] = json!({"name": c.name(), "namespace": c.ns(), "creationTimestamp": shared.clock.now_rfc3339()});
    out["spec"]["expirationSeconds"] = json!(secs);
    out["status"] = json!({"token": token, "expirationTimestamp": exp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
    Ok(json_response(StatusCode::CREATED, &out))
}

fn review(shared: &Arc<Shared>, c: &Call, user: &UserInfo) -> Result<Response, ApiError> {
    if c.verb != "create" {
        return Err(ApiError::method_not_allowed());
    }
    let mut body = c.body_json()?;
    match c.plural.as_str() {
        "selfsubjectaccessreviews" | "subjectaccessreviews" => {
            let subject = if c.plural == "subjectaccessreviews" {
                let name = body
                    .pointer("/spec/user")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let groups = body
                    .pointer("/spec/groups")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|g| g.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                UserInfo { name, groups }
            } else {
                user.clone()
            };
            let ra = body
                .pointer("/spec/resourceAttributes")
                .cloned()
                .unwrap_or(json!({}));
            let s = |k: &str| {
                ra.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let attrs = Attributes {
                verb: s("verb"),
                group: s("group"),
                resource: s("resource"),
                subresource: s("subresource"),
                namespace: s("namespace"),
                name: s("name"),
            };
            let allowed = !shared.rbac || rbac::authorize(&shared.store, &subject, &attrs);
            body["status"] = json!({"allowed": allowed});
            if allowed {
                body["status"]["reason"] = json!(if subject.is_admin() || !shared.rbac {
                    "kube-sim: admin identity"
                } else {
                    "kube-sim: allowed by RBAC"
                });
            }
        }
        "selfsubjectrulesreviews" => {
            let ns = body
                .pointer("/spec/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let rules: Vec<Value> = if shared.rbac {
                rbac::rules_for(&shared.store, user, &ns)
                    .into_iter()
                    .filter(|r| r.get("resources").is_some())
                    .map(|r| json!({"verbs": r["verbs"], "apiGroups": r["apiGroups"], "resources": r["resources"], "resourceNames": r.get("resourceNames").cloned().unwrap_or(json!([]))}))
                    .collect()
            } else {
                vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})]
            };
            body["status"] =
                json!({"resourceRules": rules, "nonResourceRules": [], "incomplete": false});
        }
        "tokenreviews" => {
            let token = body
                .pointer("/spec/token")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            match shared.tokens.authenticate(Some(&format!("Bearer {token}"))) {
                Ok(Some(u)) => {
                    body["status"] = json!({"authenticated": true, "user": {"username": u.name, "groups": u.groups}})
                }
                _ => body["status"] = json!({"authenticated": false}),
            }
        }
        _ => return Err(ApiError::no_route()),
    }
    body["metadata"] = json!({"creationTimestamp": null});
    Ok(json_response(StatusCode::CREATED, &body))
}

/// A streaming body from an mpsc receiver of chunks.
pub(crate) fn stream_body(
    rx: futures::channel::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> Body {
    Body::from_stream(rx)
}
