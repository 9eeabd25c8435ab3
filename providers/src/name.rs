//! Fully qualified domain names, validated once on construction.
//!
//! RFC 1035 §2.3.4: a label is 1 to 63 bytes and a name at most 255 bytes in wire
//! form (so at most 253 characters in text form without the trailing dot).
//! Names are kept lowercase (RFC 4343: comparisons are case-insensitive) and
//! internationalised names are converted to their punycode (A-label) form.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest label, in bytes (RFC 1035 §2.3.4).
pub const MAX_LABEL: usize = 63;
/// Longest name in wire form, in bytes (RFC 1035 §2.3.4).
pub const MAX_NAME_WIRE: usize = 255;

/// Why a string is not a domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name was empty (or only a dot: the root is never a mail domain).
    #[error("the name is empty")]
    Empty,
    /// An empty label, as in `a..b` or a leading dot.
    #[error("'{name}' has an empty label (two dots in a row or a leading dot)")]
    EmptyLabel {
        /// The name as given.
        name: String,
    },
    /// A label over 63 bytes.
    #[error("label '{label}' is {len} bytes long; a label holds at most 63")]
    LabelTooLong {
        /// The offending label.
        label: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The whole name is over 255 bytes in wire form.
    #[error("'{name}' is {len} bytes long in wire form; a name holds at most 255")]
    NameTooLong {
        /// The name as given.
        name: String,
        /// Its wire length.
        len: usize,
    },
    /// A character that has no place in a host or service label.
    #[error(
        "'{name}' contains '{}' at byte {at}; use letters, digits, '-' and '_' (IDN names are converted to punycode)",
        shown_char(*.ch)
    )]
    BadCharacter {
        /// The name as given.
        name: String,
        /// The character.
        ch: char,
        /// Byte offset in the name.
        at: usize,
    },
    /// An internationalised name that IDNA rejects.
    #[error("'{name}' is not a valid internationalised domain name")]
    Idna {
        /// The name as given.
        name: String,
    },
}

/// `c` as a message shows it between single quotes: `'` and `\` with a
/// backslash, a control character (C0, DEL, C1) as the `\DDD` escapes of its
/// UTF-8 bytes (ESC is `\027`), the form every maildns message uses, rather
/// than Rust's `{:?}` (`'\u{1b}'`). (The binary's `quote` module does the
/// same for strings; this crate cannot reach it.)
fn shown_char(c: char) -> String {
    if c == '\'' || c == '\\' {
        format!("\\{c}")
    } else if c.is_control() {
        let mut buf = [0u8; 4];
        crate::txt::escape_for_display(c.encode_utf8(&mut buf).as_bytes())
    } else {
        c.to_string()
    }
}

/// A fully qualified, lowercased, validated domain name, stored without the trailing dot.
///
/// ```
/// use maildns_providers::Fqdn;
/// let n = Fqdn::parse("Mail.Example.COM.").unwrap();
/// assert_eq!(n.as_str(), "mail.example.com");
/// assert_eq!(n.to_dotted(), "mail.example.com.");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fqdn(String);

impl Fqdn {
    /// Validates and normalises `s` (trailing dot optional, any case, IDN allowed).
    ///
    /// # Errors
    /// [`NameError`] for an empty name or label, a label over 63 bytes, a name over
    /// 255 bytes in wire form (RFC 1035 §2.3.4), or a label IDNA refuses.
    pub fn parse(s: &str) -> Result<Fqdn, NameError> {
        let trimmed = s.strip_suffix('.').unwrap_or(s);
        if trimmed.is_empty() {
            return Err(NameError::Empty);
        }
        let ascii = if trimmed.is_ascii() {
            trimmed.to_ascii_lowercase()
        } else {
            // Convert label by label so service labels such as `_dmarc` survive.
            let mut out = Vec::new();
            for label in trimmed.split('.') {
                if label.is_ascii() {
                    out.push(label.to_ascii_lowercase());
                } else {
                    let a = idna::domain_to_ascii(label).map_err(|_| NameError::Idna {
                        name: s.to_string(),
                    })?;
                    out.push(a);
                }
            }
            out.join(".")
        };
        let mut at = 0usize;
        for label in ascii.split('.') {
            if label.is_empty() {
                return Err(NameError::EmptyLabel {
                    name: s.to_string(),
                });
            }
            if label.len() > MAX_LABEL {
                return Err(NameError::LabelTooLong {
                    label: label.to_string(),
                    len: label.len(),
                });
            }
            for (i, ch) in label.char_indices() {
                if !(ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
                    return Err(NameError::BadCharacter {
                        name: s.to_string(),
                        ch,
                        at: at + i,
                    });
                }
            }
            at += label.len() + 1;
        }
        let wire = ascii.len() + 2;
        if wire > MAX_NAME_WIRE {
            return Err(NameError::NameTooLong {
                name: s.to_string(),
                len: wire,
            });
        }
        Ok(Fqdn(ascii))
    }

    /// The name without the trailing dot, e.g. `example.com`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name with the trailing dot, e.g. `example.com.`.
    pub fn to_dotted(&self) -> String {
        format!("{}.", self.0)
    }

