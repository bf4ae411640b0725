//! The object store: every object keyed by (group, resource, namespace, name), one global resourceVersion,
//! a bounded event history for watches, and the create/update/delete rules of the apiserver's registry
//! (generateName, uid, timestamps from the sim clock, status subresources, finalizers, owner-reference GC).
//! API requests and the cluster's own writes (controllers, library) share one write API, `create`, `modify` and
//! `delete`, told apart by [`Part`]; `load` brings objects in verbatim (`--apply`, seeds).
//!
//! No request pays for the size of the store: objects live in one [`Table`] per resource (by namespace and
//! name, with label indexes), owner references are indexed for garbage collection, and the event history is
//! searched by resourceVersion. A get, patch or delete is O(log N); a list page O(matches + page); a write reaches
//! the watchers through one broadcast, O(watchers).

mod table;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::clock::SimClock;
use crate::resources::{Registry, ResourceInfo};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::validation;
use table::{Slot, Table};

/// A live subscription to store events.
pub type Subscription = broadcast::Receiver<Arc<Event>>;

/// How many past events a watch can resume from before it gets 410 Gone.
const HISTORY: usize = 20_000;

/// (group, plural, namespace, name); namespace is "" for cluster-scoped objects.
pub type Key = (String, String, String, String);

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// ADDED
    Added,
    /// MODIFIED
    Modified,
    /// DELETED
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to the store.
#[derive(Debug, Clone)]
pub struct Event {
    /// resourceVersion of the change.
    pub rv: u64,
    /// What happened.
    pub etype: EventType,
    /// API group of the object.
    pub group: String,
    /// Resource plural.
    pub plural: String,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// The object after the change (before it, for DELETED, with the deletion's resourceVersion).
    pub object: Value,
}

/// Mutable state behind one lock, so every write gets a unique, ordered resourceVersion.
#[derive(Debug, Default)]
pub struct State {
    /// All objects: group → plural → table.
    tables: HashMap<String, HashMap<String, Table>>,
    /// Owner uid → the objects whose ownerReferences name it (what deleting the owner collects).
    owned: HashMap<String, BTreeSet<Key>>,
    /// Last issued resourceVersion.
    pub rv: u64,
    /// Recent events, oldest first.
    pub history: VecDeque<Arc<Event>>,
    /// Known resources.
    pub registry: Registry,
}

fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
}

fn slot_of(key: &Key) -> Slot {
    (key.2.clone(), key.3.clone())
}

impl State {
    /// The table of one resource, if it ever held an object.
    fn table(&self, group: &str, plural: &str) -> Option<&Table> {
        self.tables.get(group)?.get(plural)
    }

    /// The object at `key`.
    pub fn object(&self, key: &Key) -> Option<&Value> {
        self.table(&key.0, &key.1)?.get(&slot_of(key))
    }

    fn contains(&self, key: &Key) -> bool {
        self.table(&key.0, &key.1)
            .is_some_and(|t| t.contains(&slot_of(key)))
    }

    /// Every object of one resource, in key order.
    fn objects_of<'a>(&'a self, group: &str, plural: &str) -> impl Iterator<Item = &'a Value> {
        self.table(group, plural)
            .into_iter()
            .flat_map(Table::values)
    }

    /// Store `obj` at `key` (indexes follow), returning what was there.
    fn put(&mut self, key: Key, obj: Value) -> Option<Value> {
        for uid in owner_uids(&obj) {
            self.owned
                .entry(uid.to_string())
                .or_default()
                .insert(key.clone());
        }
        let old = self
            .tables
            .entry(key.0.clone())
            .or_default()
            .entry(key.1.clone())
            .or_default()
            .insert(slot_of(&key), obj);
        if let Some(old) = &old {
            // Owners dropped by this write no longer collect the object.
            let now: Vec<String> = self
                .object(&key)
                .map(|o| owner_uids(o).map(str::to_string).collect())
                .unwrap_or_default();
            let dropped: Vec<String> = owner_uids(old)
                .filter(|u| !now.iter().any(|n| n == u))
                .map(str::to_string)
                .collect();
            self.disown(&key, dropped.iter().map(String::as_str));
        }
        old
    }

    /// Take the object at `key` out (indexes follow).
    fn take(&mut self, key: &Key) -> Option<Value> {
        let old = self
            .tables
            .get_mut(&key.0)?
            .get_mut(&key.1)?
            .remove(&slot_of(key))?;
        let uids: Vec<String> = owner_uids(&old).map(str::to_string).collect();
        self.disown(key, uids.iter().map(String::as_str));
        Some(old)
    }

    fn disown<'a>(&mut self, key: &Key, uids: impl Iterator<Item = &'a str>) {
        for uid in uids {
            if let Some(set) = self.owned.get_mut(uid) {
                set.remove(key);
                if set.is_empty() {
                    self.owned.remove(uid);
                }
            }
        }
    }
}

