use super::*;
use proptest::prelude::*;

fn codes(d: &[Diagnostic]) -> Vec<&'static str> {
    d.iter().map(|d| d.code).collect()
}

#[test]
fn seed_record_round_trips() {
    let v = "v=spf1 ip4:192.0.2.10/32 -all";
    let spf = Spf::parse(v).unwrap();
    assert_eq!(
        spf.terms,
        vec![
            Term::Directive(Directive {
                qualifier: None,
                mechanism: Mechanism::Ip4 {
                    addr: Ipv4Addr::new(192, 0, 2, 10),
                    prefix: Some(32)
                }
            }),
            Term::Directive(Directive::new(Qualifier::Fail, Mechanism::All)),
        ]
    );
    assert_eq!(spf.to_string(), v);
    assert_eq!(spf.to_txt().value(), v.as_bytes());
    assert!(spf.lint().is_empty(), "{:?}", spf.lint());
}

#[test]
fn every_mechanism_and_modifier() {
    let v = "v=spf1 +all -include:_spf.example.com ~a ?a:mail.example.com a/24 a:x.example//64 \
             a:x.example/24//64 mx mx:mx.example.com/28 ptr ptr:example.org ip4:192.0.2.0 \
             ip6:2001:db8::/32 ip6:::1 exists:%{i}._spf.%{d} redirect=_spf.example.com \
             exp=explain.%{d} foo-bar=%{l}";
    let spf = Spf::parse(v).unwrap();
    assert_eq!(spf.terms.len(), 18);
    assert_eq!(spf.to_string(), v);
    assert_eq!(
        spf.terms[5],
        Term::Directive(Directive {
            qualifier: None,
            mechanism: Mechanism::A {
                domain: Some("x.example".into()),
                cidr: DualCidr {
                    v4: None,
                    v6: Some(64)
                }
            }
        })
    );
    assert_eq!(
        spf.terms[17],
        Term::Unknown {
            name: "foo-bar".into(),
            value: "%{l}".into()
        }
    );
    let kinds: Vec<_> = spf.lookup_targets().into_iter().map(|l| l.kind).collect();
    use LookupKind::*;
    assert_eq!(
        kinds,
        vec![Include, A, A, A, A, A, Mx, Mx, Ptr, Ptr, Exists, Redirect]
    );
    assert_eq!(
        spf.lookup_targets()[0].domain.as_deref(),
        Some("_spf.example.com")
    );
    assert_eq!(spf.lookup_targets()[1].domain, None);
    let lint = codes(&spf.lint());
    for c in [
        "spf-too-many-lookups",
        "spf-ptr",
        "spf-pass-all",
        "spf-redirect-ignored",
        "spf-terms-after-all",
    ] {
        assert!(lint.contains(&c), "{c} missing from {lint:?}");
    }
}

#[test]
fn names_are_case_insensitive_and_printed_lowercase() {
    let spf = Spf::parse("V=SPF1 IP4:192.0.2.1 Include:Example.COM REDIRECT=x.example").unwrap();
    assert_eq!(
        spf.to_string(),
        "v=spf1 ip4:192.0.2.1 include:Example.COM redirect=x.example"
    );
    assert_eq!(spf.redirect(), Some("x.example"));
}

#[test]
fn extra_spaces_are_allowed() {
    let spf = Spf::parse("v=spf1   mx  -all ").unwrap();
    assert_eq!(spf.to_string(), "v=spf1 mx -all");
    assert_eq!(Spf::parse("v=spf1").unwrap().terms, vec![]);
}

