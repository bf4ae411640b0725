//! Diagnostics for plan files: one stable code enum, spanned labels, miette rendering and the JSON form.
//!
//! Every problem found while loading or validating a plan becomes a [`Diag`]. Nothing stops at the first
//! problem: loaders and validators push into a `Vec<Diag>` and the caller decides (errors fail, warnings don't).

use super::snippet::Window;
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, SourceSpan};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

/// Diagnostics rendered (or listed in JSON) per file; the rest are counted in one summary diagnostic.
pub const MAX_SHOWN_PER_FILE: usize = 100;

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
    BadExpect => "plan::bad-expect": "a verify check's `expect` is not a comparison such as `>= 1`",
    DuplicateCheck => "plan::duplicate-check": "two verify checks of one plan have the same `name`",
    CheckForm => "plan::check-form": "a verify check has both `sql`/`expect` and `rhai`",
    CheckScript => "plan::check-script": "a verify check's rhai script does not compile, or computes the SQL of a `query`/`scalar` call",
    UnknownTimeZone => "plan::unknown-time-zone": "`timeZone` is not an IANA time zone name such as `Europe/Vienna`",
    OutOfRange => "plan::out-of-range": "a number is outside its allowed range (ports, lock slots, counts)",
    EmptyCommand => "plan::empty-command": "an exec hook has an empty command, or `verify.restoreCommand` is empty",
    BadPath => "plan::bad-path": "a path that must be absolute is relative or empty",
    DumpPathUnusual => "plan::dump-path-unusual": "warning: a dump path lies outside the usual data mounts, so the snapshot may not contain it",
    HotModeKey => "plan::hot-mode-key": "a database hook with `mode: hot` sets a key that only dumps use (compression, dumpFile, threshold, extraArgs, format, defaultCharacterSet, singleTransaction)",
    HotModePlacement => "plan::hot-mode-placement": "a `mode: hot` database hook is a post-hook, or the plan does not wait for its snapshots, so the session cannot span the snapshot",
    LiteralSecret => "plan::literal-secret": "warning: a literal password in a plan; prefer a container env reference such as ${POSTGRES_PASSWORD}",
    EnvCompat => "plan::env-compat": "a BAK_* or BACKUP_NS_* environment variable has a value that cannot be used",
    TooLarge => "plan::too-large": "a plan or profiles file is larger than 10 MiB and is not read",
    Encoding => "plan::encoding": "a plan or profiles file is not UTF-8 text, or contains a NUL byte",
    TooComplex => "plan::too-complex": "a plan has more than 100,000 values once YAML aliases are expanded (or is nested too deeply)",
    MoreDiagnostics => "plan::more-diagnostics": "a file has more than 100 diagnostics; the rest are counted, not shown",
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
    /// Byte offset of the start of each line: line and column lookups are a binary search, not a scan, so
    /// thousands of diagnostics in one big file stay linear.
    line_starts: Vec<usize>,
    /// Byte ranges of secret-bearing values (literal passwords, secret-looking `vars`/`args`), masked in
    /// every snippet. Set once, by the parser, after the file is read.
    secrets: OnceLock<Vec<Range<usize>>>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<SourceFile> {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Arc::new(SourceFile {
            name: name.into(),
            text,
            line_starts,
            secrets: OnceLock::new(),
        })
    }

    /// Marks the byte ranges of secret values; snippets show them as `*`. Only the first call counts.
    pub fn set_secrets(&self, spans: Vec<Range<usize>>) {
        let _ = self.secrets.set(spans);
    }

    /// The secret ranges set by the parser (empty before parsing).
    pub fn secrets(&self) -> &[Range<usize>] {
        self.secrets.get().map_or(&[], Vec::as_slice)
    }

    /// `range` of the text with every secret byte range replaced by `*` of the same byte length, so
    /// offsets stay valid.
    pub fn masked(&self, range: Range<usize>) -> Cow<'_, str> {
        let text = &self.text[range.clone()];
        let overlapping: Vec<&Range<usize>> = self
            .secrets()
            .iter()
            .filter(|s| s.start < range.end && s.end > range.start)
            .collect();
        if overlapping.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        for (i, c) in text.char_indices() {
            let at = range.start + i;
            if overlapping.iter().any(|s| s.contains(&at)) {
                out.extend(std::iter::repeat_n('*', c.len_utf8()));
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }

    /// 0-based line of a byte offset (clamped to the text).
    pub fn line_index(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|&start| start <= offset.min(self.text.len()))
            .saturating_sub(1)
    }

    /// Number of lines (a trailing newline starts an empty last line).
    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// The byte range of a 0-based line, including its newline.
    pub fn line_range(&self, line: usize) -> Range<usize> {
        let start = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        let end = self
            .line_starts
            .get(line + 1)
            .copied()
            .unwrap_or(self.text.len());
        start..end
    }

    /// 1-based line and column (in characters) of a byte offset, clamped to the text.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_index(offset);
        let line_start = self.line_starts[line];
        let column = self.text[line_start..offset].chars().count() + 1;
        (line + 1, column)
    }

    /// The byte offset of a 1-based line and column (in characters); clamped to the text.
    pub fn offset_of(&self, line: usize, column: usize) -> usize {
        if line == 0 {
            return self.text.len();
        }
        let Some(&start) = self.line_starts.get(line - 1) else {
            return self.text.len();
        };
        let range = self.line_range(line - 1);
        let col_bytes: usize = self.text[range]
            .chars()
            .take(column.saturating_sub(1))
            .map(char::len_utf8)
            .sum();
        start + col_bytes
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

    /// The machine-readable form used by `validate --format json`: location, code, message, help and every
    /// label with its span, like the rendered form shows them.
    pub fn to_json(&self) -> JsonDiag {
        let (file, line, column) = self.location();
        let label = |l: &Label, primary: bool| {
            let src = self.source.as_ref()?;
            let (line, column) = src.line_col(l.span.start);
            let (end_line, end_column) = src.line_col(l.span.end);
            Some(JsonLabel {
                text: l.text.clone(),
                primary,
                line,
                column,
                end_line,
                end_column,
                offset: l.span.start,
                length: l.span.end.saturating_sub(l.span.start),
            })
        };
        let labels = self
            .primary
            .iter()
            .filter_map(|l| label(l, true))
            .chain(self.secondary.iter().filter_map(|l| label(l, false)))
            .collect();
        JsonDiag {
            file,
            line,
            column,
            severity: self.severity,
            code: self.code.as_str(),
            message: self.message.clone(),
            help: self.help.clone(),
            labels,
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

/// One diagnostic as a JSON object: `{file, line, column, severity, code, message, help, labels}`
/// (line/column 1-based, column in characters).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct JsonDiag {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    /// The help line (e.g. "did you mean `targets`?"), `null` when there is none.
    pub help: Option<String>,
    /// The primary label first, then the others.
    pub labels: Vec<JsonLabel>,
}

/// A label of a [`JsonDiag`]: its text and span (start and end as 1-based line/column, and as byte offset and
/// length).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct JsonLabel {
    pub text: String,
    pub primary: bool,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub offset: usize,
    pub length: usize,
}

/// Adapter that lets miette render a [`Diag`] over its bounded [`Window`] of the source.
struct MietteDiag<'a> {
    diag: &'a Diag,
    /// The window and the labels mapped into it (primary first, then secondary).
    window: Option<(Window, Vec<Range<usize>>)>,
}