/// Options of a list call.
#[derive(Debug, Default, Clone)]
pub struct ListOptions {
    /// labelSelector
    pub labels: Option<LabelSelector>,
    /// fieldSelector
    pub fields: Option<FieldSelector>,
    /// limit (0 = all)
    pub limit: usize,
    /// continue token from a previous page
    pub continue_token: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// Objects in key order.
    pub items: Vec<Value>,
    /// resourceVersion of the list.
    pub rv: u64,
    /// Token for the next page, if any.
    pub continue_token: Option<String>,
    /// Objects after this page.
    pub remaining: Option<usize>,
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource: status changes are ignored when a status subresource exists.
    Main,
    /// The status subresource: only status changes are kept.
    Status,
    /// Everything, unvalidated: the cluster's own writes (controllers, library patches and deletes).
    Raw,
}

/// Data kept beside the stored objects (pod logs) that must go when its object goes. The store tells it
/// under its lock, so no reader can see the object gone and its data still there, or the reverse.
pub trait Companion: Send + Sync + std::fmt::Debug {
    /// The object at `key` was removed (called with the store locked: do not call back into the store).
    fn removed(&self, key: &Key);
}

/// The object store shared by the server, controllers and library API.
#[derive(Debug)]
pub struct Store {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<Event>>,
    clock: SimClock,
    /// Told about every removal (pod logs drop a deleted pod's output).
    companions: Vec<Arc<dyn Companion>>,
}

