use super::*;
use crate::records::Severity;
use proptest::prelude::*;

fn codes(d: &[Diagnostic]) -> Vec<&'static str> {
    d.iter().map(|d| d.code).collect()
}

fn fqdn(s: &str) -> Fqdn {
    Fqdn::parse(s).unwrap()
}

const SEED: &str =
    "v=DMARC1;p=quarantine;sp=quarantine;adkim=r;aspf=r;fo=1;rf=afrf;rua=mailto:user@example.com";

#[test]
fn seed_record() {
    let d = Dmarc::parse(SEED).unwrap();
    assert_eq!(d.policy, Some(Policy::Quarantine));
    assert_eq!(d.subdomain_policy, Some(Policy::Quarantine));
    assert_eq!(d.adkim, Some(Alignment::Relaxed));
    assert_eq!(d.aspf, Some(Alignment::Relaxed));
    assert_eq!(d.fo, vec![FailureOption::Any]);
    assert_eq!(d.rf, vec![ReportFormat::Afrf]);
    assert_eq!(d.rua, vec![ReportUri::mailto("user@example.com")]);
    assert_eq!(
        d.to_string(),
        "v=DMARC1; p=quarantine; sp=quarantine; adkim=r; aspf=r; fo=1; rf=afrf; rua=mailto:user@example.com"
    );
    let lint = d.lint();
    assert_eq!(codes(&lint), vec!["dmarc-dropped-tag"]);
    assert_eq!(lint[0].severity, Severity::Warning);
    assert!(lint[0].message.starts_with("rf="));
    assert!(d.external_destinations(&fqdn("example.com")).is_empty());
    assert_eq!(d.to_txt().value(), d.to_string().as_bytes());
    assert!(is_dmarc(d.to_string().as_bytes()));
}

#[test]
fn every_tag() {
    let v = " v = DMARC1 ; P = Reject ; sp=none; np=quarantine; adkim=s; aspf=S; pct=50; \
             fo=0:1:d:s; rf=afrf; ri=3600; rua=mailto:a@example.com!10m, mailto:b@reports.example.net; \
             ruf=mailto:f@example.com; psd=n; t=y; ;";
    let d = Dmarc::parse(v).unwrap();
    assert_eq!(d.policy, Some(Policy::Reject));
    assert_eq!(d.subdomain_policy, Some(Policy::None));
    assert_eq!(d.nonexistent_policy, Some(Policy::Quarantine));
    assert_eq!(d.adkim, Some(Alignment::Strict));
    assert_eq!(d.aspf, Some(Alignment::Strict));
    assert_eq!(d.pct, Some(50));
    assert_eq!(
        d.fo,
        vec![
            FailureOption::All,
            FailureOption::Any,
            FailureOption::Dkim,
            FailureOption::Spf
        ]
    );
    assert_eq!(d.ri, Some(3600));
    assert_eq!(
        d.rua,
        vec![
            ReportUri {
                uri: "mailto:a@example.com".into(),
                size_limit: Some("10m".into())
            },
            ReportUri::mailto("b@reports.example.net"),
        ]
    );
    assert_eq!(d.ruf, vec![ReportUri::mailto("f@example.com")]);
    assert_eq!(d.psd, Some(Psd::No));
    assert_eq!(d.testing, Some(true));
    assert!(d.unknown.is_empty() && d.invalid.is_empty());
    assert_eq!(
        d.to_string(),
        "v=DMARC1; p=reject; sp=none; np=quarantine; adkim=s; aspf=s; pct=50; fo=0:1:d:s; rf=afrf; \
         ri=3600; rua=mailto:a@example.com!10m,mailto:b@reports.example.net; ruf=mailto:f@example.com; \
         psd=n; t=y"
    );
    assert_eq!(
        codes(&d.lint()),
        vec![
            "dmarc-size-limit",
            "dmarc-dropped-tag",
            "dmarc-dropped-tag",
            "dmarc-dropped-tag",
            "dmarc-testing"
        ]
    );
}

