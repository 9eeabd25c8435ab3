//! One full cycle on every DNS host maildns drives (issue #14): publish SPF,
//! DKIM and DMARC; plan finds nothing to do; rotate the DKIM key through the
//! runner on an injected clock (new selector published and propagated, signer
//! switched, the old selector kept for the overlap, then removed); finally
//! retract SPF and DMARC. Foreign TXT values at the apex and at `_dmarc` stay
//! byte for byte throughout.
//!
//! Rotation watches authoritative servers over DNS, so every host's data is
//! served by a real server: the API hosts' fakes are mirrored into a zone of
//! one shared PowerDNS after each runner step ([`Mirror`], reading the fake's
//! own state, published view included); PowerDNS, RFC 2136 (BIND) and `exec`
//! (Knot through contrib/exec/knot-knotc) write into real servers; the zone
//! file is served by BIND, reloaded after each step; `manual` has a test
//! operator apply what maildns's notify command received to PowerDNS. The
//! hosts run concurrently; a failure names the host and the step.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use maildns::accounts::{Providers, connect_all};
use maildns::command::publish::{self as publish_cmd, Mode, PublishOptions, Report};
use maildns::config::Config;
use maildns::propagation::{Clock, Querier, QueryOptions};
use maildns::rotation::{DomainState, KeyStatus, Runner, SqliteStore, Store};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{Fqdn, TxtRecord};
use maildns_testkit::fakes::served::{Mirror, ServedTxt};
use maildns_testkit::{Bind, Knot, PowerDns};

use crate::support::{Creds, FakeClock, status, t0};

/// A foreign value at the apex, beside maildns's SPF.
const APEX_FOREIGN: &str = "google-site-verification=cycle0123";
/// A foreign value at `_dmarc`, beside maildns's DMARC record.
const DMARC_FOREIGN: &str = "foreign-note=kept-at-dmarc";
const SPF: &str = "v=spf1 mx -all";
const DMARC: &str = "v=DMARC1; p=quarantine";

/// Every host in the registry.
const HOSTS: [&str; 24] = [
    "zonefile",
    "powerdns",
    "rfc2136",
    "cloudflare",
    "route53",
    "digitalocean",
    "hetzner",
    "gandi",
    "desec",
    "google",
    "exec",
    "manual",
    "azure",
    "scaleway",
    "bunny",
    "ovh",
    "linode",
    "vultr",
    "porkbun",
    "netcup",
    "ionos",
    "dnsimple",
    "namecheap",
    "godaddy",
];

/// How what a host holds gets served over DNS.
enum Backend {
    /// An API fake, mirrored into the shared PowerDNS.
    Fake(Arc<dyn ServedTxt>, Mirror),
    /// Writes land in a real authoritative server (kept alive here).
    Server {
        _alive: Box<dyn std::any::Any + Send + Sync>,
    },
    /// A zone file BIND serves, reloaded after each step that changed it
    /// (with the text it was last reloaded with).
    ZoneFile(Bind, PathBuf, String),
    /// The operator of a `manual` account, typing into the shared PowerDNS.
    Manual(Operator),
}

/// One host's cycle environment.
struct Host {
    kind: &'static str,
    zone: String,
    /// The account's TOML lines (provider and settings).
    account: String,
    creds: Creds,
    /// The authoritative server the domain's `nameservers` names.
    ns: SocketAddr,
    backend: Backend,
    dir: tempfile::TempDir,
}

