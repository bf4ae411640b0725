//! One spanned node tree for both plan formats.
//!
//! YAML (granit-parser events, via serde-saphyr) and TOML (`toml::de::DeTable`) are parsed into the same
//! [`Node`] tree with byte spans, so the raw reading and validation downstream are written once and YAML and TOML
//! plans get identical diagnostics.

use super::diag::{Code, Diag, SourceFile};
use super::model::{is_env_ref, is_secret_key};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, ScanError, Span};
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

/// A value with the byte span it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: Range<usize>,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its own span (unknown-key diagnostics point at the key, not the value).
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Range<usize>,
}

impl NodeKind {
    /// How the type is named in "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeKind::Null => "nothing (null)",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a float",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

/// The plan formats, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Toml,
}

impl Format {
    /// `*.yaml`/`*.yml` → YAML, `*.toml` → TOML, anything else → `None`.
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }
}

/// The most values (scalars, lists, mappings) one file may hold, counting every copy a YAML alias makes.
/// Real plans hold a few hundred; the limit keeps an alias bomb ("billion laughs") or a 10 MiB list of
/// values to bounded time and memory.
pub const MAX_NODES: usize = 100_000;

/// Parses a source in the given format. Syntax errors become diagnostics; `None` means nothing usable.
/// Secret-bearing values are registered on the source ([`SourceFile::set_secrets`]) so that no snippet
/// shows them.
pub fn parse(source: &Arc<SourceFile>, format: Format, diags: &mut Vec<Diag>) -> Option<Node> {
    let root = match format {
        Format::Yaml => parse_yaml(source, diags),
        Format::Toml => parse_toml(source, diags),
    };
    let secrets = match &root {
        Some(root) => {
            let mut spans = Vec::new();
            secret_spans(root, false, &mut spans);
            spans
        }
        // A file that does not parse still gets its snippets masked, line by line.
        None => secret_lines(&source.text),
    };
    source.set_secrets(secrets);
    root
}

/// The spans of scalar values under a secret-looking key (`password`, `token`, …), except env references
/// such as `${POSTGRES_PASSWORD}`, which are not secrets.
fn secret_spans(node: &Node, under_secret: bool, out: &mut Vec<Range<usize>>) {
    match &node.kind {
        NodeKind::Map(entries) => {
            for (key, value) in entries {
                secret_spans(value, under_secret || is_secret_key(&key.name), out);
            }
        }
        NodeKind::Seq(items) => {
            for item in items {
                secret_spans(item, under_secret, out);
            }
        }
        NodeKind::Str(s) if under_secret && (s.is_empty() || is_env_ref(s)) => {}
        NodeKind::Null => {}
        _ if under_secret => out.push(node.span.clone()),
        _ => {}
    }
}

