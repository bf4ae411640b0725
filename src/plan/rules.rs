//! Kubernetes naming rules and the snapshot name template: pure functions, each returning why a value fails.

use crate::labels::{self, LabelValueError};

/// Worst-case values used to check a nameTemplate offline.
pub const WORST_TIMESTAMP: &str = "2006-01-02-150405";
/// Length of the random part of a snapshot name (as in the original).
pub const RAND_LEN: usize = 6;
/// The placeholders a nameTemplate may use.
pub const PLACEHOLDERS: [&str; 4] = ["pvc", "timestamp", "rand", "plan"];

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// RFC 1123 label (namespaces, plan names, containers): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 63 {
        return Err(format!(
            "is {} characters long; at most 63 are allowed",
            s.len()
        ));
    }
    if let Some(c) = s.chars().find(|c| !is_lower_alnum(*c) && *c != '-') {
        return Err(format!(
            "contains `{c}`; only lowercase letters, digits and `-` are allowed"
        ));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("must start and end with a lowercase letter or digit".into());
    }
    Ok(())
}

/// RFC 1123 subdomain (PVCs, VolumeSnapshots, classes): dot-separated labels, at most 253 in total.
pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 253 {
        return Err(format!(
            "is {} characters long; at most 253 are allowed",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !is_lower_alnum(*c) && *c != '-' && *c != '.')
    {
        return Err(format!(
            "contains `{c}`; only lowercase letters, digits, `-` and `.` are allowed"
        ));
    }
    for part in s.split('.') {
        if part.is_empty() || part.starts_with('-') || part.ends_with('-') {
            return Err(
                "every dot-separated part must start and end with a lowercase letter or digit"
                    .into(),
            );
        }
    }
    Ok(())
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9._-]` starting and ending alphanumeric. The rule itself is
/// [`labels::validate_label_value`]; this only words the verdict for a diagnostic label.
pub fn label_value(s: &str) -> Result<(), String> {
    match labels::validate_label_value(s) {
        Ok(()) => Ok(()),
        Err(LabelValueError::TooLong { len, .. }) => Err(format!(
            "is {len} characters long; a label value allows at most 63"
        )),
        Err(LabelValueError::Charset { .. }) => Err(
            match s.chars().find(|c| !is_alnum(*c) && !"-_.".contains(*c)) {
                Some(c) => {
                    format!("contains `{c}`; label values allow letters, digits, `-`, `_` and `.`")
                }
                None => "must start and end with a letter or digit".into(),
            },
        ),
    }
}

/// A label or annotation key: `[prefix/]name`, prefix a DNS subdomain, name like a non-empty label value.
pub fn qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(prefix) = prefix {
        dns1123_subdomain(prefix).map_err(|e| format!("prefix `{prefix}` {e}"))?;
    }
    if name.is_empty() {
        return Err("name part must not be empty".into());
    }
    label_value(name).map_err(|e| {
        format!(
            "name part `{name}` {}",
            e.replace("a label value", "a key name")
                .replace("label values allow", "key names allow")
        )
    })
}

/// Why a nameTemplate cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    UnknownPlaceholder(String),
    Unclosed,
}

/// Renders `{pvc}`, `{timestamp}`, `{rand}` and `{plan}`.
pub fn render_template(
    template: &str,
    pvc: &str,
    timestamp: &str,
    rand: &str,
    plan: &str,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or(TemplateError::Unclosed)?;
        let name = after[..close].trim();
        out.push_str(match name {
            "pvc" => pvc,
            "timestamp" => timestamp,
            "rand" => rand,
            "plan" => plan,
            other => return Err(TemplateError::UnknownPlaceholder(other.to_string())),
        });
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Renders with the worst case (longest target, longest timestamp) and checks the result is a valid
/// VolumeSnapshot name that also fits a label value (63), since names are referenced from labels.
pub fn check_template(
    template: &str,
    targets: &[String],
    plan: &str,
    rand: Option<&str>,
) -> Result<String, String> {
    let longest = targets
        .iter()
        .max_by_key(|t| t.len())
        .map_or("data", String::as_str);
    let worst_rand = "z".repeat(RAND_LEN);
    let rand = rand.unwrap_or(&worst_rand);
    let rendered =
        render_template(template, longest, WORST_TIMESTAMP, rand, plan).map_err(|e| match e {
            TemplateError::UnknownPlaceholder(p) => format!(
                "unknown placeholder `{{{p}}}`; use {}",
                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
            ),
            TemplateError::Unclosed => "a `{` is never closed".to_string(),
        })?;
    if rendered.len() > 63 {
        return Err(format!(
            "renders to {} characters for PVC `{longest}` (`{rendered}`); at most 63 are allowed",
            rendered.len()
        ));
    }
    dns1123_subdomain(&rendered).map_err(|e| format!("renders to `{rendered}`, which {e}"))?;
    Ok(rendered)
}

/// Converts the original's Go template (`{{ .pvcName }}-{{ .timestamp }}-{{ .rand }}`) to ours.
pub fn go_template_to_ours(go: &str) -> String {
    let mut out = String::new();
    let mut rest = go;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let field = after[..close].trim().trim_start_matches('.');
        let ours = match field {
            "pvcName" => "pvc",
            "timestamp" => "timestamp",
            "rand" => "rand",
            other => other,
        };
        out.push('{');
        out.push_str(ours);
        out.push('}');
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_follow_rfc_1123() {
        for ok in ["a", "app-base", "x1", &"a".repeat(63)] {
            assert_eq!(dns1123_label(ok), Ok(()), "{ok}");
        }
        for bad in ["", "App", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            assert!(dns1123_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dns_subdomains_allow_dots_but_not_empty_parts() {
        assert_eq!(dns1123_subdomain("csi.hostpath.example"), Ok(()));
        assert!(dns1123_subdomain("a..b").is_err());
        assert!(dns1123_subdomain("a.-b").is_err());
        assert!(dns1123_subdomain(&"a".repeat(254)).is_err());
    }

    #[test]
    fn label_values_and_keys_follow_kubernetes_rules() {
        assert_eq!(label_value(""), Ok(()));
        assert_eq!(label_value("My_value.1"), Ok(()));
        assert!(label_value("-x").is_err());
        assert!(label_value("a b").is_err());
        assert!(label_value(&"a".repeat(64)).is_err());
        assert_eq!(qualified_name("example.com/team"), Ok(()));
        assert_eq!(qualified_name("team"), Ok(()));
        assert!(qualified_name("Example.com/team").is_err());
        assert!(qualified_name("example.com/").is_err());
    }

    #[test]
    fn templates_render_every_placeholder() {
        let out =
            render_template("{plan}-{pvc}-{timestamp}-{rand}", "data", "T", "r", "p").unwrap();
        assert_eq!(out, "p-data-T-r");
        assert_eq!(
            render_template("{nope}", "", "", "", ""),
            Err(TemplateError::UnknownPlaceholder("nope".into()))
        );
        assert_eq!(
            render_template("{pvc", "", "", "", ""),
            Err(TemplateError::Unclosed)
        );
    }

    #[test]
    fn template_check_uses_the_longest_target() {
        let targets = vec!["a".to_string(), "x".repeat(40)];
        let err = check_template("{pvc}-{timestamp}-{rand}", &targets, "p", None).unwrap_err();
        assert!(err.contains("65 characters"), "{err}");
        assert!(check_template("{pvc}-{timestamp}-{rand}", &["data".into()], "p", None).is_ok());
        assert!(check_template("{pvc}_{rand}", &["data".into()], "p", None).is_err());
    }

    #[test]
    fn go_templates_convert_to_placeholders() {
        assert_eq!(
            go_template_to_ours("{{ .pvcName }}-{{ .timestamp }}-{{ .rand }}"),
            "{pvc}-{timestamp}-{rand}"
        );
    }
}
