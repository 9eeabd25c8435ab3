//! The `manual` host: `maildns publish` prints what to enter in a web form and
//! waits; the test plays the operator, typing each value into a real PowerDNS
//! (its HTTP API standing in for the host's web page) while maildns waits,
//! and maildns returns once every authoritative server serves the records.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use maildns_testkit::PowerDns;

use crate::cmd;

/// An ADD line of the instructions: (owner name, TTL, value as shown).
fn parse_add(line: &str) -> Option<(String, u32, String)> {
    let rest = line.trim().strip_prefix("ADD")?.trim();
    let name = rest.split('(').nth(1)?.split(')').next()?.to_string();
    let ttl = rest
        .split("TTL ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let value = rest.split("  value ").nth(1)?.to_string();
    Some((name, ttl, value))
}

#[tokio::test]
async fn publish_prints_what_to_enter_and_waits_until_the_operator_did() {
    let pdns = PowerDns::start();
    pdns.create_zone("example.test").await;
    let dir = tempfile::tempdir().unwrap();
    let notified = dir.path().join("notified.txt");
    let notify = dir.path().join("notify.sh");
    std::fs::write(
        &notify,
        format!("#!/bin/sh\ncat > {}\n", notified.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        &notify,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"state\"\n[accounts.web]\nprovider = \"manual\"\nnotify = [\"{}\"]\n\
             [domains.\"example.test\"]\naccount = \"web\"\nnameservers = [\"{}\"]\n\
             spf = \"v=spf1 mx -all\"\ndmarc = \"v=DMARC1; p=none\"\n[domains.\"example.test\".dkim]\nbits = 2048\n",
            notify.display(),
            pdns.dns
        ),
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_maildns"))
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "publish",
            "--timeout",
            "90s",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut adds = Vec::new();
    let mut seen = String::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if let Some(add) = parse_add(&line) {
            adds.push(add);
        }
        if line.starts_with("Waiting until every authoritative server serves") {
            break;
        }
    }
    assert_eq!(
        adds.len(),
        3,
        "SPF, DMARC and the DKIM key to enter:\n{seen}"
    );
    assert!(
        seen.contains("In the DNS host's web form for zone example.test:"),
        "{seen}"
    );
    let dkim = adds.iter().find(|a| a.0.contains("._domainkey.")).unwrap();
    assert!(
        dkim.2.starts_with("v=DKIM1; h=sha256; k=rsa; p=")
            && dkim.2.len() > 300
            && !dkim.2.contains('"'),
        "one string: {}",
        dkim.2
    );
    // The notify command got the same instructions.
    let text = std::fs::read_to_string(&notified).unwrap();
    assert!(
        text.contains("ADD     name _dmarc (_dmarc.example.test)"),
        "{text}"
    );

    // Nothing is served yet and maildns is still waiting.
    assert!(
        child.try_wait().unwrap().is_none(),
        "maildns returned before the records were entered:\n{seen}"
    );
    // The operator enters each value, as a web form would take it (one
    // string; the host splits it into 255-byte character-strings).
    let client = reqwest::Client::new();
    for (name, ttl, value) in &adds {
        let split = maildns_providers::TxtRecord::split_max(value.as_bytes(), 255);
        let r = client
            .patch(format!("{}/servers/localhost/zones/example.test.", pdns.api_url))
            .header("X-API-Key", &pdns.api_key)
            .json(&serde_json::json!({"rrsets": [{"name": format!("{name}."), "type": "TXT", "ttl": ttl,
                "changetype": "REPLACE", "records": [{"content": split.to_presentation(), "disabled": false}]}]}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    let status = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    // Read from DNS, a second run has nothing to do.
    let o = cmd().config(&cfg).args(["plan", "--exit-code"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    // --no-wait hands over and returns at once.
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("p=none", "p=quarantine"),
    )
    .unwrap();
    let o = cmd().config(&cfg).args(["publish", "--no-wait"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(
        o.text().contains(
            "REMOVE  name _dmarc (_dmarc.example.test)  type TXT  value v=DMARC1; p=none"
        ),
        "{}",
        o.text()
    );
    assert!(o.text().contains("`maildns watch`"), "{}", o.text());
    // Handed over, not applied: a script reading the summary is not misled.
    assert!(o.text().contains("0 change(s) applied"), "{}", o.text());
    assert!(
        o.text()
            .contains("1 change(s) handed to the operator (manual accounts)"),
        "{}",
        o.text()
    );
}

/// Replaces `_dmarc.example.test`'s TXT set at PowerDNS with `records`
/// (presentation form), as a host's web form would hold them.
async fn set_dmarc(pdns: &PowerDns, records: &[&str]) {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|r| serde_json::json!({"content": r, "disabled": false}))
        .collect();
    let r = reqwest::Client::new()
        .patch(format!(
            "{}/servers/localhost/zones/example.test.",
            pdns.api_url
        ))
        .header("X-API-Key", &pdns.api_key)
        .json(
            &serde_json::json!({"rrsets": [{"name": "_dmarc.example.test.", "type": "TXT",
            "ttl": 3600, "changetype": "REPLACE", "records": records}]}),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// A manual account (one-string form) for example.test with one DMARC value.
fn dmarc_only_config(dir: &std::path::Path, pdns: &PowerDns) -> std::path::PathBuf {
    let cfg = dir.join("maildns.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"state\"\n[accounts.web]\nprovider = \"manual\"\n\
             [domains.\"example.test\"]\naccount = \"web\"\nnameservers = [\"{}\"]\n\
             dmarc = \"v=DMARC1; p=quarantine\"\n",
            pdns.dns
        ),
    )
    .unwrap();
    cfg
}

#[tokio::test]
async fn values_from_dns_are_shown_escaped_and_a_kept_foreign_value_does_not_block() {
    let pdns = PowerDns::start();
    pdns.create_zone("example.test").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dmarc_only_config(dir.path(), &pdns);
    // A foreign value that is not ASCII (kept, never typed) next to the one
    // maildns owns, whose tail holds terminal escapes (to REMOVE: quoted form
    // shows it, the one-string form cannot).
    set_dmarc(
        &pdns,
        &[
            "\"caf\\195\\169\" \"two\"",
            "\"v=DMARC1; p=none; \\027[31mRED\\027[0m\"",
        ],
    )
    .await;
    let plan = cmd().config(&cfg).args(["plan"]).run();
    assert!(!plan.stdout.contains(&0x1b), "raw ESC: {}", plan.text());
    assert!(!plan.stderr.contains(&0x1b), "raw ESC: {}", plan.text());
    assert!(
        plan.stdout_text()
            .contains("v=DMARC1; p=none; \\027[31mRED\\027[0m"),
        "{}",
        plan.text()
    );
    let o = cmd().config(&cfg).args(["publish", "--no-wait"]).run();
    assert_ne!(o.code(), Some(0), "{}", o.text());
    assert!(!o.stdout.contains(&0x1b), "raw ESC: {}", o.text());
    assert!(
        o.text().contains(
            "the value to REMOVE \"v=DMARC1; p=none; \\027[31mRED\\027[0m\" cannot be shown in the one-string form (byte 0x1b at offset 18"
        ),
        "{}",
        o.text()
    );
    assert!(o.text().contains("quoted-strings"), "{}", o.text());
    assert!(!o.text().contains("1024-bit"), "{}", o.text());

    // The owned value is plain: only the foreign one is not ASCII, and it is
    // kept, so the instructions are given.
    set_dmarc(
        &pdns,
        &["\"caf\\195\\169\" \"two\"", "\"v=DMARC1; p=none\""],
    )
    .await;
    let o = cmd().config(&cfg).args(["publish", "--no-wait"]).run();
    assert_eq!(o.code(), Some(0), "{}", o.text());
    assert!(
        o.text().contains("keeping 1 other value(s)"),
        "{}",
        o.text()
    );
    assert!(
        o.stdout_text().contains(
            "REMOVE  name _dmarc (_dmarc.example.test)  type TXT  value v=DMARC1; p=none\n"
        ),
        "{}",
        o.text()
    );
    assert!(
        o.stdout_text().contains(
            "ADD     name _dmarc (_dmarc.example.test)  type TXT  TTL 3600  value v=DMARC1; p=quarantine\n"
        ),
        "{}",
        o.text()
    );
    assert!(!o.text().contains("FAILED"), "{}", o.text());
}