impl<'a> MietteDiag<'a> {
    fn new(diag: &'a Diag) -> Self {
        let window = match (&diag.source, &diag.primary) {
            (Some(src), Some(primary)) => {
                let spans: Vec<Range<usize>> = std::iter::once(primary)
                    .chain(&diag.secondary)
                    .map(|l| l.span.clone())
                    .collect();
                Some(Window::new(src, &spans))
            }
            _ => None,
        };
        MietteDiag { diag, window }
    }

    fn span(range: &Range<usize>) -> SourceSpan {
        SourceSpan::new(range.start.into(), range.end - range.start)
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
        self.window
            .as_ref()
            .map(|(w, _)| w as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let primary = self.diag.primary.as_ref()?;
        let (_, spans) = self.window.as_ref()?;
        let mut labels = vec![LabeledSpan::new_primary_with_span(
            Some(primary.text.clone()),
            Self::span(&spans[0]),
        )];
        for (label, span) in self.diag.secondary.iter().zip(&spans[1..]) {
            labels.push(LabeledSpan::new_with_span(
                Some(label.text.clone()),
                Self::span(span),
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

    /// Sorts by file, then position, then code, so output is stable whatever order checks ran in. The byte
    /// offset orders like line and column do, and costs no line lookup, so sorting stays n·log n.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    }

    /// What is shown: per file the first [`MAX_SHOWN_PER_FILE`] diagnostics, then one
    /// `plan::more-diagnostics` summary counting the rest (its severity is the worst of those it hides).
    pub fn shown(&self) -> Vec<Diag> {
        let mut per_file: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        let mut shown = Vec::new();
        let mut last_of_file: BTreeMap<&str, usize> = BTreeMap::new();
        for d in &self.0 {
            let file = d.source.as_ref().map_or("", |s| s.name.as_str());
            let (count, hidden_errors) = per_file.entry(file).or_default();
            *count += 1;
            if *count <= MAX_SHOWN_PER_FILE {
                shown.push(d.clone());
                last_of_file.insert(file, shown.len());
            } else if d.is_error() {
                *hidden_errors += 1;
            }
        }
        // Insert each summary right after its file's last shown diagnostic, from the back so indexes hold.
        let mut summaries: Vec<(usize, Diag)> = Vec::new();
        for (file, (count, hidden_errors)) in &per_file {
            let hidden = count.saturating_sub(MAX_SHOWN_PER_FILE);
            if hidden == 0 {
                continue;
            }
            let message = format!(
                "{hidden} more diagnostics in this file are not shown ({hidden_errors} error(s), {} warning(s))",
                hidden - hidden_errors
            );
            let d = if *hidden_errors > 0 {
                Diag::error(Code::MoreDiagnostics, message)
            } else {
                Diag::warning(Code::MoreDiagnostics, message)
            };
            let source = self
                .0
                .iter()
                .find_map(|d| d.source.as_ref().filter(|s| s.name == *file).cloned());
            let d = Diag { source, ..d }.help(
                "fix the problems shown first and run `backup-ns validate` again; one mistake (e.g. a wrong \
                 indentation) often causes many",
            );
            summaries.push((last_of_file[file], d));
        }
        summaries.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        for (at, d) in summaries {
            shown.insert(at, d);
        }
        shown
    }

    /// The shown diagnostics rendered for a terminal (no colour), separated by blank lines.
    pub fn render(&self, width: usize) -> String {
        self.shown()
            .iter()
            .map(|d| d.render(width))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The shown diagnostics in JSON form.
    pub fn to_json(&self) -> Vec<JsonDiag> {
        self.shown().iter().map(Diag::to_json).collect()
    }
}

/// File name, byte offset of the primary label (none sorts first) and code.
fn sort_key(d: &Diag) -> (&str, Option<usize>, Code) {
    (
        d.source.as_ref().map_or("", |s| s.name.as_str()),
        d.primary.as_ref().map(|l| l.span.start),
        d.code,
    )
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
