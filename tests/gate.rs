//! The lint gate end to end (issue #11): `check`, `records`, `plan` and every
//! writing command agree, and a configuration that fails the gate leaves no
//! zone line, no key and no state store behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn maildns(cfg: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maildns"))
        .arg("-c")
        .arg(cfg)
        .args(args)
        .env_remove("MAILDNS_CONFIG")
        .output()
        .expect("maildns runs")
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const ZONE: &str = "$ORIGIN example.com.\n$TTL 3600\n@ IN SOA ns1 hostmaster 2024010101 3600 900 604800 300\n  IN NS ns1\n@ IN TXT \"google-site-verification=abc\"\n";

/// A config for example.com (zonefile provider) with `domain_lines` in its table.
fn setup(domain_lines: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"state\"\n[accounts.local]\nprovider = \"zonefile\"\npath = \"zone.db\"\n\n[domains.\"example.com\"]\naccount = \"local\"\n{domain_lines}\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("zone.db"), ZONE).unwrap();
    (dir, cfg)
}

/// Every command refuses with exit 65 and nothing is written.
fn assert_gated(dir: &Path, cfg: &Path, needle: &str) {
    for args in [
        &["check"][..],
        &["records"],
        &["plan"],
        &["publish"],
        &["publish", "--force"],
        &["rotate"],
        &["rotate", "--now"],
        &["--json", "plan"],
        &["import", "opendkim", "--conf", "/nonexistent/opendkim.conf"],
    ] {
        let o = maildns(cfg, args);
        assert_eq!(o.status.code(), Some(65), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(needle), "{args:?}: {}", text(&o));
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("zone.db")).unwrap(),
        ZONE,
        "no zone line written"
    );
    assert!(!dir.join("state").exists(), "no state store, no key");
}

const ELEVEN: &str = "v=spf1 a mx include:_s1.example.net include:_s2.example.net include:_s3.example.net include:_s4.example.net include:_s5.example.net include:_s6.example.net exists:%{i}.x.example.org a:mail.example.org mx:example.org ~all";

#[test]
fn spf_with_eleven_lookups_is_never_published() {
    let (dir, cfg) = setup(&format!(
        "spf = \"{ELEVEN}\"\n[domains.\"example.com\".dkim]\n"
    ));
    let file = cfg.display().to_string();
    assert_gated(
        dir.path(),
        &cfg,
        &format!(
            "{file}:8: domains.\"example.com\".spf: error: SPF \"{ELEVEN}\": the record has 11 terms"
        ),
    );
    let o = maildns(&cfg, &["publish"]);
    assert!(
        text(&o).contains("[rule spf-too-many-lookups]"),
        "{}",
        text(&o)
    );
}

#[test]
fn dmarc_with_a_misspelt_policy_is_never_published() {
    let (dir, cfg) = setup("dmarc = \"v=DMARC1; p=reject; sp=rejct; rua=mailto:d@example.com\"");
    assert_gated(dir.path(), &cfg, "sp=rejct is not valid");
    let o = maildns(&cfg, &["publish"]);
    assert!(text(&o).contains("domains.\"example.com\".dmarc: error: DMARC \"v=DMARC1; p=reject; rua=mailto:d@example.com; sp=rejct\""), "{}", text(&o));
    assert!(text(&o).contains("[rule dmarc-bad-value]"), "{}", text(&o));
}

