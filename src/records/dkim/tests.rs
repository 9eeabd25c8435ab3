use super::*;
use crate::records::Severity;
use proptest::prelude::*;

fn codes(d: &[Diagnostic]) -> Vec<&'static str> {
    d.iter().map(|d| d.code).collect()
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/dkim/{name}", env!("CARGO_MANIFEST_DIR"));
    let b64 = std::fs::read_to_string(&path).unwrap();
    STANDARD.decode(b64.trim()).unwrap()
}

const OPENDKIM_TXT: &str = include_str!("../../../fixtures/opendkim/201908.txt");

#[test]
fn builds_rsa_record_and_splits_before_p() {
    for (bits, file, p_len) in [
        (1024, "rsa1024.spki.b64", 216),
        (2048, "rsa2048.spki.b64", 392),
        (4096, "rsa4096.spki.b64", 736),
    ] {
        let der = fixture(file);
        let key = DkimKey::new(KeyType::Rsa, der.clone());
        let value = key.to_value();
        assert!(
            value.starts_with("v=DKIM1; h=sha256; k=rsa; p=MI"),
            "{value}"
        );
        assert_eq!(value.len(), "v=DKIM1; h=sha256; k=rsa; p=".len() + p_len);
        assert_eq!(key.key_bits(), Some(bits));
        let txt = key.to_txt();
        assert_eq!(txt.strings()[0].as_bytes(), b"v=DKIM1; h=sha256; k=rsa; ");
        assert!(txt.strings().iter().all(|s| s.len() <= 255));
        assert_eq!(txt.value(), value.as_bytes());
        assert_eq!(DkimKey::parse(&value), Ok(key.clone()));
        let lint = key.lint();
        match bits {
            1024 => {
                assert_eq!(codes(&lint), vec!["dkim-rsa-short"]);
                assert_eq!(lint[0].severity, Severity::Warning);
            }
            _ => assert!(lint.is_empty(), "{lint:?}"),
        }
    }
}

#[test]
fn rsa_under_1024_is_an_error() {
    // A 512-bit SubjectPublicKeyInfo (made with openssl genrsa 512).
    let der = STANDARD
        .decode(
            "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALcUcfZvps9qS1MxsOm2XO1OkQOJfvpoaTtukJvLOakmBisXpI0j7HMNlKJo6DWfgN3kub3z32FIbYsblGTCgGkCAwEAAQ==",
        )
        .unwrap();
    let key = DkimKey::new(KeyType::Rsa, der);
    assert_eq!(key.key_bits(), Some(512));
    let lint = key.lint();
    assert_eq!(codes(&lint), vec!["dkim-rsa-too-short"]);
    assert_eq!(lint[0].severity, Severity::Error);
}

#[test]
fn pkcs1_key_is_read_with_a_warning() {
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    let spki = fixture("rsa2048.spki.b64");
    let key = rsa::PublicKey::from_public_key_der(&spki).unwrap();
    let pkcs1 = key.to_pkcs1_der().unwrap().as_bytes().to_vec();
    let rec = DkimKey::new(KeyType::Rsa, pkcs1);
    assert_eq!(rec.key_bits(), Some(2048));
    assert_eq!(codes(&rec.lint()), vec!["dkim-rsa-pkcs1"]);
}

#[test]
fn ed25519_record() {
    let raw = fixture("ed25519.raw.b64");
    assert_eq!(raw.len(), 32);
    let key = DkimKey::new(KeyType::Ed25519, raw);
    let value = key.to_value();
    assert!(value.starts_with("v=DKIM1; h=sha256; k=ed25519; p="));
    assert_eq!(value.len(), "v=DKIM1; h=sha256; k=ed25519; p=".len() + 44);
    assert_eq!(key.key_bits(), Some(256));
    assert!(key.lint().is_empty());
    assert_eq!(key.to_txt().strings().len(), 2);
    // Wrong length: not a key.
    let bad = DkimKey::new(KeyType::Ed25519, vec![1; 31]);
    assert_eq!(bad.key_bits(), None);
    assert_eq!(codes(&bad.lint()), vec!["dkim-bad-key"]);
}

