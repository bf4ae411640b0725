//! Diagnostics for plan files: one stable code enum, spanned labels, miette rendering and the JSON form.
//!
//! Every problem found while loading or validating a plan becomes a [`Diag`]. Nothing stops at the first
//! problem: loaders and validators push into a `Vec<Diag>` and the caller decides (errors fail, warnings don't).

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

macro_rules! codes {
    ($($variant:ident => $code:literal: $doc:literal,)*) => {
        /// Stable diagnostic codes. The string form (`plan::unknown-key`) is part of the public contract: CI
        /// annotations and scripts match on it, so a code is never renamed or reused.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $(#[doc = $doc] $variant,)*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The stable string form, e.g. `plan::unknown-key`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }

            /// One line saying what the code means (used by the README's reference table test).
            pub fn describe(self) -> &'static str {
                match self {
                    $(Code::$variant => $doc,)*
                }
            }
        }
    };
}

codes! {
    Io => "plan::io": "a plan, profiles or script file could not be read",
    Syntax => "plan::syntax": "the file is not valid YAML or TOML",
    UnknownKey => "plan::unknown-key": "a key the plan language does not know (with a did-you-mean suggestion)",
    DuplicateKey => "plan::duplicate-key": "the same key appears twice in one mapping",
    MissingField => "plan::missing-field": "a required field is absent",
    WrongType => "plan::wrong-type": "a value has the wrong type (for example a list where a string belongs)",
    UnknownVariant => "plan::unknown-variant": "a value is not one of the allowed choices",
    BadDuration => "plan::bad-duration": "a duration is not human-friendly (`15m`, `1h30m`) or is zero",
    InvalidName => "plan::invalid-name": "a Kubernetes name breaks the DNS-1123 rules or is too long",
    InvalidLabel => "plan::invalid-label": "a label or annotation key or value breaks the Kubernetes rules",
    BadWorkload => "plan::bad-workload": "a workload reference is not `deployment/NAME`, `statefulset/NAME` or `pod/NAME`",
    NoTargets => "plan::no-targets": "the plan names no PVC to snapshot",
    DuplicateTarget => "plan::duplicate-target": "the same PVC is listed twice",
    DuplicateHookName => "plan::duplicate-hook-name": "two hooks of one plan have the same `name`",
    RetentionEmpty => "plan::retention-empty": "a retention profile keeps nothing (no tier, or days: 0)",
    RetentionMixed => "plan::retention-mixed": "a retention profile mixes `days` with daily/weekly/monthly/yearly tiers",
    NegativeCount => "plan::negative-count": "a retention count is negative",
    UnknownProfile => "plan::unknown-profile": "a named retention profile does not exist",
    NameTemplate => "plan::name-template": "the snapshot nameTemplate can render an invalid or over-63-character name",
    NameTemplateNotUnique => "plan::name-template-not-unique": "the snapshot nameTemplate has neither {timestamp} nor {rand}, so runs collide",
    HookScriptMissing => "plan::hook-script-missing": "a rhai hook script file does not exist",
    HookScriptSyntax => "plan::hook-script-syntax": "a rhai hook script does not compile",
    UnknownHookType => "plan::unknown-hook-type": "a hook's `type` is not postgres, mysql, rhai or exec",
    WhenOnPreHook => "plan::when-on-pre-hook": "`when` is only meaningful on post-hooks",
    ThresholdRange => "plan::threshold-range": "a disk-usage threshold is outside 1..=100",
    OutOfRange => "plan::out-of-range": "a number is outside its allowed range (ports, lock slots, counts)",
    EmptyCommand => "plan::empty-command": "an exec hook has an empty command",
    BadPath => "plan::bad-path": "a path that must be absolute is relative or empty",
    DumpPathUnusual => "plan::dump-path-unusual": "warning: a dump path lies outside the usual data mounts, so the snapshot may not contain it",
    LiteralSecret => "plan::literal-secret": "warning: a literal password in a plan; prefer a container env reference such as ${POSTGRES_PASSWORD}",
    EnvCompat => "plan::env-compat": "a BAK_* or BACKUP_NS_* environment variable has a value that cannot be used",
}

/// Errors fail validation; warnings are printed but the plan is still usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// A file (plan, profiles file, rhai script, or a synthetic source such as the environment) that
/// diagnostics point into.
#[derive(Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<SourceFile> {
        Arc::new(SourceFile {
            name: name.into(),
            text: text.into(),
        })
    }

    /// 1-based line and column (in characters) of a byte offset, clamped to the text.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// The byte offset of a 1-based line and column (in characters); clamped to the text.
    pub fn offset_of(&self, line: usize, column: usize) -> usize {
        let mut offset = 0;
        for (i, l) in self.text.split_inclusive('\n').enumerate() {
            if i + 1 == line {
                let col_bytes: usize = l
                    .chars()
                    .take(column.saturating_sub(1))
                    .map(char::len_utf8)
                    .sum();
                return offset + col_bytes;
            }
            offset += l.len();
        }
        self.text.len()
    }
}

