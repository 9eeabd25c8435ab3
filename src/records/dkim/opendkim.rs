//! Reads the `.txt` file opendkim-genkey writes:
//! `SEL._domainkey IN TXT ( "v=DKIM1; h=rsa-sha256; k=rsa; s=email; " "p=..." )  ; ----- DKIM key SEL for DOMAIN`.

use maildns_providers::txt::ParseError;
use maildns_providers::{Fqdn, TxtRecord};

use super::{DkimError, DkimKey};
use crate::records::Diagnostic;

/// What an opendkim-genkey `.txt` file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpendkimTxt {
    /// The selector (the owner name before `._domainkey`).
    pub selector: String,
    /// The domain: from the trailing comment `DKIM key SEL for DOMAIN`, else from a
    /// fully qualified owner name; `None` when neither says.
    pub domain: Option<Fqdn>,
    /// The TXT data exactly as the file has it (strings as split there).
    pub original: TxtRecord,
    /// The record, parsed leniently (`h=rsa-sha256` read as `h=sha256`).
    pub record: DkimKey,
    /// What was repaired (code `dkim-h-corrected`).
    pub warnings: Vec<Diagnostic>,
}

const COMMENT: &str = "----- DKIM key ";

/// Parses opendkim-genkey's `.txt` output (zone-file syntax).
///
/// # Errors
/// [`DkimError::OpendkimFormat`] when the text is not `<selector>._domainkey [IN] TXT`
/// followed by TXT data, [`DkimError::Presentation`] when that data does not parse,
/// and the [`DkimError`] of the record itself (parsed leniently).
pub fn parse_opendkim_txt(text: &str) -> Result<OpendkimTxt, DkimError> {
    let format = |reason, at| DkimError::OpendkimFormat { reason, at };
    // Tokens before the TXT data: owner, then optional TTL and class, then `TXT`.
    let mut rest_at = None;
    let mut owner = None;
    let mut pos = 0usize;
    for word in text.split_ascii_whitespace() {
        let at = text
            .get(pos..)
            .and_then(|t| t.find(word))
            .map_or(pos, |p| pos + p);
        pos = at + word.len();
        if owner.is_none() {
            owner = Some((word, at));
        } else if word.eq_ignore_ascii_case("TXT") {
            rest_at = Some(pos);
            break;
        } else if !(word.eq_ignore_ascii_case("IN") || word.bytes().all(|b| b.is_ascii_digit())) {
            return Err(format("expected 'IN TXT' after the owner name", at));
        }
    }
    let Some((owner, owner_at)) = owner else {
        return Err(format("empty input", 0));
    };
    let Some(rest_at) = rest_at else {
        return Err(format("no 'TXT' after the owner name", owner_at));
    };
    let owner_lc = owner.trim_end_matches('.').to_ascii_lowercase();
    let Some(idx) = owner_lc.find("._domainkey") else {
        return Err(format("the owner name has no '._domainkey'", owner_at));
    };
    let selector = owner_lc.get(..idx).unwrap_or("").to_string();
    let valid = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    };
    if !valid(&selector) {
        return Err(format("the selector is not a DNS label", owner_at));
    }
    let owner_domain = owner_lc
        .get(idx + "._domainkey".len()..)
        .and_then(|d| d.strip_prefix('.'))
        .and_then(|d| Fqdn::parse(d).ok());

    let rest = text.get(rest_at..).unwrap_or("");
    let original = TxtRecord::parse_presentation(rest).map_err(|e| {
        DkimError::Presentation(ParseError {
            at: e.at + rest_at,
            kind: e.kind,
        })
    })?;
    let after_quotes = rest
        .rfind('"')
        .map_or(rest, |q| rest.get(q..).unwrap_or(""));
    let comment_domain = after_quotes.find(COMMENT).and_then(|p| {
        let mut words = after_quotes
            .get(p + COMMENT.len()..)?
            .split_ascii_whitespace();
        let _selector = words.next()?;
        (words.next()? == "for").then_some(())?;
        Fqdn::parse(words.next()?).ok()
    });
    let value = String::from_utf8(original.value())
        .map_err(|_| format("the TXT data is not UTF-8", rest_at))?;
    let (record, warnings) = DkimKey::parse_lenient(&value)?;
    Ok(OpendkimTxt {
        selector,
        domain: comment_domain.or(owner_domain),
        original,
        record,
        warnings,
    })
}
