//! Label selectors in the full Kubernetes syntax and the field selectors the simulator supports.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::status::ApiError;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
pub enum Requirement {
    /// `k`
    Exists(String),
    /// `!k`
    NotExists(String),
    /// `k=v`, `k==v`
    Equals(String, String),
    /// `k!=v`
    NotEquals(String, String),
    /// `k in (a,b)`
    In(String, Vec<String>),
    /// `k notin (a,b)`
    NotIn(String, Vec<String>),
}

/// A parsed label selector: every requirement must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector(pub Vec<Requirement>);

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn bad(sel: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: {why} (selector {sel:?})"
    ))
}

impl LabelSelector {
    /// Parse `a,!b,c=d,e!=f,g in (h,i),j notin (k)`.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let chars: Vec<char> = s.chars().collect();
        let mut i = 0;
        let mut reqs = Vec::new();
        let skip_ws = |i: &mut usize| {
            while *i < chars.len() && chars[*i].is_whitespace() {
                *i += 1;
            }
        };
        let word = |i: &mut usize| -> String {
            let start = *i;
            while *i < chars.len() && is_key_char(chars[*i]) {
                *i += 1;
            }
            chars[start..*i].iter().collect()
        };
        loop {
            skip_ws(&mut i);
            if i >= chars.len() {
                break;
            }
            let negated = chars[i] == '!';
            if negated {
                i += 1;
                skip_ws(&mut i);
            }
            let key = word(&mut i);
            if key.is_empty() {
                return Err(bad(s, "expected a label key"));
            }
            skip_ws(&mut i);
            let rest: String = chars[i..].iter().collect();
            let req = if negated {
                Requirement::NotExists(key)
            } else if i >= chars.len() || chars[i] == ',' {
                Requirement::Exists(key)
            } else if rest.starts_with("==") || rest.starts_with("!=") || rest.starts_with('=') {
                let op_len = if rest.starts_with('=') && !rest.starts_with("==") {
                    1
                } else {
                    2
                };
                let not = rest.starts_with("!=");
                i += op_len;
                skip_ws(&mut i);
                let value = word(&mut i);
                if not {
                    Requirement::NotEquals(key, value)
                } else {
                    Requirement::Equals(key, value)
                }
            } else if rest.starts_with("in") || rest.starts_with("notin") {
                let not = rest.starts_with("notin");
                i += if not { 5 } else { 2 };
                skip_ws(&mut i);
                if i >= chars.len() || chars[i] != '(' {
                    return Err(bad(s, "expected '(' after set operator"));
                }
                i += 1;
                let mut values = Vec::new();
                loop {
                    skip_ws(&mut i);
                    let v = word(&mut i);
                    skip_ws(&mut i);
                    values.push(v);
                    match chars.get(i) {
                        Some(',') => i += 1,
                        Some(')') => {
                            i += 1;
                            break;
                        }
                        _ => return Err(bad(s, "expected ',' or ')' in value set")),
                    }
                }
                if not {
                    Requirement::NotIn(key, values)
                } else {
                    Requirement::In(key, values)
                }
            } else {
                return Err(bad(s, "unexpected operator"));
            };
            reqs.push(req);
            skip_ws(&mut i);
            match chars.get(i) {
                None => break,
                Some(',') => i += 1,
                Some(_) => return Err(bad(s, "expected ','")),
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// Build from a metav1.LabelSelector object (matchLabels + matchExpressions).
    pub fn from_object(sel: &Value) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(Requirement::Equals(
                    k.clone(),
                    v.as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                reqs.push(match e.get("operator").and_then(Value::as_str) {
                    Some("In") => Requirement::In(key, values),
                    Some("NotIn") => Requirement::NotIn(key, values),
                    Some("Exists") => Requirement::Exists(key),
                    Some("DoesNotExist") => Requirement::NotExists(key),
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "invalid label selector operator {other:?}"
                        )));
                    }
                });
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
        })
    }

    /// Whether the object's metadata.labels satisfy the selector.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(&labels_of(obj))
    }
}

/// metadata.labels as a map.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A field selector: conjunction of `path=value` / `path!=value`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector(pub Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parse `metadata.name=x,metadata.namespace!=y`. Only fields the simulator can evaluate are accepted.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, neg, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, false, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            // The labels the apiserver's field selectors support, events' among them.
            if !matches!(
                field,
                "metadata.name"
                    | "metadata.namespace"
                    | "status.phase"
                    | "spec.nodeName"
                    | "involvedObject.kind"
                    | "involvedObject.namespace"
                    | "involvedObject.name"
                    | "involvedObject.uid"
                    | "involvedObject.apiVersion"
                    | "involvedObject.resourceVersion"
                    | "involvedObject.fieldPath"
                    | "reason"
                    | "reportingComponent"
                    | "type"
            ) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            out.push((field.to_string(), neg, value.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    /// Whether the object matches.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, neg, value)| {
            let ptr = format!("/{}", field.replace('.', "/"));
            let actual = obj
                .pointer(&ptr)
                .and_then(Value::as_str)
                .unwrap_or_default();
            (actual == value) != *neg
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_operator_of_the_full_syntax_is_understood() {
        let l = labels(&[
            ("backup-ns.sh/retain", "days"),
            ("tier", "gold"),
            ("env", "prod"),
        ]);
        let cases = [
            ("backup-ns.sh/retain", true),
            ("!backup-ns.sh/retain", false),
            ("backup-ns.sh/retain,!backup-ns.sh/delete-after", true),
            ("tier=gold", true),
            ("tier==gold", true),
            ("tier!=gold", false),
            ("tier != silver", true),
            ("env in (prod, staging)", true),
            ("env in (dev)", false),
            ("env notin (dev,staging)", true),
            ("missing notin (x)", true),
            ("missing in (x)", false),
            ("", true),
        ];
        for (sel, want) in cases {
            let parsed = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(parsed.matches(&l), want, "selector {sel:?}");
        }
    }

    #[test]
    fn malformed_selectors_are_bad_requests() {
        for sel in ["a in b", "a in (b", "a b", "=x"] {
            let err = LabelSelector::parse(sel).expect_err(sel);
            assert_eq!(err.code, 400, "{sel}");
        }
    }

    #[test]
    fn match_expressions_objects_are_evaluated() {
        let sel = LabelSelector::from_object(&json!({
            "matchLabels": {"app": "db"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                  {"key": "skip", "operator": "DoesNotExist"}]
        }))
        .expect("valid");
        assert!(sel.matches(&labels(&[("app", "db"), ("tier", "b")])));
        assert!(!sel.matches(&labels(&[("app", "db"), ("tier", "b"), ("skip", "")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "a")])));
    }

    #[test]
    fn field_selectors_on_name_and_namespace() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns1"}});
        assert!(
            FieldSelector::parse("metadata.name=a")
                .expect("ok")
                .matches(&obj)
        );
        assert!(
            !FieldSelector::parse("metadata.name!=a")
                .expect("ok")
                .matches(&obj)
        );
        assert!(
            FieldSelector::parse("metadata.namespace==ns1,metadata.name=a")
                .expect("ok")
                .matches(&obj)
        );
        assert_eq!(
            FieldSelector::parse("spec.foo=1")
                .expect_err("unsupported")
                .code,
            400
        );
    }
}