#[test]
fn bad_values_are_kept_and_linted() {
    let d = Dmarc::parse(
        "v=DMARC1; p=block; adkim=x; pct=101; ri=-1; fo=2; rf=iodef; rua=example.com; psd=maybe; \
         t=1; sp=; foo=bar; ruf=https://example.com/r",
    )
    .unwrap();
    assert_eq!(d.policy, None);
    let names: Vec<_> = d.invalid.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "p", "adkim", "pct", "ri", "fo", "rf", "rua", "psd", "t", "sp"
        ]
    );
    assert_eq!(d.unknown, vec![("foo".to_string(), "bar".to_string())]);
    let lint = d.lint();
    let c = codes(&lint);
    assert_eq!(c[0], "dmarc-invalid-p");
    assert!(lint[0].message.contains("ignore the whole record"));
    assert_eq!(c.iter().filter(|c| **c == "dmarc-bad-value").count(), 9);
    assert!(c.contains(&"dmarc-unknown-tag"));
    assert!(c.contains(&"dmarc-non-mailto-uri"));
    assert_eq!(d.effective_policy(), None);
    // Invalid tags survive printing and reparsing.
    assert_eq!(Dmarc::parse(&d.to_string()), Ok(d.clone()));
}

#[test]
fn missing_p_with_rua_is_treated_as_none() {
    let d = Dmarc::parse("v=DMARC1; rua=mailto:d@example.com").unwrap();
    assert_eq!(d.effective_policy(), Some(Policy::None));
    let lint = d.lint();
    assert_eq!(codes(&lint), vec!["dmarc-missing-p"]);
    assert_eq!(lint[0].severity, Severity::Error);
    assert!(lint[0].message.contains("p=none because rua="));
    let none = Dmarc::new(Policy::None);
    assert_eq!(none.to_string(), "v=DMARC1; p=none");
    assert_eq!(codes(&none.lint()), vec!["dmarc-p-none"]);
    assert_eq!(
        codes(
            &Dmarc::parse("v=DMARC1; p=reject; rua=mailto:nobody")
                .unwrap()
                .lint()
        ),
        vec!["dmarc-bad-mailto"]
    );
}

#[test]
fn errors_carry_positions() {
    assert_eq!(Dmarc::parse(""), Err(DmarcError::MissingVersion { at: 0 }));
    assert_eq!(
        Dmarc::parse("p=none; v=DMARC1"),
        Err(DmarcError::MissingVersion { at: 0 })
    );
    assert_eq!(
        Dmarc::parse("v=DMARC2; p=none"),
        Err(DmarcError::BadVersion {
            value: "DMARC2".into(),
            at: 2
        })
    );
    assert_eq!(
        Dmarc::parse("v=DMARC1; p=none; P=reject"),
        Err(DmarcError::TagList(TagListError::Duplicate {
            name: "P".into(),
            at: 18
        }))
    );
    assert_eq!(
        Dmarc::parse("v=DMARC1; p"),
        Err(DmarcError::TagList(TagListError::MissingEquals { at: 10 }))
    );
}

#[test]
fn external_destinations() {
    let d = Dmarc::parse(
        "v=DMARC1; p=none; rua=mailto:a@example.com,mailto:r@Reports.Vendor.net!5m,https://x.example/; \
         ruf=mailto:f@reports.vendor.net,mailto:g@sub.example.com,mailto:h@other.org?subject=x",
    )
    .unwrap();
    let ext = d.external_destinations(&fqdn("example.com"));
    assert_eq!(ext.len(), 2);
    assert_eq!(ext[0].report_domain.as_str(), "reports.vendor.net");
    assert_eq!(
        ext[0].uris,
        vec!["mailto:r@Reports.Vendor.net", "mailto:f@reports.vendor.net"]
    );
    assert_eq!(
        ext[0].authorization_name.as_ref().unwrap().as_str(),
        "example.com._report._dmarc.reports.vendor.net"
    );
    assert_eq!(ext[0].authorization_record().value(), b"v=DMARC1");
    assert_eq!(ext[1].report_domain.as_str(), "other.org");
    // From a subdomain's point of view the parent is external.
    let ext = d.external_destinations(&fqdn("sub.example.com"));
    let doms: Vec<_> = ext.iter().map(|e| e.report_domain.as_str()).collect();
    assert_eq!(doms, vec!["example.com", "reports.vendor.net", "other.org"]);
    assert_eq!(
        record_name(&fqdn("Example.com")).unwrap().as_str(),
        "_dmarc.example.com"
    );
}

