//! The part of a source file that a rendered diagnostic shows, bounded whatever the file looks like.
//!
//! miette renders whole source lines and finds them by scanning from the start of the text, so a 10 MiB line
//! became a 10 MiB snippet and every diagnostic rescanned the file. A [`Window`] holds only the lines around a
//! diagnostic's labels, each cut to [`MAX_LINE_CHARS`] characters around its labels (`…` marks a cut), with
//! secret-bearing values masked, and maps the labels into it. It implements miette's `SourceCode`, reporting
//! the original line and column numbers, so short lines render byte for byte as before.

use super::diag::SourceFile;
use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};
use std::ops::Range;

/// Characters of one source line shown in a snippet; longer lines are cut around their labels.
pub const MAX_LINE_CHARS: usize = 120;
/// Characters kept left of the first label on a cut line, so the label has some context.
const LEAD_CHARS: usize = 24;
/// Lines of context miette shows around a label (its default).
const CONTEXT_LINES: usize = 1;
/// Two labels' contexts at most this many lines apart are shown as one snippet with the lines between (as
/// miette does for a whole source); farther apart they are two snippets, and the lines between are not copied.
const MAX_GAP_LINES: usize = 50;
/// A label spanning more lines than this is shortened to its first line: a snippet never prints a whole file.
const MAX_LABEL_LINES: usize = 12;
const CUT: &str = "…";

/// One shown line: where it starts in the window text, and for a cut line, which original byte it starts at.
struct Shown {
    start: usize,
    /// Byte offset (within the original line) of the first original character shown.
    from_byte: usize,
    /// Bytes of the `…` marker before the shown part (0 when the line is not cut at the left).
    prefix: usize,
}

/// A diagnostic's view of its source: the lines around its labels, cut and masked, in its own coordinates.
pub struct Window {
    name: String,
    text: String,
    /// 0-based original line number of the window's first line.
    first_line: usize,
    lines: Vec<Shown>,
}

