//! `maildns status` over a store holding keys in several statuses: the table and
//! `--json` name the active selector, the next action and its date, old
//! selectors with their removal dates, blocked rotations and recent events.

use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use maildns::rotation::{
    Algorithm, DomainState, Event, KeyRecord, KeyStatus, Selector, SqliteStore, Store,
};
use maildns_providers::Fqdn;

use crate::cmd;

fn key(sel: &str, status: KeyStatus, created: DateTime<Utc>, dir: &Path) -> KeyRecord {
    KeyRecord {
        selector: Selector::parse(sel).unwrap(),
        algorithm: Algorithm::Rsa,
        bits: 2048,
        status,
        created_at: created,
        key_path: Some(dir.join(format!("{sel}.private")).display().to_string()),
        published_at: Some(created),
        propagated_at: Some(created + TimeDelta::hours(1)),
        safe_after: Some(created + TimeDelta::hours(2)),
        active_at: None,
        retired_at: None,
        withdrawn_at: None,
        withdrawal_safe_after: None,
        destroyed_at: None,
        not_before: None,
        attempts: 0,
        failure: None,
        held: None,
    }
}

fn ev(at: DateTime<Utc>, domain: &Fqdn, sel: &str, what: &str, detail: &str) -> Event {
    Event {
        at,
        domain: domain.clone(),
        selector: Some(Selector::parse(sel).unwrap()),
        what: what.into(),
        outcome: "ok".into(),
        detail: detail.into(),
    }
}

fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

struct Fixture {
    _dir: tempfile::TempDir,
    cfg: std::path::PathBuf,
    /// When 202610 stops being published (retired + 14 days).
    removal: DateTime<Utc>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = d.join("maildns.toml");
    std::fs::write(
        &cfg,
        r#"state_dir = "state"
[accounts.local]
provider = "zonefile"
path = "zone.db"

[domains."example.com"]
account = "local"
[domains."example.com".dkim]
overlap = "14d"
rotation_interval = "30d"

[domains."blocked.example"]
account = "local"
[domains."blocked.example".dkim]

[domains."new.example"]
account = "local"
[domains."new.example".dkim]

[domains."nodkim.example"]
account = "local"
spf = "v=spf1 -all"
"#,
    )
    .unwrap();
    let now = Utc::now();
    let store = SqliteStore::open_locked(&d.join("state")).unwrap();

    // example.com: 202611 signs since 10 days, 202610 retired 10 days ago.
    let example = Fqdn::parse("example.com").unwrap();
    let mut old = key("202610", KeyStatus::Retiring, now - TimeDelta::days(45), d);
    old.active_at = Some(now - TimeDelta::days(44));
    old.retired_at = Some(now - TimeDelta::days(10));
    let mut active = key("202611", KeyStatus::Active, now - TimeDelta::days(11), d);
    active.active_at = Some(now - TimeDelta::days(10));
    let state = DomainState {
        domain: example.clone(),
        keys: vec![old.clone(), active],
    };
    let events: Vec<Event> = (0..8)
        .map(|i| {
            ev(
                now - TimeDelta::days(20 - i),
                &example,
                "202611",
                "propagation",
                &format!("check {i}"),
            )
        })
        .chain([ev(
            now - TimeDelta::days(10),
            &example,
            "202611",
            "active",
            "signer confirmed signing with it",
        )])
        .collect();
    store.save(&state, &events).unwrap();

    // blocked.example: the switch to 202610 failed.
    let blocked = Fqdn::parse("blocked.example").unwrap();
    let mut a = key("202609", KeyStatus::Active, now - TimeDelta::days(40), d);
    a.active_at = Some(now - TimeDelta::days(39));
    let mut f = key(
        "202610",
        KeyStatus::SwitchFailed,
        now - TimeDelta::days(2),
        d,
    );
    f.failure = Some("opendkim kept signing with 202609 after the reload".into());
    store
        .save(
            &DomainState {
                domain: blocked,
                keys: vec![a, f],
            },
            &[],
        )
        .unwrap();
    drop(store);
    Fixture {
        _dir: dir,
        cfg,
        removal: old.retired_at.unwrap() + TimeDelta::days(14),
    }
}

