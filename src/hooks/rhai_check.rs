//! The rhai form of a verify check (`verify.checks[].rhai`).
//!
//! A check script reads the restored database through `query("SQL")` (every row, each an array of column texts)
//! and `scalar("SQL")` (the first column of the first row: an integer when it is one, else its text). The SQL must
//! be a string literal: [`queries`] finds every such call in the script's syntax tree, so that the verification
//! pod answers them all in one go while its throwaway server runs, and `validate` refuses a computed query
//! offline. [`evaluate`] then runs the script on those answers in the hook sandbox (no file, process or network
//! access; operation, depth, size and time limits): the check fails when the script throws, calls `fail(msg)` or
//! ends with `false`.
//!
//! | item | meaning |
//! |---|---|
//! | `query(sql)` | the rows, `[["3000"], ...]`; NULL is `""`; a failed query throws its error |
//! | `scalar(sql)` | the first column of the first row (`i64` when it parses, else a string); throws on no rows |
//! | `log(msg)` | a line; the last one is the check's detail in the report |
//! | `fail(msg)` | the check fails with `msg` |

use super::diagnostic::ScriptDiagnostic;
use super::rhai::{RhaiLimits, runtime_error, sandbox_engine};
use ::rhai::{AST, ASTNode, Array, Dynamic, EvalAltResult, Expr, Stmt};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The functions whose argument is a query the pod runs.
pub const QUERY_FUNCTIONS: [&str; 2] = ["query", "scalar"];

/// The most rows of one query the pod reports; a query with more fails (aggregate in SQL instead).
pub const MAX_ROWS: usize = 1000;

/// How long a check script may run on its answers (it only computes; no I/O waits).
const EVAL_TIME: Duration = Duration::from_secs(10);

/// The answers to a check script's queries, by SQL text: the rows (columns as text), or the query's error.
pub type Answers = BTreeMap<String, Result<Vec<Vec<String>>, String>>;

/// Compiles a check script and lists the SQL of its `query`/`scalar` calls, in order of first appearance.
/// A syntax error, or a call whose argument is not one string literal, is a diagnostic at its position.
pub fn queries(path: &str, source: &str) -> Result<Vec<String>, Box<ScriptDiagnostic>> {
    let ast = super::rhai::compile_source(path, source)?;
    let mut found: Vec<String> = Vec::new();
    let mut computed = None;
    ast.walk(&mut |nodes: &[ASTNode]| {
        // A call is an expression, or a statement of its own (`Stmt::FnCall`); a method call never has a literal.
        let call = match nodes.last() {
            Some(
                ASTNode::Expr(Expr::FnCall(call, pos)) | ASTNode::Stmt(Stmt::FnCall(call, pos)),
            ) => Some((call, *pos, true)),
            Some(ASTNode::Expr(Expr::MethodCall(call, pos))) => Some((call, *pos, false)),
            _ => None,
        };
        if let Some((call, pos, plain)) = call
            && QUERY_FUNCTIONS.contains(&call.name.as_str())
        {
            let literal = match (plain, call.args.as_slice()) {
                (true, [Expr::StringConstant(sql, _)]) => Some(sql.to_string()),
                _ => None,
            };
            match literal {
                Some(sql) if !found.contains(&sql) => found.push(sql),
                Some(_) => {}
                None => {
                    computed.get_or_insert((call.name.to_string(), pos));
                }
            }
        }
        true
    });
    match computed {
        Some((name, pos)) => Err(Box::new(ScriptDiagnostic::new(
            path,
            source,
            format!(
                "`{name}` takes one string literal (the SQL): the verification pod answers the queries before the script runs"
            ),
            pos,
        ))),
        None => Ok(found),
    }
}

/// Runs a check script on the answers to its queries: `Ok(detail)` when it passes, `Err(why)` when it fails.
pub fn evaluate(path: &str, source: &str, answers: &Answers) -> Result<String, String> {
    let limits = RhaiLimits::default();
    let mut engine = sandbox_engine(&limits);
    let deadline = Instant::now() + EVAL_TIME;
    engine.on_progress(move |_| (Instant::now() >= deadline).then(|| Dynamic::from("stopped")));
    let answers = Arc::new(answers.clone());
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let a = Arc::clone(&answers);
    engine.register_fn("query", move |sql: &str| rows(&a, sql));
    let a = Arc::clone(&answers);
    engine.register_fn(
        "scalar",
        move |sql: &str| -> Result<Dynamic, Box<EvalAltResult>> {
            let first = rows(&a, sql)?
                .into_iter()
                .next()
                .and_then(|row| row.into_array().ok()?.into_iter().next())
                .ok_or_else(|| runtime_error(format!("scalar: `{sql}` returned no rows")))?;
            let text = first.into_string().unwrap_or_default();
            Ok(text
                .trim()
                .parse::<i64>()
                .map_or_else(|_| Dynamic::from(text), Dynamic::from))
        },
    );
    for name in ["log", "print"] {
        let l = Arc::clone(&log);
        engine.register_fn(name, move |msg: &str| {
            if let Ok(mut l) = l.lock() {
                l.push(msg.to_string());
            }
        });
    }
    engine.register_fn("fail", |msg: &str| -> Result<(), Box<EvalAltResult>> {
        Err(runtime_error(msg))
    });
    let compiled: AST = engine
        .compile(source)
        .map_err(|e| format!("{path}: the script does not compile: {e}"))?;
    let last_log = || log.lock().ok().and_then(|l| l.last().cloned());
    match engine.eval_ast::<Dynamic>(&compiled) {
        Ok(value) if value.as_bool() == Ok(false) => Err(last_log().map_or_else(
            || "the script ended with `false`".to_string(),
            |l| format!("the script ended with `false` after logging `{l}`"),
        )),
        Ok(value) => Ok(last_log()
            .or_else(|| value.clone().into_string().ok())
            .unwrap_or_else(|| "the script passed".to_string())),
        Err(err) => Err(failure(*err, &limits)),
    }
}

