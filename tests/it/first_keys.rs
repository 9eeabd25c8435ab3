//! First DKIM keys for many domains at once: made on every core, each its own
//! key, written 0600 with no temporary file left, while the domains whose keys
//! exist are published without waiting for them.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use maildns_testkit::PowerDns;

use crate::cmd;

fn write_config(dir: &Path, api: &str, domains: &[String]) -> std::path::PathBuf {
    let mut text = format!(
        "state_dir = \"state\"\n[accounts.dns]\nprovider = \"powerdns\"\nbase_url = \"{api}\"\n"
    );
    for d in domains {
        text.push_str(&format!(
            "[domains.\"{d}\"]\naccount = \"dns\"\nspf = \"v=spf1 -all\"\n[domains.\"{d}\".dkim]\nbits = 1024\n"
        ));
    }
    let p = dir.join("maildns.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Every file under `dir` (recursively).
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_of_many_domains_makes_one_distinct_0600_key_each_and_leaves_no_temp_file() {
    let pdns = PowerDns::start();
    let domains: Vec<String> = (0..12).map(|i| format!("keys{i:02}.test")).collect();
    for d in &domains {
        pdns.create_zone(d).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let env = [("MAILDNS_DNS_TOKEN", pdns.api_key.as_str())];

    // Four domains first: their keys exist when the other eight join.
    let cfg = write_config(dir.path(), &pdns.api_url, &domains[..4]);
    let o = cmd().config(&cfg).envs(&env).args(["publish"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    let keys_dir = dir.path().join("state/keys");
    let before: BTreeSet<Vec<u8>> = files(&keys_dir)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(before.len(), 4);

    let cfg = write_config(dir.path(), &pdns.api_url, &domains);
    let o = cmd()
        .config(&cfg)
        .envs(&env)
        .args(["--json", "publish"])
        .run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    // The report keeps the configuration's order.
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let order: Vec<&str> = report["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["domain"].as_str().unwrap())
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
    assert_eq!(order.len(), 12);

    let all = files(&keys_dir);
    // One key file per domain, nothing else (no temporary file left).
    assert_eq!(all.len(), 12, "{all:?}");
    let mut contents = BTreeSet::new();
    for p in &all {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            name.ends_with(".private") && !name.starts_with('.'),
            "{name}"
        );
        let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
        contents.insert(std::fs::read(p).unwrap());
    }
    // Twelve distinct keys, the first four unchanged.
    assert_eq!(contents.len(), 12);
    assert!(before.is_subset(&contents));
    // Each domain's published key is its own key on disk.
    for d in &domains {
        let dkeys = files(&keys_dir.join(d));
        assert_eq!(dkeys.len(), 1, "{d}");
        let key = maildns::keys::load_private_key(&dkeys[0]).unwrap();
        let selector = dkeys[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".private")
            .to_string();
        let r = reqwest::Client::new()
            .get(format!("{}/servers/localhost/zones/{d}.", pdns.api_url))
            .header("X-API-Key", &pdns.api_key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            r.contains(&format!("{selector}._domainkey.{d}.")),
            "{d}: {r}"
        );
        assert!(r.contains(&key.p_value().unwrap()[..60]), "{d}");
    }
}
