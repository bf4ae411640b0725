//! Named retention profiles: built-ins plus a shared profiles file.
//!
//! A profiles file (`retention-profiles.yaml`/`.yml`/`.toml` beside the plans, or `--profiles FILE`) is a
//! mapping from profile name to an inline policy:
//!
//! ```yaml
//! gold: { daily: 14, weekly: 8, monthly: 24, yearly: 5 }
//! scratch: { days: 3 }
//! ```
//!
//! File profiles override built-ins of the same name.

use super::diag::{Code, Collector, Diag, SourceFile};
use super::model::Retention;
use super::node::{self, Format, NodeKind};
use super::raw::{self, FromNode, Spanned};
use super::read::read_source;
use super::rules;
use super::validate::retention::{self, ProfileLookup};
use crate::vocab::retention::{RetentionPolicy, TierCounts};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File names looked for beside a plan when no `--profiles` is given.
pub const PROFILE_FILE_NAMES: [&str; 3] = [
    "retention-profiles.yaml",
    "retention-profiles.yml",
    "retention-profiles.toml",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profiles {
    map: BTreeMap<String, Retention>,
}

impl Default for Profiles {
    fn default() -> Self {
        Profiles::builtin()
    }
}

impl Profiles {
    /// `standard` = 7 daily / 4 weekly / 12 monthly (the original's defaults); `adhoc` = delete after 30 days
    /// (the original's adhoc default); `extended` = 14 / 8 / 24 / 5 yearly.
    pub fn builtin() -> Profiles {
        let mut map = BTreeMap::new();
        map.insert(
            "standard".to_string(),
            Retention {
                profile: None,
                policy: RetentionPolicy::Tiers(TierCounts {
                    daily: 7,
                    weekly: 4,
                    monthly: 12,
                    yearly: 0,
                }),
            },
        );
        map.insert(
            "adhoc".to_string(),
            Retention {
                profile: None,
                policy: RetentionPolicy::Days(30),
            },
        );
        map.insert(
            "extended".to_string(),
            Retention {
                profile: None,
                policy: RetentionPolicy::Tiers(TierCounts {
                    daily: 14,
                    weekly: 8,
                    monthly: 24,
                    yearly: 5,
                }),
            },
        );
        Profiles { map }
    }

    /// The policy of a profile, tagged with its name.
    pub fn get(&self, name: &str) -> Option<Retention> {
        let policy = self.map.get(name)?.policy;
        Some(Retention {
            profile: Some(name.to_string()),
            policy,
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }

    /// The profiles file beside a plan, if there is one.
    pub fn discover(plan_dir: &Path) -> Option<PathBuf> {
        PROFILE_FILE_NAMES
            .iter()
            .map(|n| plan_dir.join(n))
            .find(|p| p.is_file())
    }

    /// Built-ins plus the profiles in `path`. Every problem in the file is reported.
    pub fn with_file(path: &Path) -> Result<Profiles, Vec<Diag>> {
        let source = read_source(path, "profiles file").map_err(|d| vec![*d])?;
        let format = Format::from_path(path).unwrap_or(Format::Yaml);
        Profiles::from_source(&source, format)
    }

    /// Built-ins plus the profiles in a source text.
    pub fn with_source(name: &str, text: &str, format: Format) -> Result<Profiles, Vec<Diag>> {
        Profiles::from_source(&SourceFile::new(name, text), format)
    }

    fn from_source(source: &Arc<SourceFile>, format: Format) -> Result<Profiles, Vec<Diag>> {
        let source = Arc::clone(source);
        let mut diags = Vec::new();
        let mut profiles = Profiles::builtin();
        let Some(root) = node::parse(&source, format, &mut diags) else {
            return Err(diags);
        };
        let builtins = Profiles::builtin();
        match &root.kind {
            NodeKind::Map(entries) => {
                for (key, value) in entries {
                    if let Err(why) = rules::label_value(&key.name).and_then(|()| {
                        if key.name.is_empty() {
                            Err("must not be empty".to_string())
                        } else {
                            Ok(())
                        }
                    }) {
                        diags.push(
                            Diag::error(Code::InvalidName, format!("profile name `{}` is invalid", key.name))
                                .at(&source, key.span.clone(), why)
                                .help("profile names become part of annotations; use letters, digits, `-`, `_`, `.`"),
                        );
                        continue;
                    }
                    if matches!(value.kind, NodeKind::Str(_)) {
                        diags.push(
                            Diag::error(Code::WrongType, "a profile must be an inline policy, not another profile's name")
                                .at(&source, value.span.clone(), "expected a mapping")
                                .help("write the counts, e.g. `{ daily: 7, weekly: 4, monthly: 12 }` or `{ days: 30 }`"),
                        );
                        continue;
                    }
                    // The same raw type and validator as a plan's `retention`.
                    let mut cx = Collector::new(&source);
                    let policy =
                        raw::Retention::from_node(value, "retention", &mut cx).and_then(|r| {
                            let r = Spanned {
                                span: value.span.clone(),
                                value: r,
                            };
                            retention::validate(&r, None, &builtins, &mut cx)
                        });
                    diags.append(&mut cx.diags);
                    if let Some(r) = policy {
                        profiles.map.insert(key.name.clone(), r);
                    }
                }
            }
            NodeKind::Null => {}
            other => diags.push(
                Diag::error(
                    Code::WrongType,
                    format!(
                        "a profiles file must be a mapping of profile names, found {}",
                        other.type_name()
                    ),
                )
                .at(&source, root.span.clone(), "expected a mapping")
                .help("write `name: { daily: 7, weekly: 4, monthly: 12 }` per profile"),
            ),
        }
        if diags.iter().any(Diag::is_error) {
            Err(diags)
        } else {
            Ok(profiles)
        }
    }
}

impl ProfileLookup for Profiles {
    fn profile(&self, name: &str) -> Option<Retention> {
        self.get(name)
    }

    fn profile_names(&self) -> Vec<String> {
        self.names()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_match_the_original_defaults() {
        let p = Profiles::builtin();
        assert_eq!(
            p.get("standard"),
            Some(Retention {
                profile: Some("standard".into()),
                policy: RetentionPolicy::Tiers(TierCounts {
                    daily: 7,
                    weekly: 4,
                    monthly: 12,
                    yearly: 0
                }),
            })
        );
        assert_eq!(
            p.get("adhoc"),
            Some(Retention {
                profile: Some("adhoc".into()),
                policy: RetentionPolicy::Days(30),
            })
        );
        assert_eq!(p.get("nope"), None);
    }

    #[test]
    fn profiles_file_adds_and_overrides_profiles() {
        let p = Profiles::with_source(
            "p.yaml",
            "gold: { daily: 14, weekly: 8, monthly: 24, yearly: 5 }\nadhoc: { days: 3 }\n",
            Format::Yaml,
        )
        .unwrap();
        assert!(matches!(
            p.get("gold"),
            Some(Retention {
                policy: RetentionPolicy::Tiers(TierCounts { yearly: 5, .. }),
                ..
            })
        ));
        assert!(matches!(
            p.get("adhoc"),
            Some(Retention {
                policy: RetentionPolicy::Days(3),
                ..
            })
        ));
    }

    #[test]
    fn bad_profiles_in_the_file_are_all_reported() {
        let err = Profiles::with_source(
            "p.toml",
            "[a]\ndaily = -1\n[b]\nnothing = 1\n",
            Format::Toml,
        )
        .unwrap_err();
        let codes: Vec<Code> = err.iter().map(|d| d.code).collect();
        assert!(codes.contains(&Code::NegativeCount), "{codes:?}");
        assert!(codes.contains(&Code::UnknownKey), "{codes:?}");
    }
}
