//! Validates `verify`: the hook reference, the timeout, and each check (a name unique within the plan, a query,
//! and an `expect` comparison that parses).

use super::{duration, first_seen, missing};
use crate::plan::diag::{Code, Collector, Diag};
use crate::plan::hook_selector::HookSelector;
use crate::plan::model::{Expect, Verify, VerifyCheck};
use crate::plan::raw::{self, Spanned};
use std::collections::HashMap;

pub fn validate(raw: &Spanned<raw::Verify>, cx: &mut Collector) -> Verify {
    let def = Verify::default();
    let hook = raw
        .hook
        .as_ref()
        .and_then(|h| match h.value.parse::<HookSelector>() {
            Ok(_) => Some(h.value.clone()),
            Err(why) => {
                cx.err(
                    Code::InvalidName,
                    h.span.clone(),
                    format!("`verify.hook` `{}` names no hook", h.value),
                    &why,
                    "give a database hook's `name`, or its position such as `pre[0]`",
                );
                None
            }
        });
    let mut checks = Vec::new();
    let mut seen = Vec::new();
    let mut index = HashMap::new();
    for check in raw.checks.iter().flat_map(|list| list.0.iter()) {
        let anchor = check.keys.first().unwrap_or(check.span.clone());
        let what = "a verify check";
        let name = check.name.as_ref().filter(|n| !n.trim().is_empty());
        match name {
            Some(n) => {
                if let Some(first) = first_seen(&mut seen, &mut index, n) {
                    let d = Diag::error(
                        Code::DuplicateCheck,
                        format!("two verify checks are named `{}`", n.value),
                    )
                    .at(&cx.src, n.span.clone(), "duplicate")
                    .also(first, "first named here")
                    .help("give each check its own name; the report tells them apart by it");
                    cx.diags.push(d);
                }
            }
            None => missing(
                cx,
                &check.keys,
                &anchor,
                what,
                "name",
                "name the check, e.g. `name: orders`",
            ),
        }
        let sql = check.sql.as_ref().filter(|s| !s.trim().is_empty());
        if sql.is_none() {
            missing(
                cx,
                &check.keys,
                &anchor,
                what,
                "sql",
                "give the query, e.g. `sql: select count(*) from orders`",
            );
        }
        let expect = match &check.expect {
            Some(e) => match e.value.parse::<Expect>() {
                Ok(expect) => Some(expect),
                Err(why) => {
                    cx.err(
                        Code::BadExpect,
                        e.span.clone(),
                        format!("`expect` `{}` is not a comparison", e.value),
                        &why,
                        "write an operator and a whole number: `>= 1`, `> 0`, `== 42`, `!= 0`, `< 10` or `<= 10`",
                    );
                    None
                }
            },
            None => {
                missing(
                    cx,
                    &check.keys,
                    &anchor,
                    what,
                    "expect",
                    "say what the answer must be, e.g. `expect: \">= 1\"`",
                );
                None
            }
        };
        if let (Some(name), Some(sql), Some(expect)) = (name, sql, expect) {
            checks.push(VerifyCheck {
                name: name.value.clone(),
                sql: sql.value.clone(),
                expect,
            });
        }
    }
    Verify {
        hook,
        timeout: duration(cx, &raw.timeout, "timeout", def.timeout),
        checks,
    }
}
