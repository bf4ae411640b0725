//! A small evaluator for the subset of CEL used by `x-kubernetes-validations` rules in the snapshot CRDs:
//! `self`/`oldSelf`, field selection (with `__name__` escapes), `has()`, `size()`, `!`, `&&`, `||`,
//! comparisons, and string/integer/boolean/null literals. Anything else is a parse error, reported as such
//! (never silently accepted); a unit test proves every rule in the embedded CRDs parses.

use serde_json::Value;

/// Why a rule could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CelError {
    /// The rule uses syntax outside the supported subset.
    #[error("unsupported CEL expression {rule:?}: {why}")]
    Unsupported {
        /// The rule text.
        rule: String,
        /// What was not understood.
        why: String,
    },
    /// Runtime error (missing field, wrong types), as CEL reports it.
    #[error("{0}")]
    Runtime(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Op(&'static str),
}

fn lex(rule: &str) -> Result<Vec<Tok>, CelError> {
    let unsupported = |why: String| CelError::Unsupported {
        rule: rule.to_string(),
        why,
    };
    let cs: Vec<char> = rule.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let s = i;
            while i < cs.len() && (cs[i].is_ascii_alphanumeric() || cs[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(cs[s..i].iter().collect()));
        } else if c.is_ascii_digit() {
            let s = i;
            while i < cs.len() && cs[i].is_ascii_digit() {
                i += 1;
            }
            let text: String = cs[s..i].iter().collect();
            out.push(Tok::Int(
                text.parse()
                    .map_err(|_| unsupported(format!("bad integer {text}")))?,
            ));
        } else if c == '"' || c == '\'' {
            let s = i + 1;
            i += 1;
            while i < cs.len() && cs[i] != c {
                i += 1;
            }
            if i >= cs.len() {
                return Err(unsupported("unterminated string".into()));
            }
            out.push(Tok::Str(cs[s..i].iter().collect()));
            i += 1;
        } else {
            let two: String = cs[i..(i + 2).min(cs.len())].iter().collect();
            let op = ["&&", "||", "==", "!=", ">=", "<="]
                .into_iter()
                .find(|o| *o == two);
            if let Some(op) = op {
                out.push(Tok::Op(op));
                i += 2;
            } else {
                let one = match c {
                    '!' => "!",
                    '(' => "(",
                    ')' => ")",
                    '.' => ".",
                    '>' => ">",
                    '<' => "<",
                    _ => return Err(unsupported(format!("unexpected character {c:?}"))),
                };
                out.push(Tok::Op(one));
                i += 1;
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
enum Expr {
    Var(String),
    Select(Box<Expr>, String),
    Has(Box<Expr>, String),
    Size(Box<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(&'static str, Box<Expr>, Box<Expr>),
    Lit(Value),
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    rule: &'a str,
}

impl Parser<'_> {
    fn err(&self, why: &str) -> CelError {
        CelError::Unsupported {
            rule: self.rule.to_string(),
            why: why.to_string(),
        }
    }
    fn peek_op(&self, op: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Op(o)) if *o == op)
    }
    fn expect_op(&mut self, op: &str) -> Result<(), CelError> {
        if self.peek_op(op) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected '{op}'")))
        }
    }
    fn or(&mut self) -> Result<Expr, CelError> {
        let mut l = self.and()?;
        while self.peek_op("||") {
            self.pos += 1;
            l = Expr::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, CelError> {
        let mut l = self.cmp()?;
        while self.peek_op("&&") {
            self.pos += 1;
            l = Expr::And(Box::new(l), Box::new(self.cmp()?));
        }
        Ok(l)
    }
    fn cmp(&mut self) -> Result<Expr, CelError> {
        let l = self.unary()?;
        for op in ["==", "!=", ">=", "<=", ">", "<"] {
            if self.peek_op(op) {
                self.pos += 1;
                let r = self.unary()?;
                return Ok(Expr::Cmp(op, Box::new(l), Box::new(r)));
            }
        }
        Ok(l)
    }
    fn unary(&mut self) -> Result<Expr, CelError> {
        if self.peek_op("!") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.postfix()
    }
    fn postfix(&mut self) -> Result<Expr, CelError> {
        let mut e = self.primary()?;
        while self.peek_op(".") {
            self.pos += 1;
            match self.toks.get(self.pos).cloned() {
                Some(Tok::Ident(f)) => {
                    self.pos += 1;
                    e = Expr::Select(Box::new(e), unescape(&f));
                }
                _ => return Err(self.err("expected a field name after '.'")),
            }
        }
        Ok(e)
    }
    fn primary(&mut self) -> Result<Expr, CelError> {
        let tok = self
            .toks
            .get(self.pos)
            .cloned()
            .ok_or_else(|| self.err("unexpected end"))?;
        self.pos += 1;
        match tok {
            Tok::Op("(") => {
                let e = self.or()?;
                self.expect_op(")")?;
                Ok(e)
            }
            Tok::Int(n) => Ok(Expr::Lit(Value::from(n))),
            Tok::Str(s) => Ok(Expr::Lit(Value::String(s))),
            Tok::Ident(id) => match id.as_str() {
                "true" => Ok(Expr::Lit(Value::Bool(true))),
                "false" => Ok(Expr::Lit(Value::Bool(false))),
                "null" => Ok(Expr::Lit(Value::Null)),
                "self" | "oldSelf" => Ok(Expr::Var(id)),
                "has" => {
                    self.expect_op("(")?;
                    let inner = self.postfix()?;
                    self.expect_op(")")?;
                    match inner {
                        Expr::Select(base, field) => Ok(Expr::Has(base, field)),
                        _ => Err(self.err("has() needs a field selection")),
                    }
                }
                "size" => {
                    self.expect_op("(")?;
                    let inner = self.or()?;
                    self.expect_op(")")?;
                    Ok(Expr::Size(Box::new(inner)))
                }
                other => Err(self.err(&format!("unknown identifier {other}"))),
            },
            Tok::Op(o) => Err(self.err(&format!("unexpected '{o}'"))),
        }
    }
}

/// CEL escapes field names that clash with keywords: `__namespace__` is the field `namespace`.
fn unescape(f: &str) -> String {
    match f.strip_prefix("__").and_then(|s| s.strip_suffix("__")) {
        Some(inner) if !inner.is_empty() => inner
            .replace("__dot__", ".")
            .replace("__dash__", "-")
            .replace("__slash__", "/"),
        _ => f.to_string(),
    }
}

/// Parse a rule, reporting unsupported syntax.
pub fn check_syntax(rule: &str) -> Result<(), CelError> {
    parse(rule).map(|_| ())
}

fn parse(rule: &str) -> Result<Expr, CelError> {
    let mut p = Parser {
        toks: lex(rule)?,
        pos: 0,
        rule,
    };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err(p.err("trailing tokens"));
    }
    Ok(e)
}

/// Evaluate `rule` with `self` = `this` and `oldSelf` = `old`.
pub fn evaluate(rule: &str, this: &Value, old: Option<&Value>) -> Result<bool, CelError> {
    let e = parse(rule)?;
    match eval(&e, this, old)? {
        Value::Bool(b) => Ok(b),
        other => Err(CelError::Runtime(format!(
            "rule did not evaluate to a bool: {other}"
        ))),
    }
}

fn eval(e: &Expr, this: &Value, old: Option<&Value>) -> Result<Value, CelError> {
    Ok(match e {
        Expr::Var(v) if v == "self" => this.clone(),
        Expr::Var(_) => old
            .cloned()
            .ok_or_else(|| CelError::Runtime("oldSelf is not available".into()))?,
        Expr::Lit(v) => v.clone(),
        Expr::Select(base, f) => {
            let b = eval(base, this, old)?;
            b.get(f)
                .cloned()
                .ok_or_else(|| CelError::Runtime(format!("no such key: {f}")))?
        }
        Expr::Has(base, f) => Value::Bool(eval(base, this, old)?.get(f).is_some()),
        Expr::Size(inner) => {
            let v = eval(inner, this, old)?;
            let n = match &v {
                Value::String(s) => s.chars().count(),
                Value::Array(a) => a.len(),
                Value::Object(o) => o.len(),
                _ => return Err(CelError::Runtime("size() of a value without size".into())),
            };
            Value::from(n as i64)
        }
        Expr::Not(inner) => Value::Bool(!truth(&eval(inner, this, old)?)?),
        // CEL's && and || are commutative with errors absorbed by a decisive other side.
        Expr::And(l, r) => {
            let lv = eval(l, this, old).and_then(|v| truth(&v));
            let rv = eval(r, this, old).and_then(|v| truth(&v));
            match (lv, rv) {
                (Ok(false), _) | (_, Ok(false)) => Value::Bool(false),
                (Ok(true), Ok(true)) => Value::Bool(true),
                (Err(e), _) | (_, Err(e)) => return Err(e),
            }
        }
        Expr::Or(l, r) => {
            let lv = eval(l, this, old).and_then(|v| truth(&v));
            let rv = eval(r, this, old).and_then(|v| truth(&v));
            match (lv, rv) {
                (Ok(true), _) | (_, Ok(true)) => Value::Bool(true),
                (Ok(false), Ok(false)) => Value::Bool(false),
                (Err(e), _) | (_, Err(e)) => return Err(e),
            }
        }
        Expr::Cmp(op, l, r) => {
            let (a, b) = (eval(l, this, old)?, eval(r, this, old)?);
            match *op {
                "==" => Value::Bool(a == b),
                "!=" => Value::Bool(a != b),
                _ => {
                    let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
                        return Err(CelError::Runtime(format!("no such overload: {a} {op} {b}")));
                    };
                    Value::Bool(match *op {
                        ">" => x > y,
                        "<" => x < y,
                        ">=" => x >= y,
                        _ => x <= y,
                    })
                }
            }
        }
    })
}

fn truth(v: &Value) -> Result<bool, CelError> {
    v.as_bool()
        .ok_or_else(|| CelError::Runtime(format!("no matching overload: expected bool, got {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_rule_in_the_embedded_crds_is_in_the_supported_subset() {
        fn walk(v: &Value, n: &mut usize) {
            match v {
                Value::Object(o) => {
                    if let Some(Value::String(r)) = o.get("rule") {
                        check_syntax(r).unwrap_or_else(|e| panic!("{e}"));
                        *n += 1;
                    }
                    o.values().for_each(|c| walk(c, n));
                }
                Value::Array(a) => a.iter().for_each(|c| walk(c, n)),
                _ => {}
            }
        }
        let mut parsed = 0;
        for crd in crate::resources::embedded_crd_objects() {
            walk(&crd, &mut parsed);
        }
        assert!(parsed > 50, "expected many rules, found {parsed}");
    }

    #[test]
    fn rules_evaluate_like_cel() {
        let s = json!({"a": 1, "name": "x", "namespace": "n"});
        assert_eq!(evaluate("has(self.a) && !has(self.b)", &s, None), Ok(true));
        assert_eq!(
            evaluate("has(self.name) && has(self.__namespace__)", &s, None),
            Ok(true)
        );
        assert_eq!(
            evaluate("self == oldSelf", &s, Some(&json!({"a": 2}))),
            Ok(false)
        );
        assert_eq!(evaluate("size(self.name) > 0", &s, None), Ok(true));
        assert_eq!(
            evaluate(
                "!has(oldSelf.uid) || (has(self.uid) && self.uid == oldSelf.uid)",
                &s,
                Some(&json!({}))
            ),
            Ok(true)
        );
        assert!(matches!(
            evaluate("self.missing == 1", &s, None),
            Err(CelError::Runtime(_))
        ));
        assert!(matches!(
            evaluate("self.all(x, x > 0)", &s, None),
            Err(CelError::Unsupported { .. })
        ));
    }
}