#[test]
fn table_names_active_selector_next_action_and_date() {
    let f = fixture();
    let o = cmd().config(&f.cfg).args(["status"]).run();
    assert_eq!(o.status.code(), Some(4), "{}", o.text());
    let out = o.text();
    assert!(out.contains("active   202611       rsa 2048 bits"), "{out}");
    assert!(out.contains("(10 days)"), "{out}");
    assert!(
        out.contains(&format!("next     {}", date(f.removal))),
        "{out}"
    );
    assert!(
        out.contains("revoke old selector 202610 (overlap of 14 days ends)"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "old      202610       rsa retiring, record withdrawn {}",
            date(f.removal)
        )),
        "{out}"
    );
    // Only the last five events, newest last.
    assert!(
        out.contains("active ok: signer confirmed signing with it"),
        "{out}"
    );
    assert!(out.contains("check 7") && !out.contains("check 3"), "{out}");
    // Blocked domain: the reason, and nothing scheduled.
    assert!(
        out.contains("BLOCKED  202610       rsa rotation stopped: opendkim kept signing with 202609 after the reload"),
        "{out}"
    );
    // The blocked rotation makes status a failing monitoring check, saying why.
    assert!(
        out.contains("ATTENTION blocked 202610: rsa rotation blocked: opendkim kept signing with 202609 after the reload"),
        "{out}"
    );
    assert!(out.contains("1 domain(s) need attention (exit 4)"), "{out}");
    // The healthy domain alone passes.
    let o = cmd()
        .config(&f.cfg)
        .args(["status", "--domain", "example.com"])
        .run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(!o.text().contains("ATTENTION"), "{}", o.text());
    // No key yet: say how to get one.
    assert!(out.contains("new.example\n"), "{out}");
    assert!(
        out.contains("`maildns publish` or `maildns rotate` will create the first one"),
        "{out}"
    );

    // One domain only.
    let o = cmd()
        .config(&f.cfg)
        .args(["status", "--domain", "new.example"])
        .run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(!o.text().contains("example.com"), "{}", o.text());
    let o = cmd()
        .config(&f.cfg)
        .args(["status", "--domain", "unknown.example"])
        .run();
    assert_eq!(o.status.code(), Some(65), "{}", o.text());
}

