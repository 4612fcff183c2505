//! Client text in log lines. Model names, header values and error messages that quote them come from whoever
//! sent the request: written raw, a CR/LF forges log lines, an ESC drives the operator's terminal and a 5 MB
//! model name makes a 5 MB line. [`Clean`] prints such text escaped and cut to [`MAX_CHARS`].

use std::fmt;

/// The most characters of one client string that reach a log line.
pub const MAX_CHARS: usize = 200;

/// Displays a string with control characters escaped (`\n`, `\r`, `\0`, `\u{1b}`…) and at most
/// [`MAX_CHARS`] characters, followed by how many bytes were left out.
pub struct Clean<'a>(pub &'a str);

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shown, (i, c)) in self.0.char_indices().enumerate() {
            if shown == MAX_CHARS {
                return write!(f, "…(+{} bytes)", self.0.len() - i);
            }
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let s = Clean("a\r\nb\0c\u{1b}[31md").to_string();
        assert_eq!(s, "a\\r\\nb\\u{0}c\\u{1b}[31md");
        assert!(!s.chars().any(char::is_control));
    }

    #[test]
    fn long_text_is_cut() {
        let s = Clean(&"é".repeat(1000)).to_string();
        assert!(s.starts_with(&"é".repeat(MAX_CHARS)));
        assert!(s.ends_with("…(+1600 bytes)"), "{s}");
        assert_eq!(Clean("short").to_string(), "short");
    }
}