#[test]
fn a_non_ascii_report_address_is_never_published() {
    let (dir, cfg) = setup("dmarc = \"v=DMARC1; p=reject; rua=mailto:d@exämple.com\"");
    assert_gated(dir.path(), &cfg, "[rule txt-non-ascii]");
    // The A-label form is fine.
    let (dir, cfg) = setup("dmarc = \"v=DMARC1; p=reject; rua=mailto:d@xn--exmple-cua.com\"");
    let o = maildns(&cfg, &["publish"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let z = std::fs::read_to_string(dir.path().join("zone.db")).unwrap();
    assert!(z.contains("rua=mailto:d@xn--exmple-cua.com"), "{z}");
    assert!(!z.contains("\\195"), "{z}");
}

#[test]
fn spf_domain_spec_with_a_bad_top_label_is_a_config_error() {
    let (dir, cfg) = setup("spf = \"v=spf1 mx include:_spf.example.net~all\"");
    assert_gated(
        dir.path(),
        &cfg,
        "domains.\"example.com\".spf: not a valid SPF record: bad domain-spec '_spf.example.net~all' in term 'include:_spf.example.net~all' at byte 31: top label 'net~all'",
    );
}

#[test]
fn a_selector_format_rotation_cannot_use_fails_at_load() {
    let (dir, cfg) = setup("[domains.\"example.com\".dkim]\nselector_format = \"%Y.%m\"");
    let file = cfg.display().to_string();
    assert_gated(
        dir.path(),
        &cfg,
        &format!(
            "{file}:9: domains.\"example.com\".dkim.selector_format: selector format '%Y.%m' does not give a selector"
        ),
    );
}

#[test]
fn a_zero_rotation_interval_fails_at_load() {
    let (dir, cfg) = setup("[domains.\"example.com\".dkim]\nrotation_interval = \"0s\"");
    let file = cfg.display().to_string();
    assert_gated(
        dir.path(),
        &cfg,
        &format!(
            "{file}:9: domains.\"example.com\".dkim.rotation_interval: rotation_interval must be positive"
        ),
    );
    let o = maildns(&cfg, &["daemon"]);
    assert_eq!(o.status.code(), Some(65), "{}", text(&o));
    assert!(!dir.path().join("state").exists());
}

#[test]
fn a_waiver_with_a_reason_lets_an_operator_publish_and_says_so() {
    let (dir, cfg) = setup(&format!(
        "spf = \"{ELEVEN}\"\n[domains.\"example.com\".lint]\nallow = [\"spf-too-many-lookups\"]\nreason = \"two of the includes are void on purpose\""
    ));
    let o = maildns(&cfg, &["check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("(waived: two of the includes are void on purpose)"),
        "{}",
        text(&o)
    );
    let o = maildns(&cfg, &["publish"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(
            "[rule spf-too-many-lookups] (waived: two of the includes are void on purpose)"
        ),
        "{}",
        text(&o)
    );
    let z = std::fs::read_to_string(dir.path().join("zone.db")).unwrap();
    assert!(z.contains("include:_s6.example.net"), "{z}");
}

#[test]
fn warnings_print_and_do_not_block() {
    let (dir, cfg) = setup("spf = \"v=spf1 ptr -all\"");
    for args in [&["check"][..], &["records"], &["plan"], &["publish"]] {
        let o = maildns(&cfg, args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        assert!(
            text(&o).contains("warning: SPF \"v=spf1 ptr -all\""),
            "{args:?}: {}",
            text(&o)
        );
    }
    let z = std::fs::read_to_string(dir.path().join("zone.db")).unwrap();
    assert!(z.contains("v=spf1 ptr -all"), "{z}");
}

#[test]
fn one_bad_domain_blocks_the_whole_configuration_even_with_domain() {
    let (dir, cfg) = setup(&format!(
        "spf = \"v=spf1 mx -all\"\n[domains.\"sub.example.com\"]\naccount = \"local\"\nzone = \"example.com\"\nspf = \"{ELEVEN}\""
    ));
    let o = maildns(&cfg, &["publish", "-d", "example.com"]);
    assert_eq!(o.status.code(), Some(65), "{}", text(&o));
    assert!(
        text(&o).contains("domains.\"sub.example.com\".spf"),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("zone.db")).unwrap(),
        ZONE
    );
}

fn write_config(cfg: &Path, domain_lines: &str) {
    std::fs::write(
        cfg,
        format!(
            "state_dir = \"state\"\n[accounts.local]\nprovider = \"zonefile\"\npath = \"zone.db\"\n\n[domains.\"example.com\"]\naccount = \"local\"\n{domain_lines}\n"
        ),
    )
    .unwrap();
}

#[test]
fn a_record_removed_from_the_config_is_planned_as_delete_and_deleted() {
    let all = "spf = \"v=spf1 mx -all\"\ndmarc = \"v=DMARC1; p=reject\"\nadsp = \"all\"";
    let (dir, cfg) = setup(all);
    let zone = || std::fs::read_to_string(dir.path().join("zone.db")).unwrap();
    let o = maildns(&cfg, &["publish"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(zone().contains("v=spf1 mx -all"));

    // The spf line goes: plan shows the DELETE, publish applies it, the
    // foreign value at the apex stays.
    write_config(&cfg, "dmarc = \"v=DMARC1; p=reject\"\nadsp = \"all\"");
    let o = maildns(&cfg, &["plan", "--exit-code"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("DELETE example.com TXT SPF \"v=spf1 mx -all\""),
        "{}",
        text(&o)
    );
    let o = maildns(&cfg, &["--json", "plan"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["summary"]["delete"], 1, "{v}");
    let o = maildns(&cfg, &["publish"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let z = zone();
    assert!(!z.contains("v=spf1"), "{z}");
    assert!(z.contains("google-site-verification=abc"), "{z}");
    assert!(z.contains("v=DMARC1; p=reject"), "{z}");
    let o = maildns(&cfg, &["plan", "--exit-code"]);
    assert_eq!(o.status.code(), Some(0), "in sync afterwards: {}", text(&o));

    // Removing both remaining records deletes 2 of 2 managed values: over the
    // default 50% threshold, refused without --force.
    write_config(&cfg, "");
    let o = maildns(&cfg, &["publish"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("refusing to delete 2 of 2"),
        "{}",
        text(&o)
    );
    assert!(zone().contains("v=DMARC1; p=reject"));
    let o = maildns(&cfg, &["publish", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let z = zone();
    assert!(!z.contains("v=DMARC1") && !z.contains("dkim=all"), "{z}");
    assert!(z.contains("google-site-verification=abc"), "{z}");
}

#[test]
fn values_maildns_did_not_publish_stay_when_no_record_is_configured() {
    let (dir, cfg) = setup("dmarc = \"v=DMARC1; p=reject\"");
    let with_spf = format!("{ZONE}@ IN TXT \"v=spf1 a -all\"\n");
    std::fs::write(dir.path().join("zone.db"), &with_spf).unwrap();
    let o = maildns(&cfg, &["publish"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = maildns(&cfg, &["plan", "--exit-code"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        std::fs::read_to_string(dir.path().join("zone.db"))
            .unwrap()
            .contains("v=spf1 a -all")
    );
    // Published by maildns, then changed by another tool: not maildns's any more.
    write_config(
        &cfg,
        "spf = \"v=spf1 mx -all\"\ndmarc = \"v=DMARC1; p=reject\"",
    );
    assert_eq!(maildns(&cfg, &["publish"]).status.code(), Some(0));
    let z = std::fs::read_to_string(dir.path().join("zone.db")).unwrap();
    std::fs::write(
        dir.path().join("zone.db"),
        z.replace("v=spf1 mx -all", "v=spf1 mx a -all"),
    )
    .unwrap();
    write_config(&cfg, "dmarc = \"v=DMARC1; p=reject\"");
    let o = maildns(&cfg, &["plan", "--exit-code"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

mod agreement {
    //! Property: for random configurations, `check`, `records`, `plan` and
    //! `publish` agree, and `publish` writes nothing when `check` reports an
    //! error.
    use super::*;
    use proptest::prelude::*;

    fn spf_term() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("mx".to_string()),
            Just("a".to_string()),
            Just("ptr".to_string()),
            "include:_s[0-9]\\.example\\.net",
            "a:mail[0-9]\\.example\\.org",
            "exists:%\\{i\\}\\.x\\.example\\.org",
            "ip4:192\\.0\\.2\\.[0-9]{1,2}",
            // Domain-specs with bad endings (RFC 7208 §7.1).
            "include:_spf\\.example\\.(net~all|123|-x|x-)",
            "a:192\\.0\\.2\\.[0-9]",
        ]
    }

    fn spf() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(spf_term(), 0..13),
            prop_oneof![Just("-all"), Just("~all"), Just("+all"), Just("")],
        )
            .prop_map(|(terms, all)| {
                let mut v = "v=spf1".to_string();
                for t in terms.iter().map(String::as_str).chain([all]) {
                    if !t.is_empty() {
                        v.push(' ');
                        v.push_str(t);
                    }
                }
                v
            })
    }

    fn dmarc() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                Just("none"),
                Just("quarantine"),
                Just("reject"),
                Just("rejct")
            ],
            proptest::option::of(prop_oneof![Just("reject"), Just("rejct"), Just("none")]),
            proptest::option::of(prop_oneof![
                Just("mailto:d@example.com"),
                Just("mailto:d@exämple.com"),
                Just("https://example.com/r"),
                Just("mailto:d@xn--exmple-cua.com"),
            ]),
            proptest::option::of(prop_oneof![Just("pct=50"), Just("fo=1"), Just("adkim=x")]),
        )
            .prop_map(|(p, sp, rua, extra)| {
                let mut v = format!("v=DMARC1; p={p}");
                if let Some(sp) = sp {
                    v.push_str(&format!("; sp={sp}"));
                }
                if let Some(r) = rua {
                    v.push_str(&format!("; rua={r}"));
                }
                if let Some(e) = extra {
                    v.push_str(&format!("; {e}"));
                }
                v
            })
    }

    fn dkim() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just("%Y%m"), Just("%Y.%m"), Just("mail-%Y%m%d"), Just("%e")],
            prop_oneof![Just("30d"), Just("0s"), Just("90d")],
            prop_oneof![Just(""), Just("bits = 2048\n")],
        )
            .prop_map(|(fmt, interval, bits)| {
                format!(
                    "[domains.\"example.com\".dkim]\nalgorithms = [\"ed25519\"]\n{bits}selector_format = \"{fmt}\"\nrotation_interval = \"{interval}\"\n"
                )
            })
    }

    fn config() -> impl Strategy<Value = String> {
        (
            proptest::option::of(spf()),
            proptest::option::of(dmarc()),
            proptest::option::of(prop_oneof![Just("all"), Just("discardable")]),
            proptest::option::of(dkim()),
            proptest::option::of(prop_oneof![
                Just("allow = [\"spf-too-many-lookups\"]\nreason = \"tested\""),
                Just("allow = [\"dmarc-bad-value\"]\nreason = \"tested\""),
                Just("allow = [\"dmarc-bad-value\"]"),
            ]),
        )
            .prop_map(|(spf, dmarc, adsp, dkim, waiver)| {
                let mut s = String::new();
                if let Some(v) = spf {
                    s.push_str(&format!("spf = \"{v}\"\n"));
                }
                if let Some(v) = dmarc {
                    s.push_str(&format!("dmarc = \"{v}\"\n"));
                }
                if let Some(v) = adsp {
                    s.push_str(&format!("adsp = \"{v}\"\n"));
                }
                if let Some(v) = dkim {
                    s.push_str(&v);
                }
                if let Some(w) = waiver {
                    s.push_str(&format!("[domains.\"example.com\".lint]\n{w}\n"));
                }
                s
            })
    }

    /// Runs every command on one configuration; `Ok(true)` when `check` passed.
    fn agree(body: &str) -> Result<bool, TestCaseError> {
        let (dir, cfg) = setup(body);
        let check = maildns(&cfg, &["check"]).status.code();
        prop_assert!(matches!(check, Some(0 | 65)), "check: {:?}", check);
        let records = maildns(&cfg, &["--json", "records"]);
        let plan = maildns(&cfg, &["plan"]);
        prop_assert_eq!(records.status.code(), check, "records: {}", text(&records));
        prop_assert_eq!(plan.status.code(), check, "plan: {}", text(&plan));
        let publish = maildns(&cfg, &["publish"]);
        prop_assert_eq!(publish.status.code(), check, "publish: {}", text(&publish));
        let zone = std::fs::read_to_string(dir.path().join("zone.db")).unwrap();
        if check == Some(65) {
            prop_assert_eq!(zone.as_str(), ZONE, "publish wrote after check failed");
            prop_assert!(!dir.path().join("state").exists(), "state created");
            return Ok(false);
        }
        let lines: serde_json::Value = serde_json::from_slice(&records.stdout).unwrap();
        for l in lines.as_array().unwrap() {
            let value = l["value"].as_str().unwrap();
            if value.len() < 255 {
                prop_assert!(zone.contains(value), "{} not in\n{}", value, zone);
            }
        }
        let again = maildns(&cfg, &["plan", "--exit-code"]);
        prop_assert_eq!(
            again.status.code(),
            Some(0),
            "not in sync: {}",
            text(&again)
        );
        Ok(true)
    }

    #[test]
    fn check_records_plan_and_publish_agree() {
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 64,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let passed = std::cell::Cell::new(0u32);
        let failed = std::cell::Cell::new(0u32);
        let result = runner.run(&config(), |body| {
            if agree(&body)? {
                passed.set(passed.get() + 1);
            } else {
                failed.set(failed.get() + 1);
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
        // Both sides of the property were exercised.
        assert!(passed.get() >= 3, "only {} passing configs", passed.get());
        assert!(failed.get() >= 3, "only {} failing configs", failed.get());
    }
}

#[test]
fn the_rotation_runner_refuses_a_configuration_that_fails_the_gate() {
    use std::sync::Arc;
    let (dir, cfg) = setup(
        "spf = \"v=spf1 mx -all\"\n[domains.\"example.com\".dkim]\nalgorithms = [\"ed25519\"]",
    );
    let good = maildns::config::load(&cfg).unwrap();
    write_config(
        &cfg,
        &format!("spf = \"{ELEVEN}\"\n[domains.\"example.com\".dkim]\nalgorithms = [\"ed25519\"]"),
    );
    let bad = maildns::config::load(&cfg).unwrap();
    let store_dir = dir.path().join("runner-state");
    std::fs::create_dir_all(&store_dir).unwrap();
    let store: Arc<dyn maildns::rotation::Store> =
        Arc::new(maildns::rotation::SqliteStore::open_locked(&store_dir).unwrap());
    let clock: Arc<dyn maildns::propagation::Clock> = Arc::new(maildns::propagation::SystemClock);
    let Err(e) = maildns::rotation::Runner::new(
        bad.clone(),
        store.clone(),
        Default::default(),
        clock.clone(),
    ) else {
        panic!("a configuration that fails the gate was accepted");
    };
    assert!(matches!(e, maildns::rotation::RunnerError::Gate(_)), "{e}");
    assert!(e.to_string().contains("[rule spf-too-many-lookups]"), "{e}");
    // The daemon's reload: a failing configuration is refused, the old one stays.
    let mut runner =
        maildns::rotation::Runner::new(good, store, Default::default(), clock).unwrap();
    assert!(matches!(
        runner.reconfigure(bad, Default::default()),
        Err(maildns::rotation::RunnerError::Gate(_))
    ));
    assert_eq!(
        runner.config().domains[0].spf.as_ref().unwrap().to_value(),
        "v=spf1 mx -all"
    );
}

#[test]
fn keygen_takes_only_selectors_rotation_would_take() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["2026.11", "-x", "x-", "a b", "a/b"] {
        let o = Command::new(env!("CARGO_BIN_EXE_maildns"))
            .args(["keygen", "-d", "example.com", "-a", "ed25519"])
            .arg(format!("--selector={bad}"))
            .arg("-D")
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(64), "{bad}: {}", text(&o));
        assert!(
            text(&o).contains("--selector: selector"),
            "{bad}: {}",
            text(&o)
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no key written"
    );
}
