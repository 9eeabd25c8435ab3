//! The answer parsers of azure, scaleway, bunny, dnsimple, namecheap and
//! godaddy, as the fuzz targets `host_<kind>` drive them (fuzz/fuzz_targets/):
//! the committed seeds (fuzz/corpus/host_<kind>/) parse to what they hold, and
//! arbitrary bytes, or seeds cut, spliced and mutated, give an answer or a
//! protocol error naming the provider, never a panic. Azure's token endpoint
//! answer (`host_azure_token`) too, whose errors never quote the token.

use std::path::PathBuf;

use maildns_providers::hosts::{azure, bunny, dnsimple, godaddy, namecheap, scaleway};
use maildns_providers::{Error, Operation};
use proptest::prelude::*;

use crate::n;

/// The committed seeds of fuzz target `target`, in name order.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no seeds in {}", dir.display());
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Every parser of the six hosts on `data`; each error names that host and
/// says something (never a panic, never another provider's error).
fn parse_all(data: &[u8]) {
    let check = |kind: &str, r: Result<(), Error>| {
        if let Err(e) = r {
            assert_eq!(e.provider, kind, "{e}");
            assert!(!e.message.is_empty(), "{kind}: {e:?}");
        }
    };
    let name = n("_dmarc.example.com");
    let apex = n("example.com");
    check(
        "azure",
        azure::parse_record_set(data, &name, Operation::Read).map(drop),
    );
    check("azure", azure::fuzzing::parse_token(data).map(drop));
    check(
        "scaleway",
        scaleway::parse_records(data, "_dmarc", &name, Operation::Read).map(drop),
    );
    check(
        "bunny",
        bunny::parse_zone_records(data, &apex, Operation::Read).map(drop),
    );
    check(
        "dnsimple",
        dnsimple::parse_records(data, &apex, Operation::Read).map(drop),
    );
    check("dnsimple", dnsimple::parse_whoami(data).map(drop));
    check(
        "namecheap",
        namecheap::parse_get_hosts(data, &apex, Operation::Read).map(drop),
    );
    check(
        "namecheap",
        namecheap::parse_set_hosts(data, &apex, Operation::Replace),
    );
    check(
        "namecheap",
        namecheap::parse_get_list(data, &apex, Operation::FindZone).map(drop),
    );
    check(
        "godaddy",
        godaddy::parse_records(data, "_dmarc", &name, Operation::Read).map(drop),
    );
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = scaleway::decode_data(text);
        let _ = dnsimple::content_value(text);
    }
}

#[test]
fn fuzz_seeds_parse_to_what_they_hold() {
    let name = n("_dmarc.example.com");
    let apex = n("example.com");

    let az = seeds("host_azure");
    let (set, etag) = azure::parse_record_set(&az[0], &name, Operation::Read).unwrap();
    assert_eq!((set.ttl, set.records.len()), (3600, 2));
    assert_eq!(set.records[0].value(), b"part-onepart-two");
    assert_eq!(etag, "7f3c1e7a-0000-0000-0000-000000000000");
    assert_eq!(
        azure::parse_record_set(&az[1], &name, Operation::Read)
            .unwrap()
            .1,
        "e"
    );

    let sw = seeds("host_scaleway");
    let page = scaleway::parse_records(&sw[0], "_dmarc", &name, Operation::Read).unwrap();
    assert_eq!(page.values, vec![(3600, b"v=DMARC1; p=none".to_vec())]);
    let quoted = std::str::from_utf8(&sw[1]).unwrap();
    assert_eq!(
        scaleway::decode_data(quoted).as_deref(),
        Some(&b"v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A \"quoted\" C:\\raw"[..]),
        "{quoted}"
    );

    let bn = seeds("host_bunny");
    let recs = bunny::parse_zone_records(&bn[0], &apex, Operation::Read).unwrap();
    assert_eq!(recs.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2]);

    let ds = seeds("host_dnsimple");
    let (recs, more) = dnsimple::parse_records(&ds[0], &apex, Operation::Read).unwrap();
    assert_eq!((recs.len(), more), (1, false));
    assert_eq!(dnsimple::parse_whoami(&ds[1]).unwrap(), 1010);
    assert_eq!(
        dnsimple::content_value(std::str::from_utf8(&ds[2]).unwrap()).unwrap(),
        b"v=spf1 include:_spf.example.net \"quoted\" -all"
    );

    let nc = seeds("host_namecheap");
    let hosts = namecheap::parse_get_hosts(&nc[0], &apex, Operation::Read).unwrap();
    assert_eq!(hosts.hosts.len(), 2);
    let e = namecheap::parse_set_hosts(&nc[1], &apex, Operation::Replace).unwrap_err();
    assert!(e.message.contains("1011150"), "{e}");
    let (domains, more) = namecheap::parse_get_list(&nc[2], &apex, Operation::FindZone).unwrap();
    assert_eq!((domains, more), (vec!["example.com".to_string()], false));

    let gd = seeds("host_godaddy");
    let recs = godaddy::parse_records(&gd[0], "_dmarc", &name, Operation::Read).unwrap();
    assert_eq!(recs.len(), 2);
    assert!(
        godaddy::parse_records(&gd[1], "_dmarc", &name, Operation::Read)
            .unwrap()
            .is_empty()
    );
}