/// The rows of one answered query, as rhai arrays.
fn rows(answers: &Answers, sql: &str) -> Result<Array, Box<EvalAltResult>> {
    match answers.get(sql) {
        Some(Ok(rows)) => Ok(rows
            .iter()
            .map(|row| {
                Dynamic::from(
                    row.iter()
                        .map(|c| Dynamic::from(c.clone()))
                        .collect::<Array>(),
                )
            })
            .collect()),
        Some(Err(e)) => Err(runtime_error(format!("the query `{sql}` failed: {e}"))),
        None => Err(runtime_error(format!(
            "the query `{sql}` was not run: only a string literal in `query(\"...\")` or `scalar(\"...\")` is"
        ))),
    }
}

/// The innermost error's message, with its line, and the limits in plain words.
fn failure(mut err: EvalAltResult, limits: &RhaiLimits) -> String {
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) = err {
        err = *inner;
    }
    let line = err
        .position()
        .line()
        .map(|l| format!(" (script line {l})"))
        .unwrap_or_default();
    let message = match &err {
        EvalAltResult::ErrorTerminated(..) => format!(
            "the script did not end within {}",
            humantime::format_duration(EVAL_TIME)
        ),
        EvalAltResult::ErrorTooManyOperations(_) => format!(
            "the script exceeded its limit of {} operations",
            limits.max_operations
        ),
        EvalAltResult::ErrorRuntime(value, _) => value.to_string(),
        other => {
            let text = other.to_string();
            // The line is added once, below.
            text.split(" (line ").next().unwrap_or(&text).to_string()
        }
    };
    format!("{message}{line}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query's rows as written in a test, or its error.
    type Rows<'a> = Result<Vec<Vec<&'a str>>, &'a str>;

    fn answers(pairs: &[(&str, Rows<'_>)]) -> Answers {
        pairs
            .iter()
            .map(|(sql, rows)| {
                let rows = rows
                    .as_ref()
                    .map(|rows| {
                        rows.iter()
                            .map(|r| r.iter().map(|c| c.to_string()).collect())
                            .collect()
                    })
                    .map_err(|e| e.to_string());
                (sql.to_string(), rows)
            })
            .collect()
    }

    #[test]
    fn the_queries_are_the_literal_arguments_of_query_and_scalar_in_order_without_repeats() {
        let script = "let n = scalar(\"select count(*) from items\");\n\
                      fn rows() { query(\"select id from items\") }\n\
                      if scalar(\"select count(*) from items\") > 0 { rows(); }";
        assert_eq!(
            queries("c.rhai", script).unwrap(),
            ["select count(*) from items", "select id from items"]
        );
    }

    #[test]
    fn a_computed_query_is_refused_at_its_call() {
        let err = queries(
            "c.rhai",
            "let t = \"items\";\nlet n = scalar(`select count(*) from ${t}`);",
        )
        .unwrap_err();
        assert_eq!((err.line, err.column), (2, 9), "{err}");
        assert!(err.message.contains("one string literal"), "{err}");
        let err = queries("c.rhai", "\"select 1\".query()").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(queries("c.rhai", "let = ;").is_err());
    }

    #[test]
    fn a_script_passes_unless_it_throws_fails_or_ends_with_false() {
        let a = answers(&[
            ("select count(*) from items", Ok(vec![vec!["3000"]])),
            (
                "select id, name from items",
                Ok(vec![vec!["1", "a"], vec!["2", "b"]]),
            ),
            (
                "select broken",
                Err("ERROR: column \"broken\" does not exist"),
            ),
        ]);
        let pass = "let n = scalar(\"select count(*) from items\");\nlog(`${n} items`);\nn > 1000";
        assert_eq!(evaluate("c", pass, &a), Ok("3000 items".to_string()));
        let rows =
            "let r = query(\"select id, name from items\");\nr.len() == 2 && r[1][1] == \"b\"";
        assert_eq!(evaluate("c", rows, &a), Ok("the script passed".to_string()));
        assert_eq!(
            evaluate("c", "scalar(\"select count(*) from items\") < 10", &a),
            Err("the script ended with `false`".to_string())
        );
        assert_eq!(
            evaluate("c", "let n = 1;\nif n < 2 { fail(\"too few\") }", &a),
            Err("too few (script line 2)".to_string())
        );
        let broken = evaluate("c", "query(\"select broken\")", &a).unwrap_err();
        assert!(broken.contains("does not exist"), "{broken}");
        let unknown =
            evaluate("c", "let f = Fn(\"query\");\nf.call(\"select 2\")", &a).unwrap_err();
        assert!(unknown.contains("was not run"), "{unknown}");
        let endless = evaluate("c", "loop {}", &a).unwrap_err();
        assert!(endless.contains("limit of"), "{endless}");
    }
}