#[test]
fn errors_carry_positions() {
    use SpfError::*;
    let cases: Vec<(&str, SpfError)> = vec![
        ("v=spf10 -all", NotSpf),
        ("spf1 -all", NotSpf),
        ("v=spf1 -all\tmx", BadCharacter { byte: 9, at: 11 }),
        (
            "v=spf1 -alll",
            UnknownMechanism {
                name: "alll".into(),
                at: 7,
            },
        ),
        (
            "v=spf1 mx +foo",
            UnknownMechanism {
                name: "foo".into(),
                at: 10,
            },
        ),
        (
            "v=spf1 include",
            MissingDomain {
                mechanism: "include",
                at: 14,
            },
        ),
        (
            "v=spf1 include:",
            MissingDomain {
                mechanism: "include",
                at: 14,
            },
        ),
        (
            "v=spf1 exists",
            MissingDomain {
                mechanism: "exists",
                at: 13,
            },
        ),
        (
            "v=spf1 ip4",
            MissingDomain {
                mechanism: "ip4",
                at: 10,
            },
        ),
        (
            "v=spf1 all:x",
            UnexpectedArgument {
                mechanism: "all",
                text: ":x".into(),
                at: 10,
            },
        ),
        (
            "v=spf1 include.x",
            UnexpectedArgument {
                mechanism: "include",
                text: ".x".into(),
                at: 14,
            },
        ),
        (
            "v=spf1 ip4:300.1.1.1",
            BadIp4 {
                value: "300.1.1.1".into(),
                at: 11,
            },
        ),
        (
            "v=spf1 ip6:zz::1/64",
            BadIp6 {
                value: "zz::1".into(),
                at: 11,
            },
        ),
        (
            "v=spf1 ip4:192.0.2.0/33",
            BadCidr {
                value: "33".into(),
                at: 21,
            },
        ),
        (
            "v=spf1 ip4:192.0.2.0/",
            BadCidr {
                value: "".into(),
                at: 21,
            },
        ),
        (
            "v=spf1 ip6:::1/129",
            BadCidr {
                value: "129".into(),
                at: 15,
            },
        ),
        (
            "v=spf1 a/024",
            BadCidr {
                value: "024".into(),
                at: 9,
            },
        ),
        (
            "v=spf1 mx//200",
            BadCidr {
                value: "200".into(),
                at: 11,
            },
        ),
        ("v=spf1 -redirect=x.example", QualifiedModifier { at: 7 }),
        (
            "v=spf1 redirect=a.example redirect=b.example",
            DuplicateModifier {
                name: "redirect",
                at: 26,
            },
        ),
        (
            "v=spf1 exp=a.example exp=b.example",
            DuplicateModifier {
                name: "exp",
                at: 21,
            },
        ),
        (
            "v=spf1 include:%{q}.example",
            BadDomainSpec {
                value: "%{q}.example".into(),
                at: 15,
                reason: "unknown macro letter (use s l o d i p h c r t v)",
            },
        ),
        (
            "v=spf1 include:%x",
            BadDomainSpec {
                value: "%x".into(),
                at: 15,
                reason: "'%' must be followed by '{', '%', '_' or '-'",
            },
        ),
        (
            "v=spf1 include:%{d",
            BadDomainSpec {
                value: "%{d".into(),
                at: 15,
                reason: "'%{' without '}'",
            },
        ),
        (
            "v=spf1 redirect=",
            BadDomainSpec {
                value: "".into(),
                at: 16,
                reason: "empty domain",
            },
        ),
        (
            "v=spf1 include:a..b",
            BadDomainSpec {
                value: "a..b".into(),
                at: 15,
                reason: "empty label",
            },
        ),
    ];
    for (input, want) in cases {
        assert_eq!(Spf::parse(input), Err(want), "input {input:?}");
    }
    assert!(Spf::parse("v=spf1 ñ").is_err());
}

#[test]
fn macros_are_accepted() {
    let v = "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d2} include:%%%_%-.example -all";
    assert_eq!(Spf::parse(v).unwrap().to_string(), v);
}

#[test]
fn ownership_rule() {
    assert!(is_spf(b"v=spf1"));
    assert!(is_spf(b"V=SPF1 -all"));
    assert!(!is_spf(b"v=spf10"));
    assert!(!is_spf(b"v=spf"));
    assert!(!is_spf(b" v=spf1"));
    assert!(!is_spf(b"google-site-verification=abc"));
}

