//! DKIM selectors: the validated label type and the strftime formatting that
//! names new keys (RFC 6376 §3.1).

use std::fmt;
use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why a string is not a usable DKIM selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// Empty selector.
    #[error("the selector is empty")]
    Empty,
    /// Longer than one DNS label.
    #[error("selector '{selector}' is {len} bytes long; a selector label holds at most 63")]
    TooLong {
        /// The selector as given.
        selector: String,
        /// Its length.
        len: usize,
    },
    /// A character outside `a-z 0-9 - _`, or a leading/trailing hyphen.
    #[error(
        "selector '{selector}' must be letters, digits, '-' or '_' and not start or end with '-'"
    )]
    BadCharacter {
        /// The selector as given.
        selector: String,
    },
}

/// A validated DKIM selector: one DNS label, lowercase (RFC 6376 §3.1).
///
/// The record lives at `<selector>._domainkey.<domain>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Selector(String);

impl Selector {
    /// Validates and lowercases `s`.
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        if s.is_empty() {
            return Err(SelectorError::Empty);
        }
        if s.len() > 63 {
            return Err(SelectorError::TooLong {
                selector: s.to_string(),
                len: s.len(),
            });
        }
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok_chars || s.starts_with('-') || s.ends_with('-') {
            return Err(SelectorError::BadCharacter {
                selector: s.to_string(),
            });
        }
        Ok(Selector(s.to_ascii_lowercase()))
    }

    /// The selector text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Selector {
    type Error = SelectorError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Selector::parse(&s)
    }
}

impl From<Selector> for String {
    fn from(s: Selector) -> String {
        s.0
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Selector({})", self.0)
    }
}

/// Why a selector format gives no selector ([`format_selector`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FormatError {
    /// chrono does not understand the strftime format.
    #[error("is not a valid strftime format")]
    Strftime,
    /// chrono could not render the format.
    #[error("cannot be rendered")]
    Render,
    /// The rendered text is not a selector label.
    #[error("does not give a selector: {0}")]
    NotASelector(#[source] SelectorError),
}

/// Formats `now` with the strftime `format` into a selector, refusing formats
/// chrono cannot render and results that are not a selector label.
///
/// # Errors
/// [`FormatError`] when the format is not strftime, cannot be rendered, or does
/// not render to a selector label.
pub(crate) fn format_selector(format: &str, now: DateTime<Utc>) -> Result<String, FormatError> {
    let items: Vec<Item<'_>> = StrftimeItems::new(format).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(FormatError::Strftime);
    }
    let mut out = String::new();
    write!(out, "{}", now.format_with_items(items.into_iter())).map_err(|_| FormatError::Render)?;
    Selector::parse(&out)
        .map(|s| s.0)
        .map_err(FormatError::NotASelector)
}
