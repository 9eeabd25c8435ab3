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

/// `message` (text from a library that quotes values with Rust's `{:?}`, as
/// serde's and toml's error messages do: `invalid type: string "\u{1b}[31m"`)
/// with Rust's escapes of control characters rewritten to the `\DDD` form
/// ([`push_byte_escapes`]): `\u{1b}` becomes `\027`, `\n` `\010`, `\t`
/// `\009`, `\r` `\013`, `\0` `\000`. `\\`, `\"`, `\'` and the `\u{..}` of a
/// character that is not a control character are kept as they are, so the
/// quoting still reads as before. Written here because no crate converts
/// between the two escape forms.
pub fn debug_escapes_to_ddd(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let simple = match tail.chars().next() {
            Some('n') => Some('\n'),
            Some('t') => Some('\t'),
            Some('r') => Some('\r'),
            Some('0') => Some('\0'),
            _ => None,
        };
        if let Some(c) = simple {
            push_byte_escapes(c, &mut out);
            rest = &tail[1..];
            continue;
        }
        if let Some(c) = tail
            .strip_prefix("u{")
            .and_then(|t| t.split_once('}'))
            .filter(|(hex, _)| (1..=6).contains(&hex.len()))
            .and_then(|(hex, after)| {
                let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
                Some((c, after))
            })
            .filter(|(c, _)| c.is_control())
        {
            push_byte_escapes(c.0, &mut out);
            rest = c.1;
            continue;
        }
        // Any other escape (`\\`, `\"`, a printable `\u{..}`): kept, its
        // second character with it so `\\n` stays a backslash and an `n`.
        let len = tail.chars().next().map_or(0, char::len_utf8);
        out.push('\\');
        out.push_str(&tail[..len]);
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
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
    fn rust_debug_escapes_become_decimal_byte_escapes() {
        assert_eq!(
            debug_escapes_to_ddd(r#"invalid type: string "\u{1b}[31mred", expected i64"#),
            r#"invalid type: string "\027[31mred", expected i64"#
        );
        let debug = format!("{:?}", "a\n\t\r\0\u{7f}\u{9b}z");
        assert_eq!(
            debug_escapes_to_ddd(&debug),
            quoted("a\n\t\r\0\u{7f}\u{9b}z")
        );
        // Kept: escaped backslash and quote, printable `\u{..}`, a lone `\`.
        assert_eq!(
            debug_escapes_to_ddd(r#"\\n \" \u{301} \u{zz} end\"#),
            r#"\\n \" \u{301} \u{zz} end\"#
        );
        assert_eq!(debug_escapes_to_ddd("plain é"), "plain é");
    }

    #[test]
    fn plain_text_reads_as_debug_would_show_it() {
        for s in ["v=spf1 -all", "say \"x\"", "back\\slash", "é"] {
            assert_eq!(quoted(s), format!("{s:?}"));
        }
    }
}
