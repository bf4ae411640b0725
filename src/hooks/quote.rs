//! POSIX shell quoting for every value placed into a hook script.
//!
//! Hook scripts travel to `sh -s` on stdin, so any value a user wrote in a plan (a database name, a user, a path)
//! ends up in shell source. Everything is single-quoted, where the shell interprets nothing, except `${NAME}`
//! references: those are the one documented way to take a value from the container's own environment (the
//! original's `${POSTGRES_PASSWORD}` defaults), and they expand inside double quotes, so their value is never
//! word-split or globbed either.

/// Quotes `s` so that `sh` reads it back as exactly one word equal to `s`.
///
/// Single quotes protect everything but a single quote itself, which is written as `'\''` (close, escaped quote,
/// reopen). The empty string becomes `''`, so it still counts as an argument.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Quotes `s` as one shell word in which `${NAME}` references (NAME = `[A-Za-z_][A-Za-z0-9_]*`) expand from the
/// container's environment and every other character is literal. Anything that only looks like a reference
/// (`$NAME`, `${1}`, `${A:-x}`, `$(cmd)`) stays literal.
pub fn quote_with_env(s: &str) -> String {
    let segments = split_env_refs(s);
    if segments.is_empty() {
        return quote("");
    }
    let mut out = String::with_capacity(s.len() + 4);
    for segment in segments {
        match segment {
            Segment::Literal(text) => out.push_str(&quote(text)),
            Segment::EnvRef(name) => {
                out.push_str("\"${");
                out.push_str(name);
                out.push_str("}\"");
            }
        }
    }
    out
}

/// The names of the `${NAME}` references in `s`, in order. Used to redact and to explain missing variables.
pub fn env_refs(s: &str) -> Vec<&str> {
    split_env_refs(s)
        .into_iter()
        .filter_map(|segment| match segment {
            Segment::EnvRef(name) => Some(name),
            Segment::Literal(_) => None,
        })
        .collect()
}

/// Whether `s` is exactly one `${NAME}` reference, e.g. `${POSTGRES_PASSWORD}`.
pub fn is_env_ref(s: &str) -> bool {
    matches!(split_env_refs(s).as_slice(), [Segment::EnvRef(_)])
}

#[derive(Debug, PartialEq, Eq)]
enum Segment<'a> {
    Literal(&'a str),
    EnvRef(&'a str),
}

fn split_env_refs(s: &str) -> Vec<Segment<'_>> {
    let mut segments = Vec::new();
    let mut literal_start = 0;
    let mut i = 0;
    let bytes = s.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'$'
            && bytes.get(i + 1) == Some(&b'{')
            && let Some(len) = env_name_len(&s[i + 2..])
            && bytes.get(i + 2 + len) == Some(&b'}')
        {
            if literal_start < i {
                segments.push(Segment::Literal(&s[literal_start..i]));
            }
            segments.push(Segment::EnvRef(&s[i + 2..i + 2 + len]));
            i += len + 3;
            literal_start = i;
            continue;
        }
        i += 1;
    }
    if literal_start < s.len() {
        segments.push(Segment::Literal(&s[literal_start..]));
    }
    segments
}

/// Length of a shell variable name at the start of `s`, if there is one.
fn env_name_len(s: &str) -> Option<usize> {
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, c)) if c == '_' || c.is_ascii_alphabetic() => {}
        _ => return None,
    }
    let end = chars
        .find(|(_, c)| !(*c == '_' || c.is_ascii_alphanumeric()))
        .map_or(s.len(), |(i, _)| i);
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::process::Command;

    fn sh_printf(word: &str, env: &[(&str, &str)]) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {word}"))
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .expect("/bin/sh must exist to test quoting (apt-get install dash)");
        assert!(out.status.success(), "sh failed for {word:?}: {out:?}");
        String::from_utf8(out.stdout).expect("printf output is UTF-8")
    }

    #[test]
    fn single_quotes_are_closed_escaped_and_reopened() {
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
    }

    #[test]
    fn injection_attempt_is_one_literal_word() {
        let evil = "a'; touch /tmp/x; '";
        assert_eq!(sh_printf(&quote(evil), &[]), evil);
        assert_eq!(sh_printf(&quote_with_env(evil), &[]), evil);
    }

    #[test]
    fn env_refs_expand_and_everything_else_stays_literal() {
        let env = [("PW", "s3 cr*t"), ("X", "x")];
        assert_eq!(sh_printf(&quote_with_env("${PW}"), &env), "s3 cr*t");
        assert_eq!(
            sh_printf(&quote_with_env("--user=${X}!"), &env),
            "--user=x!"
        );
        for literal in [
            "$X",
            "${1}",
            "${X:-y}",
            "$(echo hi)",
            "`id`",
            "${",
            "${X",
            "$",
        ] {
            assert_eq!(sh_printf(&quote_with_env(literal), &env), literal);
        }
    }

    #[test]
    fn env_ref_detection_finds_names() {
        assert!(is_env_ref("${POSTGRES_PASSWORD}"));
        assert!(!is_env_ref("x${POSTGRES_PASSWORD}"));
        assert!(!is_env_ref("plain"));
        assert_eq!(env_refs("${A}-${B_1}-${9}"), vec!["A", "B_1"]);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn sh_reads_any_quoted_string_back_exactly(s in "[^\u{0}]{0,40}") {
            prop_assert_eq!(sh_printf(&quote(&s), &[]), s);
        }

        #[test]
        fn quote_with_env_is_literal_without_env_refs(s in "[^\u{0}{]{0,40}") {
            prop_assert_eq!(sh_printf(&quote_with_env(&s), &[]), s);
        }
    }
}