/// The token seeds: a Bearer token and its lifetime; a token of another type,
/// an empty token and an error answer refused as protocol errors.
#[test]
fn azure_token_seeds_parse_to_what_they_hold() {
    let t = seeds("host_azure_token");
    assert_eq!(azure::fuzzing::parse_token(&t[0]).unwrap(), 3599);
    for (seed, says) in [
        (&t[1], "token_type is not Bearer"),
        (&t[2], "empty access_token"),
        (&t[3], "missing field `access_token`"),
    ] {
        let e = azure::fuzzing::parse_token(seed).unwrap_err();
        assert_eq!(e.kind, maildns_providers::ErrorKind::Protocol, "{e}");
        assert!(e.message.contains(says), "{e}");
    }
}

/// Every seed of the targets, for the mutation strategies.
fn all_seeds() -> Vec<Vec<u8>> {
    [
        "host_azure",
        "host_azure_token",
        "host_scaleway",
        "host_bunny",
        "host_dnsimple",
        "host_namecheap",
        "host_godaddy",
    ]
    .iter()
    .flat_map(|t| seeds(t))
    .collect()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        parse_all(&data);
    }

    /// A seed with a byte range replaced by other bytes: near-valid answers
    /// reach deeper into each parser than random bytes do.
    #[test]
    fn mutated_seeds_never_panic(
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        cut in 0usize..40,
        insert in proptest::collection::vec(
            prop_oneof![
                any::<u8>(),
                prop::sample::select(b"\"\\{}[]<>=:,/&;0123456789 -".to_vec()),
            ],
            0..12,
        ),
    ) {
        let seeds = all_seeds();
        let mut data = pick.get(&seeds).clone();
        let start = at.index(data.len() + 1);
        let end = (start + cut).min(data.len());
        data.splice(start..end, insert);
        parse_all(&data);
    }
}

/// A token as the endpoint might send one (base64url and dots), long enough
/// that finding it in a message is no accident.
fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{16,80}"
}

proptest! {
    /// A well-formed answer gives its lifetime, whatever the token, the order
    /// of the fields and the case of "Bearer".
    #[test]
    fn azure_token_answers_give_their_lifetime(
        tok in token(),
        expires in any::<u64>(),
        kind in prop::sample::select(vec!["Bearer", "bearer", "BEARER"]),
        typed in any::<bool>(),
    ) {
        let body = if typed {
            format!(r#"{{"access_token":"{tok}","token_type":"{kind}","expires_in":{expires}}}"#)
        } else {
            format!(r#"{{"expires_in":{expires},"access_token":"{tok}"}}"#)
        };
        prop_assert_eq!(azure::fuzzing::parse_token(body.as_bytes()).unwrap(), expires);
    }

    /// An answer refused anywhere (another token type, a lifetime that is not
    /// a number, the token where a number belongs, a cut body) is a protocol
    /// error that never quotes the token.
    #[test]
    fn azure_token_errors_never_quote_the_token(
        tok in token(),
        how in 0usize..5,
        cut in any::<prop::sample::Index>(),
    ) {
        let body = match how {
            0 => format!(r#"{{"token_type":"pop","expires_in":1,"access_token":"{tok}"}}"#),
            1 => format!(r#"{{"expires_in":"{tok}","access_token":"{tok}"}}"#),
            2 => format!(r#"{{"expires_in":1,"access_token":"{tok}","token_type":["{tok}"]}}"#),
            3 => format!(r#"["{tok}"]"#),
            _ => {
                let whole = format!(r#"{{"expires_in":1,"access_token":"{tok}"}}"#);
                let end = cut.index(whole.len() - 1);
                whole[..end].to_string()
            }
        };
        let e = azure::fuzzing::parse_token(body.as_bytes()).unwrap_err();
        prop_assert_eq!(&e.kind, &maildns_providers::ErrorKind::Protocol);
        prop_assert_eq!(e.provider, "azure");
        let shown = format!("{e} {e:?}");
        prop_assert!(!shown.contains(&tok), "{}", shown);
    }
}