/// A span inside a [`SourceFile`] with the text shown next to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub span: Range<usize>,
    pub text: String,
}

/// One problem in a plan: code, severity, message, help and labels on exact spans.
#[derive(Debug, Clone)]
pub struct Diag {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub help: Option<String>,
    /// The file the labels point into. `None` for problems with no file (e.g. an unreadable directory).
    pub source: Option<Arc<SourceFile>>,
    /// Where the problem is. Always set when `source` is set.
    pub primary: Option<Label>,
    /// Other places involved (e.g. the first occurrence of a duplicate).
    pub secondary: Vec<Label>,
}

impl Diag {
    pub fn error(code: Code, message: impl Into<String>) -> Diag {
        Diag {
            code,
            severity: Severity::Error,
            message: message.into(),
            help: None,
            source: None,
            primary: None,
            secondary: Vec::new(),
        }
    }

    pub fn warning(code: Code, message: impl Into<String>) -> Diag {
        Diag {
            severity: Severity::Warning,
            ..Diag::error(code, message)
        }
    }

    /// Points the diagnostic at `span` in `source` with a label text.
    pub fn at(
        mut self,
        source: &Arc<SourceFile>,
        span: Range<usize>,
        label: impl Into<String>,
    ) -> Diag {
        self.source = Some(Arc::clone(source));
        self.primary = Some(Label {
            span,
            text: label.into(),
        });
        self
    }

    pub fn also(mut self, span: Range<usize>, label: impl Into<String>) -> Diag {
        self.secondary.push(Label {
            span,
            text: label.into(),
        });
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diag {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The file name, 1-based line and column of the primary label (line/column 0 when there is no span).
    pub fn location(&self) -> (String, usize, usize) {
        match (&self.source, &self.primary) {
            (Some(src), Some(label)) => {
                let (line, column) = src.line_col(label.span.start);
                (src.name.clone(), line, column)
            }
            // A problem with the whole file (e.g. unreadable) is reported at its start.
            (Some(src), None) => (src.name.clone(), 1, 1),
            _ => (String::new(), 0, 0),
        }
    }

    /// The machine-readable form used by `validate --format json`.
    pub fn to_json(&self) -> JsonDiag {
        let (file, line, column) = self.location();
        JsonDiag {
            file,
            line,
            column,
            severity: self.severity,
            code: self.code.as_str(),
            message: self.message.clone(),
        }
    }

    /// Renders with miette's graphical handler, no colour, at a fixed width (stable for golden tests).
    pub fn render(&self, width: usize) -> String {
        self.render_styled(width, false)
    }

    /// Renders for a terminal; `color` picks miette's coloured unicode theme.
    pub fn render_styled(&self, width: usize, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(width)
            .with_links(false);
        let mut out = String::new();
        let rendered = MietteDiag::new(self);
        if handler.render_report(&mut out, &rendered).is_err() {
            // Rendering into a String cannot fail in practice; fall back to the plain message anyway.
            out = format!("{}: {}\n", self.code.as_str(), self.message);
        }
        out
    }
}

/// One diagnostic as a JSON object: `{file, line, column, severity, code, message}` (1-based).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct JsonDiag {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
}

/// Adapter that lets miette render a [`Diag`].
struct MietteDiag<'a> {
    diag: &'a Diag,
    source: Option<NamedSource<String>>,
}

impl<'a> MietteDiag<'a> {
    fn new(diag: &'a Diag) -> Self {
        let source = diag
            .source
            .as_ref()
            .map(|s| NamedSource::new(s.name.clone(), s.text.clone()));
        MietteDiag { diag, source }
    }

    fn clamp(&self, span: &Range<usize>) -> SourceSpan {
        let len = self.diag.source.as_ref().map_or(0, |s| s.text.len());
        let start = span.start.min(len);
        let end = span.end.clamp(start, len);
        SourceSpan::new(start.into(), end - start)
    }
}

impl fmt::Debug for MietteDiag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diag, f)
    }
}

impl fmt::Display for MietteDiag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for MietteDiag<'_> {}

