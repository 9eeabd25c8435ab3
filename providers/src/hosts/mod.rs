//! One module per DNS host, all the same shape: a `Config` (typed, validated,
//! credentials passed in, never read from the environment here), a constructor
//! that validates it, and the [`crate::Provider`] implementation.

pub mod cloudflare;
pub mod desec;
pub mod digitalocean;
pub mod gandi;
pub mod google;
pub mod hetzner;
pub mod powerdns;
pub mod rfc2136;
pub mod route53;
pub mod zonefile;

use crate::{Error, Fqdn, Operation, Profile, TxtRecord, TxtSet};

/// For hosts that may re-split values: each record shaped to the host's string
/// limit, checked against its profile before anything is sent, duplicates dropped.
pub(crate) fn check_all(
    kind: &'static str,
    profile: &Profile,
    name: &Fqdn,
    set: &TxtSet,
) -> Result<Vec<TxtRecord>, Error> {
    let mut out: Vec<TxtRecord> = Vec::new();
    for shaped in set.records.iter().map(|r| profile.shape(r)) {
        profile.check_set(
            kind,
            Operation::Replace,
            name,
            std::slice::from_ref(&shaped),
        )?;
        if !out.contains(&shaped) {
            out.push(shaped);
        }
    }
    Ok(out)
}

/// Parses one TXT record that a host documents as quoted zone-file text
/// (`"part1" "part2"`), refusing anything else: guessing where unquoted strings end
/// could rewrite a value maildns does not own.
///
/// # Errors
/// [`crate::ErrorKind::Protocol`] naming `kind`, `op` and `name`, quoting the text.
pub(crate) fn parse_quoted(
    kind: &'static str,
    op: Operation,
    name: &Fqdn,
    text: &str,
) -> Result<TxtRecord, Error> {
    crate::txt::require_quoted(text.as_bytes())
        .and_then(|()| TxtRecord::parse_presentation(text))
        .map_err(|e| {
            Error::new(
                kind,
                op,
                Some(name),
                crate::ErrorKind::Protocol,
                format!("TXT value {text:?} is not in the host's documented format: {e}"),
            )
        })
}

/// A protocol error for an answer body that is not the host's documented shape.
pub(crate) fn bad_body(
    kind: &'static str,
    op: Operation,
    name: &Fqdn,
    e: impl std::fmt::Display,
) -> Error {
    Error::new(
        kind,
        op,
        Some(name),
        crate::ErrorKind::Protocol,
        format!("unexpected response body: {e}"),
    )
}
