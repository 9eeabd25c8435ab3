//! Warnings about weak keys a domain's state holds, for every run.
//!
//! Why this module exists: RFC 8301 §3.2 says signers MUST use RSA keys of at
//! least 1024 bits and SHOULD use 2048. Keys under 1024 bits are refused where
//! they enter ([`crate::keys::PrivateKey::from_pem`], [`super::machine::adopt`],
//! [`super::store::Store::save`] for a key it has not recorded before);
//! a 1024-bit key is allowed (some DNS hosts cannot hold a longer record) but the
//! operator hears about it on every `publish`, `rotate`, daemon pass and `status`
//! until it is rotated away. A key under 1024 bits can still be found in a state
//! written by an older maildns: it is named here, and its record is never
//! published (loading it fails).

use super::machine::{DomainState, Warning};
use crate::keys::{self, Algorithm, RSA_MIN_BITS};

/// One warning per key that signs or is on its way to signing (not retired)
/// and is weaker than RFC 8301 recommends, in the state's key order.
/// Codes: `rsa_too_small` (under 1024 bits: refused, never published) and
/// `rsa_weak` (1024 to 2047 bits).
pub fn key_strength_warnings(state: &DomainState) -> Vec<Warning> {
    state
        .keys
        .iter()
        .filter(|k| !k.status.is_retired())
        .filter_map(|k| {
            let prefix = format!("{}: key {} ({})", state.domain, k.selector, k.status);
            if k.algorithm == Algorithm::Rsa && k.bits < RSA_MIN_BITS {
                Some(Warning {
                    code: "rsa_too_small",
                    message: format!(
                        "{prefix}: a {}-bit RSA key: RSA keys must have at least {RSA_MIN_BITS} bits (RFC 8301, section 3.2); maildns never publishes it: replace it with a 2048-bit key",
                        k.bits
                    ),
                })
            } else {
                keys::strength_warning(k.algorithm, k.bits).map(|w| Warning {
                    code: "rsa_weak",
                    message: format!("{prefix}: {w}"),
                })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use maildns_providers::Fqdn;

    use super::super::machine::{AdoptError, Selector, adopt};
    use super::*;

    #[test]
    fn adopt_refuses_rsa_under_1024_and_weak_keys_warn() {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let mut state = DomainState::new(Fqdn::parse("example.com").unwrap());
        let sel = |s: &str| Selector::parse(s).unwrap();
        let err = adopt(&mut state, sel("old"), Algorithm::Rsa, 512, "/k/old", now).unwrap_err();
        assert!(
            matches!(err, AdoptError::TooSmall { bits: 512, .. }),
            "{err}"
        );
        assert!(state.keys.is_empty());
        assert!(key_strength_warnings(&state).is_empty());

        adopt(&mut state, sel("s1024"), Algorithm::Rsa, 1024, "/k/a", now).unwrap();
        adopt(&mut state, sel("ed"), Algorithm::Ed25519, 256, "/k/e", now).unwrap();
        let w = key_strength_warnings(&state);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].code, "rsa_weak");
        assert!(
            w[0].message
                .starts_with("example.com: key s1024 (active): a 1024-bit RSA key"),
            "{}",
            w[0].message
        );
        // A state from before the floor, holding a 512-bit key: named, refused.
        state.keys[0].bits = 512;
        let w = key_strength_warnings(&state);
        assert_eq!(w[0].code, "rsa_too_small");
        assert!(
            w[0].message.contains("never publishes it"),
            "{}",
            w[0].message
        );
        // `status` shows it, and it needs an operator (status exits 4).
        let st = super::super::status::domain_status(
            &state,
            None,
            Vec::new(),
            chrono::TimeDelta::hours(1),
            now,
        );
        assert_eq!(st.warnings, w);
        assert_eq!(st.attention.len(), 1, "{:?}", st.attention);
        assert_eq!(st.attention[0].kind, "weak_key");
        // A 1024-bit key warns but needs no operator.
        state.keys[0].bits = 1024;
        let st = super::super::status::domain_status(
            &state,
            None,
            Vec::new(),
            chrono::TimeDelta::hours(1),
            now,
        );
        assert_eq!(st.warnings[0].code, "rsa_weak");
        assert!(st.attention.is_empty(), "{:?}", st.attention);
    }

    /// The store refuses to record a new RSA key under 1024 bits, and keeps one
    /// recorded before the floor existed (so it can still be retired).
    #[test]
    fn the_store_refuses_new_weak_keys_and_keeps_old_ones() {
        use super::super::store::{DB_FILE, SqliteStore, Store, StoreError};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_locked(dir.path()).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let mut state = DomainState::new(Fqdn::parse("example.com").unwrap());
        let sel = Selector::parse("s1").unwrap();
        adopt(&mut state, sel, Algorithm::Rsa, 1024, "/k/a", now).unwrap();
        store.save(&state, &[]).unwrap();

        let mut weak = state.clone();
        weak.keys[0].bits = 512;
        let err = store.save(&weak, &[]).unwrap_err();
        assert!(
            matches!(&err, StoreError::WeakKey { bits: 512, selector, .. } if selector == "s1"),
            "{err}"
        );
        assert_eq!(store.load(&state.domain).unwrap(), state, "nothing written");

        // A state written before the floor: the weak key stays savable.
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute("UPDATE keys SET bits = 512", []).unwrap();
        drop(conn);
        let old = store.load(&state.domain).unwrap();
        assert_eq!(old.keys[0].bits, 512);
        store.save(&old, &[]).unwrap();
    }
}
