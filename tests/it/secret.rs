//! `maildns secret`: where a credential is found (never the value without
//! `--show`), `set` reading stdin with a clear error when there is no session
//! keyring, and unknown accounts as data errors; the OS keyring is the Secret
//! Service when one answers on the session bus (a real GNOME Keyring on a
//! private bus started by the testkit) and the kernel keyring otherwise.

use std::path::{Path, PathBuf};

use maildns_testkit::cmd::{Maildns, Output};

use crate::cmd;
use crate::support::cli::write_config;

const VALUE: &str = "tok-do-not-print-7319";

/// A config whose one account `account` is on the PowerDNS API at `api_url`,
/// with `example.com` (its TOML lines `records`) on it.
fn pdns_config(dir: &Path, account: &str, api_url: &str, records: &str) -> PathBuf {
    write_config(
        dir,
        account,
        &format!("provider = \"powerdns\"\nbase_url = \"{api_url}\""),
        &format!("[domains.\"example.com\"]\naccount = \"{account}\"\n{records}"),
    )
}

fn setup(account: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = pdns_config(dir.path(), account, "http://127.0.0.1:1/api/v1", "");
    (dir, cfg)
}

/// `maildns --config <cfg>` with no session bus unless a test passes one (the
/// kernel keyring path) and no log level from the caller.
fn no_session_bus(cfg: &Path) -> Maildns {
    cmd()
        .config(cfg)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("MAILDNS_LOG")
}

/// [`no_session_bus`] run with `args` and `env`.
fn run(cfg: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    no_session_bus(cfg).args(args).envs(env).run()
}

/// A fresh account name per test run, so a real keyring is never clobbered.
fn account(prefix: &str) -> String {
    format!("{prefix}{}x{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

#[test]
fn get_reports_the_env_source_and_hides_the_value() {
    let acc = account("envacc");
    let (_dir, cfg) = setup(&acc);
    let var = format!("MAILDNS_{}_TOKEN", acc.to_ascii_uppercase());
    let env = [(var.as_str(), VALUE)];

    let o = run(&cfg, &["secret", "get", &acc], &env);
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(
        o.text().contains(&format!("environment variable {var}")),
        "{}",
        o.text()
    );
    assert!(
        !o.text().contains(VALUE),
        "value printed without --show: {}",
        o.text()
    );

    let o = run(&cfg, &["--json", "secret", "get", &acc], &env);
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(!o.text().contains(VALUE), "{}", o.text());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["found"], true);
    assert_eq!(v["source"], "env");
    assert_eq!(v["location"], var.as_str());
    assert!(v.get("value").is_none(), "{v}");

    let o = run(&cfg, &["secret", "get", &acc, "--show"], &env);
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim_end(), VALUE);
    let o = run(&cfg, &["--json", "secret", "get", &acc, "--show"], &env);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["value"], VALUE);
}

