//! Which hook of a plan the database commands (`backup-ns postgres|mysql ...`) work with: `--hook NAME`, or
//! `--hook pre[N]`/`post[N]` for a hook without a name, or, without `--hook`, the only hook of the command's type.
//!
//! Never "the first one": a plan with two postgres hooks (two databases in one namespace) must say which it
//! means, or a download or restore could silently use the other database.

use super::model::{Hook, HookAction, HookKind, HookPosition, Plan};
use super::rules;
use std::fmt;
use std::str::FromStr;

/// How `--hook` names a hook: by its `name`, or by its position (`pre[1]`) for hooks without one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookSelector {
    Name(String),
    Position(HookPosition),
}

impl FromStr for HookSelector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Hook names are DNS-1123 labels, which never contain `[`, so a position cannot shadow a name.
        if s.starts_with("pre[") || s.starts_with("post[") {
            return s.parse().map(HookSelector::Position);
        }
        match rules::dns1123_label(s) {
            Ok(()) => Ok(HookSelector::Name(s.to_string())),
            Err(why) => Err(format!(
                "`{s}` is neither a hook name (it {why}) nor a position like `pre[0]` or `post[1]`"
            )),
        }
    }
}

impl fmt::Display for HookSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookSelector::Name(name) => f.write_str(name),
            HookSelector::Position(position) => write!(f, "{position}"),
        }
    }
}

/// A hook of a plan together with where it sits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelectedHook<'p> {
    pub position: HookPosition,
    pub hook: &'p Hook,
}

impl SelectedHook<'_> {
    fn matches(&self, selector: &HookSelector) -> bool {
        match selector {
            HookSelector::Name(name) => self.hook.name.as_deref() == Some(name.as_str()),
            HookSelector::Position(position) => self.position == *position,
        }
    }

    /// What `--hook` takes for this hook: its name, or its position when it has none.
    pub fn selector(&self) -> HookSelector {
        match &self.hook.name {
            Some(name) => HookSelector::Name(name.clone()),
            None => HookSelector::Position(self.position),
        }
    }

    /// For messages: `` `orders` (pre[0], postgres, dumpFile /var/lib/postgresql/data/orders.sql.gz) `` or
    /// `` `pre[1]` (exec) ``: the `--hook` value first, then what tells hooks apart.
    pub fn describe(&self) -> String {
        let mut details = Vec::new();
        if self.hook.name.is_some() {
            details.push(self.position.to_string());
        }
        details.push(self.hook.action.kind().to_string());
        if let HookAction::Postgres(h) = &self.hook.action {
            details.push(format!("dumpFile {}", h.dump.dump_file));
        } else if let HookAction::Mysql(h) = &self.hook.action {
            details.push(format!("dumpFile {}", h.dump.dump_file));
        }
        format!("`{}` ({})", self.selector(), details.join(", "))
    }
}

/// Why no hook could be picked. Each message names the plan and lists what `--hook` could say instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("plan `{plan}` has no hook `{selector}`; its hooks: {}", list_or_none(.hooks))]
    NotFound {
        plan: String,
        selector: HookSelector,
        /// Every hook of the plan, described.
        hooks: Vec<String>,
    },
    #[error("hook `{selector}` of plan `{plan}` is a {actual} hook, not a {wanted} hook")]
    WrongKind {
        plan: String,
        selector: HookSelector,
        actual: HookKind,
        wanted: HookKind,
    },
    #[error("plan `{plan}` has no {wanted} hook")]
    NoneOfKind { plan: String, wanted: HookKind },
    #[error(
        "plan `{plan}` has {} {wanted} hooks, so it is not clear which one to use: {}; pass `--hook` with the name or position of one of them",
        .candidates.len(),
        .candidates.join(", ")
    )]
    Ambiguous {
        plan: String,
        wanted: HookKind,
        /// The hooks of the wanted type, described.
        candidates: Vec<String>,
    },
}

fn list_or_none(hooks: &[String]) -> String {
    if hooks.is_empty() {
        "none".to_string()
    } else {
        hooks.join(", ")
    }
}