#[test]
fn revoked_key() {
    let key = DkimKey::new(KeyType::Rsa, fixture("rsa2048.spki.b64")).revoked();
    assert!(key.is_revoked());
    assert_eq!(key.to_value(), "v=DKIM1; h=sha256; k=rsa; p=");
    assert_eq!(key.key_bits(), None);
    assert_eq!(codes(&key.lint()), vec!["dkim-revoked"]);
    let parsed = DkimKey::parse("v=DKIM1; p=").unwrap();
    assert!(parsed.is_revoked());
    assert_eq!(parsed.key_type(), &KeyType::Rsa);
}

#[test]
fn every_tag_parses_and_prints_canonically() {
    let p = STANDARD.encode(fixture("rsa2048.spki.b64"));
    let spaced: String = p
        .as_bytes()
        .chunks(60)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" \r\n\t ");
    let value = format!(
        "v=DKIM1; h = sha1 : sha256 ; k=rsa; s=email:*; t=y:s; n=rotated monthly; x_foo=bar; p={spaced};"
    );
    let key = DkimKey::parse(&value).unwrap();
    assert!(key.version);
    assert_eq!(key.hashes, vec![HashAlg::Sha1, HashAlg::Sha256]);
    assert_eq!(key.key_type, Some(KeyType::Rsa));
    assert_eq!(key.services, vec![ServiceType::Email, ServiceType::Any]);
    assert_eq!(key.flags, vec![Flag::Testing, Flag::Strict]);
    assert!(key.is_testing());
    assert_eq!(key.notes.as_deref(), Some("rotated monthly"));
    assert_eq!(key.unknown, vec![("x_foo".to_string(), "bar".to_string())]);
    assert_eq!(key.key_bits(), Some(2048));
    assert_eq!(
        key.to_value(),
        format!(
            "v=DKIM1; h=sha1:sha256; k=rsa; s=email:*; t=y:s; n=rotated monthly; x_foo=bar; p={p}"
        )
    );
    let lint = codes(&key.lint());
    assert_eq!(lint, vec!["dkim-sha1", "dkim-testing", "dkim-unknown-tag"]);
    // v= is optional; other values kept as Other.
    let other = DkimKey::parse("k=dsa; h=sha512; s=tlsrpt; t=z; p=AAAA").unwrap();
    assert!(!other.version);
    assert_eq!(other.key_type, Some(KeyType::Other("dsa".into())));
    assert_eq!(other.hashes, vec![HashAlg::Other("sha512".into())]);
    assert_eq!(other.services, vec![ServiceType::Other("tlsrpt".into())]);
    assert_eq!(other.flags, vec![Flag::Other("z".into())]);
    assert_eq!(other.to_value(), "h=sha512; k=dsa; s=tlsrpt; t=z; p=AAAA");
    assert_eq!(
        codes(&other.lint()),
        vec![
            "dkim-unknown-key-type",
            "dkim-no-sha256",
            "dkim-unknown-hash",
            "dkim-not-for-email"
        ]
    );
}

#[test]
fn errors_carry_positions() {
    use DkimError::*;
    let cases: Vec<(&str, DkimError)> = vec![
        ("k=rsa; v=DKIM1; p=", VersionNotFirst { at: 7 }),
        (
            "v=DKIM2; p=",
            BadVersion {
                value: "DKIM2".into(),
                at: 2,
            },
        ),
        ("v=DKIM1; k=rsa", MissingPublicKey),
        ("v=DKIM1; p=AB$C", BadBase64 { at: 11 }),
        ("v=DKIM1; h=sha256:; p=", EmptyValue { tag: "h", at: 11 }),
        ("v=DKIM1; k=; p=", EmptyValue { tag: "k", at: 11 }),
        ("v=DKIM1; s=; p=", EmptyValue { tag: "s", at: 11 }),
        ("v=DKIM1; t=y::s; p=", EmptyValue { tag: "t", at: 11 }),
        (
            "v=DKIM1; h=rsa-sha256; p=",
            SignatureAlgorithmInH {
                value: "rsa-sha256".into(),
                at: 11,
            },
        ),
        (
            "v=DKIM1; p=; p=",
            TagList(TagListError::Duplicate {
                name: "p".into(),
                at: 13,
            }),
        ),
        ("v=DKIM1; p", TagList(TagListError::MissingEquals { at: 9 })),
    ];
    for (input, want) in cases {
        assert_eq!(DkimKey::parse(input), Err(want), "input {input:?}");
    }
}

