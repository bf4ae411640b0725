//! Terminal styling for operator output: colour only on a TTY, and never when `NO_COLOR` is set
//! (<https://no-color.org>: any non-empty value disables colour).

/// Whether to colour, decided once per command from the stream and the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Colour iff `is_tty` and `NO_COLOR` is unset or empty.
    pub fn detect(is_tty: bool, no_color: Option<&str>) -> Style {
        Style {
            color: is_tty && no_color.is_none_or(str::is_empty),
        }
    }

    /// For stdout of this process.
    pub fn for_stdout() -> Style {
        use std::io::IsTerminal;
        let no_color = std::env::var("NO_COLOR").ok();
        Style::detect(std::io::stdout().is_terminal(), no_color.as_deref())
    }

    /// For stderr of this process (prompts, warnings).
    pub fn for_stderr() -> Style {
        use std::io::IsTerminal;
        let no_color = std::env::var("NO_COLOR").ok();
        Style::detect(std::io::stderr().is_terminal(), no_color.as_deref())
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color && !text.is_empty() {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn red(self, text: &str) -> String {
        self.paint("31", text)
    }

    pub fn yellow(self, text: &str) -> String {
        self.paint("33", text)
    }

    pub fn green(self, text: &str) -> String {
        self.paint("32", text)
    }
}

#[cfg(test)]
mod tests {
    use super::Style;

    #[test]
    fn colour_needs_a_tty_and_no_no_color() {
        assert!(Style::detect(true, None).color);
        assert!(Style::detect(true, Some("")).color);
        assert!(!Style::detect(true, Some("1")).color);
        assert!(!Style::detect(false, None).color);
    }

    #[test]
    fn plain_style_leaves_text_untouched() {
        let plain = Style::default();
        assert_eq!(plain.red("x"), "x");
        assert_eq!(Style { color: true }.red("x"), "\x1b[31mx\x1b[0m");
        assert_eq!(Style { color: true }.red(""), "");
    }
}