/// For text that does not parse: on each line of the form `KEY: VALUE` or `KEY = VALUE` whose key looks
/// secret, the value's span (quotes included; env references kept).
fn secret_lines(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        if let Some(sep) = body.find([':', '=']) {
            let key = body[..sep].trim_matches(|c: char| c.is_whitespace() || "-\"'{,".contains(c));
            let value = body[sep + 1..].trim();
            let bare = value.trim_matches(|c| c == '"' || c == '\'');
            if is_secret_key(key) && !value.is_empty() && !is_env_ref(bare) {
                let at =
                    start + sep + 1 + (body[sep + 1..].len() - body[sep + 1..].trim_start().len());
                out.push(at..at + value.len());
            }
        }
        start += line.len();
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// YAML

fn byte_range(span: &Span, fallback: usize) -> Range<usize> {
    span.byte_range().unwrap_or(fallback..fallback)
}

fn scan_error(source: &Arc<SourceFile>, err: &ScanError) -> Diag {
    let marker = err.marker();
    let offset = marker
        .byte_offset()
        .unwrap_or_else(|| source.offset_of(marker.line(), marker.col() + 1));
    Diag::error(Code::Syntax, format!("invalid YAML: {}", err.info()))
        .at(source, offset..offset, err.info().to_string())
        .help(
            "fix the YAML syntax; `backup-ns validate` checks everything else once the file parses",
        )
}

/// Builds nodes from the YAML event stream. Only the first document is used; more documents are an error
/// (a plan file holds exactly one plan).
fn parse_yaml(source: &Arc<SourceFile>, diags: &mut Vec<Diag>) -> Option<Node> {
    let mut parser = Parser::new_from_str(&source.text);
    let mut builder = YamlBuilder {
        source,
        anchors: HashMap::new(),
        stack: Vec::new(),
        root: None,
        documents: 0,
        nodes: 0,
        too_complex: false,
    };
    loop {
        match parser.next_event() {
            None => break,
            Some(Err(err)) => {
                diags.push(scan_error(source, &err));
                return None;
            }
            Some(Ok((event, span))) => {
                if builder.event(event, span, diags) {
                    break;
                }
            }
        }
    }
    if builder.too_complex {
        return None;
    }
    let root = builder.root.take();
    Some(root.unwrap_or(Node {
        span: 0..0,
        kind: NodeKind::Null,
    }))
}

enum Frame {
    Seq {
        start: usize,
        anchor: usize,
        items: Vec<Node>,
        /// Values in this list, itself included (what an alias of it costs).
        size: usize,
    },
    Map {
        start: usize,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        pending_key: Option<Key>,
        /// Where each key is in `entries`, so duplicate checks stay linear in the number of keys.
        index: HashMap<String, usize>,
        /// Keys that came from a `<<` merge; explicit keys override them instead of being duplicates.
        merged: HashSet<String>,
        /// Positions in `entries` of merged entries that an explicit key overrode; dropped at the end.
        overridden: Vec<usize>,
        size: usize,
    },
}

struct YamlBuilder<'s> {
    source: &'s Arc<SourceFile>,
    /// Anchored values with their size in values.
    anchors: HashMap<usize, (Node, usize)>,
    stack: Vec<Frame>,
    root: Option<Node>,
    documents: usize,
    /// Values built so far, alias copies included; bounded by [`MAX_NODES`].
    nodes: usize,
    too_complex: bool,
}

