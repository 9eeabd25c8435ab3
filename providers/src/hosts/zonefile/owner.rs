//! The owner-name type of the zone-file reader and writer.
//!
//! Kept apart from the reader because a name is more than a token: it has its own
//! escaping rules (`\.`, `\DDD` decimal, RFC 1035 §5.1), its length limits (RFC 1035
//! §3.1), case-insensitive comparison (RFC 4343) and the relative form the writer
//! needs; the reader only hands it text and an origin.

use std::fmt;

use crate::Fqdn;

/// A domain name as a zone file holds it: absolute, labels of raw bytes (ASCII
/// letters lowercased: RFC 4343 comparisons), the root label left out.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerName {
    labels: Vec<Vec<u8>>,
}

impl OwnerName {
    /// The root name `.`.
    pub fn root() -> Self {
        OwnerName { labels: Vec::new() }
    }

    /// The same name as `fqdn`.
    pub fn from_fqdn(fqdn: &Fqdn) -> Self {
        OwnerName {
            labels: fqdn.labels().map(|l| l.as_bytes().to_vec()).collect(),
        }
    }

    /// Labels from left to right (without the root).
    pub fn labels(&self) -> &[Vec<u8>] {
        &self.labels
    }

    /// Length in DNS wire form, in bytes (RFC 1035 §3.1).
    pub fn wire_len(&self) -> usize {
        self.labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1
    }

    /// True when this is the name `fqdn`.
    pub fn is(&self, fqdn: &Fqdn) -> bool {
        self.labels.len() == fqdn.labels().count()
            && self
                .labels
                .iter()
                .zip(fqdn.labels())
                .all(|(a, b)| a.as_slice() == b.as_bytes())
    }

    /// Absolute presentation form with the trailing dot, special bytes escaped
    /// (`\.`, `\"`, ..., `\DDD` for the rest), e.g. `a\.b.example.com.`.
    pub fn to_presentation(&self) -> String {
        if self.labels.is_empty() {
            return ".".into();
        }
        let mut out = String::new();
        for l in &self.labels {
            out.push_str(&escape_label(l));
            out.push('.');
        }
        out
    }

    /// The name as written under `origin`: `@` for the origin itself, the labels
    /// before it when below it, else the absolute form.
    pub fn relative_text(&self, origin: &OwnerName) -> String {
        if self == origin {
            return "@".into();
        }
        let n = self.labels.len();
        let o = origin.labels.len();
        if n > o && self.labels[n - o..] == origin.labels[..] {
            self.labels[..n - o]
                .iter()
                .map(|l| escape_label(l))
                .collect::<Vec<_>>()
                .join(".")
        } else {
            self.to_presentation()
        }
    }

    /// Reads a name token (`@`, relative or absolute, with escapes) under `origin`.
    ///
    /// # Errors
    /// An empty label, a label over 63 bytes, a name over 255 bytes in wire form, a
    /// bad escape (RFC 1035 §3.1, §5.1).
    pub fn parse(text: &str, origin: &OwnerName) -> Result<OwnerName, String> {
        let mut name = Self::parse_as_written(text, origin)?;
        for l in &mut name.labels {
            l.make_ascii_lowercase();
        }
        Ok(name)
    }

    /// Like [`OwnerName::parse`], with the letters of `text` as written (not
    /// lowercased): BIND's loader starts a new batch of records when the owner
    /// name differs in case from the previous one (`dns_name_caseequal`).
    ///
    /// # Errors
    /// As [`OwnerName::parse`].
    pub(super) fn parse_as_written(text: &str, origin: &OwnerName) -> Result<OwnerName, String> {
        if text == "@" {
            return Ok(origin.clone());
        }
        if text == "." {
            return Ok(OwnerName::root());
        }
        if text.is_empty() {
            return Err("empty name".into());
        }
        let b = text.as_bytes();
        let mut labels: Vec<Vec<u8>> = Vec::new();
        let mut label: Vec<u8> = Vec::new();
        let mut absolute = false;
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'.' => {
                    if label.is_empty() {
                        return Err(format!("'{text}' has an empty label"));
                    }
                    labels.push(std::mem::take(&mut label));
                    i += 1;
                    if i == b.len() {
                        absolute = true;
                    }
                }
                b'\\' => {
                    let Some(&c) = b.get(i + 1) else {
                        return Err(format!("'{text}' ends in a backslash"));
                    };
                    if c.is_ascii_digit() {
                        let d = b
                            .get(i + 1..i + 4)
                            .filter(|d| d.iter().all(u8::is_ascii_digit))
                            .ok_or_else(|| format!("'{text}': \\DDD needs three decimal digits"))?;
                        let v = u32::from(d[0] - b'0') * 100
                            + u32::from(d[1] - b'0') * 10
                            + u32::from(d[2] - b'0');
                        let byte =
                            u8::try_from(v).map_err(|_| format!("'{text}': \\{v} is over 255"))?;
                        label.push(byte);
                        i += 4;
                    } else {
                        label.push(c);
                        i += 2;
                    }
                }
                c => {
                    label.push(c);
                    i += 1;
                }
            }
            if label.len() > crate::name::MAX_LABEL {
                return Err(format!(
                    "'{text}' has a label over {} bytes",
                    crate::name::MAX_LABEL
                ));
            }
        }
        if !label.is_empty() {
            labels.push(label);
        }
        if !absolute {
            labels.extend(origin.labels.iter().cloned());
        }
        let name = OwnerName { labels };
        if name.wire_len() > crate::name::MAX_NAME_WIRE {
            return Err(format!(
                "'{text}' makes a name of {} bytes in wire form; at most {}",
                name.wire_len(),
                crate::name::MAX_NAME_WIRE
            ));
        }
        Ok(name)
    }
}

impl fmt::Display for OwnerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_presentation())
    }
}

fn escape_label(l: &[u8]) -> String {
    let mut out = String::with_capacity(l.len());
    for &c in l {
        match c {
            b'.' | b'"' | b';' | b'(' | b')' | b'\\' | b'@' | b'$' => {
                out.push('\\');
                out.push(char::from(c));
            }
            0x21..=0x7e => out.push(char::from(c)),
            _ => out.push_str(&format!("\\{c:03}")),
        }
    }
    out
}