#[test]
fn ownership_rule() {
    assert!(is_dmarc(b"v=DMARC1"));
    assert!(is_dmarc(b"v=dmarc1;p=none"));
    assert!(is_dmarc(b"V=DMARC1 ; p=none"));
    assert!(!is_dmarc(b"v=DMARC10"));
    assert!(!is_dmarc(b"p=none"));
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::None),
        Just(Policy::Quarantine),
        Just(Policy::Reject)
    ]
}

fn align() -> impl Strategy<Value = Alignment> {
    prop_oneof![Just(Alignment::Relaxed), Just(Alignment::Strict)]
}

fn uris() -> impl Strategy<Value = Vec<ReportUri>> {
    proptest::collection::vec(
        (
            "(mailto:[a-z0-9.]{1,8}@[a-z0-9]{1,8}\\.[a-z]{2,4})|(https://[a-z]{1,8}\\.example/[a-z]{0,5})",
            proptest::option::of("[0-9]{1,4}[kmgt]?"),
        )
            .prop_map(|(uri, size_limit)| ReportUri { uri, size_limit }),
        0..3,
    )
}

fn dmarc() -> impl Strategy<Value = Dmarc> {
    let fo = proptest::collection::vec(
        prop_oneof![
            Just(FailureOption::All),
            Just(FailureOption::Any),
            Just(FailureOption::Dkim),
            Just(FailureOption::Spf)
        ],
        0..4,
    );
    let unknown =
        proptest::collection::vec(("x[a-z0-9]{0,5}", "[a-z0-9:]{0,6}"), 0..2).prop_map(|v| {
            let mut out: Vec<(String, String)> = Vec::new();
            for (n, val) in v {
                if !out.iter().any(|(m, _)| m.eq_ignore_ascii_case(&n)) {
                    out.push((n, val));
                }
            }
            out
        });
    (
        (
            proptest::option::of(policy()),
            proptest::option::of(policy()),
            proptest::option::of(policy()),
            proptest::option::of(align()),
            proptest::option::of(align()),
            proptest::option::of(0u8..=100),
        ),
        (
            fo,
            proptest::collection::vec(Just(ReportFormat::Afrf), 0..2),
            proptest::option::of(any::<u32>()),
            uris(),
            uris(),
            proptest::option::of(prop_oneof![
                Just(Psd::Yes),
                Just(Psd::No),
                Just(Psd::Unknown)
            ]),
            proptest::option::of(any::<bool>()),
            unknown,
        ),
    )
        .prop_map(
            |(
                (policy, sp, np, adkim, aspf, pct),
                (fo, rf, ri, rua, ruf, psd, testing, unknown),
            )| Dmarc {
                policy,
                subdomain_policy: sp,
                nonexistent_policy: np,
                adkim,
                aspf,
                pct,
                fo,
                rf,
                ri,
                rua,
                ruf,
                psd,
                testing,
                unknown,
                invalid: Vec::new(),
            },
        )
}

proptest! {
    #[test]
    fn parse_display_round_trips(d in dmarc()) {
        let text = d.to_string();
        prop_assert_eq!(Dmarc::parse(&text), Ok(d.clone()));
        prop_assert!(is_dmarc(text.as_bytes()));
        let _ = d.lint();
        let _ = d.external_destinations(&Fqdn::parse("example.com").unwrap());
    }

    #[test]
    fn parse_never_panics(s in ".{0,300}") {
        let _ = Dmarc::parse(&s);
        if let Ok(d) = Dmarc::parse(&format!("v=DMARC1; {s}")) {
            let _ = d.lint();
            let _ = d.external_destinations(&Fqdn::parse("example.com").unwrap());
            prop_assert_eq!(Dmarc::parse(&d.to_string()), Ok(d.clone()));
        }
    }
}
