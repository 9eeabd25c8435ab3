//! The providers crate's integration tests: one test binary, one module per
//! adapter (against a real server or the host's local fake) plus the descriptor
//! checks. Filter by module: `cargo test -p maildns-providers --test it route53::`.

mod answer_parsers;
mod azure;
mod bunny;
mod cloudflare;
mod descriptors;
mod desec;
mod digitalocean;
mod dnsimple;
mod exec;
mod gandi;
mod godaddy;
mod google;
mod hetzner;
mod ionos;
mod linode;
mod malformed_answers;
mod namecheap;
mod netcup;
mod ovh;
mod porkbun;
mod powerdns;
mod rfc2136;
mod route53;
mod scaleway;
mod vultr;
mod zonefile;

use maildns_providers::{Fqdn, TxtChange, TxtRecord, TxtSet, ZoneSets};

/// A name the test knows to be valid.
fn n(s: &str) -> Fqdn {
    Fqdn::parse(s).unwrap()
}

/// A TXT RRset of `ttl` seconds holding one record a value in `values`.
fn set(ttl: u32, values: &[&str]) -> TxtSet {
    TxtSet {
        ttl,
        records: values.iter().map(TxtRecord::from_value).collect(),
    }
}

/// The change of `name` from the set `sets` holds for it to `new` (`None`:
/// deleted).
fn change(sets: &ZoneSets, name: &str, new: Option<TxtSet>) -> TxtChange {
    TxtChange {
        name: n(name),
        old: sets[&n(name)].clone(),
        new,
    }
}

/// Writes one value at `name` with `ttl` through `p` and expects the adapter to
/// refuse it before sending, as under the host's minimum `min`.
pub async fn expect_ttl_too_low(
    p: &dyn maildns_providers::Provider,
    zone: &maildns_providers::Zone,
    name: &str,
    ttl: u32,
    min: u32,
) {
    let set = maildns_providers::TxtSet {
        ttl,
        records: vec![maildns_providers::TxtRecord::from_value("x")],
    };
    let name = maildns_providers::Fqdn::parse(name).unwrap();
    let e = p.replace_txt(zone, &name, &set).await.unwrap_err();
    assert_eq!(
        e.kind,
        maildns_providers::ErrorKind::Limit(maildns_providers::LimitError::TtlTooLow { ttl, min }),
        "{e}"
    );
    assert_eq!(e.name.as_deref(), Some(name.as_str()));
}

/// Drops `fake` on this thread and returns what its drop check panicked
/// with: a fake on which a broad endpoint was called must fail the test.
pub fn drop_fails<T>(fake: T) -> String {
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(fake)));
    let why = dropped.expect_err("dropping a fake whose tripwire was hit fails the test");
    why.downcast_ref::<String>().cloned().unwrap_or_default()
}