impl Window {
    /// Builds the window for `spans` (byte ranges into `source`) and returns each span mapped into it.
    pub fn new(source: &SourceFile, spans: &[Range<usize>]) -> (Window, Vec<Range<usize>>) {
        let spans: Vec<Range<usize>> = spans.iter().map(|s| shorten(source, s)).collect();
        let line_of = |offset: usize| source.line_index(offset);
        // A final newline starts no line that miette would show.
        let last_line = if source.text.ends_with('\n') {
            source.line_count().saturating_sub(2)
        } else {
            source.line_count().saturating_sub(1)
        };
        let mut needed: Vec<Range<usize>> = spans
            .iter()
            .map(|s| {
                let first = line_of(s.start).saturating_sub(CONTEXT_LINES);
                let last = (line_of(s.end.max(s.start + 1) - 1) + CONTEXT_LINES).min(last_line);
                first..last + 1
            })
            .collect();
        needed.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<usize>> = Vec::new();
        for r in needed {
            match merged.last_mut() {
                Some(last) if r.start <= last.end + MAX_GAP_LINES => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        let needed = merged;
        let first_line = needed.first().map_or(0, |r| r.start);
        let end_line = needed.iter().map(|r| r.end).max().unwrap_or(0);
        let mut window = Window {
            name: source.name.clone(),
            text: String::new(),
            first_line,
            lines: Vec::new(),
        };
        for line in first_line..end_line {
            let start = window.text.len();
            if !needed.iter().any(|r| r.contains(&line)) {
                // Lines between two far-apart labels are never shown; an empty line keeps the numbering.
                window.text.push('\n');
                window.lines.push(Shown {
                    start,
                    from_byte: 0,
                    prefix: 0,
                });
                continue;
            }
            let range = source.line_range(line);
            let masked = source.masked(range.clone());
            let body = masked.trim_end_matches(['\n', '\r']);
            let ending = &masked[body.len()..];
            let on_line: Vec<usize> = spans
                .iter()
                .flat_map(|s| [s.start, s.end])
                .filter(|o| (range.start..=range.start + body.len()).contains(o))
                .map(|o| o - range.start)
                .collect();
            let (from, to) = cut(body, &on_line);
            let prefix = if from > 0 { CUT.len() } else { 0 };
            if from > 0 {
                window.text.push_str(CUT);
            }
            window.text.push_str(&body[from..to]);
            if to < body.len() {
                window.text.push_str(CUT);
            }
            window.text.push_str(ending);
            window.lines.push(Shown {
                start,
                from_byte: from,
                prefix,
            });
        }
        let mapped = spans
            .iter()
            .map(|s| {
                let a = window.map(source, s.start);
                let b = window.map(source, s.end).max(a);
                a..b
            })
            .collect();
        (window, mapped)
    }

    /// Maps an original byte offset into the window text (clamped into the shown part of its line).
    fn map(&self, source: &SourceFile, offset: usize) -> usize {
        let line = source.line_index(offset);
        let Some(shown) = line
            .checked_sub(self.first_line)
            .and_then(|i| self.lines.get(i))
        else {
            return self.text.len();
        };
        let in_line = offset - source.line_range(line).start;
        let next = self
            .lines
            .get(line - self.first_line + 1)
            .map_or(self.text.len(), |n| n.start);
        let room = next.saturating_sub(shown.start + 1);
        let at = shown.start + shown.prefix + in_line.saturating_sub(shown.from_byte);
        at.min(shown.start + room).max(shown.start)
    }
}

/// A multi-line span longer than [`MAX_LABEL_LINES`] is cut to the end of its first line.
fn shorten(source: &SourceFile, span: &Range<usize>) -> Range<usize> {
    let len = source.text.len();
    let start = span.start.min(len);
    let end = span.end.clamp(start, len);
    let (first, last) = (source.line_index(start), source.line_index(end));
    if last - first > MAX_LABEL_LINES {
        let line_end = source.line_range(first).end;
        start..line_end.saturating_sub(1).max(start)
    } else {
        start..end
    }
}

/// The byte range of `line` to show: all of it when short, else [`MAX_LINE_CHARS`] characters starting a
/// little before its first label, on character boundaries.
fn cut(line: &str, labels: &[usize]) -> (usize, usize) {
    if line.len() <= MAX_LINE_CHARS || line.chars().count() <= MAX_LINE_CHARS {
        return (0, line.len());
    }
    let mut anchor = labels.iter().copied().min().unwrap_or(0).min(line.len());
    while !line.is_char_boundary(anchor) {
        anchor -= 1;
    }
    let lead_start = line[..anchor]
        .char_indices()
        .rev()
        .nth(LEAD_CHARS - 1)
        .map_or(0, |(i, _)| i);
    let to = line[lead_start..]
        .char_indices()
        .nth(MAX_LINE_CHARS)
        .map_or(line.len(), |(i, _)| lead_start + i);
    (lead_start, to)
}

impl SourceCode for Window {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner =
            self.text
                .as_str()
                .read_span(span, context_lines_before, context_lines_after)?;
        let line = inner.line();
        let mut column = inner.column();
        if let Some(shown) = self.lines.get(line)
            && column > 0
        {
            column = shown.from_byte + column.saturating_sub(shown.prefix);
        }
        let data: &'a [u8] = {
            let s = inner.span();
            &self.text.as_bytes()[s.offset()..s.offset() + s.len()]
        };
        // miette merges two contexts when `line + line_count` reaches the next one. Over a whole source its
        // line_count is cumulative, so everything merged; here contexts merge when at most MAX_GAP_LINES apart.
        let data_lines = data.iter().filter(|b| **b == b'\n').count().max(1);
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            data,
            *inner.span(),
            line + self.first_line,
            column,
            data_lines + MAX_GAP_LINES,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_lines_are_kept_whole_and_labels_keep_their_place() {
        let src = SourceFile::new("p.yaml", "a: 1\nb: 2\nc: 3\nd: 4\n");
        let (w, mapped) = Window::new(&src, std::slice::from_ref(&(10..11)));
        assert_eq!(w.text, "b: 2\nc: 3\nd: 4\n");
        assert_eq!(w.first_line, 1);
        assert_eq!(&w.text[mapped[0].clone()], "c");
    }

    #[test]
    fn a_long_line_is_cut_around_its_label() {
        let text = format!("x: {}TARGET{}\n", "a".repeat(5000), "b".repeat(5000));
        let src = SourceFile::new("p.yaml", text.clone());
        let at = text.find("TARGET").unwrap();
        let (w, mapped) = Window::new(&src, std::slice::from_ref(&(at..at + 6)));
        let first = w.text.lines().next().unwrap();
        assert_eq!(first.chars().count(), MAX_LINE_CHARS + 2, "{first}");
        assert_eq!(&w.text[mapped[0].clone()], "TARGET");
        assert!(w.text.starts_with(CUT) && w.text.trim_end().ends_with(CUT));
    }

    #[test]
    fn far_apart_labels_do_not_copy_the_lines_between() {
        let text = "k: v\n".repeat(10_000);
        let src = SourceFile::new("p.yaml", text);
        let (w, mapped) = Window::new(&src, &[0..1, 49_990..49_991]);
        assert!(w.text.len() < 11_000, "only empty lines in between");
        assert_eq!(&w.text[mapped[1].clone()], "k");
    }

    #[test]
    fn multibyte_characters_are_never_split() {
        let text = format!("x: {}\n", "é".repeat(4000));
        let src = SourceFile::new("p.yaml", text);
        let (w, _) = Window::new(&src, std::slice::from_ref(&(3001..3003)));
        assert!(w.text.is_char_boundary(w.text.len()));
    }
}
