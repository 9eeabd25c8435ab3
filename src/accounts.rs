//! Turns configured accounts into connected [`Provider`]s.
//!
//! Credentials are looked up here, at the face's request, through
//! [`crate::secrets`]; adapters receive them typed and never read the environment.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use maildns_providers::hosts::zonefile::{self, ZoneFile};
use maildns_providers::hosts::{
    cloudflare, desec, digitalocean, gandi, google, hetzner, powerdns, rfc2136, route53,
};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{
    Error as ProviderError, ErrorKind, Fqdn, Operation, Profile, Provider, Secret, TxtSet, Zone,
};

use crate::config::{Account, CloudKind, Config, ProviderConfig};

/// Where credentials come from (the process environment, snapshotted at the face).
pub trait Credentials: Send + Sync {
    /// The credential of `account`.
    fn credential(&self, account: &Account) -> anyhow::Result<Secret>;

    /// AWS credentials (environment variables, then the shared credentials file).
    fn aws(&self, account: &Account) -> anyhow::Result<route53::AwsCredentials>;
}

/// Connected accounts by name.
pub type Providers = BTreeMap<String, Arc<dyn Provider>>;

/// Connects every account that some domain uses. An account that cannot be set up
/// is reported and left out, so the other accounts' domains still run.
pub fn connect_all(
    config: &Config,
    creds: &dyn Credentials,
    retry: RetryPolicy,
) -> (Providers, Vec<(String, anyhow::Error)>) {
    let mut ok = BTreeMap::new();
    let mut failed = Vec::new();
    for (name, account) in &config.accounts {
        let used: Vec<Fqdn> = config
            .domains
            .iter()
            .filter(|d| &d.account == name)
            .map(|d| d.zone.clone().unwrap_or_else(|| d.name.clone()))
            .collect();
        if used.is_empty() {
            continue;
        }
        match connect(account, &used, creds, retry) {
            Ok(p) => {
                ok.insert(name.clone(), p);
            }
            Err(e) => failed.push((name.clone(), e)),
        }
    }
    (ok, failed)
}

/// Connects one account; `zones` are the zones its domains live in (the zone-file
/// target needs them to name its files).
pub fn connect(
    account: &Account,
    zones: &[Fqdn],
    creds: &dyn Credentials,
    retry: RetryPolicy,
) -> anyhow::Result<Arc<dyn Provider>> {
    let p: Arc<dyn Provider> = match &account.provider {
        ProviderConfig::ZoneFile { path, bump_serial } => {
            Arc::new(ZoneFiles::new(path, zones, *bump_serial)?)
        }
        ProviderConfig::PowerDns {
            base_url,
            server_id,
        } => {
            let cfg = powerdns::Config {
                base_url: base_url.clone(),
                server_id: server_id.clone(),
                api_key: secret(account, creds)?,
            };
            Arc::new(powerdns::PowerDns::new(cfg, retry)?)
        }
        ProviderConfig::Rfc2136 {
            server,
            key_name,
            algorithm,
        } => {
            let secret = secret(account, creds)?;
            let algorithm = algorithm.parse().map_err(anyhow::Error::new)?;
            let cfg = rfc2136::Config::new(*server, key_name.clone(), algorithm, secret);
            Arc::new(rfc2136::Rfc2136::new(cfg)?)
        }
        ProviderConfig::Cloud {
            kind,
            base_url,
            project,
            wait_insync,
        } => {
            // Every cloud adapter: `Config::new(credential)`, then an optional base URL.
            macro_rules! cloud {
                ($m:ident, $t:ident, $cred:expr $(, |$cfg:ident| $extra:expr)?) => {{
                    let mut cfg = $m::Config::new($cred);
                    if let Some(u) = base_url {
                        cfg.base_url = u.clone();
                    }
                    $(let $cfg = &mut cfg; $extra;)?
                    Arc::new($m::$t::new(cfg, retry)?) as Arc<dyn Provider>
                }};
            }
            match kind {
                CloudKind::Cloudflare => {
                    cloud!(cloudflare, Cloudflare, secret(account, creds)?)
                }
                CloudKind::DigitalOcean => {
                    cloud!(digitalocean, DigitalOcean, secret(account, creds)?)
                }
                CloudKind::Hetzner => cloud!(hetzner, Hetzner, secret(account, creds)?),
                CloudKind::Desec => cloud!(desec, Desec, secret(account, creds)?),
                CloudKind::Gandi => cloud!(gandi, Gandi, secret(account, creds)?),
                CloudKind::Google => {
                    let project = project.clone();
                    cloud!(google, Google, secret(account, creds)?, |c| c.project =
                        project)
                }
                CloudKind::Route53 => {
                    let wait = *wait_insync;
                    cloud!(route53, Route53, creds.aws(account)?, |c| c.wait_insync =
                        wait)
                }
            }
        }
    };
    Ok(p)
}

fn secret(account: &Account, creds: &dyn Credentials) -> anyhow::Result<Secret> {
    creds
        .credential(account)
        .with_context(|| format!("account '{}'", account.name))
}

/// Zone files of one account: `path` may contain `{zone}` to get one file per zone.
#[derive(Debug)]
pub struct ZoneFiles {
    files: Vec<ZoneFile>,
    profile: Profile,
}