fn name_of(obj: &Value) -> String {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Random lowercase suffix as the apiserver uses for generateName (no vowels, no ambiguous digits).
pub fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn rv_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Encode a continue token without extra dependencies: hex of "ns\0name\0offset", the last key of the page and
/// how many items the list has returned so far (what `remainingItemCount` is estimated from).
fn encode_continue(ns: &str, name: &str, offset: usize) -> String {
    format!("{ns}\u{0}{name}\u{0}{offset}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Result<(String, String, usize), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect();
    let text = String::from_utf8(bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    let mut parts = text.split('\u{0}');
    let (Some(ns), Some(name), Some(offset), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let offset = offset.parse().map_err(|_| bad())?;
    Ok((ns.to_string(), name.to_string(), offset))
}

/// Everything but metadata and status: a change here bumps metadata.generation.
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    o
}

impl Store {
    /// An empty store with the default namespaces and the embedded CRDs.
    pub fn new(clock: SimClock) -> Self {
        Self::with_companions(clock, Vec::new())
    }

    /// Like [`Store::new`], telling `companions` about every removed object.
    pub fn with_companions(clock: SimClock, companions: Vec<Arc<dyn Companion>>) -> Self {
        let (events, _) = broadcast::channel(16_384);
        let store = Store {
            state: Mutex::new(State::default()),
            events,
            clock,
            companions,
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
            let _ = store.load("", "namespaces", obj);
        }
        for crd in crate::resources::embedded_crd_objects() {
            let _ = store.load("apiextensions.k8s.io", "customresourcedefinitions", crd);
        }
        let _ = store.load(
            "",
            "nodes",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "kube-sim", "labels": {"kubernetes.io/hostname": "kube-sim"}},
                   "status": {"conditions": [{"type": "Ready", "status": "True"}], "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}}),
        );
        store
    }

    /// The clock the store stamps objects with.
    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    /// Lock the state (poisoning is survivable: the state is only ever changed whole-object at a time).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` on one object by raw key (None when missing) with the store locked, so what `f` does cannot
    /// race a write of that object.
    pub fn with_object<R>(
        &self,
        group: &str,
        plural: &str,
        ns: &str,
        name: &str,
        f: impl FnOnce(Option<&Value>) -> R,
    ) -> R {
        let st = self.lock();
        f(st.object(&(
            group.to_string(),
            plural.to_string(),
            ns.to_string(),
            name.to_string(),
        )))
    }

    /// Subscribe to every future event.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Registry snapshot.
    pub fn registry(&self) -> Registry {
        self.lock().registry.clone()
    }

    /// Resolve a resource by group + plural.
    pub fn resource(&self, group: &str, plural: &str) -> Option<ResourceInfo> {
        self.lock().registry.by_plural(group, plural).cloned()
    }

    /// Current resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    fn emit(&self, st: &mut State, etype: EventType, key: &Key, object: Value) {
        let ev = Arc::new(Event {
            rv: st.rv,
            etype,
            group: key.0.clone(),
            plural: key.1.clone(),
            namespace: key.2.clone(),
            object,
        });
        st.history.push_back(ev.clone());
        while st.history.len() > HISTORY {
            st.history.pop_front();
        }
        if key.0 == "apiextensions.k8s.io" && key.1 == "customresourcedefinitions" {
            let crds: Vec<Value> = st
                .objects_of("apiextensions.k8s.io", "customresourcedefinitions")
                .cloned()
                .collect();
            st.registry.set_crds(crds.iter());
        }
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(ev);
    }

    fn stamp_new(&self, st: &mut State, obj: &mut Value) {
        st.rv += 1;
        let rv = st.rv.to_string();
        let now = self.clock.now_rfc3339();
        let meta = &mut obj["metadata"];
        if meta
            .get("uid")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
        }
        if meta
            .get("creationTimestamp")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            meta["creationTimestamp"] = json!(now);
        }
        meta["resourceVersion"] = json!(rv);
    }

    fn check_namespace(st: &State, res: &ResourceInfo, ns: &str) -> Result<(), ApiError> {
        if !res.namespaced {
            return Ok(());
        }
        let key: Key = (
            String::new(),
            "namespaces".into(),
            String::new(),
            ns.to_string(),
        );
        match st.object(&key) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    crate::status::qualified(&res.group, &res.plural)
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Create an object. As an API request (`Part::Main`, the apiserver's POST; `version` is the request's API
    /// version) it is defaulted, validated and checked against its namespace; as the cluster's own write
    /// (`Part::Raw`) it is only stamped (uid, creationTimestamp, resourceVersion) and kept as given.
    pub fn create(
        &self,
        res: &ResourceInfo,
        version: &str,
        ns: &str,
        mut obj: Value,
        part: Part,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if part == Part::Raw {
            // The cluster's own create: the object as given, no defaulting, validation or namespace check.
            let mut st = self.lock();
            return self.insert_new(&mut st, res, ns, obj, dry_run);
        }
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        if !obj.get("metadata").is_some_and(Value::is_object) {
            obj["metadata"] = json!({});
        }
        let mut name = name_of(&obj);
        if name.is_empty() {
            let prefix = obj
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    &res.group,
                    &res.kind,
                    "",
                    &[(
                        "metadata.name".into(),
                        "Required value: name or generateName is required".into(),
                    )],
                ));
            }
            name = format!("{prefix}{}", random_suffix(5));
            obj["metadata"]["name"] = json!(name);
        }
        validation::validate_name(res, &name)?;
        if res.namespaced {
            if let Some(body_ns) = obj.pointer("/metadata/namespace").and_then(Value::as_str)
                && !body_ns.is_empty()
                && body_ns != ns
            {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            obj["metadata"]["namespace"] = json!(ns);
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        obj["apiVersion"] = json!(res.api_version(version));
        obj["kind"] = json!(res.kind);
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("deletionTimestamp");
            m.remove("uid");
            m.remove("creationTimestamp");
            m.remove("resourceVersion");
        }
        if res.has_status() && !res.from_crd {
            // Built-in create keeps status (as the registry's PrepareForCreate resets it, kube keeps it empty).
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        if res.from_crd
            && res.has_status()
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        if obj.get("spec").is_some() || res.from_crd {
            obj["metadata"]["generation"] = json!(1);
        }
        validation::prune(res, version, &mut obj);
        created_defaults(res, &name, &mut obj);
        validation::validate(res, version, &obj, None)?;
        let mut st = self.lock();
        Self::check_namespace(&st, res, ns)?;
        if res.group.is_empty()
            && res.plural == "persistentvolumeclaims"
            && obj.pointer("/spec/storageClassName").is_none()
        {
            // The DefaultStorageClass admission plugin: a claim without a class gets the default one, if any.
            let default = st.objects_of("storage.k8s.io", "storageclasses").find(|c| {
                c.pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class")
                    .and_then(Value::as_str)
                    == Some("true")
            });
            if let Some(class) = default.and_then(|c| c.pointer("/metadata/name")).cloned() {
                obj["spec"]["storageClassName"] = class;
            }
        }
        self.insert_new(&mut st, res, ns, obj, dry_run)
    }

    /// Get one object.
    pub fn get(&self, res: &ResourceInfo, ns: &str, name: &str) -> Result<Value, ApiError> {
        let st = self.lock();
        let key: Key = (
            res.group.clone(),
            res.plural.clone(),
            ns_key(res, ns),
            name.to_string(),
        );
        st.object(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))
    }

    /// List objects of a resource (all namespaces when `ns` is None), one page of `opts.limit` from the
    /// continue token on. The walk starts at the token's key and, with a label selector, visits only the
    /// objects its narrowest requirement names, so a page costs O(matches + page) whatever the store holds.
    /// As the apiserver does, `remainingItemCount` is only given for lists without selectors, and there it is
    /// an estimate (objects in scope minus those already returned).
    pub fn list(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ListPage, ApiError> {
        let st = self.lock();
        let start = match &opts.continue_token {
            Some(t) => Some(decode_continue(t)?),
            None => None,
        };
        let ns = ns.filter(|_| res.namespaced);
        let Some(table) = st.table(&res.group, &res.plural) else {
            return Ok(ListPage {
                items: Vec::new(),
                rv: st.rv,
                continue_token: None,
                remaining: None,
            });
        };
        let (from, offset) = match (&start, ns) {
            (Some((sns, sname, offset)), _) => {
                (Bound::Excluded((sns.clone(), sname.clone())), *offset)
            }
            (None, Some(ns)) => (Bound::Included((ns.to_string(), String::new())), 0),
            (None, None) => (Bound::Unbounded, 0),
        };
        let matching = table
            .candidates(opts.labels.as_ref(), from)
            .take_while(|slot| ns.is_none_or(|ns| slot.0 == ns))
            .filter_map(|slot| Some((slot, table.get(slot)?)))
            .filter(|(_, obj)| {
                opts.labels.as_ref().is_none_or(|l| l.matches_object(obj))
                    && opts.fields.as_ref().is_none_or(|f| f.matches(obj))
            });
        let mut items = Vec::new();
        let mut last = None;
        let mut more = false;
        for (slot, obj) in matching {
            if opts.limit > 0 && items.len() == opts.limit {
                // One match past the page: there is a next page.
                more = true;
                break;
            }
            items.push(obj.clone());
            last = Some(slot);
        }
        let returned = offset + items.len();
        let continue_token = match last {
            Some((lns, lname)) if more => Some(encode_continue(lns, lname, returned)),
            _ => None,
        };
        let selected = opts.labels.is_some() || opts.fields.is_some();
        let remaining = (continue_token.is_some() && !selected)
            .then(|| table.count(ns).saturating_sub(returned).max(1));
        Ok(ListPage {
            items,
            rv: st.rv,
            remaining,
            continue_token,
        })
    }

    /// Update or patch an object: read-modify-write under the store lock, `f` gets the current object and
    /// returns the desired one (a PUT returns its body). API requests (`Part::Main`, `Part::Status`) get the
    /// resourceVersion precondition, the status subresource split and validation; the cluster's own writes
    /// (`Part::Raw`) may change every part.
    #[allow(clippy::too_many_arguments)]
    pub fn modify(
        &self,
        res: &ResourceInfo,
        version: &str,
        ns: &str,
        name: &str,
        part: Part,
        dry_run: bool,
        f: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let key: Key = (
            res.group.clone(),
            res.plural.clone(),
            ns_key(res, ns),
            name.to_string(),
        );
        let old = st
            .object(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))?;
        let mut new = f(&old)?;
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        if !new.get("metadata").is_some_and(Value::is_object) {
            new["metadata"] = json!({});
        }
        let body_name = name_of(&new);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(rv) = rv_of(&new)
            && Some(rv) != rv_of(&old)
        {
            return Err(ApiError::conflict(&res.group, &res.plural, name));
        }
        if part == Part::Main {
            secret_string_data(res, &mut new);
        }
        let has_status = res.has_status();
        match part {
            Part::Main if has_status => match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            },
            Part::Status => {
                let status = new.get("status").cloned();
                let mut merged = old.clone();
                match status {
                    Some(s) => merged["status"] = s,
                    None => {
                        if let Some(m) = merged.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                new = merged;
            }
            _ => {}
        }
        // Immutable or server-owned metadata.
        for field in [
            "uid",
            "creationTimestamp",
            "namespace",
            "deletionTimestamp",
            "generation",
        ] {
            match old["metadata"].get(field) {
                Some(v) if part != Part::Raw || field != "deletionTimestamp" => {
                    new["metadata"][field] = v.clone()
                }
                Some(_) => {}
                None => {
                    if let Some(m) = new["metadata"].as_object_mut()
                        && part != Part::Raw
                    {
                        m.remove(field);
                    }
                }
            }
        }
        new["metadata"]["name"] = json!(name);
        new["apiVersion"] = json!(res.api_version(version));
        new["kind"] = json!(res.kind);
        if spec_part(&new) != spec_part(&old) && part != Part::Status {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            new["metadata"]["generation"] = json!(g + 1);
        }
        if part != Part::Raw {
            validation::prune(res, version, &mut new);
            validation::validate(res, version, &new, Some(&old))?;
        }
        if dry_run {
            return Ok(new);
        }
        // Setting the same object again is a no-op that keeps the resourceVersion, like the apiserver.
        let mut cmp = new.clone();
        cmp["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        if cmp == old {
            return Ok(old);
        }
        let finalizers_empty = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        st.rv += 1;
        new["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        if new.pointer("/metadata/deletionTimestamp").is_some() && finalizers_empty {
            st.take(&key);
            self.emit(&mut st, EventType::Deleted, &key, new.clone());
            let uid = new
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            self.collect_garbage(&mut st, &uid);
            return Ok(new);
        }
        st.put(key.clone(), new.clone());
        self.emit(&mut st, EventType::Modified, &key, new.clone());
        Ok(new)
    }

    /// DeleteOptions preconditions as the apiserver checks them before a delete (uid first, then
    /// resourceVersion): a mismatch is 409 Conflict, worded like the registry's, and nothing is deleted. An
    /// object already being deleted is no exception: its deletion bumped the resourceVersion.
    fn check_preconditions(
        res: &ResourceInfo,
        name: &str,
        old: &Value,
        uid: Option<&str>,
        rv: Option<&str>,
    ) -> Result<(), ApiError> {
        let conflict = |why: String| {
            // The registry names the kind, not the plural, in this message (`VolumeSnapshot.snapshot.storage.k8s.io`).
            // Its details name the kind too.
            let mut e = ApiError::conflict(&res.group, &res.kind, name);
            e.message = format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                crate::status::qualified(&res.group, &res.kind)
            );
            e
        };
        let actual_uid = old
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(uid) = uid
            && uid != actual_uid
        {
            return Err(conflict(format!(
                "the UID in the precondition ({uid}) does not match the UID in record ({actual_uid}). \
                 The object might have been deleted and then recreated"
            )));
        }
        let actual_rv = rv_of(old).unwrap_or_default();
        if let Some(rv) = rv
            && rv != actual_rv
        {
            return Err(conflict(format!(
                "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record \
                 ({actual_rv}). The object might have been modified"
            )));
        }
        Ok(())
    }

    /// Delete an object. With finalizers it only gets a deletionTimestamp; otherwise it is removed, its
    /// dependents (ownerReferences) are collected, and a namespace takes its contents with it.
    pub fn delete(
        &self,
        res: &ResourceInfo,
        ns: &str,
        name: &str,
        precondition_uid: Option<&str>,
        precondition_rv: Option<&str>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let key: Key = (
            res.group.clone(),
            res.plural.clone(),
            ns_key(res, ns),
            name.to_string(),
        );
        let old = st
            .object(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))?;
        Self::check_preconditions(res, name, &old, precondition_uid, precondition_rv)?;
        if dry_run {
            return Ok(old);
        }
        let has_finalizers = old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let is_namespace = res.group.is_empty() && res.plural == "namespaces";
        if has_finalizers && !is_namespace {
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(old);
            }
            let mut new = old.clone();
            new["metadata"]["deletionTimestamp"] = json!(self.clock.now_rfc3339());
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            st.rv += 1;
            new["metadata"]["resourceVersion"] = json!(st.rv.to_string());
            st.put(key.clone(), new.clone());
            self.emit(&mut st, EventType::Modified, &key, new.clone());
            return Ok(new);
        }
        if is_namespace {
            let inside: Vec<Key> = st
                .tables
                .iter()
                .flat_map(|(group, plurals)| {
                    plurals.iter().flat_map(move |(plural, table)| {
                        table.slots_in(name).map(move |(ns, n)| {
                            (group.clone(), plural.clone(), ns.clone(), n.clone())
                        })
                    })
                })
                .collect();
            for k in inside {
                self.remove_key(&mut st, &k);
            }
        }
        let removed = self.remove_key(&mut st, &key).unwrap_or(old);
        Ok(removed)
    }

    fn remove_key(&self, st: &mut State, key: &Key) -> Option<Value> {
        let mut obj = st.take(key)?;
        for c in &self.companions {
            c.removed(key);
        }
        st.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        self.emit(st, EventType::Deleted, key, obj.clone());
        let uid = obj
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        self.collect_garbage(st, &uid);
        Some(obj)
    }

    /// Background cascading deletion: remove every object owned by `uid`.
    fn collect_garbage(&self, st: &mut State, uid: &str) {
        if uid.is_empty() {
            return;
        }
        let owned: Vec<Key> = st
            .owned
            .get(uid)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default();
        for k in owned {
            self.remove_key(st, &k);
        }
    }

    /// Load an object verbatim (status and timestamps kept), inserting or replacing it, as `--apply`, seeds and
    /// `Sim::apply_yaml` do: bringing a state in, not a write any client or controller makes (those go through
    /// `create`/`modify`/`delete`). Missing uid/creationTimestamp are filled in; a missing namespace is created.
    pub fn load(&self, group: &str, plural: &str, mut obj: Value) -> Result<Value, ApiError> {
        let res = self
            .resource(group, plural)
            .ok_or_else(|| ApiError::not_found(group, plural, &name_of(&obj)))?;
        let name = name_of(&obj);
        if name.is_empty() {
            return Err(ApiError::bad_request(format!(
                "{plural}: metadata.name is required"
            )));
        }
        let ns = if res.namespaced {
            let ns = obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string();
            obj["metadata"]["namespace"] = json!(ns);
            ns
        } else {
            String::new()
        };
        if res.namespaced {
            let exists = self.lock().contains(&(
                String::new(),
                "namespaces".to_string(),
                String::new(),
                ns.clone(),
            ));
            if !exists {
                self.load("", "namespaces", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}))?;
            }
        }
        if obj.get("apiVersion").and_then(Value::as_str).is_none() {
            obj["apiVersion"] = json!(res.api_version(res.preferred_version()));
        }
        obj["kind"] = json!(res.kind);
        let mut st = self.lock();
        let key: Key = (res.group.clone(), res.plural.clone(), ns, name);
        let existed = st.object(&key).cloned();
        if let Some(old) = &existed
            && obj.pointer("/metadata/uid").is_none()
        {
            obj["metadata"]["uid"] = old["metadata"]["uid"].clone();
            obj["metadata"]["creationTimestamp"] = old["metadata"]["creationTimestamp"].clone();
        }
        self.stamp_new(&mut st, &mut obj);
        st.put(key.clone(), obj.clone());
        let etype = if existed.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.emit(&mut st, etype, &key, obj.clone());
        Ok(obj)
    }

    /// Events after `rv` still in the history, or 410 Gone if `rv` is older than the history.
    pub fn events_since(&self, rv: u64) -> Result<Vec<Arc<Event>>, ApiError> {
        let st = self.lock();
        Self::events_since_locked(&st, rv)
    }

    /// Same as [`Store::events_since`] on a held lock, and subscribe atomically so nothing is missed.
    pub fn watch_from(&self, rv: u64) -> Result<(Vec<Arc<Event>>, Subscription), ApiError> {
        let st = self.lock();
        let past = Self::events_since_locked(&st, rv)?;
        Ok((past, self.events.subscribe()))
    }

    /// All current objects of a resource plus a subscription, atomically (for watches without a resourceVersion).
    pub fn snapshot_and_subscribe(
        &self,
        group: &str,
        plural: &str,
    ) -> (Vec<Value>, u64, broadcast::Receiver<Arc<Event>>) {
        let st = self.lock();
        let objs = st.objects_of(group, plural).cloned().collect();
        (objs, st.rv, self.events.subscribe())
    }

    fn events_since_locked(st: &State, rv: u64) -> Result<Vec<Arc<Event>>, ApiError> {
        if rv > st.rv {
            // A future resourceVersion: the apiserver waits; the simulator treats it as "from now".
            return Ok(Vec::new());
        }
        if let Some(first) = st.history.front()
            && rv + 1 < first.rv
        {
            return Err(ApiError::expired(rv));
        }
        // The history is in resourceVersion order: find the first newer event instead of walking them all.
        let first_newer = st.history.partition_point(|e| e.rv <= rv);
        Ok(st.history.range(first_newer..).cloned().collect())
    }

    /// Every object of a resource (all namespaces), for controllers and the library.
    pub fn all_of(&self, group: &str, plural: &str) -> Vec<Value> {
        if crate::events::is_view(group, plural) {
            // Events are stored once, as core/v1; the `events.k8s.io` view is converted on the way out.
            return self
                .lock()
                .objects_of("", "events")
                .map(crate::events::to_view)
                .collect();
        }
        self.lock().objects_of(group, plural).cloned().collect()
    }

    /// One object by raw key, for controllers.
    pub fn find(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        if crate::events::is_view(group, plural) {
            return self
                .find("", "events", ns, name)
                .map(|e| crate::events::to_view(&e));
        }
        self.lock()
            .object(&(
                group.to_string(),
                plural.to_string(),
                ns.to_string(),
                name.to_string(),
            ))
            .cloned()
    }

    /// Store a new object under its key (409 when taken): stamped (uid, creationTimestamp, resourceVersion),
    /// kept and announced. A dry run stores nothing and returns what would have been stored.
    fn insert_new(
        &self,
        st: &mut State,
        res: &ResourceInfo,
        ns: &str,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let name = name_of(&obj);
        let key: Key = (
            res.group.clone(),
            res.plural.clone(),
            ns_key(res, ns),
            name.clone(),
        );
        if st.contains(&key) {
            return Err(ApiError::already_exists(&res.group, &res.plural, &name));
        }
        if dry_run {
            obj["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
            obj["metadata"]["creationTimestamp"] = json!(self.clock.now_rfc3339());
            return Ok(obj);
        }
        self.stamp_new(st, &mut obj);
        st.put(key.clone(), obj.clone());
        self.emit(st, EventType::Added, &key, obj.clone());
        Ok(obj)
    }
}