/// Picks the hook of type `wanted`: the one `selector` names, or, without a selector, the only one of that type.
pub fn select_hook<'p>(
    plan: &'p Plan,
    wanted: HookKind,
    selector: Option<&HookSelector>,
) -> Result<SelectedHook<'p>, SelectError> {
    let hooks: Vec<SelectedHook<'p>> = plan
        .hooks_with_positions()
        .map(|(position, hook)| SelectedHook { position, hook })
        .collect();
    if let Some(selector) = selector {
        let Some(found) = hooks.iter().find(|h| h.matches(selector)) else {
            return Err(SelectError::NotFound {
                plan: plan.name.clone(),
                selector: selector.clone(),
                hooks: hooks.iter().map(SelectedHook::describe).collect(),
            });
        };
        let actual = found.hook.action.kind();
        if actual != wanted {
            return Err(SelectError::WrongKind {
                plan: plan.name.clone(),
                selector: selector.clone(),
                actual,
                wanted,
            });
        }
        return Ok(*found);
    }
    let of_kind: Vec<&SelectedHook<'p>> = hooks
        .iter()
        .filter(|h| h.hook.action.kind() == wanted)
        .collect();
    match of_kind.as_slice() {
        [] => Err(SelectError::NoneOfKind {
            plan: plan.name.clone(),
            wanted,
        }),
        [only] => Ok(**only),
        several => Err(SelectError::Ambiguous {
            plan: plan.name.clone(),
            wanted,
            candidates: several.iter().map(|h| h.describe()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Phase, SourceFile, load_source, node::Format, profiles::Profiles};

    /// pre: `orders` (postgres), an unnamed postgres hook, an unnamed exec hook; post: `shop` (mysql).
    const TWO_POSTGRES: &str = "\
name: app
targets: [data]
hooks:
  pre:
    - name: orders
      type: postgres
      workload: deployment/db
      dumpFile: /var/lib/postgresql/data/orders.sql.gz
    - type: postgres
      workload: deployment/db
      dumpFile: /var/lib/postgresql/data/billing.sql.gz
    - type: exec
      workload: deployment/app
      container: app
      command: [sync]
  post:
    - name: shop
      type: mysql
      workload: statefulset/mariadb
";

    fn plan(yaml: &str) -> Plan {
        let src = SourceFile::new("t.yaml", yaml);
        let (plan, diags) = load_source(&src, Format::Yaml, None, &Profiles::builtin());
        plan.unwrap_or_else(|| panic!("test plan loads: {diags:?}"))
    }

    fn pick(
        plan: &Plan,
        wanted: HookKind,
        selector: Option<&str>,
    ) -> Result<HookPosition, SelectError> {
        let selector = selector.map(|s| s.parse::<HookSelector>().unwrap());
        select_hook(plan, wanted, selector.as_ref()).map(|h| h.position)
    }

    fn at(phase: Phase, index: usize) -> HookPosition {
        HookPosition { phase, index }
    }

    #[test]
    fn a_name_or_a_position_picks_exactly_that_hook() {
        let plan = plan(TWO_POSTGRES);
        for (wanted, selector, expected) in [
            (HookKind::Postgres, "orders", at(Phase::Pre, 0)),
            (HookKind::Postgres, "pre[0]", at(Phase::Pre, 0)),
            (HookKind::Postgres, "pre[1]", at(Phase::Pre, 1)),
            (HookKind::Mysql, "shop", at(Phase::Post, 0)),
            (HookKind::Mysql, "post[0]", at(Phase::Post, 0)),
        ] {
            assert_eq!(
                pick(&plan, wanted, Some(selector)),
                Ok(expected),
                "{selector}"
            );
        }
    }

    #[test]
    fn without_a_selector_the_only_hook_of_the_type_is_used() {
        let plan = plan(TWO_POSTGRES);
        assert_eq!(pick(&plan, HookKind::Mysql, None), Ok(at(Phase::Post, 0)));
        let mut one_postgres = plan;
        one_postgres.hooks.pre.remove(1);
        assert_eq!(
            pick(&one_postgres, HookKind::Postgres, None),
            Ok(at(Phase::Pre, 0))
        );
    }

    #[test]
    fn several_hooks_of_the_type_without_a_selector_are_refused_with_the_candidates() {
        let plan = plan(TWO_POSTGRES);
        let err = pick(&plan, HookKind::Postgres, None).unwrap_err();
        assert_eq!(
            err,
            SelectError::Ambiguous {
                plan: "app".into(),
                wanted: HookKind::Postgres,
                candidates: vec![
                    "`orders` (pre[0], postgres, dumpFile /var/lib/postgresql/data/orders.sql.gz)"
                        .into(),
                    "`pre[1]` (postgres, dumpFile /var/lib/postgresql/data/billing.sql.gz)".into(),
                ],
            }
        );
        let text = err.to_string();
        assert!(text.contains("has 2 postgres hooks"), "{text}");
        assert!(text.contains("pass `--hook`"), "{text}");
    }

    #[test]
    fn a_hook_of_another_type_is_refused_naming_its_type() {
        let plan = plan(TWO_POSTGRES);
        let err = pick(&plan, HookKind::Postgres, Some("shop")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "hook `shop` of plan `app` is a mysql hook, not a postgres hook"
        );
        let err = pick(&plan, HookKind::Mysql, Some("pre[2]")).unwrap_err();
        assert!(matches!(
            err,
            SelectError::WrongKind {
                actual: HookKind::Exec,
                ..
            }
        ));
    }

    #[test]
    fn an_unknown_name_or_position_lists_every_hook_of_the_plan() {
        let plan = plan(TWO_POSTGRES);
        for missing in ["billing", "pre[3]", "post[1]"] {
            let err = pick(&plan, HookKind::Postgres, Some(missing)).unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("plan `app` has no hook `{missing}`; its hooks: ")),
                "{text}"
            );
            for hook in [
                "`orders` (pre[0]",
                "`pre[1]` (postgres",
                "`pre[2]` (exec)",
                "`shop` (post[0], mysql",
            ] {
                assert!(text.contains(hook), "{hook} in {text}");
            }
        }
    }

    #[test]
    fn a_plan_without_the_type_is_refused() {
        let plan = plan("name: app\ntargets: [data]\n");
        assert_eq!(
            pick(&plan, HookKind::Postgres, None),
            Err(SelectError::NoneOfKind {
                plan: "app".into(),
                wanted: HookKind::Postgres
            })
        );
        assert!(
            pick(&plan, HookKind::Postgres, Some("db"))
                .unwrap_err()
                .to_string()
                .ends_with("its hooks: none")
        );
    }

    #[test]
    fn selectors_parse_as_positions_or_names_and_reject_the_rest() {
        assert_eq!(
            "post[2]".parse(),
            Ok(HookSelector::Position(at(Phase::Post, 2)))
        );
        assert_eq!("orders".parse(), Ok(HookSelector::Name("orders".into())));
        let err = "Orders".parse::<HookSelector>().unwrap_err();
        assert!(err.contains("neither a hook name"), "{err}");
        assert!("pre[x]".parse::<HookSelector>().is_err());
        assert!("".parse::<HookSelector>().is_err());
    }
}
