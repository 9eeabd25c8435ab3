//! From a user trial: a configured nameserver that answers REFUSED (here a
//! second PowerDNS that does not serve the zone) kept a new key at
//! propagation "not yet" forever, with exit 0 and no ATTENTION line. A wait
//! is normal for a while; past `propagation.daemon_timeout` (default 1 h) the
//! runner's outcome (what `rotate` and the daemon print) and `status` say
//! so, naming the server and its answer.

use chrono::TimeDelta;
use maildns::rotation::KeyStatus;
use maildns_testkit::PowerDns;

use crate::cmd;
use crate::support::rig::Env;
use crate::support::{FakeClock, status, t0};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_nameserver_raises_attention_after_the_propagation_bound() {
    let env = Env::start((), 60).await;
    // Serves no zone: answers REFUSED for example.com.
    let other = PowerDns::start();
    let text = env.toml(&env.pdns.api_url, 1024, "").replace(
        &format!("nameservers = [\"{}\"]", env.pdns.dns),
        &format!("nameservers = [\"{}\", \"{}\"]", env.pdns.dns, other.dns),
    );
    assert!(text.contains(&other.dns.to_string()), "{text}");
    let config = env.load(&text);
    let clock = FakeClock::at(t0());
    let refused = format!("{} answered REFUSED", other.dns);

    // Published, seen by one server, refused by the other: a wait.
    let out = env.run(&config, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Published));
    let check = out
        .performed
        .iter()
        .find(|p| p.action == "await_propagation")
        .expect("a propagation check");
    assert_eq!(check.result, "not_yet", "{check:?}");
    // Only the refusing server is named, once, with its answer.
    assert_eq!(
        check.detail,
        format!("202401._domainkey.example.com: {refused} for 202401._domainkey.example.com"),
        "{check:?}"
    );
    assert!(out.failures().is_empty(), "{:?}", out.failures());

    // 59 minutes on: still only a wait.
    clock.advance(TimeDelta::minutes(59));
    let out = env.run(&config, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Published));
    assert!(out.failures().is_empty(), "{:?}", out.failures());

    // Past the hour: attention, naming the server and its answer.
    clock.advance(TimeDelta::minutes(2));
    let out = env.run(&config, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Published));
    let failures = out.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with(
            "ATTENTION propagation 202401: record not served by every authoritative server after 1h 1m (since 2024-01-10 00:00 UTC; more than propagation.daemon_timeout (1h)): 202401._domainkey.example.com"
        ),
        "{failures:?}"
    );
    assert!(failures[0].contains(&refused), "{failures:?}");

    // `status` (its clock is the real one, far past the bound): exit 4 and an
    // ATTENTION line naming the server; --json the same reason.
    let st = cmd().config(env.config_path()).args(["status"]).run();
    assert_eq!(st.code(), Some(4), "{}", st.text());
    let text = st.stdout_text();
    let line = text
        .lines()
        .find(|l| l.contains("ATTENTION propagation 202401: record not served by every authoritative server after"))
        .unwrap_or_else(|| panic!("no ATTENTION line: {text}"));
    assert!(line.contains(&refused), "{line}");
    assert!(
        !text.contains("  error "),
        "a wait is not a failed attempt: {text}"
    );
    let st = cmd()
        .config(env.config_path())
        .args(["--json", "status"])
        .run();
    assert_eq!(st.code(), Some(4), "{}", st.text());
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let d = &v["domains"][0];
    assert_eq!(d["attention"][0]["kind"], "propagation", "{v}");
    assert!(
        d["waiting"][0]["detail"]
            .as_str()
            .is_some_and(|s| s.contains(&refused)),
        "{v}"
    );
}

/// A configured nameserver that never answers (a UDP socket nobody reads):
/// the same attention past the bound, naming the server and the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_nameserver_raises_attention_after_the_propagation_bound() {
    let env = Env::start((), 60).await;
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent = silent.local_addr().map(|a| (silent, a)).unwrap();
    let text = env.toml(&env.pdns.api_url, 1024, "").replace(
        &format!("nameservers = [\"{}\"]", env.pdns.dns),
        &format!("nameservers = [\"{}\", \"{}\"]", env.pdns.dns, silent.1),
    );
    let config = env.load(&text);
    let clock = FakeClock::at(t0());
    let out = env.run(&config, &clock).await;
    assert!(out.failures().is_empty(), "{:?}", out.failures());
    clock.advance(TimeDelta::minutes(61));
    let out = env.run(&config, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Published));
    let failures = out.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    // The exchange's own timeout and the query's deadline are the same
    // length: either may say it first (under load, the deadline).
    let exchange = format!(
        "TXT? 202401._domainkey.example.com to {}: request timed out",
        silent.1
    );
    let deadline = format!(
        "{} did not answer TXT? 202401._domainkey.example.com within",
        silent.1
    );
    assert!(
        failures[0].starts_with("ATTENTION propagation 202401: record not served by every authoritative server after 1h 1m")
            && (failures[0].contains(&exchange) || failures[0].contains(&deadline)),
        "{failures:?}"
    );
}

/// From a user trial: with `daemon_timeout = "4s"` the attention line said
/// "after 1m (…; more than propagation.daemon_timeout, under a minute)". It
/// gives the bound as configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_daemon_timeout_is_named_as_configured() {
    let env = Env::start((), 60).await;
    let other = PowerDns::start();
    let text = env.toml(&env.pdns.api_url, 1024, "").replace(
        &format!("nameservers = [\"{}\"]", env.pdns.dns),
        &format!("nameservers = [\"{}\", \"{}\"]", env.pdns.dns, other.dns),
    ) + "\n[propagation]\ndaemon_timeout = \"4s\"\n";
    let config = env.load(&text);
    let clock = FakeClock::at(t0());
    let out = env.run(&config, &clock).await;
    assert!(out.failures().is_empty(), "{:?}", out.failures());
    // Checks come at the runner's pace: run each minute until the second
    // check finds the wait past its 4 s bound.
    let mut failures = Vec::new();
    for _ in 0..10 {
        clock.advance(TimeDelta::minutes(1));
        failures = env.run(&config, &clock).await.failures();
        if !failures.is_empty() {
            break;
        }
    }
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with(
            "ATTENTION propagation 202401: record not served by every authoritative server after "
        ) && failures[0].contains(
            "m (since 2024-01-10 00:00 UTC; more than propagation.daemon_timeout (4s)): 202401._domainkey.example.com"
        ),
        "{failures:?}"
    );

    // `status` (real clock, far past the bound) names the bound the same way.
    let st = cmd().config(env.config_path()).args(["status"]).run();
    assert_eq!(st.code(), Some(4), "{}", st.text());
    let text = st.stdout_text();
    assert!(
        text.contains("more than propagation.daemon_timeout (4s)):"),
        "{text}"
    );
    assert!(!text.contains("under a minute"), "{text}");
}