impl Host {
    /// Makes the real server serve what the host holds now.
    async fn sync(&mut self) {
        match &mut self.backend {
            Backend::Fake(fake, mirror) => {
                mirror.sync(fake.as_ref()).await;
            }
            Backend::Server { .. } => {}
            Backend::ZoneFile(bind, file, served) => {
                let now = std::fs::read_to_string(&*file).unwrap();
                if now != *served {
                    // named reloads some time after the signal: wait until it
                    // serves the serial the write bumped.
                    let zone = Fqdn::parse(&self.zone).unwrap();
                    let before = soa_serial(bind.dns, &zone).await;
                    bind.reload().unwrap();
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                    while soa_serial(bind.dns, &zone).await == before {
                        assert!(
                            std::time::Instant::now() < deadline,
                            "{}: BIND still serves serial {before:?} 10 s after the reload\n{}",
                            self.kind,
                            bind.log()
                        );
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    *served = now;
                }
            }
            Backend::Manual(op) => op.apply().await,
        }
    }

    /// The foreign records as the host stores them (an API fake's own form,
    /// the zone file's lines); nothing more than what DNS serves for a real
    /// server.
    fn stored_foreign(&self) -> Vec<String> {
        let foreign = |l: &String| l.contains(APEX_FOREIGN) || l.contains(DMARC_FOREIGN);
        match &self.backend {
            Backend::Fake(fake, _) => fake
                .stored_txt(&self.zone)
                .into_iter()
                .filter(foreign)
                .collect(),
            Backend::ZoneFile(_, file, _) => std::fs::read_to_string(file)
                .unwrap()
                .lines()
                .map(str::to_string)
                .filter(foreign)
                .collect(),
            Backend::Server { .. } | Backend::Manual(_) => Vec::new(),
        }
    }

    fn domain(&self) -> Fqdn {
        Fqdn::parse(&self.zone).unwrap()
    }

    fn config(&self, spf_dmarc: bool) -> Config {
        let records = if spf_dmarc {
            format!("spf = \"{SPF}\"\ndmarc = \"{DMARC}\"\n")
        } else {
            String::new()
        };
        let text = format!(
            "state_dir = \"{state}\"\n[accounts.dns]\n{account}\n\n[domains.\"{zone}\"]\naccount = \"dns\"\nttl = {ttl}\nnameservers = [\"{ns}\"]\n{records}\
             [domains.\"{zone}\".dkim]\nalgorithms = [\"rsa\"]\nbits = 1024\nselector_format = \"%Y%m\"\nrotation_interval = \"30d\"\noverlap = \"14d\"\nretire = \"remove\"\n",
            state = self.dir.path().join("state").display(),
            account = self.account,
            zone = self.zone,
            ns = self.ns,
            // The host's least TTL when above 300 (GoDaddy, Porkbun: 600).
            ttl = maildns_providers::registry::host(self.kind)
                .unwrap()
                .profile()
                .unwrap()
                .min_ttl
                .max(300),
        );
        let path = self.dir.path().join("maildns.toml");
        std::fs::write(&path, text).unwrap();
        maildns::config::load(&path).unwrap_or_else(|e| panic!("{}: config: {e}", self.kind))
    }

    fn providers(&self, config: &Config) -> Providers {
        // Retries as in production, without keeping to the real hosts' documented
        // rates (the fakes do not enforce them; pacing has its own tests).
        let policy = RetryPolicy {
            pace: false,
            ..RetryPolicy::default()
        };
        let (providers, failed) = connect_all(config, &self.creds, policy);
        assert!(failed.is_empty(), "{}: connect: {failed:?}", self.kind);
        providers
    }

    /// The TXT records the authoritative server serves at `name` (relative, `@`: apex).
    async fn served(&self, name: &str) -> Vec<TxtRecord> {
        let fqdn = if name == "@" {
            self.domain()
        } else {
            Fqdn::parse(&format!("{name}.{}", self.zone)).unwrap()
        };
        let answer = Querier::new(QueryOptions::default())
            .txt(self.ns, &fqdn, false)
            .await
            .unwrap_or_else(|e| panic!("{}: asking {} for {fqdn}: {e}", self.kind, self.ns));
        let mut records = answer.records;
        records.sort_by_key(|r| r.value());
        records
    }

    /// The joined values served at `name`.
    async fn values(&self, name: &str) -> Vec<String> {
        self.served(name)
            .await
            .iter()
            .map(|r| String::from_utf8_lossy(&r.value()).into_owned())
            .collect()
    }

    /// The record served at `name` whose value is `value`, as served: the
    /// RRset's TTL and the record's character-strings.
    async fn foreign(&self, name: &str, value: &str) -> (Option<u32>, Vec<Vec<u8>>) {
        let fqdn = if name == "@" {
            self.domain()
        } else {
            Fqdn::parse(&format!("{name}.{}", self.zone)).unwrap()
        };
        let answer = Querier::new(QueryOptions::default())
            .txt(self.ns, &fqdn, false)
            .await
            .unwrap_or_else(|e| panic!("{}: asking {} for {fqdn}: {e}", self.kind, self.ns));
        let r = answer
            .records
            .iter()
            .find(|r| r.value() == value.as_bytes())
            .unwrap_or_else(|| {
                panic!(
                    "{}: the foreign value {value} at {name} is gone: {:?}",
                    self.kind,
                    answer
                        .records
                        .iter()
                        .map(|r| r.value_lossy())
                        .collect::<Vec<_>>()
                )
            });
        let strings = r.strings().iter().map(|s| s.as_bytes().to_vec()).collect();
        (answer.ttl, strings)
    }
}

/// Plays the operator of a `manual` account: applies each ADD, REMOVE and TTL
/// line maildns's notify command received since the last call to PowerDNS
/// (standing in for the host's web form).
pub(crate) struct Operator {
    pub(crate) notified: PathBuf,
    pub(crate) done: usize,
    pub(crate) api_url: String,
    pub(crate) api_key: String,
    pub(crate) zone: String,
    /// The account's `value_form` is `quoted-strings`: values are shown as
    /// zone-file character-strings.
    pub(crate) quoted: bool,
}

impl Operator {
    /// A record as the instructions show it: its character-strings in the
    /// quoted form, else one value the host splits.
    fn value(&self, shown: &str) -> TxtRecord {
        if self.quoted {
            TxtRecord::parse_presentation(shown)
                .unwrap_or_else(|e| panic!("operator: cannot read {shown}: {e}"))
        } else {
            TxtRecord::split_max(shown.as_bytes(), 255)
        }
    }