#[test]
fn get_without_any_credential_lists_the_places_and_fails() {
    let acc = account("noacc");
    let (_dir, cfg) = setup(&acc);
    let o = run(&cfg, &["secret", "get", &acc], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
    let out = o.text();
    assert!(out.contains("no credential found"), "{out}");
    assert!(out.contains("CREDENTIALS_DIRECTORY"), "{out}");
    assert!(out.contains("maildns secret set"), "{out}");
}

#[test]
fn set_reads_stdin_and_without_a_session_keyring_says_how_to_get_one() {
    let acc = account("setacc");
    let (_dir, cfg) = setup(&acc);
    let o = no_session_bus(&cfg)
        .args(["secret", "set", &acc])
        .envs(&[])
        .stdin(format!("{VALUE}\n"))
        .run();
    let out = o.text();
    assert!(!out.contains(VALUE), "{out}");
    match o.status.code() {
        // A session keyring is available: the token round-trips, then goes.
        Some(0) => {
            assert!(out.contains("token stored in the OS keyring"), "{out}");
            let g = run(&cfg, &["--json", "secret", "get", &acc, "--show"], &[]);
            let v: serde_json::Value = serde_json::from_slice(&g.stdout).unwrap();
            assert_eq!(v["source"], "keyring");
            assert_eq!(v["keyring"], "kernel-keyring", "no session bus: {v}");
            assert_eq!(v["value"], VALUE, "trailing newline stripped");
            let d = run(&cfg, &["secret", "delete", &acc], &[]);
            assert_eq!(d.status.code(), Some(0), "{}", d.text());
            let g = run(&cfg, &["secret", "get", &acc], &[]);
            assert_eq!(g.status.code(), Some(1), "{}", g.text());
        }
        // No session keyring (the usual case in containers and CI).
        code => {
            assert_eq!(code, Some(1), "{out}");
            assert!(out.contains("keyctl session"), "{out}");
            assert!(out.contains("CREDENTIALS_DIRECTORY"), "{out}");
            assert!(out.contains("token_file"), "{out}");
        }
    }
}

#[test]
fn set_refuses_empty_input_and_argv_tokens() {
    let acc = account("emptyacc");
    let (_dir, cfg) = setup(&acc);
    let o = no_session_bus(&cfg)
        .args(["secret", "set", &acc])
        .envs(&[])
        .stdin("\n")
        .run();
    assert_eq!(o.status.code(), Some(65), "{}", o.text());
    assert!(o.text().contains("no token on stdin"), "{}", o.text());
    // There is no way to pass the token as an argument.
    let o = run(&cfg, &["secret", "set", &acc, VALUE], &[]);
    assert_eq!(o.status.code(), Some(64), "{}", o.text());
}

#[test]
fn unknown_account_is_a_data_error_listing_the_known_ones() {
    let acc = account("known");
    let (_dir, cfg) = setup(&acc);
    for args in [
        vec!["secret", "get", "nope"],
        vec!["secret", "delete", "nope"],
        vec!["secret", "set", "nope"],
    ] {
        let o = no_session_bus(&cfg)
            .args(&args)
            .envs(&[])
            .stdin("x\n")
            .run();
        assert_eq!(o.status.code(), Some(65), "{args:?}: {}", o.text());
        assert!(o.text().contains("unknown account 'nope'"), "{}", o.text());
        assert!(o.text().contains(&acc), "{}", o.text());
    }
}

async fn spf_at_apex(pdns: &maildns_testkit::PowerDns) -> Vec<String> {
    let zone: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/servers/localhost/zones/example.com.",
            pdns.api_url
        ))
        .header("X-API-Key", &pdns.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    zone["rrsets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "example.com." && r["type"] == "TXT")
        .flat_map(|r| r["records"].as_array().unwrap().clone())
        .map(|r| r["content"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_service_set_get_publish_delete() {
    let pdns = maildns_testkit::PowerDns::start();
    pdns.create_zone("example.com").await;
    let bus = maildns_testkit::SessionBus::with_secret_service();
    let acc = account("ssacc");
    let dir = tempfile::tempdir().unwrap();
    let cfg = pdns_config(dir.path(), &acc, &pdns.api_url, "spf = \"v=spf1 -all\"\n");
    let token = pdns.api_key.clone();
    let on_bus = [
        ("DBUS_SESSION_BUS_ADDRESS", bus.address.as_str()),
        ("MAILDNS_LOG", "trace"),
    ];
    let attrs = [("service", "maildns"), ("username", acc.as_str())];
    assert!(bus.search_items(&attrs).is_empty());

    // set: stored in the Secret Service, as one item of the daemon.
    let o = no_session_bus(&cfg)
        .args(["secret", "set", &acc])
        .envs(&on_bus)
        .stdin(format!("{token}\n"))
        .run();
    let out = o.text();
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("token stored in the OS keyring (Secret Service, service \"maildns\")"),
        "{out}"
    );
    assert!(!out.contains(&token), "{out}");
    assert_eq!(
        bus.search_items(&attrs).len(),
        1,
        "one item in GNOME Keyring"
    );

    // get: found in the Secret Service; the value only with --show.
    let o = run(&cfg, &["--json", "secret", "get", &acc], &on_bus);
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(!o.text().contains(&token), "{}", o.text());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["source"], "keyring", "{v}");
    assert_eq!(v["keyring"], "secret-service", "{v}");
    assert_eq!(v["location"], "Secret Service, service \"maildns\"", "{v}");
    let o = run(&cfg, &["secret", "get", &acc, "--show"], &on_bus);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim_end(), token);

    // Without the bus the kernel keyring is asked, which does not have it.
    let o = run(&cfg, &["--json", "secret", "get", &acc], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["looked"].to_string().contains("kernel keyring"), "{v}");

    // publish authenticates with the token from the Secret Service, and
    // neither output nor trace-level logs show it.
    assert!(spf_at_apex(&pdns).await.is_empty());
    let o = run(&cfg, &["publish"], &on_bus);
    let out = o.text();
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(!out.contains(&token), "token in output or logs: {out}");
    assert_eq!(
        spf_at_apex(&pdns).await,
        vec!["\"v=spf1 -all\"".to_string()]
    );

    // delete: gone from the daemon; get and publish now fail, naming the store.
    let o = run(&cfg, &["secret", "delete", &acc], &on_bus);
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(o.text().contains("Secret Service"), "{}", o.text());
    assert!(bus.search_items(&attrs).is_empty());
    let o = run(&cfg, &["secret", "get", &acc], &on_bus);
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
    assert!(
        o.text().contains(&format!(
            "OS keyring (Secret Service, service \"maildns\", user \"{acc}\"): no entry"
        )),
        "{}",
        o.text()
    );
    let o = run(&cfg, &["publish"], &on_bus);
    assert_ne!(o.status.code(), Some(0), "{}", o.text());
    assert!(o.text().contains("no credential"), "{}", o.text());
    // deleting again is fine
    let o = run(&cfg, &["secret", "delete", &acc], &on_bus);
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
}

#[test]
fn a_session_bus_without_a_secret_service_means_the_kernel_keyring() {
    let bus = maildns_testkit::SessionBus::start();
    let acc = account("busnoss");
    let (_dir, cfg) = setup(&acc);
    let on_bus = [("DBUS_SESSION_BUS_ADDRESS", bus.address.as_str())];
    let o = no_session_bus(&cfg)
        .args(["--json", "secret", "set", &acc])
        .envs(&on_bus)
        .stdin(format!("{VALUE}\n"))
        .run();
    let out = o.text();
    assert!(!out.contains(VALUE), "{out}");
    match o.status.code() {
        Some(0) => {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v["keyring"], "kernel-keyring", "{v}");
            // The same entry is seen with no bus at all: one store.
            let g = run(&cfg, &["--json", "secret", "get", &acc, "--show"], &[]);
            let v: serde_json::Value = serde_json::from_slice(&g.stdout).unwrap();
            assert_eq!(v["keyring"], "kernel-keyring", "{v}");
            assert_eq!(v["value"], VALUE);
            let d = run(&cfg, &["secret", "delete", &acc], &on_bus);
            assert_eq!(d.status.code(), Some(0), "{}", d.text());
            assert!(d.text().contains("kernel keyring"), "{}", d.text());
        }
        // No session keyring here: the kernel keyring's own error, not the
        // Secret Service's and not a mock's silent success.
        code => {
            assert_eq!(code, Some(1), "{out}");
            assert!(out.contains("keyctl session"), "{out}");
        }
    }
}