#[test]
fn lenient_parse_repairs_h() {
    let (key, warnings) = DkimKey::parse_lenient("v=DKIM1; h=rsa-sha256; k=rsa; p=").unwrap();
    assert_eq!(key.hashes, vec![HashAlg::Sha256]);
    assert_eq!(codes(&warnings), vec!["dkim-h-corrected"]);
    assert_eq!(warnings[0].severity, Severity::Warning);
    let (key, _) = DkimKey::parse_lenient("v=DKIM1; h=rsa-sha1:sha256; p=").unwrap();
    assert_eq!(key.hashes, vec![HashAlg::Sha1, HashAlg::Sha256]);
}

#[test]
fn ownership_rule() {
    assert!(is_dkim(b"v=DKIM1; p="));
    assert!(is_dkim(b"V=dkim1;p="));
    assert!(is_dkim(b"v=DKIM1"));
    assert!(!is_dkim(b"v=DKIM10; p="));
    assert!(!is_dkim(b"k=rsa; p=abc"));
    assert!(!is_dkim(b"v=spf1 -all"));
}

#[test]
fn opendkim_fixture() {
    let parsed = parse_opendkim_txt(OPENDKIM_TXT).unwrap();
    assert_eq!(parsed.selector, "201908");
    assert_eq!(
        parsed.domain.as_ref().map(Fqdn::as_str),
        Some("example.com")
    );
    assert_eq!(parsed.original.strings().len(), 2);
    assert!(
        parsed
            .original
            .value_lossy()
            .starts_with("v=DKIM1; h=rsa-sha256; k=rsa; s=email; p=MIGf")
    );
    assert_eq!(codes(&parsed.warnings), vec!["dkim-h-corrected"]);
    let rec = &parsed.record;
    assert_eq!(rec.hashes, vec![HashAlg::Sha256]);
    assert_eq!(rec.services, vec![ServiceType::Email]);
    assert_eq!(rec.key_bits(), Some(1024));
    // What the seed's author publishes by hand.
    assert!(rec.to_value().starts_with(
        "v=DKIM1; h=sha256; k=rsa; s=email; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQ"
    ));
    assert_eq!(
        rec.to_txt().strings()[0].as_bytes(),
        b"v=DKIM1; h=sha256; k=rsa; s=email; "
    );
    assert_eq!(codes(&rec.lint()), vec!["dkim-rsa-short"]);
    // Strict parsing of the same value refuses h=rsa-sha256.
    assert!(matches!(
        DkimKey::parse(&parsed.original.value_lossy()),
        Err(DkimError::SignatureAlgorithmInH { .. })
    ));
}

#[test]
fn opendkim_variants_and_errors() {
    let text = "sel._domainkey.Example.ORG. 3600 IN TXT \"v=DKIM1; k=rsa; p=\"";
    let p = parse_opendkim_txt(text).unwrap();
    assert_eq!(p.selector, "sel");
    assert_eq!(p.domain.unwrap().as_str(), "example.org");
    assert!(p.warnings.is_empty());
    let e = |t: &str| parse_opendkim_txt(t).unwrap_err();
    assert_eq!(
        e(""),
        DkimError::OpendkimFormat {
            reason: "empty input",
            at: 0
        }
    );
    assert_eq!(
        e("sel._domainkey IN"),
        DkimError::OpendkimFormat {
            reason: "no 'TXT' after the owner name",
            at: 0
        }
    );
    assert_eq!(
        e("  sel IN TXT \"p=\""),
        DkimError::OpendkimFormat {
            reason: "the owner name has no '._domainkey'",
            at: 2
        }
    );
    assert_eq!(
        e("sel._domainkey IN MX \"p=\""),
        DkimError::OpendkimFormat {
            reason: "expected 'IN TXT' after the owner name",
            at: 18
        }
    );
    match e("sel._domainkey IN TXT ( \"v=DKIM1; p=") {
        DkimError::Presentation(pe) => assert_eq!(pe.at, 24),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e("s._domainkey IN TXT \"v=DKIM1\""),
        DkimError::MissingPublicKey
    );
}