impl ZoneFiles {
    /// One [`ZoneFile`] per zone; without `{zone}` in the path all zones must be one.
    pub fn new(path: &std::path::Path, zones: &[Fqdn], bump_serial: bool) -> anyhow::Result<Self> {
        let template = path.to_string_lossy();
        let mut uniq: Vec<Fqdn> = zones.to_vec();
        uniq.sort();
        uniq.dedup();
        if uniq.len() > 1 && !template.contains("{zone}") {
            bail!(
                "zone file {} would hold several zones ({}): put {{zone}} in its path to get one file per zone",
                path.display(),
                uniq.iter().map(Fqdn::as_str).collect::<Vec<_>>().join(", ")
            );
        }
        let files = uniq
            .into_iter()
            .map(|zone| {
                ZoneFile::new(zonefile::Config {
                    path: template.replace("{zone}", zone.as_str()).into(),
                    zone,
                    default_ttl: 3600,
                    bump_serial,
                })
            })
            .collect();
        Ok(ZoneFiles {
            files,
            profile: Profile {
                concurrency: 1,
                ..Profile::default()
            },
        })
    }

    fn file_for(&self, name: &Fqdn) -> Result<&ZoneFile, ProviderError> {
        self.files
            .iter()
            .filter(|f| name.is_within(f.zone()))
            .max_by_key(|f| f.zone().as_str().len())
            .ok_or_else(|| {
                ProviderError::new(
                    "zonefile",
                    Operation::FindZone,
                    Some(name),
                    ErrorKind::ZoneNotFound,
                    "no configured zone file holds this name",
                )
            })
    }
}

#[async_trait::async_trait]
impl Provider for ZoneFiles {
    fn kind(&self) -> &'static str {
        "zonefile"
    }
    fn profile(&self) -> &Profile {
        &self.profile
    }
    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, ProviderError> {
        self.file_for(name)?.find_zone(name).await
    }
    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, ProviderError> {
        self.file_for(name)?.read_txt(zone, name).await
    }
    async fn replace_txt(
        &self,
        zone: &Zone,
        name: &Fqdn,
        set: &TxtSet,
    ) -> Result<(), ProviderError> {
        self.file_for(name)?.replace_txt(zone, name, set).await
    }
    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), ProviderError> {
        self.file_for(name)?.delete_txt(zone, name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Credential;

    struct Fixed;
    impl Credentials for Fixed {
        fn credential(&self, a: &Account) -> anyhow::Result<Secret> {
            Ok(Secret::new(match a.provider.code() {
                "rfc2136" => "c2VjcmV0LWtleQ==",
                "google" => {
                    let key = crate::keys::PrivateKey::generate(crate::keys::KeySpec::rsa(1024))?;
                    return Ok(Secret::new(
                        serde_json::json!({"type": "service_account", "project_id": "p",
                            "private_key_id": "k", "private_key": key.to_pem()?.as_str(),
                            "client_email": "a@p.iam.gserviceaccount.com",
                            "token_uri": "https://oauth2.googleapis.com/token"})
                        .to_string(),
                    ));
                }
                _ => "token",
            }))
        }
        fn aws(&self, _: &Account) -> anyhow::Result<route53::AwsCredentials> {
            Ok(route53::AwsCredentials {
                access_key_id: "AKID".into(),
                secret_access_key: Secret::new("s"),
                session_token: None,
            })
        }
    }

    #[test]
    fn every_provider_kind_connects_to_its_own_adapter() {
        let zone = [Fqdn::parse("example.com").unwrap()];
        let cases: Vec<(ProviderConfig, &str)> = vec![
            (
                ProviderConfig::PowerDns {
                    base_url: "http://127.0.0.1:8081/api/v1".into(),
                    server_id: "localhost".into(),
                },
                "powerdns",
            ),
            (
                ProviderConfig::Rfc2136 {
                    server: "127.0.0.1:53".parse().unwrap(),
                    key_name: "k".into(),
                    algorithm: "hmac-sha512".into(),
                },
                "rfc2136",
            ),
        ]
        .into_iter()
        .chain(
            [
                (CloudKind::Cloudflare, "cloudflare"),
                (CloudKind::Route53, "route53"),
                (CloudKind::DigitalOcean, "digitalocean"),
                (CloudKind::Hetzner, "hetzner"),
                (CloudKind::Gandi, "gandi"),
                (CloudKind::Desec, "desec"),
                (CloudKind::Google, "google"),
            ]
            .map(|(kind, code)| {
                (
                    ProviderConfig::Cloud {
                        kind,
                        base_url: Some("http://127.0.0.1:9/".into()),
                        project: None,
                        wait_insync: false,
                    },
                    code,
                )
            }),
        )
        .collect();
        for (provider, code) in cases {
            let account = Account {
                name: "a".into(),
                provider,
                credential: Credential {
                    env: "X".into(),
                    token_file: None,
                },
            };
            let p = connect(&account, &zone, &Fixed, RetryPolicy::fast())
                .unwrap_or_else(|e| panic!("{code}: {e:#}"));
            assert_eq!(p.kind(), code);
            assert_eq!(account.provider.code(), code);
        }
    }
}