impl YamlBuilder<'_> {
    /// Handles one event; returns true when parsing should stop.
    fn event(&mut self, event: Event<'_>, span: Span, diags: &mut Vec<Diag>) -> bool {
        let range = byte_range(&span, 0);
        match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => false,
            Event::DocumentStart(..) => {
                self.documents += 1;
                if self.documents > 1 {
                    diags.push(
                        Diag::error(Code::Syntax, "a plan file holds exactly one YAML document")
                            .at(
                                self.source,
                                range.start..range.end.max(range.start + 3),
                                "second document starts here",
                            )
                            .help("put each plan in its own file"),
                    );
                    return true;
                }
                false
            }
            Event::Scalar(value, style, anchor, tag) => {
                let forced_str = tag.as_ref().is_some_and(|t| t.suffix() == "str");
                let kind = if style == ScalarStyle::Plain && !forced_str {
                    resolve_plain(&value)
                } else {
                    NodeKind::Str(value.into_owned())
                };
                if self.count(1, &range, false, diags) {
                    return true;
                }
                let node = Node { span: range, kind };
                if anchor != 0 {
                    self.anchors.insert(anchor, (node.clone(), 1));
                }
                self.push(node, 1, diags);
                false
            }
            Event::Alias(id) => {
                // Counted before copying: the copy is what an alias bomb multiplies.
                let size = self.anchors.get(&id).map_or(1, |(_, size)| *size);
                if self.count(size, &range, true, diags) {
                    return true;
                }
                let node = Node {
                    span: range,
                    kind: self
                        .anchors
                        .get(&id)
                        .map_or(NodeKind::Null, |(n, _)| n.kind.clone()),
                };
                self.push(node, size, diags);
                false
            }
            Event::SequenceStart(_, anchor, _) => {
                if self.count(1, &range, false, diags) {
                    return true;
                }
                self.stack.push(Frame::Seq {
                    start: range.start,
                    anchor,
                    items: Vec::new(),
                    size: 1,
                });
                false
            }
            Event::MappingStart(_, anchor, _) => {
                if self.count(1, &range, false, diags) {
                    return true;
                }
                self.stack.push(Frame::Map {
                    start: range.start,
                    anchor,
                    entries: Vec::new(),
                    pending_key: None,
                    index: HashMap::new(),
                    merged: HashSet::new(),
                    overridden: Vec::new(),
                    size: 1,
                });
                false
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return false;
                };
                let (node, anchor, size) = match frame {
                    Frame::Seq {
                        start,
                        anchor,
                        items,
                        size,
                    } => {
                        let end = items.last().map_or(start, |n| n.span.end);
                        (
                            Node {
                                span: start..end.max(start),
                                kind: NodeKind::Seq(items),
                            },
                            anchor,
                            size,
                        )
                    }
                    Frame::Map {
                        start,
                        anchor,
                        mut entries,
                        overridden,
                        size,
                        ..
                    } => {
                        if !overridden.is_empty() {
                            let overridden: HashSet<usize> = overridden.into_iter().collect();
                            let mut position = 0;
                            entries.retain(|_| {
                                position += 1;
                                !overridden.contains(&(position - 1))
                            });
                        }
                        let end = entries.last().map_or(start, |(_, n)| n.span.end);
                        (
                            Node {
                                span: start..end.max(start),
                                kind: NodeKind::Map(entries),
                            },
                            anchor,
                            size,
                        )
                    }
                };
                if anchor != 0 {
                    self.anchors.insert(anchor, (node.clone(), size));
                }
                self.push(node, size, diags);
                false
            }
            // Comments and anchor metadata are presentation only.
            _ => false,
        }
    }

    /// Counts `size` more values; past [`MAX_NODES`] reports a `plan::too-complex` at `range` (an alias, or
    /// the value that crossed the limit) and returns true: parsing stops.
    fn count(
        &mut self,
        size: usize,
        range: &Range<usize>,
        alias: bool,
        diags: &mut Vec<Diag>,
    ) -> bool {
        self.nodes = self.nodes.saturating_add(size);
        if self.nodes <= MAX_NODES {
            return false;
        }
        self.too_complex = true;
        let diag = if alias {
            Diag::error(
                Code::TooComplex,
                format!(
                    "this alias expands the plan past {MAX_NODES} values (it copies {size} values)"
                ),
            )
            .at(self.source, range.clone(), "alias crosses the value limit")
            .help("write the values out, or use fewer nested anchors; a plan this large is most likely a mistake or an attack")
        } else {
            Diag::error(
                Code::TooComplex,
                format!("the plan holds more than {MAX_NODES} values"),
            )
            .at(self.source, range.clone(), "value limit reached here")
            .help("a plan holds a few hundred values; split this file or check that it is the file you meant")
        };
        diags.push(diag);
        true
    }

    fn push(&mut self, node: Node, size: usize, diags: &mut Vec<Diag>) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq {
                items, size: total, ..
            }) => {
                *total += size;
                items.push(node);
            }
            Some(Frame::Map {
                entries,
                pending_key,
                index,
                merged,
                overridden,
                size: total,
                ..
            }) => match pending_key.take() {
                Some(key) => {
                    *total += size;
                    if key.name == "<<" {
                        // YAML merge key: `<<: *defaults` copies the anchored mapping's entries that are not set
                        // explicitly (a list of mappings merges each, earlier ones first).
                        let sources = match node.kind {
                            NodeKind::Seq(items) => items,
                            other => vec![Node {
                                span: node.span,
                                kind: other,
                            }],
                        };
                        for source in sources {
                            match source.kind {
                                NodeKind::Map(merged_entries) => {
                                    for (k, v) in merged_entries {
                                        if !index.contains_key(&k.name) {
                                            merged.insert(k.name.clone());
                                            index.insert(k.name.clone(), entries.len());
                                            entries.push((k, v));
                                        }
                                    }
                                }
                                _ => diags.push(
                                    Diag::error(
                                        Code::WrongType,
                                        "a YAML merge key (`<<`) needs a mapping",
                                    )
                                    .at(self.source, source.span.clone(), "not a mapping")
                                    .help("merge an anchored mapping, e.g. `<<: *hook-defaults`"),
                                ),
                            }
                        }
                    } else if merged.remove(&key.name) {
                        if let Some(at) = index.insert(key.name.clone(), entries.len()) {
                            overridden.push(at);
                        }
                        entries.push((key, node));
                    } else if let Some(&first) = index.get(&key.name) {
                        diags.push(
                            Diag::error(
                                Code::DuplicateKey,
                                format!("duplicate key `{}`", key.name),
                            )
                            .at(self.source, key.span.clone(), "second occurrence")
                            .also(entries[first].0.span.clone(), "first occurrence")
                            .help("remove one of them; a key may appear once per mapping"),
                        );
                    } else {
                        index.insert(key.name.clone(), entries.len());
                        entries.push((key, node));
                    }
                }
                None => {
                    let name = match node.kind {
                        NodeKind::Str(s) => s,
                        NodeKind::Bool(b) => b.to_string(),
                        NodeKind::Int(i) => i.to_string(),
                        NodeKind::Float(f) => f.to_string(),
                        NodeKind::Null => String::new(),
                        NodeKind::Seq(_) | NodeKind::Map(_) => {
                            diags.push(
                                Diag::error(
                                    Code::WrongType,
                                    "a mapping key must be a plain string",
                                )
                                .at(self.source, node.span.clone(), "complex key")
                                .help("plan keys are plain words such as `name` or `targets`"),
                            );
                            String::from("\u{0}complex")
                        }
                    };
                    *pending_key = Some(Key {
                        name,
                        span: node.span,
                    });
                }
            },
        }
    }
}