#[test]
fn lint_counts_lookups_and_length() {
    let ten = (0..10)
        .map(|i| format!("include:s{i}.example"))
        .collect::<Vec<_>>()
        .join(" ");
    let ok = Spf::parse(&format!("v=spf1 {ten} -all")).unwrap();
    assert!(!codes(&ok.lint()).contains(&"spf-too-many-lookups"));
    let eleven = Spf::parse(&format!("v=spf1 {ten} mx -all")).unwrap();
    let lint = eleven.lint();
    let d = lint
        .iter()
        .find(|d| d.code == "spf-too-many-lookups")
        .unwrap();
    assert_eq!(d.severity, crate::records::Severity::Error);
    assert!(d.message.contains("11"));

    let long = (0..40)
        .map(|i| format!("ip4:192.0.2.{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let long = Spf::parse(&format!("v=spf1 {long} -all")).unwrap();
    assert!(long.to_string().len() > ADVISED_MAX_LEN);
    assert_eq!(codes(&long.lint()), vec!["spf-too-long"]);
    assert!(long.to_txt().strings().len() > 1);
    assert_eq!(long.to_txt().value(), long.to_string().as_bytes());

    assert_eq!(
        codes(&Spf::parse("v=spf1 mx").unwrap().lint()),
        vec!["spf-no-all"]
    );
    assert_eq!(
        codes(&Spf::parse("v=spf1 all").unwrap().lint()),
        vec!["spf-pass-all"]
    );
    assert!(
        Spf::parse("v=spf1 mx redirect=x.example")
            .unwrap()
            .lint()
            .is_empty()
    );
}

#[test]
fn two_records_at_one_name_is_an_error() {
    let a = TxtRecord::from_value("v=spf1 -all");
    let b = TxtRecord::from_value("V=SPF1 mx -all");
    let other = TxtRecord::from_value("google-site-verification=x");
    assert!(lint_name(&[a.clone(), other.clone()]).is_empty());
    let d = lint_name(&[a, other, b]);
    assert_eq!(codes(&d), vec!["spf-multiple-records"]);
    assert_eq!(d[0].severity, crate::records::Severity::Error);
    // Each value is named (not the foreign one).
    assert!(
        d[0].message.starts_with(
            "2 TXT values at this name start with v=spf1 (\"v=spf1 -all\", \"V=SPF1 mx -all\")"
        ),
        "{}",
        d[0].message
    );
}

fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_]{1,10}(\\.[a-z0-9-]{1,10}){0,2}\\.[a-z][a-z0-9]{0,5}\\.?",
        "%\\{[slodiphcrtv][0-9]{0,2}r?[.-]?\\}(\\.[a-z0-9]{1,6}){0,2}\\.[a-z0-9]{0,4}[a-z]",
        "([a-z0-9]{1,6}\\.){0,2}%\\{[dio]\\}",
    ]
}

/// A top label that breaks RFC 7208 §7.1: all digits, a character other than
/// letters, digits and '-', or a hyphen at either end.
fn bad_toplabel() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,6}",
        "[a-z0-9]{0,4}[!-$&-,/:-@^`|~\\[\\]][a-z0-9]{0,4}",
        "-[a-z0-9]{1,4}",
        "[a-z0-9]{1,4}-",
    ]
}

fn mechanism() -> impl Strategy<Value = Mechanism> {
    let cidr = (
        proptest::option::of(0u8..=32),
        proptest::option::of(0u8..=128),
    )
        .prop_map(|(v4, v6)| DualCidr { v4, v6 });
    prop_oneof![
        Just(Mechanism::All),
        domain().prop_map(Mechanism::Include),
        domain().prop_map(Mechanism::Exists),
        proptest::option::of(domain()).prop_map(Mechanism::Ptr),
        (proptest::option::of(domain()), cidr.clone())
            .prop_map(|(domain, cidr)| Mechanism::A { domain, cidr }),
        (proptest::option::of(domain()), cidr)
            .prop_map(|(domain, cidr)| Mechanism::Mx { domain, cidr }),
        (any::<[u8; 4]>(), proptest::option::of(0u8..=32)).prop_map(|(a, prefix)| Mechanism::Ip4 {
            addr: Ipv4Addr::from(a),
            prefix
        }),
        (any::<[u8; 16]>(), proptest::option::of(0u8..=128)).prop_map(|(a, prefix)| {
            Mechanism::Ip6 {
                addr: Ipv6Addr::from(a),
                prefix,
            }
        }),
    ]
}

fn qualifier() -> impl Strategy<Value = Option<Qualifier>> {
    proptest::option::of(prop_oneof![
        Just(Qualifier::Pass),
        Just(Qualifier::Fail),
        Just(Qualifier::SoftFail),
        Just(Qualifier::Neutral)
    ])
}

fn spf() -> impl Strategy<Value = Spf> {
    let directives = proptest::collection::vec(
        (qualifier(), mechanism()).prop_map(|(qualifier, mechanism)| {
            Term::Directive(Directive {
                qualifier,
                mechanism,
            })
        }),
        0..12,
    );
    let unknown = proptest::collection::vec(
        ("x[a-z0-9-]{0,6}", "[a-z0-9.]{0,8}")
            .prop_map(|(name, value)| Term::Unknown { name, value }),
        0..2,
    );
    (
        directives,
        proptest::option::of(domain()),
        proptest::option::of(domain()),
        unknown,
    )
        .prop_map(|(mut terms, redirect, exp, unknown)| {
            terms.extend(redirect.map(Term::Redirect));
            terms.extend(exp.map(Term::Exp));
            terms.extend(unknown);
            Spf { terms }
        })
}