#[test]
fn json_has_the_expected_fields() {
    let f = fixture();
    let o = cmd().config(&f.cfg).args(["--json", "status"]).run();
    assert_eq!(o.status.code(), Some(4), "{}", o.text());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status --json is JSON");
    assert_eq!(v["version"], 1);
    assert_eq!(v["attention"], true);
    assert_eq!(v["requests"].as_array().map(Vec::len), Some(0));
    let domains = v["domains"].as_array().expect("domains");
    let names: Vec<&str> = domains
        .iter()
        .filter_map(|d| d["domain"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "blocked.example",
            "example.com",
            "new.example",
            "nodkim.example"
        ]
    );
    let ex = &domains[1];
    assert_eq!(ex["active"][0]["selector"], "202611");
    assert_eq!(ex["active"][0]["algorithm"], "rsa");
    assert_eq!(ex["active"][0]["bits"], 2048);
    assert_eq!(ex["active"][0]["age_days"], 10);
    assert_eq!(ex["next"]["action"], "revoke_key");
    assert_eq!(ex["next"]["selector"], "202610");
    assert_eq!(ex["next"]["due_now"], false);
    let at: DateTime<Utc> = ex["next"]["at"].as_str().unwrap().parse().unwrap();
    assert_eq!(at, f.removal);
    assert_eq!(ex["upcoming"][1]["action"], "new_key");
    assert_eq!(ex["old"][0]["selector"], "202610");
    assert_eq!(ex["old"][0]["status"], "retiring");
    let removal: DateTime<Utc> = ex["old"][0]["removal_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(removal, f.removal);
    assert_eq!(ex["events"].as_array().map(Vec::len), Some(5));
    assert_eq!(ex["events"][4]["event"]["what"], "active");

    let bl = &domains[0];
    assert_eq!(bl["blocked"][0]["selector"], "202610");
    assert!(
        bl["blocked"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("kept signing")
    );
    assert!(bl["next"].is_null());
    assert_eq!(bl["attention"][0]["kind"], "blocked");
    assert_eq!(bl["attention"][0]["selector"], "202610");
    assert_eq!(domains[1]["attention"].as_array().map(Vec::len), Some(0));

    let new = &domains[2];
    assert_eq!(new["active"].as_array().map(Vec::len), Some(0));
    assert_eq!(new["next"]["action"], "first_key");
    assert_eq!(new["next"]["due_now"], true);
    assert!(new["note"].as_str().unwrap().contains("maildns publish"));

    assert_eq!(domains[3]["dkim_configured"], false);
}

#[test]
fn no_store_yet_means_no_keys_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(
        &cfg,
        "state_dir = \"state\"\n[accounts.local]\nprovider = \"zonefile\"\npath = \"zone.db\"\n[domains.\"example.com\"]\naccount = \"local\"\n[domains.\"example.com\".dkim]\n",
    )
    .unwrap();
    let o = cmd().config(&cfg).args(["status"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(o.text().contains("no DKIM key yet"), "{}", o.text());
    assert!(!dir.path().join("state").exists());
}

#[test]
fn a_failing_step_makes_status_exit_4_and_say_why() {
    let f = fixture();
    let state_dir = f.cfg.parent().unwrap().join("state");
    {
        let store = SqliteStore::open_locked(&state_dir).unwrap();
        let name = Fqdn::parse("example.com").unwrap();
        let mut state = store.load(&name).unwrap();
        let k = state
            .keys
            .iter_mut()
            .find(|k| k.status == KeyStatus::Retiring)
            .unwrap();
        k.attempts = 2;
        k.failure = Some("account 'dns' (powerdns): HTTP 401 Unauthorized".into());
        k.not_before = Some(Utc::now() + TimeDelta::minutes(2));
        store.save(&state, &[]).unwrap();
    }
    let o = cmd()
        .config(&f.cfg)
        .args(["status", "--domain", "example.com"])
        .run();
    assert_eq!(o.status.code(), Some(4), "{}", o.text());
    assert!(
        o.text().contains("ATTENTION failing 202610: last attempt failed (2 so far): account 'dns' (powerdns): HTTP 401 Unauthorized"),
        "{}",
        o.text()
    );
    let o = cmd()
        .config(&f.cfg)
        .args(["--json", "status", "--domain", "example.com"])
        .run();
    assert_eq!(o.status.code(), Some(4), "{}", o.text());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["attention"], true);
    assert_eq!(v["domains"][0]["attention"][0]["kind"], "failing");
}

/// From a user trial: `status --json` printed nothing when the state store
/// could not be reached (a PostgreSQL URL on a closed port). Its stdout is one
/// JSON object with an error naming what failed and which store (never the
/// password), the exit code is 1 (docs/status-json.md), and text mode says
/// the same on stderr.
#[test]
fn status_json_names_an_unreachable_store_and_never_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = dir.path().join("maildns.toml");
    let url = format!("postgres://maildns@127.0.0.1:{port}/maildns");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"state\"\n[state]\nurl = \"{url}\"\n[accounts.z]\nprovider = \"zonefile\"\npath = \"z.zone\"\n[domains.\"example.com\"]\naccount = \"z\"\nspf = \"v=spf1 -all\"\n"
        ),
    )
    .unwrap();
    let secret = "hunter2-state-secret";
    let out = cmd()
        .config(&cfg)
        .args(["--json", "status"])
        .env("MAILDNS_STATE_PASSWORD", secret)
        .run();
    assert_eq!(out.code(), Some(1), "{}", out.text());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", out.text()));
    assert_eq!(v["version"], 1, "{v}");
    assert_eq!(v["error"]["what"], "state store", "{v}");
    assert_eq!(v["error"]["store"], url, "{v}");
    assert_eq!(v["error"]["exit_code"], 1, "{v}");
    assert!(!v["error"]["message"].as_str().unwrap().is_empty(), "{v}");
    assert!(!out.text().contains(secret), "{}", out.text());

    let text = cmd()
        .config(&cfg)
        .args(["status"])
        .env("MAILDNS_STATE_PASSWORD", secret)
        .run();
    assert_eq!(text.code(), Some(1), "{}", text.text());
    assert_eq!(text.stdout_text(), "");
    assert!(
        text.stderr_text()
            .contains(&format!("reading the state store {url}: ")),
        "{}",
        text.stderr_text()
    );
    assert!(!text.text().contains(secret));

    // A configuration that does not load: JSON too, exit 65.
    std::fs::write(&cfg, "[domains.\"example.com\"]\naccount = 5\n").unwrap();
    let out = cmd().config(&cfg).args(["--json", "status"]).run();
    assert_eq!(out.code(), Some(65), "{}", out.text());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["what"], "configuration", "{v}");
    assert_eq!(v["error"]["exit_code"], 65, "{v}");
}
