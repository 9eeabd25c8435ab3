//! The `manual` host through the provider conformance suite: the production
//! adapter (connected by maildns, reading the zone's authoritative servers)
//! tells the operator what to enter; a test operator types each ADD, REMOVE
//! and TTL line its notify command received into a real PowerDNS (standing in
//! for the host's web form) while the caller waits, as `publish` and rotation
//! wait, until the authoritative server serves the change.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use maildns::accounts::{Credentials, connect_all};
use maildns::config::Account;
use maildns_providers::http::RetryPolicy;
use maildns_providers::{
    ApplyError, ApplyTraits, Error, Fqdn, Profile, Provider, Secret, TxtChange, TxtSet, Zone,
    ZoneSets,
};
use maildns_testkit::PowerDns;
use maildns_testkit::conformance::{self, Options};

use crate::host_cycle::Operator;

struct NoCreds;

impl Credentials for NoCreds {
    fn credential(&self, _: &Account) -> Result<Secret, maildns::secrets::SecretError> {
        Ok(Secret::new(String::new()))
    }
    fn aws(
        &self,
        _: &Account,
    ) -> Result<maildns_providers::hosts::route53::AwsCredentials, maildns::secrets::SecretError>
    {
        Err(maildns::secrets::SecretError::NoAwsCredentials {
            looked: vec!["no AWS here".into()],
        })
    }
}

/// The manual adapter with the caller's wait: after each write, reads until
/// the authoritative server shows what the operator was told to do (each
/// value to add present, each to remove gone, the TTL set), or 10 s.
struct Waiting(Arc<dyn Provider>);

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waiting(manual)")
    }
}

/// Joined values of a set.
fn values(set: Option<&TxtSet>) -> BTreeSet<Vec<u8>> {
    set.map(|s| s.records.iter().map(|r| r.value()).collect())
        .unwrap_or_default()
}

impl Waiting {
    async fn wait(&self, zone: &Zone, changes: &[TxtChange]) {
        let names: Vec<Fqdn> = changes.iter().map(|c| c.name.clone()).collect();
        for _ in 0..200 {
            let Ok(sets) = self.0.read_sets(zone, &names).await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let done = changes.iter().all(|c| {
                let served = sets.get(&c.name).and_then(|o| o.set.as_ref());
                let now = values(served);
                let old = values(c.old.set.as_ref());
                let new = values(c.wanted());
                let added = new.difference(&old).all(|v| now.contains(v));
                let removed = old.difference(&new).all(|v| !now.contains(v));
                let ttl = match (c.wanted(), served) {
                    (Some(w), Some(s)) => w.ttl == s.ttl,
                    _ => true,
                };
                added && removed && ttl
            });
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[async_trait::async_trait]
impl Provider for Waiting {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    fn profile(&self) -> &Profile {
        self.0.profile()
    }
    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        self.0.zone_for(apex)
    }
    fn apply_traits(&self) -> ApplyTraits {
        self.0.apply_traits()
    }
    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        self.0.find_zone(name).await
    }
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        self.0.read_sets(zone, names).await
    }
    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        self.0.read_txt(zone, name).await
    }
    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        self.0.apply(zone, changes).await?;
        self.wait(zone, changes).await;
        Ok(())
    }
    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let old = self.0.read_txt(zone, name).await?;
        self.0.replace_txt(zone, name, set).await?;
        let change = TxtChange {
            name: name.clone(),
            old: maildns_providers::Observed::of(old),
            new: Some(set.clone()),
        };
        self.wait(zone, &[change]).await;
        Ok(())
    }
    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let old = self.0.read_txt(zone, name).await?;
        self.0.delete_txt(zone, name).await?;
        let change = TxtChange {
            name: name.clone(),
            old: maildns_providers::Observed::of(old),
            new: None,
        };
        self.wait(zone, &[change]).await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_passes_the_conformance_suite_with_an_operator_typing_into_powerdns() {
    conformance_with("one-string").await;
}

/// The quoted form: each 255-byte character-string shown quoted, as a zone
/// file writes it; the operator keeps the strings as shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_in_the_quoted_form_passes_the_conformance_suite() {
    conformance_with("quoted-strings").await;
}

async fn conformance_with(form: &str) {
    let pdns = PowerDns::start();
    pdns.create_zone_with("example.test", 3600, 1).await;
    let dir = tempfile::tempdir().unwrap();
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
    let path = dir.path().join("maildns.toml");
    std::fs::write(
        &path,
        format!(
            "state_dir = \"state\"\n[propagation]\nresolvers = [\"{ns}\"]\n[accounts.web]\nprovider = \"manual\"\nvalue_form = \"{form}\"\nnotify = [\"{}\"]\n\
             [domains.\"example.test\"]\naccount = \"web\"\nnameservers = [\"{ns}\"]\nspf = \"v=spf1 -all\"\n",
            notify.display(),
            ns = pdns.dns
        ),
    )
    .unwrap();
    let config = maildns::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let (providers, failed) = connect_all(&config, &NoCreds, RetryPolicy::fast());
    assert!(failed.is_empty(), "{failed:?}");
    let manual = providers["web"].clone();
    assert!(manual.apply_traits().deferred);

    let mut operator = Operator {
        notified,
        done: 0,
        api_url: pdns.api_url.clone(),
        api_key: pdns.api_key.clone(),
        zone: "example.test".into(),
        quoted: form == "quoted-strings",
    };
    let typing = tokio::spawn(async move {
        loop {
            operator.apply().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let provider = Waiting(manual);
    let zone = Zone {
        name: Fqdn::parse("example.test").unwrap(),
        id: "example.test".into(),
    };
    let failures = conformance::check(
        &provider,
        &zone,
        &Options {
            dns: Some(pdns.dns),
            // The instructions add and remove values; neither the operator
            // nor maildns can notice a set that changed after it was read.
            unguarded_apply: true,
            ..Options::default()
        },
    )
    .await;
    typing.abort();
    assert!(
        failures.is_empty(),
        "manual ({form}): {} conformance case(s) failed:\n{}",
        failures.len(),
        failures
            .iter()
            .map(|f| format!("  {f}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