/// YAML 1.2 core-schema resolution of a plain scalar.
fn resolve_plain(value: &str) -> NodeKind {
    match value {
        "" | "~" | "null" | "Null" | "NULL" => return NodeKind::Null,
        "true" | "True" | "TRUE" => return NodeKind::Bool(true),
        "false" | "False" | "FALSE" => return NodeKind::Bool(false),
        _ => {}
    }
    if let Some(i) = parse_int(value) {
        return NodeKind::Int(i);
    }
    let looks_numeric = value
        .trim_start_matches(['-', '+'])
        .starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if looks_numeric
        && value
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
        && let Ok(f) = value.parse::<f64>()
    {
        return NodeKind::Float(f);
    }
    NodeKind::Str(value.to_string())
}

fn parse_int(value: &str) -> Option<i128> {
    let (neg, digits) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value.strip_prefix('+').unwrap_or(value)),
    };
    let parsed = if let Some(hex) = digits.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i128::from_str_radix(oct, 8).ok()?
    } else if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -parsed } else { parsed })
}

// ---------------------------------------------------------------------------------------------------------
// TOML

/// Arrays and inline tables nest at most this deep in a TOML plan (real plans: 3 or 4).
const MAX_TOML_DEPTH: usize = 64;

/// Why a TOML text is refused before the TOML parser sees it.
#[derive(Debug, PartialEq)]
enum TomlBound {
    Depth,
    Values,
}