impl miette::Diagnostic for MietteDiag<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diag.code.as_str()))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h.as_str()) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.diag.primary.as_ref()?;
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let primary = self.diag.primary.as_ref()?;
        let mut labels = vec![LabeledSpan::new_primary_with_span(
            Some(primary.text.clone()),
            self.clamp(&primary.span),
        )];
        for label in &self.diag.secondary {
            labels.push(LabeledSpan::new_with_span(
                Some(label.text.clone()),
                self.clamp(&label.span),
            ));
        }
        Some(Box::new(labels.into_iter()))
    }
}

/// The diagnostics of one or more plans. `Err(Diagnostics)` means at least one is an error.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics(pub Vec<Diag>);

impl Diagnostics {
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diag::is_error)
    }

    /// Sorts by file, then position, then code, so output is stable whatever order checks ran in.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            let ka = (
                a.location(),
                a.primary.as_ref().map(|l| l.span.start),
                a.code,
            );
            let kb = (
                b.location(),
                b.primary.as_ref().map(|l| l.span.start),
                b.code,
            );
            ka.cmp(&kb)
        });
    }

    /// All diagnostics rendered for a terminal (no colour), separated by blank lines.
    pub fn render(&self, width: usize) -> String {
        self.0
            .iter()
            .map(|d| d.render(width))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn to_json(&self) -> Vec<JsonDiag> {
        self.0.iter().map(Diag::to_json).collect()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(100))
    }
}

impl std::error::Error for Diagnostics {}

impl From<Vec<Diag>> for Diagnostics {
    fn from(v: Vec<Diag>) -> Self {
        Diagnostics(v)
    }
}

/// Collects the diagnostics of one source while raw values are read and then validated: every check pushes here
/// and goes on, so one pass reports every problem.
pub struct Collector {
    pub src: Arc<SourceFile>,
    pub diags: Vec<Diag>,
}

impl Collector {
    pub fn new(src: &Arc<SourceFile>) -> Collector {
        Collector {
            src: Arc::clone(src),
            diags: Vec::new(),
        }
    }

    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(Diag::is_error)
    }

    /// An error at `span`; an empty `help` adds none.
    pub fn err(
        &mut self,
        code: Code,
        span: Range<usize>,
        message: String,
        label: &str,
        help: &str,
    ) {
        let d = Diag::error(code, message).at(&self.src, span, label);
        self.diags
            .push(if help.is_empty() { d } else { d.help(help) });
    }

    pub fn warn(
        &mut self,
        code: Code,
        span: Range<usize>,
        message: String,
        label: &str,
        help: &str,
    ) {
        let d = Diag::warning(code, message)
            .at(&self.src, span, label)
            .help(help);
        self.diags.push(d);
    }

    /// "`what` must be EXPECTED, found TYPE"; without `help`, a pointer to the plan reference.
    pub fn wrong_type(
        &mut self,
        span: Range<usize>,
        found: &str,
        expected: &str,
        what: &str,
        help: &str,
    ) {
        let help = if help.is_empty() {
            format!(
                "`{what}` takes {expected}; see the plan reference in the README or `backup-ns schema`"
            )
        } else {
            help.to_string()
        };
        self.err(
            Code::WrongType,
            span,
            format!("`{what}` must be {expected}, found {found}"),
            &format!("expected {expected}"),
            &help,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_codes_are_unique_and_namespaced() {
        let mut seen = std::collections::BTreeSet::new();
        for code in Code::ALL {
            assert!(code.as_str().starts_with("plan::"), "{}", code.as_str());
            assert!(
                seen.insert(code.as_str()),
                "duplicate code {}",
                code.as_str()
            );
            assert!(!code.describe().is_empty());
        }
    }

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let src = SourceFile::new("p.yaml", "a: 1\nbé: x\n");
        assert_eq!(src.line_col(0), (1, 1));
        assert_eq!(src.line_col(5), (2, 1));
        // "bé: " is 5 bytes but 4 characters, so `x` is in column 5.
        assert_eq!(src.line_col(10), (2, 5));
        assert_eq!(src.offset_of(2, 5), 10);
    }

    #[test]
    fn rendered_diagnostic_shows_code_snippet_label_and_help() {
        let src = SourceFile::new("p.yaml", "name: x\nnmae: y\n");
        let d = Diag::error(Code::UnknownKey, "unknown key `nmae`")
            .at(&src, 8..12, "not a plan key")
            .help("did you mean `name`?");
        let out = d.render(80);
        assert!(out.contains("plan::unknown-key"), "{out}");
        assert!(out.contains("p.yaml:2:1"), "{out}");
        assert!(out.contains("not a plan key"), "{out}");
        assert!(out.contains("did you mean `name`?"), "{out}");
        let json = d.to_json();
        assert_eq!((json.line, json.column), (2, 1));
    }
}