    pub(crate) async fn apply(&mut self) {
        let text = std::fs::read_to_string(&self.notified).unwrap_or_default();
        // Only whole lines (the notify command may be writing).
        let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
        let lines: Vec<String> = complete
            .lines()
            .skip(self.done)
            .map(str::to_string)
            .collect();
        self.done += lines.len();
        for line in lines {
            // Values may end in spaces: trim only the indentation.
            let t = line.trim_start();
            let (verb, rest) = match ["ADD", "REMOVE", "TTL"]
                .iter()
                .find_map(|v| t.strip_prefix(v).map(|r| (*v, r)))
            {
                Some(x) => x,
                None => continue,
            };
            let name = rest.split('(').nth(1).unwrap().split(')').next().unwrap();
            let (old_ttl, mut values) =
                pdns_values(&self.api_url, &self.api_key, &self.zone, name).await;
            let ttl_of = |s: &str| -> Option<u32> { s.split_whitespace().next()?.parse().ok() };
            let ttl = match verb {
                "ADD" => {
                    let value = self.value(rest.split("  value ").nth(1).unwrap());
                    // A form holds each value once.
                    if !values.iter().any(|v| v.value() == value.value()) {
                        values.push(value);
                    }
                    rest.split("TTL ").nth(1).and_then(ttl_of)
                }
                "REMOVE" => {
                    let value = self.value(rest.split("  value ").nth(1).unwrap());
                    values.retain(|v| v.value() != value.value());
                    None
                }
                _ => rest.split("TTL to ").nth(1).and_then(ttl_of),
            };
            let ttl = ttl.or(old_ttl).unwrap_or(300);
            pdns_put(&self.api_url, &self.api_key, &self.zone, name, ttl, &values).await;
        }
    }
}

/// The TTL and TXT records PowerDNS's API holds at `name` (absolute, no dot).
async fn pdns_values(
    api_url: &str,
    api_key: &str,
    zone: &str,
    name: &str,
) -> (Option<u32>, Vec<TxtRecord>) {
    let zone_json: serde_json::Value = reqwest::Client::new()
        .get(format!("{api_url}/servers/localhost/zones/{zone}."))
        .header("X-API-Key", api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sets: Vec<&serde_json::Value> = zone_json["rrsets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == format!("{name}.") && r["type"] == "TXT")
        .collect();
    let ttl = sets
        .first()
        .and_then(|r| r["ttl"].as_u64())
        .map(|t| t as u32);
    let values = sets
        .iter()
        .flat_map(|r| r["records"].as_array().unwrap().clone())
        .map(|r| TxtRecord::parse_presentation(r["content"].as_str().unwrap()).unwrap())
        .collect();
    (ttl, values)
}

/// The SOA serial `server` serves for `zone` (`None`: no SOA answered).
async fn soa_serial(server: SocketAddr, zone: &Fqdn) -> Option<u32> {
    let (response, _) = Querier::new(QueryOptions::default())
        .query(server, zone, hickory_proto::rr::RecordType::SOA, false)
        .await
        .ok()?;
    maildns::propagation::query::soa_in(&response.answers).map(|soa| soa.serial)
}

/// Puts the foreign values at the apex and at `_dmarc` of `zone` in PowerDNS.
async fn seed_pdns(url: &str, key: &str, zone: &str) {
    pdns_put(
        url,
        key,
        zone,
        zone,
        3600,
        &[TxtRecord::from_value(APEX_FOREIGN)],
    )
    .await;
    let dmarc = format!("_dmarc.{zone}");
    pdns_put(
        url,
        key,
        zone,
        &dmarc,
        3600,
        &[TxtRecord::from_value(DMARC_FOREIGN)],
    )
    .await;
}

/// Replaces the TXT RRset at `name` (absolute, no dot) in PowerDNS (deletes
/// it when `values` is empty); retries PowerDNS's transient `database is locked`.
pub(crate) async fn pdns_put(
    api_url: &str,
    api_key: &str,
    zone: &str,
    name: &str,
    ttl: u32,
    values: &[TxtRecord],
) {
    let records: Vec<serde_json::Value> = values
        .iter()
        .map(|r| serde_json::json!({"content": r.to_presentation(), "disabled": false}))
        .collect();
    let change = if records.is_empty() {
        serde_json::json!({"name": format!("{name}."), "type": "TXT", "changetype": "DELETE"})
    } else {
        serde_json::json!({"name": format!("{name}."), "type": "TXT", "ttl": ttl, "changetype": "REPLACE", "records": records})
    };
    for _ in 0..50 {
        let r = reqwest::Client::new()
            .patch(format!("{api_url}/servers/localhost/zones/{zone}."))
            .header("X-API-Key", api_key)
            .json(&serde_json::json!({ "rrsets": [change] }))
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            return;
        }
        assert!(
            r.status().is_server_error(),
            "PowerDNS: {}",
            r.text().await.unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("PowerDNS kept failing to write {name}");
}

fn q(v: &str) -> String {
    format!("\"{v}\"")
}

/// What a host's setup gives the cycle: the account's TOML lines, its
/// credential, the authoritative server the domain names, how the host's data
/// gets served.
struct Seeded {
    account: String,
    creds: Creds,
    ns: SocketAddr,
    backend: Backend,
}

/// Starts what `kind` needs and seeds the foreign values: one description a
/// host. An API host is its fake, seeded in the fake's own form, and the
/// account settings beside `provider` and `base_url`; it is served by the
/// shared PowerDNS through a [`Mirror`].
async fn setup(kind: &'static str, pdns: &PowerDns) -> Host {
    use maildns_testkit::fakes::*;
    let zone = format!("cycle-{kind}.com");
    let dir = tempfile::tempdir().unwrap();
    let apex = zone.as_str();
    let dmarc = format!("_dmarc.{zone}");
    let token = format!("{kind}prefix.{kind}-token-0123456789");
    // The API fakes and the hosts writing into the shared PowerDNS serve from it.
    let needs_pdns_zone = !["zonefile", "rfc2136", "exec"].contains(&kind);
    if needs_pdns_zone {
        pdns.create_zone_with(&zone, 3600, 60).await;
    }
    // An API host: its fake (served through the mirror) at `url`, the account
    // `settings` lines beside provider and base_url, its credential.
    let api = |fake: Arc<dyn ServedTxt>, url: &str, settings: &str, creds: Creds| Seeded {
        account: format!("provider = \"{kind}\"\n{settings}base_url = \"{url}\""),
        creds,
        ns: pdns.dns,
        backend: Backend::Fake(fake, Mirror::new(&pdns.api_url, &pdns.api_key, &zone)),
    };
    let seeded = match kind {
        "zonefile" => {
            let file = dir.path().join("zone.db");
            let text = format!(
                "$ORIGIN {zone}.\n$TTL 3600\n@ IN SOA ns1 hostmaster 1 3600 900 604800 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n\
                 @ IN TXT \"{APEX_FOREIGN}\"\n_dmarc IN TXT \"{DMARC_FOREIGN}\"\n"
            );
            std::fs::write(&file, &text).unwrap();
            let bind = Bind::serve_file(&zone, &file);
            Seeded {
                account: format!("provider = \"zonefile\"\npath = \"{}\"", file.display()),
                creds: Creds::token(""),
                ns: bind.dns,
                backend: Backend::ZoneFile(bind, file, text),
            }
        }
        "powerdns" => {
            seed_pdns(&pdns.api_url, &pdns.api_key, &zone).await;
            Seeded {
                account: format!("provider = \"powerdns\"\nbase_url = \"{}\"", pdns.api_url),
                creds: Creds::token(pdns.api_key.clone()),
                ns: pdns.dns,
                backend: Backend::Server {
                    _alive: Box::new(()),
                },
            }
        }
        "rfc2136" => {
            let mut opts = maildns_testkit::bind::BindOptions::new(&zone);
            opts.soa_minimum = 60;
            opts.extra_records = vec![
                format!("@ 3600 IN TXT \"{APEX_FOREIGN}\""),
                format!("_dmarc 3600 IN TXT \"{DMARC_FOREIGN}\""),
            ];
            let bind = Bind::start_with(opts);
            Seeded {
                account: format!(
                    "provider = \"rfc2136\"\nserver = \"{}\"\nkey_name = \"{}\"\nalgorithm = \"hmac-sha256\"",
                    bind.dns, bind.key_name
                ),
                creds: Creds::token(bind.secret.clone()),
                ns: bind.dns,
                backend: Backend::Server {
                    _alive: Box::new(bind),
                },
            }
        }
        "exec" => {
            let apex_line = format!("@ 3600 TXT \"{APEX_FOREIGN}\"");
            let dmarc_line = format!("_dmarc 3600 TXT \"{DMARC_FOREIGN}\"");
            let knot = Knot::start(&zone, &[&apex_line, &dmarc_line]);
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/exec/knot-knotc");
            Seeded {
                account: format!(
                    "provider = \"exec\"\ncommand = [\"{}\", \"--socket\", \"{}\"]\natomic = true\ncompare_and_swap = true",
                    script.display(),
                    knot.socket().display()
                ),
                creds: Creds::token(""),
                ns: knot.dns,
                backend: Backend::Server {
                    _alive: Box::new(knot),
                },
            }
        }
        "manual" => {
            seed_pdns(&pdns.api_url, &pdns.api_key, &zone).await;
            let notified = dir.path().join("notified.txt");
            let notify = dir.path().join("notify.sh");
            std::fs::write(
                &notify,
                format!("#!/bin/sh\ncat >> {}\n", notified.display()),
            )
            .unwrap();
            std::fs::set_permissions(
                &notify,
                <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
            )
            .unwrap();
            Seeded {
                account: format!("provider = \"manual\"\nnotify = [\"{}\"]", notify.display()),
                creds: Creds::token(""),
                ns: pdns.dns,
                backend: Backend::Manual(Operator {
                    notified,
                    done: 0,
                    api_url: pdns.api_url.clone(),
                    api_key: pdns.api_key.clone(),
                    zone: zone.clone(),
                    quoted: false,
                }),
            }
        }
        "cloudflare" => {
            let f = cloudflare::FakeCloudflare::start(&token).await;
            let id = f.add_zone(&zone);
            f.add_record(&id, apex, APEX_FOREIGN, 3600);
            f.add_record(&id, &dmarc, DMARC_FOREIGN, 3600);
            let url = f.base_url().to_string();
            api(Arc::new(f), &url, "", Creds::token(&token))
        }
        "route53" => {
            let f = route53::FakeRoute53::start("AKIDCYCLE0123", "cycle-secret-key").await;
            let id = f.add_zone(&zone);
            f.put_txt(&id, apex, 3600, vec![vec![APEX_FOREIGN.into()]]);
            f.put_txt(&id, &dmarc, 3600, vec![vec![DMARC_FOREIGN.into()]]);
            let url = f.url.clone();
            let creds = Creds {
                secret: String::new(),
                aws: Some(("AKIDCYCLE0123".into(), "cycle-secret-key".into())),
            };
            api(Arc::new(f), &url, "", creds)
        }
        "digitalocean" => {
            let f = digitalocean::FakeDigitalOcean::start(&token).await;
            f.add_domain(&zone);
            f.add_record(&zone, "@", APEX_FOREIGN, 3600);
            f.add_record(&zone, "_dmarc", DMARC_FOREIGN, 3600);
            let url = f.base_url().to_string();
            api(Arc::new(f), &url, "", Creds::token(&token))
        }
        "hetzner" => {
            let f = hetzner::FakeHetzner::start(&token).await;
            let id = f.add_zone(&zone);
            f.add_rrset(id, "@", Some(3600), &[&q(APEX_FOREIGN)]);
            f.add_rrset(id, "_dmarc", Some(3600), &[&q(DMARC_FOREIGN)]);
            let url = f.base_url().to_string();
            api(Arc::new(f), &url, "", Creds::token(&token))
        }
        "gandi" => {
            let f = gandi::FakeGandi::start(&token).await;
            f.add_domain(&zone);
            f.put_txt(&zone, "@", 3600, &[&q(APEX_FOREIGN)]);
            f.put_txt(&zone, "_dmarc", 3600, &[&q(DMARC_FOREIGN)]);
            let url = f.url.clone();
            api(Arc::new(f), &url, "", Creds::token(&token))
        }
        "desec" => {
            let f = desec::FakeDesec::start(&token).await;
            f.add_domain(&zone);
            f.set_minimum_ttl(&zone, 60);
            f.add_rrset(&zone, "", 3600, &[&q(APEX_FOREIGN)]);
            f.add_rrset(&zone, "_dmarc", 3600, &[&q(DMARC_FOREIGN)]);
            let url = f.base_url().to_string();
            api(Arc::new(f), &url, "", Creds::token(&token))
        }
        "google" => {
            let sa =
                google::TestServiceAccount::generate("dns@cycle.iam.gserviceaccount.com", 1024);
            let f = google::FakeGoogle::start("cycle-project", &sa).await;
            let z = f.add_zone(&zone, false);
            f.put_txt(&z, &format!("{zone}."), 3600, &[&q(APEX_FOREIGN)]);
            f.put_txt(&z, &format!("{dmarc}."), 3600, &[&q(DMARC_FOREIGN)]);
            let url = f.url.clone();
            let secret = sa.json("cycle-project", &f.token_url);
            api(Arc::new(f), &url, "", Creds::token(secret))
        }
        "azure" => {
            let p = azure::Principal {
                tenant: "tenant-cycle".into(),
                client_id: "client-cycle".into(),
                client_secret: token.clone(),
                subscription: "sub-cycle".into(),
                resource_group: "rg-cycle".into(),
            };
            let f = azure::FakeAzure::start(&p).await;
            f.add_zone(&zone);
            f.foreign_put(&zone, "@", 3600, &[&[APEX_FOREIGN]]);
            f.foreign_put(&zone, "_dmarc", 3600, &[&[DMARC_FOREIGN]]);
            let settings = format!(
                "tenant_id = \"tenant-cycle\"\nclient_id = \"client-cycle\"\nsubscription_id = \"sub-cycle\"\nresource_group = \"rg-cycle\"\ntoken_url = \"{}\"\n",
                f.token_url
            );
            let url = f.url.clone();
            api(Arc::new(f), &url, &settings, Creds::token(&token))
        }
        "scaleway" => {
            let f = scaleway::FakeScaleway::start(&token).await;
            f.add_zone(&zone);
            f.add_txt(&zone, "", 3600, APEX_FOREIGN);
            f.add_txt(&zone, "_dmarc", 3600, DMARC_FOREIGN);
            let url = f.base_url().to_string();
            api(Arc::new(f), &url, "", Creds::token(&token))
        }
        "bunny" => {
            let f = bunny::FakeBunny::start(&token).await;
            let id = f.add_zone(&zone);
            f.add_record(id, 3, "", APEX_FOREIGN, 3600, false);
            f.add_record(id, 3, "_dmarc", DMARC_FOREIGN, 3600, false);
            let url = f.base_url().to_string();
            api(Arc::new(f), &url, "", Creds::token(&token))
        }
        "ovh" => {
            let f =
                ovh::FakeOvh::start("cycle-app-key", "cycle-app-secret", "cycle-consumer").await;
            f.add_zone(&zone);
            f.add_record(&zone, "", "TXT", &q(APEX_FOREIGN), 3600);
            f.add_record(&zone, "_dmarc", "TXT", &q(DMARC_FOREIGN), 3600);
            let url = f.base_url().to_string();
            let creds = Creds::token("cycle-app-secret:cycle-consumer");
            api(
                Arc::new(f),
                &url,
                "application_key = \"cycle-app-key\"\n",
                creds,
            )
        }
        "linode" => {
            let f = linode::FakeLinode::start(&token).await;
            let id = f.add_domain(&zone);
            f.add_record(id, "", "TXT", APEX_FOREIGN, 3600);
            f.add_record(id, "_dmarc", "TXT", DMARC_FOREIGN, 3600);
            let url = f.base_url().to_string();
            api(Arc::new(f), &url, "", Creds::token(&token))
        }
        "vultr" => {
            let f = vultr::FakeVultr::start(&token).await;
            f.add_domain(&zone);
            f.add_record(&zone, "", "TXT", &q(APEX_FOREIGN), 3600);
            f.add_record(&zone, "_dmarc", "TXT", &q(DMARC_FOREIGN), 3600);
            let url = f.base_url().to_string();
            api(Arc::new(f), &url, "", Creds::token(&token))
        }
        "porkbun" => {
            let f = porkbun::FakePorkbun::start("pk1_cycle", "sk1_cycle").await;
            f.add_domain(&zone, true);
            f.add_txt(&zone, "", APEX_FOREIGN, 3600);
            f.add_txt(&zone, "_dmarc", DMARC_FOREIGN, 3600);
            let url = f.url.clone();
            api(Arc::new(f), &url, "", Creds::token("pk1_cycle:sk1_cycle"))
        }
        "netcup" => {
            let f = netcup::FakeNetcup::start("123456", "ncapikey", "ncpassword").await;
            f.add_zone(&zone, 300);
            f.add_record(&zone, "@", "TXT", APEX_FOREIGN);
            f.add_record(&zone, "_dmarc", "TXT", DMARC_FOREIGN);
            let url = f.url.clone();
            let creds = Creds::token("ncapikey:ncpassword");
            api(Arc::new(f), &url, "customer_number = \"123456\"\n", creds)
        }
        "ionos" => {
            let f = ionos::FakeIonos::start(&token).await;
            f.add_zone(&zone);
            f.add_record(&zone, apex, "TXT", APEX_FOREIGN);
            f.add_record(&zone, &dmarc, "TXT", DMARC_FOREIGN);
            let url = f.url.clone();
            api(Arc::new(f), &url, "", Creds::token(&token))
        }
        "dnsimple" => {
            let f = dnsimple::FakeDnsimple::start(&token, 1010).await;
            f.add_zone(&zone);
            f.add_record(&zone, "", "TXT", &q(APEX_FOREIGN), 3600);
            f.add_record(&zone, "_dmarc", "TXT", &q(DMARC_FOREIGN), 3600);
            let url = f.base_url().to_string();
            api(
                Arc::new(f),
                &url,
                "account_id = 1010\n",
                Creds::token(&token),
            )
        }
        "namecheap" => {
            let f = namecheap::FakeNamecheap::start("alice", &token, "203.0.113.7").await;
            f.add_domain(&zone, "MX");
            f.add_host(&zone, "@", "MX", "mx.example.net.", 10, 1800);
            f.add_host(&zone, "@", "TXT", APEX_FOREIGN, 10, 1800);
            f.add_host(&zone, "_dmarc", "TXT", DMARC_FOREIGN, 10, 1800);
            let url = f.base_url().to_string();
            let settings = "api_user = \"alice\"\nclient_ip = \"203.0.113.7\"\nreplace_whole_host_list = true\n";
            api(Arc::new(f), &url, settings, Creds::token(&token))
        }
        "godaddy" => {
            let f = godaddy::FakeGoDaddy::start("gdkey", "gdsecret").await;
            f.add_domain(&zone);
            f.add_record(&zone, "@", "TXT", APEX_FOREIGN, 3600);
            f.add_record(&zone, "_dmarc", "TXT", DMARC_FOREIGN, 3600);
            let url = f.base_url().to_string();
            api(Arc::new(f), &url, "", Creds::token("gdkey:gdsecret"))
        }
        other => panic!("no cycle set up for host {other}"),
    };
    let mut host = Host {
        kind,
        zone: zone.clone(),
        account: seeded.account,
        creds: seeded.creds,
        ns: seeded.ns,
        backend: seeded.backend,
        dir,
    };
    host.sync().await;
    host
}

fn publish_opts(mode: Mode, now: DateTime<Utc>, force: bool) -> PublishOptions {
    PublishOptions {
        mode,
        domains: Vec::new(),
        force,
        querier: Querier::new(QueryOptions::default()),
        now,
    }
}

/// Fails with the host, the step and the report when a run failed.
fn ok(kind: &str, step: &str, report: &Report) {
    let errors: Vec<String> = report
        .domains
        .iter()
        .filter_map(|d| d.error.as_ref().map(|e| e.to_string()))
        .collect();
    assert!(
        !report.failed() && errors.is_empty(),
        "{kind}: {step} failed: {errors:?}"
    );
}

/// A plan at `now` after `step` succeeds and has nothing to do.
async fn assert_in_sync(
    kind: &str,
    step: &str,
    config: &Config,
    providers: &Providers,
    store: &dyn Store,
    now: DateTime<Utc>,
) {
    let plan = publish_cmd::run(
        config,
        providers,
        Some(store),
        &publish_opts(Mode::Plan, now, false),
    )
    .await
    .unwrap_or_else(|e| panic!("{kind}: plan after {step}: {e}"));
    ok(kind, &format!("plan after {step}"), &plan);
    assert_eq!(
        plan.pending(),
        0,
        "{kind}: in sync after {step}: {:?}",
        plan.domains
    );
}

/// Runs the runner (then serves what the host holds) until `done` holds, the
/// clock moving `step` between runs, at most `max` runs.
async fn run_until(
    host: &mut Host,
    runner: &Runner,
    clock: &FakeClock,
    step: TimeDelta,
    what: &str,
    done: impl Fn(&DomainState) -> bool,
) {
    let domain = host.domain();
    let mut last = String::new();
    for _ in 0..12 {
        let out = runner
            .run_once(&domain)
            .await
            .unwrap_or_else(|e| panic!("{}: rotation run ({what}): {e}", host.kind));
        host.sync().await;
        let st = runner.store().load(&domain).unwrap();
        if done(&st) {
            return;
        }
        last = format!(
            "{:?}\nblocked: {:?}\nkeys: {:?}",
            out.performed, out.blocked, st.keys
        );
        clock.advance(step);
    }
    panic!("{}: {what} never happened; last run:\n{last}", host.kind);
}

async fn cycle(mut host: Host) {
    let kind = host.kind;
    let t0 = t0();
    let clock = FakeClock::at(t0);
    let foreign_apex = host.foreign("@", APEX_FOREIGN).await;
    let foreign_dmarc = host.foreign("_dmarc", DMARC_FOREIGN).await;
    let stored = host.stored_foreign();
    if matches!(host.backend, Backend::Fake(..) | Backend::ZoneFile(..)) {
        assert_eq!(
            stored.len(),
            2,
            "{kind}: the foreign records as stored: {stored:?}"
        );
    }

    // Publish SPF, DMARC and the first key; then a plan has nothing to do.
    let config = host.config(true);
    let providers = host.providers(&config);
    std::fs::create_dir_all(&config.state_dir).unwrap();
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let store = Arc::new(
        SqliteStore::open_locked(&config.state_dir)
            .unwrap()
            .with_clock(dyn_clock.clone()),
    );
    let report = publish_cmd::run(
        &config,
        &providers,
        Some(store.as_ref() as &dyn Store),
        &publish_opts(Mode::Apply, t0, false),
    )
    .await
    .unwrap_or_else(|e| panic!("{kind}: publish: {e}"));
    ok(kind, "publish", &report);
    assert_eq!(
        report.pending(),
        3,
        "{kind}: publish writes SPF, DMARC and the key"
    );
    host.sync().await;
    assert_in_sync(kind, "publishing", &config, &providers, store.as_ref(), t0).await;
    assert_eq!(
        host.values("@").await,
        [APEX_FOREIGN, SPF],
        "{kind}: apex served"
    );
    assert_eq!(
        host.values("_dmarc").await,
        [DMARC_FOREIGN, DMARC],
        "{kind}: _dmarc served"
    );

    // The first key goes active through the runner (no signer: switched by publishing).
    let runner = Runner::new(
        config.clone(),
        store.clone(),
        providers.clone(),
        dyn_clock.clone(),
    )
    .unwrap_or_else(|e| panic!("{kind}: runner: {e}"));
    run_until(
        &mut host,
        &runner,
        &clock,
        TimeDelta::minutes(10),
        "202401 active",
        |st| status(st, "202401") == Some(KeyStatus::Active),
    )
    .await;
    let key1 = host.values("202401._domainkey").await;
    assert!(
        key1.len() == 1 && key1[0].starts_with("v=DKIM1;"),
        "{kind}: 202401 served: {key1:?}"
    );

    // Day 30: the next key is published beside the old one and becomes active.
    clock.advance(TimeDelta::days(30));
    run_until(
        &mut host,
        &runner,
        &clock,
        TimeDelta::minutes(10),
        "202402 active",
        |st| status(st, "202402") == Some(KeyStatus::Active),
    )
    .await;
    let st = runner.store().load(&host.domain()).unwrap();
    assert_eq!(
        status(&st, "202401"),
        Some(KeyStatus::Retiring),
        "{kind}: old key kept for the overlap"
    );
    assert_eq!(
        host.values("202401._domainkey").await,
        key1,
        "{kind}: old record kept"
    );
    let key2 = host.values("202402._domainkey").await;
    assert!(
        key2.len() == 1 && key2 != key1,
        "{kind}: 202402 served: {key2:?}"
    );

    // Just before the overlap ends nothing is removed; then the old record goes.
    clock.advance(TimeDelta::days(14) - TimeDelta::hours(1));
    runner.run_once(&host.domain()).await.unwrap();
    host.sync().await;
    assert_eq!(
        host.values("202401._domainkey").await,
        key1,
        "{kind}: removed before the overlap ended"
    );
    clock.advance(TimeDelta::hours(1));
    run_until(
        &mut host,
        &runner,
        &clock,
        TimeDelta::minutes(10),
        "202401 destroyed",
        |st| status(st, "202401") == Some(KeyStatus::Destroyed),
    )
    .await;
    assert!(
        host.values("202401._domainkey").await.is_empty(),
        "{kind}: old selector still served"
    );
    assert_eq!(
        host.values("202402._domainkey").await,
        key2,
        "{kind}: new key kept"
    );
    drop(runner);

    // Finally SPF and DMARC are retracted; the foreign values stay, byte for byte.
    let config = host.config(false);
    let providers = host.providers(&config);
    let now = clock.now();
    let report = publish_cmd::run(
        &config,
        &providers,
        Some(store.as_ref() as &dyn Store),
        &publish_opts(Mode::Apply, now, true),
    )
    .await
    .unwrap_or_else(|e| panic!("{kind}: retracting: {e}"));
    ok(kind, "retracting SPF and DMARC", &report);
    host.sync().await;
    assert_eq!(
        host.values("@").await,
        [APEX_FOREIGN],
        "{kind}: SPF retracted"
    );
    assert_eq!(
        host.values("_dmarc").await,
        [DMARC_FOREIGN],
        "{kind}: DMARC retracted"
    );
    assert_eq!(
        host.foreign("@", APEX_FOREIGN).await,
        foreign_apex,
        "{kind}: apex foreign value changed"
    );
    assert_eq!(
        host.stored_foreign(),
        stored,
        "{kind}: a foreign record was rewritten where the host stores it"
    );
    assert_eq!(
        host.foreign("_dmarc", DMARC_FOREIGN).await,
        foreign_dmarc,
        "{kind}: _dmarc foreign value changed"
    );
    assert_in_sync(kind, "retracting", &config, &providers, store.as_ref(), now).await;
}

/// The hosts named in `MAILDNS_CYCLE_HOSTS` (comma-separated), else all.
fn selected() -> Vec<&'static str> {
    match std::env::var("MAILDNS_CYCLE_HOSTS") {
        Ok(list) if !list.is_empty() => HOSTS
            .iter()
            .copied()
            .filter(|h| list.split(',').any(|x| x == *h))
            .collect(),
        _ => HOSTS.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_in_sync_rotate_delete_on_every_host() {
    let pdns = Arc::new(PowerDns::start());
    let mut tasks = BTreeMap::new();
    for kind in selected() {
        let pdns = pdns.clone();
        tasks.insert(
            kind,
            tokio::spawn(async move {
                let host = setup(kind, &pdns).await;
                cycle(host).await;
            }),
        );
    }
    let mut failures = Vec::new();
    for (kind, task) in tasks {
        if let Err(e) = task.await {
            let msg = e
                .try_into_panic()
                .ok()
                .and_then(|p| {
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                })
                .unwrap_or_else(|| "cancelled".into());
            failures.push(format!("--- {kind}:\n{msg}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} host(s) failed the cycle:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
