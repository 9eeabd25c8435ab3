//! The `tag=value; tag=value` list shared by DKIM key records (RFC 6376 §3.2),
//! DMARC (RFC 7489 §6.4) and ADSP (RFC 5617 §4.2.1).
//!
//! Grammar (RFC 6376 §3.2): `tag-list = tag-spec *( ";" tag-spec ) [ ";" ]`, each
//! `tag-spec = [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]`, with
//! `tag-name = ALPHA *(ALPHA / DIGIT / "_")`. White space around `;` and `=` is
//! ignored; white space inside a value is kept (callers decide, e.g. DKIM's `p=`
//! drops it). Empty specs (`;;`, a trailing `;`) are tolerated. Duplicate tag
//! names are an error ("Tags with duplicate names MUST NOT occur").

/// One `name=value` pair, with byte offsets into the parsed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag<'a> {
    /// The tag name, as written.
    pub name: &'a str,
    /// The value with surrounding white space removed.
    pub value: &'a str,
    /// Byte offset of the name.
    pub name_at: usize,
    /// Byte offset of the value (of the name's `=` + 1 when the value is empty).
    pub value_at: usize,
}

/// Why a tag list could not be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagListError {
    /// A tag-spec without `=`.
    #[error("expected 'tag=value' at byte {at}, found no '='")]
    MissingEquals {
        /// Byte offset of the tag-spec.
        at: usize,
    },
    /// A tag name that is empty or has characters other than letters, digits and `_`,
    /// or does not start with a letter.
    #[error("bad tag name '{name}' at byte {at}")]
    BadName {
        /// The name as written.
        name: String,
        /// Byte offset of the name.
        at: usize,
    },
    /// The same tag twice.
    #[error("tag '{name}' appears twice (again at byte {at})")]
    Duplicate {
        /// The tag name.
        name: String,
        /// Byte offset of the second occurrence.
        at: usize,
    },
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims white space from both ends of `s[start..end]`, returning the new bounds.
fn trim_bounds(s: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    while start < end && s.get(start).is_some_and(|&b| is_ws(b)) {
        start += 1;
    }
    while end > start && s.get(end - 1).is_some_and(|&b| is_ws(b)) {
        end -= 1;
    }
    (start, end)
}

/// Splits `input` into tags. Names are compared case-sensitively for duplicates
/// unless `fold_case` is set (DMARC's tag names are case-insensitive ABNF strings).
///
/// # Errors
/// [`TagListError`] with the byte offset: a tag with no `=`, a bad tag name, or a
/// tag that appears twice (RFC 6376 §3.2).
pub fn parse_tag_list(input: &str, fold_case: bool) -> Result<Vec<Tag<'_>>, TagListError> {
    let bytes = input.as_bytes();
    let mut tags: Vec<Tag<'_>> = Vec::new();
    let mut start = 0usize;
    while start <= bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b';')
            .map_or(bytes.len(), |p| start + p);
        let (s, e) = trim_bounds(bytes, start, end);
        if s < e {
            let Some(eq) = bytes[s..e].iter().position(|&b| b == b'=').map(|p| s + p) else {
                return Err(TagListError::MissingEquals { at: s });
            };
            let (ns, ne) = trim_bounds(bytes, s, eq);
            let (vs, ve) = trim_bounds(bytes, eq + 1, e);
            // Slicing at these offsets is safe: they sit next to ASCII bytes.
            let name = input.get(ns..ne).unwrap_or("");
            let value = input.get(vs..ve).unwrap_or("");
            let valid = name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(TagListError::BadName {
                    name: name.to_string(),
                    at: ns,
                });
            }
            let same = |t: &Tag<'_>| {
                if fold_case {
                    t.name.eq_ignore_ascii_case(name)
                } else {
                    t.name == name
                }
            };
            if tags.iter().any(same) {
                return Err(TagListError::Duplicate {
                    name: name.to_string(),
                    at: ns,
                });
            }
            tags.push(Tag {
                name,
                value,
                name_at: ns,
                value_at: vs,
            });
        }
        start = end + 1;
    }
    Ok(tags)
}

/// Removes all white space (FWS) from a value, as DKIM requires for `p=` (RFC 6376 §3.6.1).
pub fn strip_ws(value: &str) -> String {
    value.chars().filter(|c| !c.is_ascii_whitespace()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_with_spaces_and_trailing_semicolon() {
        let t = parse_tag_list(" v = DMARC1 ;p=none; ;rua = a b ;", false).unwrap();
        let pairs: Vec<_> = t
            .iter()
            .map(|t| (t.name, t.value, t.name_at, t.value_at))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("v", "DMARC1", 1, 5),
                ("p", "none", 13, 15),
                ("rua", "a b", 22, 28)
            ]
        );
    }

    #[test]
    fn errors_carry_positions() {
        assert_eq!(
            parse_tag_list("v=1; oops", false),
            Err(TagListError::MissingEquals { at: 5 })
        );
        assert_eq!(
            parse_tag_list("v=1;  9x=2", false),
            Err(TagListError::BadName {
                name: "9x".into(),
                at: 6
            })
        );
        assert_eq!(
            parse_tag_list("v=1; =2", false),
            Err(TagListError::BadName {
                name: String::new(),
                at: 5
            })
        );
        assert_eq!(
            parse_tag_list("p=1; P=2", true),
            Err(TagListError::Duplicate {
                name: "P".into(),
                at: 5
            })
        );
        assert_eq!(parse_tag_list("p=1; P=2", false).unwrap().len(), 2);
    }

    #[test]
    fn empty_input_is_empty_list() {
        assert!(parse_tag_list("", false).unwrap().is_empty());
        assert!(parse_tag_list(" ; ;", false).unwrap().is_empty());
    }
}
