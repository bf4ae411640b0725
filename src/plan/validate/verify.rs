//! Validates `verify`: the hook reference, the timeout, and each check (a name unique within the plan; a query
//! and an `expect` comparison that parses, or a rhai script that compiles and names its queries literally).

use super::{duration, first_seen, missing};
use crate::plan::diag::{Code, Collector, Diag};
use crate::plan::hook_selector::HookSelector;
use crate::plan::model::{CheckTest, Expect, Verify, VerifyCheck};
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
        if let Some(script) = &check.rhai {
            for other in [&check.sql, &check.expect].into_iter().flatten() {
                cx.err(
                    Code::CheckForm,
                    other.span.clone(),
                    "a verify check has both `rhai` and `sql`/`expect`".to_string(),
                    "not with `rhai`",
                    "a check is either `sql` with `expect`, or a `rhai` script; split it into two checks",
                );
            }
            let test = rhai_check(script, cx);
            if let (Some(name), Some(test)) = (name, test)
                && check.sql.is_none()
                && check.expect.is_none()
            {
                checks.push(VerifyCheck {
                    name: name.value.clone(),
                    test,
                });
            }
            continue;
        }
        let sql = check.sql.as_ref().filter(|s| !s.trim().is_empty());
        if sql.is_none() {
            missing(
                cx,
                &check.keys,
                &anchor,
                what,
                "sql",
                "give the query, e.g. `sql: select count(*) from orders` (or write the check as a `rhai` script)",
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
                test: CheckTest::Sql {
                    sql: sql.value.clone(),
                    expect,
                },
            });
        }
    }
    let restore_command = raw.restore_command.as_ref().and_then(|c| {
        if c.value.trim().is_empty() {
            cx.err(
                Code::EmptyCommand,
                c.span.clone(),
                "`verify.restoreCommand` is empty".to_string(),
                "PostgreSQL runs it to fetch each archived WAL file",
                "give the archive's restore_command, e.g. `cp /archive/%f %p`, or leave the key out",
            );
            None
        } else {
            Some(c.value.clone())
        }
    });
    Verify {
        hook,
        timeout: duration(cx, &raw.timeout, "timeout", def.timeout),
        checks,
        restore_command,
    }
}

/// A `rhai` check: compiled by the sandbox that runs it, its queries collected. An error points into the plan at
/// the script's line and column when the script's text stands there verbatim (a block scalar), else at the value.
fn rhai_check(script: &Spanned<String>, cx: &mut Collector) -> Option<CheckTest> {
    match crate::hooks::rhai_check::queries("rhai", &script.value) {
        Ok(queries) => Some(CheckTest::Rhai {
            rhai: script.value.clone(),
            queries,
        }),
        Err(err) => {
            let at = script_offset(
                &cx.src.text,
                &script.span,
                &script.value,
                err.line,
                err.column,
            );
            let (line, column) = (err.line, err.column);
            cx.err(
                Code::CheckScript,
                at..at,
                format!("the check's rhai script is refused at its line {line}, column {column}: {}", err.message),
                &err.message,
                "query the database with `query(\"SQL\")` or `scalar(\"SQL\")`, SQL written as a string literal",
            );
            None
        }
    }
}

/// Where the script's `line`:`column` (1-based) lies in the plan text, found by following the script's lines
/// through the value's span; the span's start when a line is not there verbatim (an escaped, quoted string).
fn script_offset(
    text: &str,
    span: &std::ops::Range<usize>,
    script: &str,
    line: usize,
    column: usize,
) -> usize {
    let Some(value) = text.get(span.clone()) else {
        return span.start;
    };
    let mut from = 0;
    for (i, script_line) in script.lines().enumerate().take(line.max(1)) {
        let Some(found) = value[from..].find(script_line) else {
            return span.start;
        };
        if i + 1 == line.max(1) {
            let within = script_line
                .char_indices()
                .nth(column.saturating_sub(1))
                .map_or(script_line.len(), |(b, _)| b);
            return span.start + from + found + within;
        }
        from += found + script_line.len();
    }
    span.start
}