/// One linear pass over TOML text, outside strings and comments: the nesting depth of `[`/`{` and an upper bound
/// on the number of values (`=`, `,`, `[`, `{`). The TOML parser builds every value (and every error) of a file
/// in memory before anything can be counted, so a 10 MiB array or deep nesting costs it hundreds of MiB; this
/// refuses such files first. Returns the offset where a bound is crossed.
fn toml_prescan(text: &str) -> Option<(usize, TomlBound)> {
    let bytes = text.as_bytes();
    let (mut depth, mut values, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            quote @ (b'"' | b'\'') => i = string_end(bytes, i, quote),
            b'[' | b'{' => {
                depth += 1;
                values += 1;
                if depth > MAX_TOML_DEPTH {
                    return Some((i, TomlBound::Depth));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'=' | b',' => values += 1,
            _ => {}
        }
        if values > MAX_NODES {
            return Some((i.min(bytes.len()), TomlBound::Values));
        }
        i += 1;
    }
    None
}

/// The offset of the last byte of the string starting at `start` (a basic or literal string, single-line or
/// multi-line); an unterminated one ends at its line end (or the text's end) and the parser reports it.
fn string_end(bytes: &[u8], start: usize, quote: u8) -> usize {
    let triple = bytes[start..].starts_with(&[quote; 3]);
    let mut i = start + if triple { 3 } else { 1 };
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote == b'"' => i += 1,
            b'\n' if !triple => return i,
            b if b == quote && !triple => return i,
            b if b == quote && bytes[i..].starts_with(&[quote; 3]) => return i + 2,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

fn parse_toml(source: &Arc<SourceFile>, diags: &mut Vec<Diag>) -> Option<Node> {
    if let Some((at, bound)) = toml_prescan(&source.text) {
        let message = match bound {
            TomlBound::Depth => {
                format!("arrays and tables nest more than {MAX_TOML_DEPTH} deep")
            }
            TomlBound::Values => format!("the plan holds more than {MAX_NODES} values"),
        };
        diags.push(
            Diag::error(Code::TooComplex, message)
                .at(source, at..at, "limit reached here")
                .help("a plan holds a few hundred values, nested a few levels deep; check that this is the file you meant"),
        );
        return None;
    }
    let (table, errors) = toml::de::DeTable::parse_recoverable(&source.text);
    if !errors.is_empty() {
        // Garbage yields an error every few bytes; past what is shown, one line counts them.
        let total = errors.len();
        let listed = super::diag::MAX_SHOWN_PER_FILE - 1;
        for err in errors.into_iter().take(listed) {
            let span = err.span().unwrap_or(0..0);
            let message = err.message().trim().to_string();
            diags.push(
                Diag::error(Code::Syntax, format!("invalid TOML: {message}"))
                    .at(source, span, message)
                    .help("fix the TOML syntax; `backup-ns validate` checks everything else once the file parses"),
            );
        }
        if total > listed {
            diags.push(
                Diag::error(
                    Code::Syntax,
                    format!("{} more TOML syntax errors", total - listed),
                )
                .at(
                    source,
                    source.text.len()..source.text.len(),
                    "and more up to here",
                )
                .help("fix the first ones; one early mistake often causes the rest"),
            );
        }
        return None;
    }
    let span = table.span();
    let mut budget = MAX_NODES;
    match toml_table(table.get_ref(), &mut budget) {
        Some(kind) => Some(Node {
            span: span.start..span.start,
            kind,
        }),
        None => {
            diags.push(
                Diag::error(
                    Code::TooComplex,
                    format!("the plan holds more than {MAX_NODES} values"),
                )
                .at(source, 0..0, "in this file")
                .help("a plan holds a few hundred values; split this file or check that it is the file you meant"),
            );
            None
        }
    }
}

/// Takes one value from `budget`; `None` once it is spent.
fn spend(budget: &mut usize) -> Option<()> {
    *budget = budget.checked_sub(1)?;
    Some(())
}

fn toml_table(table: &toml::de::DeTable<'_>, budget: &mut usize) -> Option<NodeKind> {
    let mut entries = Vec::with_capacity(table.len());
    for (k, v) in table {
        spend(budget)?;
        entries.push((
            Key {
                name: k.get_ref().to_string(),
                span: k.span(),
            },
            toml_value(v, budget)?,
        ));
    }
    // DeTable sorts keys; source order keeps diagnostics and conversions in reading order.
    entries.sort_by_key(|(k, _)| k.span.start);
    Some(NodeKind::Map(entries))
}

fn toml_value(value: &toml::Spanned<toml::de::DeValue<'_>>, budget: &mut usize) -> Option<Node> {
    use toml::de::DeValue;
    spend(budget)?;
    let kind = match value.get_ref() {
        DeValue::String(s) => NodeKind::Str(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            let (neg, digits) = match digits.strip_prefix('-') {
                Some(d) => (true, d.to_string()),
                None => (false, digits.trim_start_matches('+').to_string()),
            };
            match i128::from_str_radix(&digits, i.radix()) {
                Ok(v) => NodeKind::Int(if neg { -v } else { v }),
                Err(_) => NodeKind::Str(i.to_string()),
            }
        }
        DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
            Ok(v) => NodeKind::Float(v),
            Err(_) => NodeKind::Str(f.to_string()),
        },
        DeValue::Boolean(b) => NodeKind::Bool(*b),
        DeValue::Datetime(d) => NodeKind::Str(d.to_string()),
        DeValue::Array(items) => NodeKind::Seq(
            items
                .iter()
                .map(|v| toml_value(v, budget))
                .collect::<Option<_>>()?,
        ),
        DeValue::Table(t) => toml_table(t, budget)?,
    };
    Some(Node {
        span: value.span(),
        kind,
    })
}

// ---------------------------------------------------------------------------------------------------------
// JSON

/// Converts nodes back into JSON (for `vars`/`args` and for layering with figment).
pub fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value;
    match &node.kind {
        NodeKind::Null => Value::Null,
        NodeKind::Bool(b) => Value::Bool(*b),
        NodeKind::Int(i) => i64::try_from(*i)
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(i.to_string())),
        NodeKind::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        NodeKind::Str(s) => Value::String(s.clone()),
        NodeKind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        NodeKind::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.name.clone(), to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> (Option<Node>, Vec<Diag>) {
        let src = SourceFile::new("t.yaml", text);
        let mut diags = Vec::new();
        (parse(&src, Format::Yaml, &mut diags), diags)
    }

    fn toml(text: &str) -> (Option<Node>, Vec<Diag>) {
        let src = SourceFile::new("t.toml", text);
        let mut diags = Vec::new();
        (parse(&src, Format::Toml, &mut diags), diags)
    }

    fn entries(node: &Node) -> &[(Key, Node)] {
        match &node.kind {
            NodeKind::Map(e) => e,
            other => panic!("expected a map, got {other:?}"),
        }
    }

    #[test]
    fn yaml_and_toml_produce_the_same_tree_shape() {
        let (y, yd) = yaml("name: app\nport: 5432\nok: true\nlist: [a, \"b\"]\n");
        let (t, td) = toml("name = \"app\"\nport = 5432\nok = true\nlist = [\"a\", \"b\"]\n");
        assert!(yd.is_empty() && td.is_empty(), "{yd:?} {td:?}");
        let (y, t) = (y.unwrap(), t.unwrap());
        assert_eq!(to_json(&y), to_json(&t));
    }

    #[test]
    fn yaml_spans_point_at_keys_and_values() {
        let text = "name: app\nsnapshot:\n  class: csi\n";
        let (node, _) = yaml(text);
        let node = node.unwrap();
        let e = entries(&node);
        assert_eq!(&text[e[0].0.span.clone()], "name");
        assert_eq!(&text[e[0].1.span.clone()], "app");
        let inner = entries(&e[1].1);
        assert_eq!(&text[inner[0].0.span.clone()], "class");
        assert_eq!(&text[inner[0].1.span.clone()], "csi");
    }

    #[test]
    fn toml_spans_point_at_keys_and_values() {
        let text = "name = \"app\"\n[snapshot]\nclass = \"csi\"\n";
        let (node, _) = toml(text);
        let node = node.unwrap();
        let e = entries(&node);
        assert_eq!(&text[e[0].0.span.clone()], "name");
        assert_eq!(&text[e[0].1.span.clone()], "\"app\"");
        let inner = entries(&e[1].1);
        assert_eq!(&text[inner[0].0.span.clone()], "class");
    }

    #[test]
    fn yaml_plain_scalars_resolve_like_the_core_schema() {
        assert_eq!(resolve_plain("42"), NodeKind::Int(42));
        assert_eq!(resolve_plain("-3"), NodeKind::Int(-3));
        assert_eq!(resolve_plain("1.5"), NodeKind::Float(1.5));
        assert_eq!(resolve_plain("~"), NodeKind::Null);
        assert_eq!(resolve_plain("True"), NodeKind::Bool(true));
        assert_eq!(resolve_plain("15m"), NodeKind::Str("15m".into()));
        assert_eq!(resolve_plain("1e5x"), NodeKind::Str("1e5x".into()));
    }

    #[test]
    fn quoted_yaml_scalars_stay_strings() {
        let (node, _) = yaml("a: \"42\"\nb: 'true'\n");
        let node = node.unwrap();
        let e = entries(&node);
        assert_eq!(e[0].1.kind, NodeKind::Str("42".into()));
        assert_eq!(e[1].1.kind, NodeKind::Str("true".into()));
    }

    #[test]
    fn yaml_duplicate_keys_label_both_occurrences() {
        let (_, diags) = yaml("name: a\nname: b\n");
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].code, Code::DuplicateKey);
        assert_eq!(diags[0].secondary.len(), 1);
    }

    #[test]
    fn yaml_syntax_errors_have_a_location() {
        let (node, diags) = yaml("name: [a, b\ntargets: x\n");
        assert!(node.is_none());
        assert_eq!(diags[0].code, Code::Syntax);
        assert!(diags[0].primary.is_some());
    }

    #[test]
    fn toml_syntax_errors_have_a_location() {
        let (node, diags) = toml("name = \n");
        assert!(node.is_none());
        assert_eq!(diags[0].code, Code::Syntax);
    }

    #[test]
    fn yaml_merge_keys_fill_in_missing_entries() {
        let (node, diags) = yaml("base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  b: 3\n");
        assert!(diags.is_empty(), "{diags:?}");
        let node = node.unwrap();
        let x = to_json(&entries(&node)[1].1);
        assert_eq!(x, serde_json::json!({"a": 1, "b": 3}));
    }

    #[test]
    fn the_toml_prescan_skips_strings_and_comments_and_bounds_depth_and_values() {
        let quoted = format!(
            "a = \"{}\"\nb = '{}' # {}\nc = \"\"\"\n{}\"\"\"\nd = '''[[[\n'''\n",
            "[,\\\"".repeat(40_000),
            "{=".repeat(40_000),
            "[".repeat(200),
            "]\"[\n".repeat(200)
        );
        assert_eq!(toml_prescan(&quoted), None);
        let deep = format!("x = {}1{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(toml_prescan(&deep).map(|(_, b)| b), Some(TomlBound::Depth));
        let wide = format!("x = [{}]", "1,".repeat(MAX_NODES + 1));
        assert_eq!(toml_prescan(&wide).map(|(_, b)| b), Some(TomlBound::Values));
        let (node, diags) = toml(&deep);
        assert!(node.is_none());
        assert_eq!(diags[0].code, Code::TooComplex);
    }

    #[test]
    fn yaml_aliases_copy_the_anchored_value() {
        let (node, _) = yaml("a: &x {k: 1}\nb: *x\n");
        let node = node.unwrap();
        let e = entries(&node);
        assert_eq!(to_json(&e[0].1), to_json(&e[1].1));
    }
}