#[test]
fn a_locked_secret_service_is_an_error_naming_it_never_another_store() {
    let bus = maildns_testkit::SessionBus::with_locked_secret_service();
    let acc = account("lockedss");
    let (_dir, cfg) = setup(&acc);
    let on_bus = [("DBUS_SESSION_BUS_ADDRESS", bus.address.as_str())];
    let o = no_session_bus(&cfg)
        .args(["secret", "set", &acc])
        .envs(&on_bus)
        .stdin(format!("{VALUE}\n"))
        .run();
    let out = o.text();
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(!out.contains(VALUE), "{out}");
    assert!(out.contains("OS keyring (Secret Service)"), "{out}");
    assert!(out.contains("locked or access was refused"), "{out}");
    assert!(!out.contains("token stored"), "{out}");
    // Not quietly stored in the kernel keyring instead.
    let o = run(&cfg, &["--json", "secret", "get", &acc], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
}

/// From a user trial: the README names the keyring entries `state-password`,
/// `signer-password` and `rspamd-controller-password`, but `maildns secret`
/// took every name for an account and refused them. The shared store's
/// password set with `secret set state-password` (Secret Service) is the one
/// `status` connects with; deleted, the store refuses the connection. An
/// account may not take one of these names (it would share their entry).
#[test]
fn state_password_is_kept_in_the_keyring_and_used_for_the_store() {
    let pg = maildns_testkit::Postgres::start();
    let url = pg.create_database("secretstate");
    let bus = maildns_testkit::SessionBus::with_secret_service();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"state\"\n[state]\nurl = \"{url}\"\n[accounts.z]\nprovider = \"zonefile\"\npath = \"z.zone\"\n[domains.\"example.com\"]\naccount = \"z\"\nspf = \"v=spf1 -all\"\n"
        ),
    )
    .unwrap();
    let on_bus = [("DBUS_SESSION_BUS_ADDRESS", bus.address.as_str())];
    let attrs = [("service", "maildns"), ("username", "state-password")];

    // Without it, the store refuses the connection.
    let o = run(&cfg, &["--json", "status"], &on_bus);
    assert_eq!(o.status.code(), Some(1), "{}", o.text());

    let o = no_session_bus(&cfg)
        .args(["secret", "set", "state-password"])
        .envs(&on_bus)
        .stdin(format!("{}\n", pg.password))
        .run();
    let out = o.text();
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("credential 'state-password': password stored in the OS keyring"),
        "{out}"
    );
    assert!(!out.contains(&pg.password), "{out}");
    assert_eq!(bus.search_items(&attrs).len(), 1);

    let o = run(
        &cfg,
        &["--json", "secret", "get", "state-password"],
        &on_bus,
    );
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["source"], "keyring", "{v}");
    assert!(!o.text().contains(&pg.password), "{}", o.text());

    // status reads the store with the password from the keyring.
    let o = run(&cfg, &["--json", "status"], &on_bus);
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.get("error").is_none(), "{v}");
    assert!(!o.text().contains(&pg.password), "{}", o.text());

    // delete says whether there was one.
    let o = run(
        &cfg,
        &["--json", "secret", "delete", "state-password"],
        &on_bus,
    );
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["deleted"], true, "{v}");
    assert!(bus.search_items(&attrs).is_empty());
    let o = run(
        &cfg,
        &["--json", "secret", "delete", "state-password"],
        &on_bus,
    );
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["deleted"], false, "nothing was there: {v}");
    let o = run(&cfg, &["--json", "status"], &on_bus);
    assert_eq!(o.status.code(), Some(1), "{}", o.text());

    // The other two names are known too, with or without their section.
    for name in ["signer-password", "rspamd-controller-password"] {
        let o = run(&cfg, &["--json", "secret", "get", name], &on_bus);
        assert_eq!(o.status.code(), Some(1), "not stored: {}", o.text());
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["found"], false, "{v}");
    }

    // An account of one of these names is refused at load.
    std::fs::write(
        &cfg,
        "state_dir = \"state\"\n[accounts.state-password]\nprovider = \"zonefile\"\npath = \"z.zone\"\n[domains.\"example.com\"]\naccount = \"state-password\"\nspf = \"v=spf1 -all\"\n",
    )
    .unwrap();
    let o = run(&cfg, &["check"], &[]);
    assert_eq!(o.status.code(), Some(65), "{}", o.text());
    assert!(
        o.text()
            .contains("'state-password' is the name of a password maildns reads"),
        "{}",
        o.text()
    );
}