/// What the registries of built-in kinds set on a created object: no empty label or annotation map, a
/// namespace's name label and Active phase, a claim's Pending phase, a secret's stringData moved into data.
fn created_defaults(res: &ResourceInfo, name: &str, obj: &mut Value) {
    if res.from_crd {
        return;
    }
    // Typed metadata omits an empty map.
    if let Some(meta) = obj["metadata"].as_object_mut() {
        for field in ["labels", "annotations"] {
            if meta
                .get(field)
                .and_then(Value::as_object)
                .is_some_and(serde_json::Map::is_empty)
            {
                meta.remove(field);
            }
        }
    }
    if res.group == "batch" && res.plural == "jobs" {
        return job_defaults(name, obj);
    }
    if !res.group.is_empty() {
        return;
    }
    match res.plural.as_str() {
        "namespaces" => {
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            obj["status"] = json!({"phase": "Active"});
        }
        "persistentvolumeclaims" => obj["status"] = json!({"phase": "Pending"}),
        _ => secret_string_data(res, obj),
    }
}

/// The Job registry's labels: its uid (given now) as the selector, both forms of job-name and controller-uid on
/// the pod template, and the template's labels on a Job that has none of its own.
fn job_defaults(name: &str, obj: &mut Value) {
    let uid = uuid::Uuid::new_v4().to_string();
    obj["metadata"]["uid"] = json!(uid);
    if obj.pointer("/spec/manualSelector").and_then(Value::as_bool) != Some(true) {
        if obj.pointer("/spec/selector").is_none() {
            obj["spec"]["selector"] =
                json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
        }
        for (k, v) in [
            ("job-name", name),
            ("batch.kubernetes.io/job-name", name),
            ("controller-uid", uid.as_str()),
            ("batch.kubernetes.io/controller-uid", uid.as_str()),
        ] {
            obj["spec"]["template"]["metadata"]["labels"][k] = json!(v);
        }
    }
    if obj.pointer("/metadata/labels").is_none()
        && let Some(labels) = obj.pointer("/spec/template/metadata/labels").cloned()
    {
        obj["metadata"]["labels"] = labels;
    }
}

