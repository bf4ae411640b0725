//! The apiserver's URL and apiVersion layout, in one place: how `/api/v1/namespaces/NS/pods/NAME[/SUB]` and
//! `/apis/GROUP/VERSION/...` are parsed into a [`Route`] and built back (routes, OpenAPI documents, messages),
//! and how a group and version make an `apiVersion` (`v1`, `apps/v1`). The core group is the empty string.

/// A parsed API path.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// /version
    Version,
    /// /healthz, /readyz, /livez
    Health,
    /// /api
    Api,
    /// /apis
    Apis,
    /// /apis/G
    Group(String),
    /// /api/v1 or /apis/G/V
    GroupVersion(String, String),
    /// A resource path.
    Resource {
        /// API group.
        group: String,
        /// Version.
        version: String,
        /// Resource plural.
        plural: String,
        /// Namespace of the path.
        namespace: Option<String>,
        /// Object name.
        name: Option<String>,
        /// Subresource.
        sub: Option<String>,
    },
    /// /openapi/v2
    OpenApiV2,
    /// /openapi/v3 and /openapi/v3/...
    OpenApiV3(String),
    /// /_sim/...
    Sim(String),
}

/// Parse a request path into a [`Route`].
pub fn parse(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Some(Route::Version),
        ["healthz" | "readyz" | "livez", ..] => return Some(Route::Health),
        ["api"] => return Some(Route::Api),
        ["apis"] => return Some(Route::Apis),
        ["apis", g] => return Some(Route::Group(g.to_string())),
        ["openapi", "v2"] => return Some(Route::OpenApiV2),
        ["openapi", "v3", rest @ ..] => return Some(Route::OpenApiV3(rest.join("/"))),
        ["_sim", rest @ ..] => return Some(Route::Sim(rest.join("/"))),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let res = |plural: &str, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        Route::Resource {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            sub: sub.map(str::to_string),
        }
    };
    Some(match rest {
        [] => Route::GroupVersion(group.to_string(), version.to_string()),
        ["namespaces", ns, "status" | "finalize"] if group.is_empty() => {
            res("namespaces", None, Some(ns), rest.get(2).copied())
        }
        ["namespaces", ns, plural] => res(plural, Some(ns), None, None),
        ["namespaces", ns, plural, name] => res(plural, Some(ns), Some(name), None),
        ["namespaces", ns, plural, name, sub] => res(plural, Some(ns), Some(name), Some(sub)),
        [plural] => res(plural, None, None, None),
        [plural, name] => res(plural, None, Some(name), None),
        [plural, name, sub] => res(plural, None, Some(name), Some(sub)),
        _ => return None,
    })
}

/// `/api/VERSION` for the core group, `/apis/GROUP/VERSION` otherwise.
pub fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// The path of a resource collection, object or subresource: `namespace` is None for cluster-scoped resources
/// (and all-namespace lists). Path templates pass placeholders (`{ns}`, `{name}`) as the values.
pub fn resource(
    group: &str,
    version: &str,
    plural: &str,
    namespace: Option<&str>,
    name: Option<&str>,
    sub: Option<&str>,
) -> String {
    let mut path = group_version(group, version);
    if let Some(ns) = namespace {
        path.push_str("/namespaces/");
        path.push_str(ns);
    }
    for seg in std::iter::once(plural).chain(name).chain(sub) {
        path.push('/');
        path.push_str(seg);
    }
    path
}

/// The route template of the pod exec subresource (axum syntax).
pub fn exec_template() -> String {
    resource("", "v1", "pods", Some("{ns}"), Some("{name}"), Some("exec"))
}

/// `apiVersion` of a group and version: `v1` for core, `GROUP/VERSION` otherwise.
pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// Split an `apiVersion` into (group, version).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_parse_into_routes() {
        let r = parse("/apis/snapshot.storage.k8s.io/v1/namespaces/app/volumesnapshots/s1/status");
        assert_eq!(
            r,
            Some(Route::Resource {
                group: "snapshot.storage.k8s.io".into(),
                version: "v1".into(),
                plural: "volumesnapshots".into(),
                namespace: Some("app".into()),
                name: Some("s1".into()),
                sub: Some("status".into())
            })
        );
        assert!(
            matches!(parse("/api/v1/namespaces/app"), Some(Route::Resource { ref plural, name: Some(_), namespace: None, .. }) if plural == "namespaces")
        );
        assert!(
            matches!(parse("/api/v1/namespaces/app/pods"), Some(Route::Resource { ref plural, name: None, namespace: Some(_), .. }) if plural == "pods")
        );
        assert!(matches!(
            parse("/api/v1/namespaces/app/status"),
            Some(Route::Resource { sub: Some(_), .. })
        ));
        assert_eq!(
            parse("/apis/apps/v1"),
            Some(Route::GroupVersion("apps".into(), "v1".into()))
        );
        assert_eq!(parse("/nonsense"), None);
    }

    #[test]
    fn built_paths_parse_back_to_what_built_them() {
        for (group, version, plural, ns, name, sub) in [
            ("", "v1", "pods", Some("app"), Some("db-0"), Some("log")),
            ("", "v1", "nodes", None, Some("kube-sim"), None),
            ("apps", "v1", "deployments", Some("app"), None, None),
            (
                "snapshot.storage.k8s.io",
                "v1",
                "volumesnapshots",
                None,
                None,
                None,
            ),
        ] {
            let path = resource(group, version, plural, ns, name, sub);
            assert_eq!(
                parse(&path),
                Some(Route::Resource {
                    group: group.into(),
                    version: version.into(),
                    plural: plural.into(),
                    namespace: ns.map(Into::into),
                    name: name.map(Into::into),
                    sub: sub.map(Into::into),
                }),
                "{path}"
            );
        }
        assert_eq!(exec_template(), "/api/v1/namespaces/{ns}/pods/{name}/exec");
        assert_eq!(group_version("", "v1"), "/api/v1");
        assert_eq!(group_version("apps", "v1"), "/apis/apps/v1");
    }

    #[test]
    fn api_versions_split_and_join() {
        assert_eq!(api_version("", "v1"), "v1");
        assert_eq!(api_version("batch", "v1"), "batch/v1");
        assert_eq!(split_api_version("v1"), ("", "v1"));
        assert_eq!(split_api_version("batch/v1"), ("batch", "v1"));
    }
}