fn word() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,8}"
}

fn key() -> impl Strategy<Value = DkimKey> {
    let hashes = proptest::collection::vec(
        prop_oneof![
            Just(HashAlg::Sha256),
            Just(HashAlg::Sha1),
            "x[a-z0-9]{0,6}".prop_map(HashAlg::Other)
        ],
        0..3,
    )
    .prop_map(|mut v| {
        v.dedup();
        let mut out: Vec<HashAlg> = Vec::new();
        for h in v {
            if !out.contains(&h) {
                out.push(h);
            }
        }
        out
    });
    let kt = proptest::option::of(prop_oneof![
        Just(KeyType::Rsa),
        Just(KeyType::Ed25519),
        "x[a-z0-9]{0,6}".prop_map(KeyType::Other)
    ]);
    let services = proptest::collection::vec(
        prop_oneof![
            Just(ServiceType::Email),
            Just(ServiceType::Any),
            "x[a-z0-9]{0,6}".prop_map(ServiceType::Other)
        ],
        0..3,
    );
    let flags = proptest::collection::vec(
        prop_oneof![
            Just(Flag::Testing),
            Just(Flag::Strict),
            "x[a-z0-9]{0,6}".prop_map(Flag::Other)
        ],
        0..3,
    );
    let notes = proptest::option::of("[a-zA-Z0-9]([a-zA-Z0-9 .,]{0,20}[a-zA-Z0-9])?");
    let unknown = proptest::collection::vec(("z[a-z0-9_]{0,5}", word()), 0..3).prop_map(|v| {
        let mut out: Vec<(String, String)> = Vec::new();
        for (n, val) in v {
            if !out.iter().any(|(m, _)| *m == n) {
                out.push((n, val));
            }
        }
        out
    });
    let p = proptest::collection::vec(any::<u8>(), 0..300);
    (
        any::<bool>(),
        hashes,
        kt,
        services,
        flags,
        notes,
        unknown,
        p,
    )
        .prop_map(
            |(version, hashes, key_type, services, flags, notes, unknown, public_key)| DkimKey {
                version,
                hashes,
                key_type,
                services,
                flags,
                notes,
                public_key,
                unknown,
            },
        )
}

proptest! {
    #[test]
    fn parse_display_round_trips(k in key()) {
        let text = k.to_string();
        prop_assert_eq!(DkimKey::parse(&text), Ok(k.clone()));
        let txt = k.to_txt();
        prop_assert!(txt.strings().iter().all(|s| s.len() <= 255));
        prop_assert_eq!(txt.value(), text.into_bytes());
        let _ = k.lint();
        let _ = k.key_bits();
    }

    #[test]
    fn parse_never_panics(s in ".{0,300}") {
        let _ = DkimKey::parse(&s);
        let _ = DkimKey::parse_lenient(&s);
        let _ = parse_opendkim_txt(&s);
        if let Ok(k) = DkimKey::parse(&format!("v=DKIM1; {s}")) {
            let _ = k.lint();
        }
    }

    #[test]
    fn garbage_keys_do_not_panic(p in proptest::collection::vec(any::<u8>(), 0..600), ed in any::<bool>()) {
        let k = DkimKey::new(if ed { KeyType::Ed25519 } else { KeyType::Rsa }, p);
        let _ = k.key_bits();
        let _ = k.lint();
    }
}