    /// Labels from left to right.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }

    /// Length of the name in DNS wire form (uncompressed), in bytes.
    pub fn wire_len(&self) -> usize {
        self.0.len() + 2
    }

    /// The name one label up, or `None` for a single-label name.
    pub fn parent(&self) -> Option<Fqdn> {
        self.0
            .split_once('.')
            .map(|(_, rest)| Fqdn(rest.to_string()))
    }

    /// Prepends a label (or several, dot-separated), validating the result.
    ///
    /// # Errors
    /// As [`Fqdn::parse`] on the joined name.
    pub fn child(&self, prefix: &str) -> Result<Fqdn, NameError> {
        Fqdn::parse(&format!("{prefix}.{}", self.0))
    }

    /// True when `self` equals `zone` or lies below it.
    pub fn is_within(&self, zone: &Fqdn) -> bool {
        self.0 == zone.0 || self.0.ends_with(&format!(".{}", zone.0))
    }

    /// The part of the name relative to `zone`: `@` for the apex, `None` when outside.
    pub fn relative_to(&self, zone: &Fqdn) -> Option<String> {
        if self.0 == zone.0 {
            Some("@".to_string())
        } else {
            self.0
                .strip_suffix(&format!(".{}", zone.0))
                .map(str::to_string)
        }
    }
}

impl fmt::Display for Fqdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Fqdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fqdn({})", self.0)
    }
}

impl std::str::FromStr for Fqdn {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fqdn::parse(s)
    }
}

impl Serialize for Fqdn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Fqdn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Fqdn::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_trailing_dot() {
        let n = Fqdn::parse("_DMARC.Example.Com.").unwrap();
        assert_eq!(n.as_str(), "_dmarc.example.com");
        assert_eq!(n, Fqdn::parse("_dmarc.example.com").unwrap());
    }

    #[test]
    fn converts_idn_to_punycode() {
        let n = Fqdn::parse("_dmarc.bücher.example").unwrap();
        assert_eq!(n.as_str(), "_dmarc.xn--bcher-kva.example");
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(Fqdn::parse(""), Err(NameError::Empty));
        assert_eq!(Fqdn::parse("."), Err(NameError::Empty));
        assert!(matches!(
            Fqdn::parse("a..b"),
            Err(NameError::EmptyLabel { .. })
        ));
        assert!(matches!(
            Fqdn::parse(&format!("{}.com", "a".repeat(64))),
            Err(NameError::LabelTooLong { len: 64, .. })
        ));
        assert!(Fqdn::parse(&format!("{}.com", "a".repeat(63))).is_ok());
        assert!(matches!(
            Fqdn::parse("a b.com"),
            Err(NameError::BadCharacter { ch: ' ', at: 1, .. })
        ));
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(matches!(
            Fqdn::parse(&long),
            Err(NameError::NameTooLong { .. })
        ));
    }

    /// The offending character is shown as maildns shows any control
    /// character (`\027`), never with Rust's `\u{1b}`.
    #[test]
    fn bad_character_message_uses_byte_escapes() {
        let e = Fqdn::parse("b\u{1b}.test").unwrap_err();
        assert!(matches!(
            e,
            NameError::BadCharacter {
                ch: '\u{1b}',
                at: 1,
                ..
            }
        ));
        let shown = e.to_string();
        assert!(shown.contains(r"contains '\027' at byte 1"), "{shown}");
        assert!(!shown.contains("\\u{"), "{shown}");
        let e = Fqdn::parse("a b.com").unwrap_err();
        assert!(e.to_string().contains("contains ' ' at byte 1"), "{e}");
        assert_eq!(shown_char('\''), r"\'");
        assert_eq!(shown_char('\\'), r"\\");
        assert_eq!(shown_char('\u{9b}'), r"\194\155");
    }

    #[test]
    fn name_length_limit_is_exact() {
        let l = "a".repeat(63);
        // 3 x 63 + 61 + 3 dots = 253 characters -> 255 bytes on the wire.
        let ok = format!("{l}.{l}.{l}.{}", "a".repeat(61));
        assert_eq!(Fqdn::parse(&ok).unwrap().wire_len(), 255);
        let bad = format!("{l}.{l}.{l}.{}", "a".repeat(62));
        assert!(matches!(
            Fqdn::parse(&bad),
            Err(NameError::NameTooLong { len: 256, .. })
        ));
    }

    #[test]
    fn relations() {
        let zone = Fqdn::parse("example.com").unwrap();
        let n = Fqdn::parse("sel._domainkey.example.com").unwrap();
        assert!(n.is_within(&zone));
        assert!(!Fqdn::parse("badexample.com").unwrap().is_within(&zone));
        assert_eq!(n.relative_to(&zone).as_deref(), Some("sel._domainkey"));
        assert_eq!(zone.relative_to(&zone).as_deref(), Some("@"));
        assert_eq!(n.parent().unwrap().as_str(), "_domainkey.example.com");
        assert_eq!(zone.child("_dmarc").unwrap().as_str(), "_dmarc.example.com");
    }
}