#[test]
fn domain_spec_must_end_in_a_top_label_or_a_macro() {
    // The missing space of issue #11: `net~all` becomes the top label.
    let e = Spf::parse("v=spf1 mx include:_spf.example.net~all").unwrap_err();
    assert_eq!(
        e,
        SpfError::BadDomainEnd {
            term: "include:_spf.example.net~all".into(),
            value: "_spf.example.net~all".into(),
            at: 31,
            reason: "top label 'net~all' must be letters, digits and inner hyphens, and not all digits (RFC 7208 §7.1)".into(),
        }
    );
    assert_eq!(&"v=spf1 mx include:_spf.example.net~all"[31..], "net~all");
    let msg = e.to_string();
    assert!(
        msg.contains("in term 'include:_spf.example.net~all' at byte 31"),
        "{msg}"
    );
    for bad in [
        "v=spf1 a:192.0.2.1 -all",
        "v=spf1 include:localhost -all",
        "v=spf1 mx:example.123 -all",
        "v=spf1 redirect=example.-com",
        "v=spf1 exists:%{i}. -all",
        "v=spf1 exp=%{d}com",
        "v=spf1 a:example.com-/24 -all",
    ] {
        assert!(
            matches!(Spf::parse(bad), Err(SpfError::BadDomainEnd { .. })),
            "{bad}: {:?}",
            Spf::parse(bad)
        );
    }
    let e = Spf::parse("v=spf1 a:192.0.2.1 -all")
        .unwrap_err()
        .to_string();
    assert!(e.contains("write it as ip4:192.0.2.1"), "{e}");
    for good in [
        "v=spf1 include:_spf.example.net ~all",
        "v=spf1 a:mail.example.org/24//64 mx:example.org. -all",
        "v=spf1 exists:%{i}.x.example.org include:%{d} ?all",
        "v=spf1 a:x.123-456 redirect=_spf.%{d2}",
        "v=spf1 include:a.b1 include:a.x-y exists:%{ir}.%{v}._spf.%{d} -all",
    ] {
        assert!(Spf::parse(good).is_ok(), "{good}: {:?}", Spf::parse(good));
    }
}

proptest! {
    #[test]
    fn valid_domain_specs_parse_in_every_position(spec in domain()) {
        for term in [
            format!("include:{spec}"),
            format!("a:{spec}/24"),
            format!("mx:{spec}"),
            format!("exists:{spec}"),
            format!("redirect={spec}"),
        ] {
            let v = format!("v=spf1 {term}");
            prop_assert!(Spf::parse(&v).is_ok(), "{} -> {:?}", v, Spf::parse(&v));
        }
    }

    #[test]
    fn a_bad_top_label_is_named_with_its_term_and_position(
        head in "[a-z0-9_]{1,8}(\\.[a-z0-9]{1,8}){0,2}",
        label in bad_toplabel(),
        dot in proptest::bool::ANY,
    ) {
        let spec = format!("{head}.{label}{}", if dot { "." } else { "" });
        let value = format!("v=spf1 mx include:{spec} -all");
        match Spf::parse(&value) {
            Err(SpfError::BadDomainEnd { term, at, .. }) => {
                prop_assert_eq!(term, format!("include:{spec}"));
                prop_assert_eq!(&value[at..at + label.len()], label.as_str());
            }
            other => prop_assert!(false, "{} -> {:?}", value, other),
        }
    }

    #[test]
    fn parse_display_round_trips(spf in spf()) {
        let text = spf.to_string();
        prop_assert_eq!(Spf::parse(&text), Ok(spf.clone()));
        prop_assert_eq!(spf.to_txt().value(), text.into_bytes());
        let _ = spf.lint();
    }

    #[test]
    fn parse_never_panics(s in ".{0,200}") {
        let _ = Spf::parse(&s);
        let _ = Spf::parse(&format!("v=spf1 {s}"));
    }

    #[test]
    fn parse_never_panics_on_spf_like_text(s in "v=spf1( [-+~?]?[a-z0-9]{0,7}[:=/]?[%{}a-z0-9./:_-]{0,12}){0,8}") {
        if let Ok(spf) = Spf::parse(&s) {
            prop_assert_eq!(Spf::parse(&spf.to_string()), Ok(spf.clone()));
            let _ = spf.lint();
        }
    }
}

#[test]
fn a_dash_all_glued_to_a_domain_is_an_error() {
    // `-all` without its space: legal grammar (top label `net-all`), lost `all`.
    for v in [
        "v=spf1 include:_spf.example.net-all",
        "v=spf1 mx a:mail.example.org-all",
        "v=spf1 redirect=_spf.example.COM-ALL",
    ] {
        let spf = Spf::parse(v).unwrap();
        let codes: Vec<_> = spf.lint().into_iter().map(|d| d.code).collect();
        assert!(codes.contains(&"spf-glued-all"), "{v}: {codes:?}");
    }
    // A real domain with a hyphen in an inner label is fine.
    let spf = Spf::parse("v=spf1 include:mail-all.example.net -all").unwrap();
    assert!(!spf.lint().iter().any(|d| d.code == "spf-glued-all"));
}
