//! The binary's output: a reader that goes away (`maildns records | head -1`)
//! ends the command quietly, never with a panic; a closed stderr is no panic
//! either.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

use crate::cmd;

/// A config of `n` domains, each with SPF and DMARC, in a fresh temp dir.
fn many_domains(n: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from(
        "state_dir = \"state\"\n[accounts.local]\nprovider = \"zonefile\"\npath = \"{zone}.zone\"\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "[domains.\"d{i}.example.com\"]\naccount = \"local\"\nspf = \"v=spf1 ip4:192.0.2.10/32 ip4:198.51.100.0/24 ip6:2001:db8::/32 -all\"\ndmarc = \"v=DMARC1; p=quarantine; rua=mailto:dmarc@d{i}.example.com\"\n"
        ));
    }
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(&cfg, text).unwrap();
    (dir, cfg)
}

/// Exit 0, or killed by SIGPIPE (what a C tool does); never 101 (a panic).
fn quiet_end(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.code() == Some(0) || status.signal() == Some(13)
}

/// Runs maildns with `args`, reads the first line of stdout, closes the pipe
/// and returns the first line, the exit status and stderr.
fn first_line_then_close(args: &[&str]) -> (String, ExitStatus, String) {
    let mut child = cmd()
        .args(args)
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("maildns runs");
    let mut line = String::new();
    {
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        // `out` dropped here: the pipe's read end closes, like `head -1` exiting.
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    (line, status, err)
}

#[test]
fn records_into_a_closed_pipe_ends_quietly() {
    // 600 domains: far more output than a pipe buffer (64 KiB) holds.
    let (_dir, cfg) = many_domains(600);
    let cfg = cfg.to_str().unwrap();
    for args in [
        vec!["-c", cfg, "records"],
        vec!["-c", cfg, "--json", "records"],
        vec!["-c", cfg, "check"],
        vec!["-c", cfg, "--json", "check"],
        vec!["-c", cfg, "completions", "bash"],
        vec!["-c", cfg, "--help"],
    ] {
        let (line, status, err) = first_line_then_close(&args);
        assert!(!line.is_empty(), "{args:?}: some output came first");
        assert!(quiet_end(status), "{args:?}: {status:?}\n{err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
    }
}

#[test]
fn plan_and_status_into_a_closed_pipe_end_quietly() {
    // One zone file per domain (none exists yet: every record is a CREATE).
    let (_dir, cfg) = many_domains(600);
    let cfg = cfg.to_str().unwrap();
    for args in [vec!["-c", cfg, "plan"], vec!["-c", cfg, "status"]] {
        let (line, status, err) = first_line_then_close(&args);
        assert!(!line.is_empty(), "{args:?}: {err}");
        assert!(quiet_end(status), "{args:?}: {status:?}\n{err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
    }
}

#[test]
fn a_closed_stderr_is_no_panic() {
    // An invalid config: the error goes to stderr, which nobody reads.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(&cfg, "state_dir = 3\n").unwrap();
    let mut child = cmd()
        .args(["-c", cfg.to_str().unwrap(), "-vv", "check"])
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("maildns runs");
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(65), "{status:?}");
}

/// The example: a non-UTF-8 byte in the config. `check` (and every
/// command) exits 65 naming the file, line and column of the first bad byte.
#[test]
fn a_non_utf8_config_byte_is_named_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(
        &cfg,
        b"state_dir = \"state\"\n[accounts.local]\nprovider = \"zonefile\"\npath = \"zone.db\"\n\n[domains.\"example.com\"]\naccount = \"local\"\ndmarc = \"v=DMARC1; p=none; rua=mailto:r\xe9@example.com\"\n",
    )
    .unwrap();
    for cmd in ["check", "records", "plan"] {
        let o = crate::cmd().args(["-c", cfg.to_str().unwrap(), cmd]).run();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(65), "{cmd}: {err}");
        assert!(
            err.contains(&format!(
                "{}:8: not UTF-8: byte 0xe9 at line 8, column 40",
                cfg.display()
            )),
            "{cmd}: {err}"
        );
    }
}

/// What a host or a DNS server sends reaches the terminal only with its
/// control characters escaped (`\027` for ESC), whichever command shows it:
/// here a TXT value with terminal escape sequences served by a real PowerDNS
/// (`verify`, `plan`, `watch`) and a fake host's error body (`plan`).
#[tokio::test]
async fn control_bytes_from_dns_and_hosts_never_reach_the_terminal() {
    use maildns_providers::TxtRecord;
    use maildns_testkit::PowerDns;

    let hostile = "v=spf1 \u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[31m ip4:192.0.2.1 -all";
    let pdns = PowerDns::start();
    let zone = format!("esc{}.test", maildns_testkit::random_label(8));
    pdns.create_zone(&zone).await;
    let body = serde_json::json!({"rrsets": [{
        "name": format!("{zone}."), "type": "TXT", "ttl": 60, "changetype": "REPLACE",
        "records": [{"content": TxtRecord::from_value(hostile).to_presentation(), "disabled": false}],
    }]});
    let resp = reqwest::Client::new()
        .patch(format!("{}/servers/localhost/zones/{zone}.", pdns.api_url))
        .header("X-API-Key", &pdns.api_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());

    // A fake host answering every request with an error body holding escapes.
    let fake = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_url = format!("http://{}/api/v1", fake.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::Write;
        for stream in fake.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 8192];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let body = "{\"error\": \"\u{1b}[2J\u{1b}]0;pwned\u{7}zone gone\"}";
            let _ = write!(
                s,
                "HTTP/1.1 422 Unprocessable Entity\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"state\"\n[accounts.pdns]\nprovider = \"powerdns\"\nbase_url = \"{api}\"\n[accounts.fake]\nprovider = \"powerdns\"\nbase_url = \"{fake_url}\"\n[propagation]\ntimeout = \"2s\"\nresolvers = [\"{dns}\"]\n[domains.\"{zone}\"]\naccount = \"pdns\"\nnameservers = [\"{dns}\"]\nspf = \"v=spf1 ip4:192.0.2.10/32 -all\"\n[domains.\"other.{zone}\"]\naccount = \"fake\"\nzone = \"{zone}\"\nspf = \"v=spf1 -all\"\n",
            api = pdns.api_url,
            dns = pdns.dns,
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        cmd()
            .config(&cfg)
            .env("MAILDNS_PDNS_TOKEN", &pdns.api_key)
            .env("MAILDNS_FAKE_TOKEN", "x")
            .args(args)
            .run()
    };
    let spf_line = |args: &[&str], needle: &str| {
        let out = run(args);
        let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
        assert!(
            !all.contains(&0x1b) && !all.contains(&0x07),
            "{args:?}: a control byte reached the terminal: {:?}",
            String::from_utf8_lossy(&all)
        );
        assert!(out.text().contains(needle), "{args:?}: {}", out.text());
    };
    let escaped = "v=spf1 \\027]0;owned\\007\\027[2J\\027[31m ip4:192.0.2.1 -all";
    spf_line(&["verify", "-d", &zone], escaped);
    spf_line(&["plan"], escaped);
    spf_line(&["plan"], "\\027[2J\\027]0;pwned\\007zone gone");
    spf_line(
        &[
            "watch",
            &zone,
            "--expect",
            "v=spf1 ip4:192.0.2.10/32 -all",
            "--timeout",
            "2s",
        ],
        "\\027]0;owned",
    );
}