/// A secret's stringData, as the apiserver stores it: each value base64-encoded into data (over a data key of
/// the same name), and stringData itself dropped.
fn secret_string_data(res: &ResourceInfo, obj: &mut Value) {
    use base64::Engine as _;
    if !(res.group.is_empty() && res.plural == "secrets") {
        return;
    }
    let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    for (k, v) in strings {
        let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
        obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

fn ns_key(res: &ResourceInfo, ns: &str) -> String {
    if res.namespaced {
        ns.to_string()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::new(SimClock::new(Some(
            "2025-01-01T00:00:00Z".parse().expect("time"),
        )))
    }

    fn cm(name: &str, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
    }

    #[test]
    fn create_stamps_uid_time_and_version_and_refuses_duplicates() {
        let s = store();
        let res = s.resource("", "configmaps").expect("cm");
        let o = s
            .create(&res, "v1", "default", cm("a", json!({})), Part::Main, false)
            .expect("created");
        assert!(o.pointer("/metadata/uid").is_some());
        assert_eq!(
            o.pointer("/metadata/creationTimestamp"),
            Some(&json!("2025-01-01T00:00:00Z"))
        );
        let err = s
            .create(&res, "v1", "default", cm("a", json!({})), Part::Main, false)
            .expect_err("dup");
        assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
        let err = s
            .create(&res, "v1", "nope", cm("b", json!({})), Part::Main, false)
            .expect_err("no ns");
        assert_eq!(err.message, "namespaces \"nope\" not found");
    }

    #[test]
    fn generate_name_appends_five_random_characters() {
        let s = store();
        let res = s.resource("", "configmaps").expect("cm");
        let o = s
            .create(
                &res,
                "v1",
                "default",
                json!({"metadata": {"generateName": "backup-"}}),
                Part::Main,
                false,
            )
            .expect("created");
        let name = o
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .expect("name");
        assert!(name.starts_with("backup-") && name.len() == 12, "{name}");
    }

    #[test]
    fn stale_resource_version_is_a_conflict() {
        let s = store();
        let res = s.resource("", "configmaps").expect("cm");
        let o = s
            .create(&res, "v1", "default", cm("a", json!({})), Part::Main, false)
            .expect("created");
        let mut first = o.clone();
        first["data"]["k"] = json!("1");
        s.modify(&res, "v1", "default", "a", Part::Main, false, |_| Ok(first))
            .expect("fresh update");
        let mut stale = o;
        stale["data"]["k"] = json!("2");
        let err = s
            .modify(&res, "v1", "default", "a", Part::Main, false, |_| Ok(stale))
            .expect_err("stale");
        assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    }

    #[test]
    fn pagination_walks_every_item_exactly_once() {
        let s = store();
        let res = s.resource("", "configmaps").expect("cm");
        for i in 0..7 {
            s.create(
                &res,
                "v1",
                "default",
                cm(&format!("c{i}"), json!({"even": (i % 2 == 0).to_string()})),
                Part::Main,
                false,
            )
            .expect("created");
        }
        let mut seen = Vec::new();
        let mut opts = ListOptions {
            limit: 3,
            ..Default::default()
        };
        loop {
            let page = s.list(&res, Some("default"), &opts).expect("page");
            seen.extend(page.items.iter().map(name_of));
            match page.continue_token {
                Some(t) => opts.continue_token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, (0..7).map(|i| format!("c{i}")).collect::<Vec<_>>());
        let opts = ListOptions {
            labels: Some(LabelSelector::parse("even=true").expect("sel")),
            limit: 2,
            ..Default::default()
        };
        let page = s.list(&res, None, &opts).expect("page");
        assert_eq!(page.items.len(), 2);
        assert_eq!(
            page.remaining, None,
            "with a selector the apiserver leaves remainingItemCount unset"
        );
        let opts = ListOptions {
            continue_token: page.continue_token,
            ..opts
        };
        let page = s.list(&res, None, &opts).expect("page");
        assert_eq!(
            page.items.iter().map(name_of).collect::<Vec<_>>(),
            ["c4", "c6"]
        );
        assert_eq!(page.continue_token, None, "no match is left: no next page");
        let unselected = s
            .list(
                &res,
                Some("default"),
                &ListOptions {
                    limit: 3,
                    ..Default::default()
                },
            )
            .expect("page");
        assert_eq!(unselected.remaining, Some(4));
    }

    #[test]
    fn a_selector_list_follows_relabels_and_namespaces() {
        let s = store();
        let res = s.resource("", "configmaps").expect("cm");
        let ns = s.resource("", "namespaces").expect("ns");
        s.create(
            &ns,
            "v1",
            "",
            json!({"metadata": {"name": "other"}}),
            Part::Main,
            false,
        )
        .expect("namespace");
        for (ns, name) in [("default", "a"), ("other", "b"), ("default", "c")] {
            s.create(
                &res,
                "v1",
                ns,
                cm(name, json!({"tier": "gold"})),
                Part::Main,
                false,
            )
            .expect("created");
        }
        let mut c = s.get(&res, "default", "c").expect("c");
        c["metadata"]["labels"]["tier"] = json!("silver");
        s.modify(&res, "v1", "default", "c", Part::Main, false, |_| Ok(c))
            .expect("relabelled");
        let names = |ns: Option<&str>, sel: &str| {
            let opts = ListOptions {
                labels: Some(LabelSelector::parse(sel).expect("sel")),
                ..Default::default()
            };
            let page = s.list(&res, ns, &opts).expect("page");
            page.items.iter().map(name_of).collect::<Vec<_>>()
        };
        assert_eq!(names(None, "tier=gold"), ["a", "b"]);
        assert_eq!(names(Some("default"), "tier=gold"), ["a"]);
        assert_eq!(names(Some("default"), "tier in (gold,silver)"), ["a", "c"]);
        assert_eq!(names(Some("other"), "tier=silver"), Vec::<String>::new());
        s.delete(&ns, "", "other", None, None, false)
            .expect("namespace deleted");
        assert_eq!(
            names(None, "tier"),
            ["a", "c"],
            "the namespace took its objects"
        );
    }

    #[test]
    fn delete_preconditions_refuse_another_uid_or_a_moved_resource_version() {
        let s = store();
        let res = s.resource("", "configmaps").expect("cm");
        let o = s
            .create(&res, "v1", "default", cm("p", json!({})), Part::Main, false)
            .expect("created");
        let uid = o["metadata"]["uid"].as_str().expect("uid").to_string();
        let rv = o["metadata"]["resourceVersion"]
            .as_str()
            .expect("rv")
            .to_string();
        let err = s
            .delete(&res, "default", "p", Some("someone-else"), None, false)
            .expect_err("uid");
        assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
        assert!(err.message.starts_with("Operation cannot be fulfilled on ConfigMap \"p\": the UID in the precondition (someone-else)"), "{}", err.message);
        let mut moved = o.clone();
        moved["data"]["k"] = json!("changed");
        s.modify(&res, "v1", "default", "p", Part::Main, false, |_| Ok(moved))
            .expect("changed");
        let err = s
            .delete(&res, "default", "p", Some(&uid), Some(&rv), false)
            .expect_err("stale rv");
        assert_eq!(err.code, 409);
        assert!(
            err.message.contains(&format!(
                "the ResourceVersion in the precondition ({rv}) does not match"
            )),
            "{}",
            err.message
        );
        assert!(
            s.get(&res, "default", "p").is_ok(),
            "refused deletes leave the object"
        );
        let current = s.get(&res, "default", "p").expect("p")["metadata"]["resourceVersion"]
            .as_str()
            .expect("rv")
            .to_string();
        s.delete(&res, "default", "p", Some(&uid), Some(&current), false)
            .expect("matching preconditions delete");
        assert_eq!(s.get(&res, "default", "p").expect_err("gone").code, 404);
    }

    #[test]
    fn finalizers_delay_deletion_until_removed() {
        let s = store();
        let res = s.resource("", "configmaps").expect("cm");
        let mut o = cm("f", json!({}));
        o["metadata"]["finalizers"] = json!(["x/y"]);
        s.create(&res, "v1", "default", o, Part::Main, false)
            .expect("created");
        let d = s
            .delete(&res, "default", "f", None, None, false)
            .expect("marked");
        assert!(d.pointer("/metadata/deletionTimestamp").is_some());
        assert!(s.get(&res, "default", "f").is_ok());
        let mut cur = s.get(&res, "default", "f").expect("still there");
        cur["metadata"]["finalizers"] = json!([]);
        s.modify(&res, "v1", "default", "f", Part::Main, false, |_| Ok(cur))
            .expect("finalizer removed");
        assert_eq!(s.get(&res, "default", "f").expect_err("gone").code, 404);
    }

    #[test]
    fn watch_history_replays_from_a_resource_version() {
        let s = store();
        let res = s.resource("", "configmaps").expect("cm");
        let rv = s.current_rv();
        s.create(&res, "v1", "default", cm("w", json!({})), Part::Main, false)
            .expect("created");
        s.delete(&res, "default", "w", None, None, false)
            .expect("deleted");
        let evs: Vec<_> = s
            .events_since(rv)
            .expect("events")
            .into_iter()
            .filter(|e| e.plural == "configmaps")
            .collect();
        assert_eq!(
            evs.iter().map(|e| e.etype).collect::<Vec<_>>(),
            vec![EventType::Added, EventType::Deleted]
        );
    }

    #[test]
    fn deleting_an_owner_collects_its_dependents() {
        let s = store();
        let res = s.resource("", "configmaps").expect("cm");
        let owner = s
            .create(
                &res,
                "v1",
                "default",
                cm("owner", json!({})),
                Part::Main,
                false,
            )
            .expect("owner");
        let mut dep = cm("dep", json!({}));
        dep["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}]);
        s.create(&res, "v1", "default", dep.clone(), Part::Main, false)
            .expect("dep");
        let mut freed = cm("freed", json!({}));
        freed["metadata"]["ownerReferences"] = dep["metadata"]["ownerReferences"].clone();
        s.create(&res, "v1", "default", freed, Part::Main, false)
            .expect("freed");
        let mut orphan = s.get(&res, "default", "freed").expect("freed");
        orphan["metadata"]["ownerReferences"] = json!([]);
        s.modify(&res, "v1", "default", "freed", Part::Main, false, |_| {
            Ok(orphan)
        })
        .expect("owner reference dropped");
        s.delete(&res, "default", "owner", None, None, false)
            .expect("deleted");
        assert_eq!(
            s.get(&res, "default", "dep").expect_err("collected").code,
            404
        );
        assert!(
            s.get(&res, "default", "freed").is_ok(),
            "an object that dropped its owner reference is not collected"
        );
    }

    #[test]
    fn events_read_through_the_events_k8s_io_view_are_the_stored_core_events() {
        let s = Store::new(SimClock::new(None));
        s.load(
            "",
            "events",
            json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"}, "message": "hello",
            "involvedObject": {"kind": "Pod", "name": "p"}}),
        )
        .expect("loaded");
        let view = s.all_of("events.k8s.io", "events");
        assert_eq!(view.len(), 1);
        assert_eq!(view[0]["note"], "hello");
        assert_eq!(view[0]["regarding"]["name"], "p");
        assert_eq!(
            s.find("events.k8s.io", "events", "default", "e")
                .map(|e| e["apiVersion"].clone()),
            Some(json!("events.k8s.io/v1"))
        );
    }
}
