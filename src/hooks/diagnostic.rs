//! [`ScriptDiagnostic`]: a rhai script's compile or runtime error, pointing at the script's own line and column.
//! Its own file because both the sandbox (which makes them) and [`super::error::HookError`] (which carries them)
//! need it.

use ::rhai::Position;
use miette::{NamedSource, SourceSpan};

/// A script error, pointing at the script's own line and column.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
#[error("{path}:{line}:{column}: {message}")]
#[diagnostic(code(backup_ns::hooks::rhai))]
pub struct ScriptDiagnostic {
    pub message: String,
    pub path: String,
    /// 1-based; 0 when the error has no position (e.g. the file could not be read).
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    #[source_code]
    source_code: NamedSource<String>,
    #[label("{message}")]
    span: Option<SourceSpan>,
}

impl ScriptDiagnostic {
    pub(super) fn new(
        path: &str,
        source: &str,
        message: String,
        pos: Position,
    ) -> ScriptDiagnostic {
        let line = pos.line().unwrap_or(0);
        let column = pos.position().unwrap_or(0);
        let span = byte_offset(source, line, column).map(|offset| {
            let len = source[offset..].chars().next().map_or(0, char::len_utf8);
            SourceSpan::new(offset.into(), len)
        });
        ScriptDiagnostic {
            message,
            path: path.to_string(),
            line,
            column,
            source_code: NamedSource::new(path, source.to_string()),
            span,
        }
    }
}

fn byte_offset(source: &str, line: usize, column: usize) -> Option<usize> {
    if line == 0 {
        return None;
    }
    let mut offset = 0;
    for (i, text) in source.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let col = column.saturating_sub(1);
            let within = text
                .char_indices()
                .nth(col)
                .map_or(text.trim_end_matches('\n').len(), |(b, _)| b);
            return Some(offset + within);
        }
        offset += text.len();
    }
    Some(source.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_offsets_follow_characters() {
        assert_eq!(byte_offset("é = 1;\nab", 1, 2), Some(2));
        assert_eq!(byte_offset("a\nbc", 2, 2), Some(3));
        assert_eq!(byte_offset("a", 0, 0), None);
    }
}
