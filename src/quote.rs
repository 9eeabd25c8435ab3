//! Values quoted inside messages (`check`, lint findings, configuration and
//! signer errors), escaped the one way maildns shows any byte it will not
//! print as it is.
//!
//! Why this module exists: Rust's `{:?}` quotes a string with its own escapes
//! (`\u{1b}`, `\n`), while every line maildns prints passes through
//! [`crate::cli::output::terminal_safe`], which writes a control character as
//! the `\DDD` escapes of its bytes (`\027`), the DNS presentation form
//! (RFC 1035 §5.1) [`maildns_providers::txt::escape_for_display`] gives TXT
//! data. A value quoted here reads the same in every message, and a message
//! can be built in a library that knows nothing of the terminal.

/// Appends `c` as the `\DDD` escapes of its UTF-8 bytes (decimal, three
/// digits each): ESC is `\027`, BEL `\007`, the C1 CSI `\194\155`.
pub fn push_byte_escapes(c: char, out: &mut String) {
    let mut buf = [0u8; 4];
    out.push_str(&maildns_providers::txt::escape_for_display(
        c.encode_utf8(&mut buf).as_bytes(),
    ));
}

/// `text` escaped to sit between two `quote` characters: `quote` and `\`
/// get a backslash, every control character (C0 including line feed and
/// tab, DEL, C1) becomes `\DDD` escapes ([`push_byte_escapes`]); all else is
/// kept as it is (letters of any script included).
fn escape_between(text: &str, quote: char) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if c == quote || c == '\\' {
            out.push('\\');
            out.push(c);
        } else if c.is_control() {
            push_byte_escapes(c, &mut out);
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` in double quotes, as messages show a value: `"v=spf1 \027[31m -all"`
/// for a value holding an ESC. The same as `{:?}` for text without control
/// characters or backslashes.
pub fn quoted(text: &str) -> String {
    format!("\"{}\"", escape_between(text, '"'))
}

/// `text` escaped for a message that puts it in single quotes
/// (`the program '...' does not exist`): `'` and `\` with a backslash,
/// control characters as `\DDD` ([`quoted`]'s rule).
pub fn escaped(text: &str) -> String {
    escape_between(text, '\'')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_decimal_byte_escapes() {
        assert_eq!(quoted("a\u{1b}[31mb\u{7}"), r#""a\027[31mb\007""#);
        assert_eq!(quoted("line\nnext\ttab"), r#""line\010next\009tab""#);
        assert_eq!(quoted("\u{9b}"), r#""\194\155""#);
        assert_eq!(quoted(r#"say "hi" \o/"#), r#""say \"hi\" \\o/""#);
        assert_eq!(quoted("café"), "\"café\"");
        assert_eq!(escaped("it's\u{1b}"), r"it\'s\027");
    }

    #[test]
    fn plain_text_reads_as_debug_would_show_it() {
        for s in ["v=spf1 -all", "say \"x\"", "back\\slash", "é"] {
            assert_eq!(quoted(s), format!("{s:?}"));
        }
    }
}
