//! Account settings are checked against their host's registry entry when the
//! configuration loads (exit 65, file:line:key, one message each), not when the
//! account first connects: missing required settings, values the host would
//! refuse, settings of another host, and values of the wrong type.

use std::path::PathBuf;

use crate::cmd;

/// A config whose account `a` (line 2: `[accounts.a]`, its settings from line
/// 3 on) serves one domain; no credential is given to the child.
fn config(account: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"state\"\n[accounts.a]\n{account}\n\n[domains.\"example.com\"]\naccount = \"a\"\nspf = \"v=spf1 -all\"\n"
        ),
    )
    .unwrap();
    (dir, cfg)
}

/// `maildns plan` on that config: (exit code, stdout, stderr).
fn plan(account: &str) -> (Option<i32>, String, String) {
    let (_dir, cfg) = config(account);
    let out = cmd()
        .args(["-c", cfg.to_str().unwrap(), "plan"])
        .env_remove("MAILDNS_A_TOKEN")
        .run();
    (out.code(), out.stdout_text(), out.stderr_text())
}

/// Exit 65 with exactly `expected` as the error lines (each naming
/// maildns.toml:line:key), nothing on stdout: nothing was connected or planned.
fn refused(account: &str, expected: &[&str]) {
    let (code, stdout, stderr) = plan(account);
    assert_eq!(
        code,
        Some(65),
        "{account}\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert_eq!(stdout, "", "{account}");
    let lines: Vec<String> = stderr
        .lines()
        .map(|l| l.trim_start_matches("maildns: ").to_string())
        .map(|l| {
            // The directory is the test's temp dir.
            l.split_once("/maildns.toml:")
                .map_or(l.clone(), |(_, rest)| format!("maildns.toml:{rest}"))
        })
        .collect();
    assert_eq!(lines, expected, "{account}");
}

#[test]
fn missing_required_settings_exit_65_with_one_message_and_no_false_account_line() {
    refused(
        "provider = \"azure\"\nclient_id = \"c\"\nsubscription_id = \"s\"\nresource_group = \"rg\"",
        &[
            "maildns.toml:2: accounts.a.tenant_id: provider 'azure' needs tenant_id (hint: add tenant_id = \"00000000-0000-0000-0000-000000000000\")",
        ],
    );
    refused(
        "provider = \"ovh\"",
        &[
            "maildns.toml:2: accounts.a.application_key: provider 'ovh' needs application_key (hint: add application_key = \"your-application-key\")",
        ],
    );
    refused(
        "provider = \"netcup\"",
        &[
            "maildns.toml:2: accounts.a.customer_number: provider 'netcup' needs customer_number (hint: add customer_number = \"123456\")",
        ],
    );
    refused(
        "provider = \"namecheap\"",
        &[
            "maildns.toml:2: accounts.a.api_user: provider 'namecheap' needs api_user (hint: add api_user = \"alice\")",
            "maildns.toml:2: accounts.a.client_ip: provider 'namecheap' needs client_ip (hint: add client_ip = \"203.0.113.7\")",
        ],
    );
}

#[test]
fn values_a_host_would_refuse_exit_65_at_load_naming_the_key() {
    refused(
        "provider = \"namecheap\"\napi_user = \"alice\"\nclient_ip = \"2001:db8::1\"",
        &[
            "maildns.toml:5: accounts.a.client_ip: client_ip '2001:db8::1' is not an IPv4 address (Namecheap takes IPv4 only)",
        ],
    );
    refused(
        "provider = \"ovh\"\napplication_key = \"ak\"\nendpoint = \"ovh-mars\"",
        &[
            "maildns.toml:5: accounts.a.endpoint: unknown endpoint 'ovh-mars': use ovh-eu, ovh-ca or ovh-us (or base_url)",
        ],
    );
    refused(
        "provider = \"netcup\"\ncustomer_number = \"12a\"",
        &[
            "maildns.toml:4: accounts.a.customer_number: customer_number must be the customer number's digits",
        ],
    );
    refused(
        "provider = \"dnsimple\"\naccount_id = \"acme\"",
        &[
            "maildns.toml:4: accounts.a.account_id: account_id 'acme' is not a DNSimple account id (a number, as in https://dnsimple.com/a/1010/...)",
        ],
    );
    refused(
        "provider = \"azure\"\ntenant_id = \"t/../x\"\nclient_id = \"c\"\nsubscription_id = \"s\"\nresource_group = \"rg\"\ntoken_url = \"http://login.example/token\"",
        &[
            "maildns.toml:4: accounts.a.tenant_id: tenant_id 't/../x' is not an Azure identifier (letters, digits, - _ . ( ), at most 90)",
            "maildns.toml:8: accounts.a.token_url: token URL 'http://login.example/token' must use https (plain http only to loopback)",
        ],
    );
    refused(
        "provider = \"cloudflare\"\nbase_url = \"http://192.0.2.1/client/v4\"",
        &[
            "maildns.toml:4: accounts.a.base_url: base URL 'http://192.0.2.1/client/v4' must use https (plain http is allowed only to loopback addresses)",
        ],
    );
}

#[test]
fn settings_of_another_provider_are_refused_naming_the_providers_that_take_them() {
    refused(
        "provider = \"cloudflare\"\ntenant_id = \"t\"",
        &[
            "maildns.toml:4: accounts.a.tenant_id: provider 'cloudflare' does not use tenant_id (hint: tenant_id is a setting of azure; remove it, or check provider)",
        ],
    );
    refused(
        "provider = \"godaddy\"\napi_user = \"alice\"\nreplace_whole_host_list = true",
        &[
            "maildns.toml:4: accounts.a.api_user: provider 'godaddy' does not use api_user (hint: api_user is a setting of namecheap; remove it, or check provider)",
            "maildns.toml:5: accounts.a.replace_whole_host_list: provider 'godaddy' does not use replace_whole_host_list (hint: replace_whole_host_list is a setting of namecheap; remove it, or check provider)",
        ],
    );
    refused(
        "provider = \"zonefile\"\npath = \"zone.db\"\nendpoint = \"ovh-eu\"",
        &[
            "maildns.toml:5: accounts.a.endpoint: provider 'zonefile' does not use endpoint (hint: endpoint is a setting of ovh; remove it, or check provider)",
        ],
    );
    refused(
        "provider = \"route53\"\ntoken_env = \"AWS_TOKEN\"",
        &[
            "maildns.toml:4: accounts.a.token_env: provider 'route53' takes no secret credential, so token_env is not used (hint: remove it: route53 reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or ~/.aws/credentials (AWS_PROFILE))",
        ],
    );
}

#[test]
fn a_setting_of_the_wrong_type_names_its_key() {
    refused(
        "provider = \"rfc2136\"\nserver = \"127.0.0.1\"\nkey_name = 5",
        &[
            "maildns.toml:5: accounts.a.key_name: invalid type: integer `5`, expected a string (hint: see fixtures/quickstart/maildns.toml and the README's configuration section)",
        ],
    );
    refused(
        "provider = \"zonefile\"\npath = \"zone.db\"\nbump_serial = \"yes\"",
        &[
            "maildns.toml:5: accounts.a.bump_serial: invalid type: string \"yes\", expected a boolean (hint: see fixtures/quickstart/maildns.toml and the README's configuration section)",
        ],
    );
}

/// What only connecting can find (here a credential not of the host's form)
/// is told once, on the line of the domain the account serves, with exit 1.
#[test]
fn an_account_that_cannot_connect_is_reported_once() {
    let (_dir, cfg) = config("provider = \"porkbun\"");
    let out = cmd()
        .args(["-c", cfg.to_str().unwrap(), "plan"])
        .env("MAILDNS_A_TOKEN", "pk1-without-its-secret")
        .run();
    assert_eq!(out.code(), Some(1), "{}", out.text());
    let reason = "porkbun: authenticate: configuration error: the secret must be APIKEY:SECRETAPIKEY: two non-empty parts joined by ':'";
    assert_eq!(out.text().matches(reason).count(), 1, "{}", out.text());
    assert!(
        out.stdout_text()
            .contains(&format!("  FAILED: account 'a': {reason}\n")),
        "{}",
        out.stdout_text()
    );
    assert!(!out.text().contains("no such account"), "{}", out.text());
    assert!(!out.text().contains("pk1-without"), "secret echoed");

    let json = cmd()
        .args(["-c", cfg.to_str().unwrap(), "--json", "plan"])
        .env("MAILDNS_A_TOKEN", "pk1-without-its-secret")
        .run();
    assert_eq!(json.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["domains"][0]["error"]["account"], "a");
    assert_eq!(v["domains"][0]["error"]["message"], reason);
    assert_eq!(json.stderr_text(), "");
}

/// `rotate` tells an account it cannot connect once too (not also as a log line).
#[test]
fn rotate_tells_an_account_that_cannot_connect_once() {
    let (_dir, cfg) = config("provider = \"porkbun\"");
    let out = cmd()
        .args(["-c", cfg.to_str().unwrap(), "rotate"])
        .env("MAILDNS_A_TOKEN", "pk1-without-its-secret")
        .run();
    let reason = "the secret must be APIKEY:SECRETAPIKEY";
    assert_eq!(out.text().matches(reason).count(), 1, "{}", out.text());
    assert!(
        out.stdout_text().starts_with("account a: porkbun: "),
        "{}",
        out.stdout_text()
    );
}

/// From a user trial: an empty required setting (namecheap's username), and
/// an empty environment variable name or file path (token_env, token_file,
/// the zone file's path), is an error at load naming file:line:key, one per
/// setting, not a setting taken as given.
#[test]
fn empty_settings_environment_names_and_paths_are_refused_at_load() {
    refused(
        "provider = \"namecheap\"\napi_user = \"alice\"\nusername = \"\"\nclient_ip = \"192.0.2.1\"\ntoken_env = \"\"\ntoken_file = \" \"",
        &[
            "maildns.toml:5: accounts.a.username: is empty: give a value, or remove the key",
            "maildns.toml:7: accounts.a.token_env: is empty: give the name of an environment variable (hint: write a value, or remove the key for the default)",
            "maildns.toml:8: accounts.a.token_file: is empty: give a path (hint: write a value, or remove the key for the default)",
        ],
    );
    refused(
        "provider = \"zonefile\"\npath = \"\"",
        &[
            "maildns.toml:4: accounts.a.path: is empty: give a path (hint: write a value, or remove the key for the default)",
        ],
    );
    refused(
        "provider = \"powerdns\"\nbase_url = \"\"\ntoken_env = \"A=B\"",
        &[
            "maildns.toml:4: accounts.a.base_url: is empty: give a value, or remove the key",
            "maildns.toml:5: accounts.a.token_env: 'A=B' is not an environment variable name (it holds '=' or NUL) (hint: e.g. \"MAILDNS_PDNS_TOKEN\")",
        ],
    );
}

/// From a user trial: a manual account's notify program that does not exist
/// (or is not an executable file) passed `check` and only warned at publish.
/// It is refused at load, by `check` too: exit 65, file:line:key, the path.
#[test]
fn a_notify_or_command_program_that_cannot_run_is_refused_at_load() {
    refused(
        "provider = \"manual\"\nnotify = [\"/nonexistent/maildns-notify\", \"--to\", \"ops\"]",
        &[
            "maildns.toml:4: accounts.a.notify: the program '/nonexistent/maildns-notify' does not exist (hint: give the absolute path of an executable file (chmod +x))",
        ],
    );
    refused(
        "provider = \"manual\"\nnotify = [\"/etc/passwd\"]",
        &[
            "maildns.toml:4: accounts.a.notify: the program '/etc/passwd' is not executable (hint: give the absolute path of an executable file (chmod +x))",
        ],
    );
    refused(
        "provider = \"exec\"\ncommand = [\"/tmp\"]",
        &[
            "maildns.toml:4: accounts.a.command: the program '/tmp' is not a file (hint: give the absolute path of an executable file (chmod +x))",
        ],
    );
    let (_dir, cfg) = config("provider = \"manual\"\nnotify = [\"/nonexistent/maildns-notify\"]");
    let out = cmd().args(["-c", cfg.to_str().unwrap(), "check"]).run();
    assert_eq!(out.code(), Some(65), "{}", out.text());
    assert!(
        out.stderr_text().contains(&format!(
            "{}:4: accounts.a.notify: the program '/nonexistent/maildns-notify' does not exist",
            cfg.display()
        )),
        "{}",
        out.text()
    );
}
