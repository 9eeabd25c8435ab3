//! Turns configured accounts into connected [`Provider`]s.
//!
//! Credentials are looked up here, at the face's request, through
//! [`crate::secrets`]; adapters receive them typed and never read the environment.

use std::collections::BTreeMap;
use std::sync::Arc;

use maildns_providers::hosts::{manual, route53};
use maildns_providers::http::RetryPolicy;
use maildns_providers::registry::{Credential, CredentialKind, Settings};
use maildns_providers::{
    ApplyError, ApplyTraits, Error as ProviderError, ErrorKind, Fqdn, LimitError, Profile,
    Provider, Secret, TxtChange, TxtSet, Zone, ZoneRequests, ZoneSets,
};

use crate::config::{Account, Config};
use crate::secrets::SecretError;

/// Where credentials come from (the process environment, snapshotted at the face).
pub trait Credentials: Send + Sync {
    /// The credential of `account`.
    ///
    /// # Errors
    /// A [`SecretError`] when no credential is found (listing the places
    /// looked at) or a place holding one cannot be read.
    fn credential(&self, account: &Account) -> Result<Secret, SecretError>;

    /// AWS credentials (environment variables, then the shared credentials file).
    ///
    /// # Errors
    /// A [`SecretError`] (typically [`SecretError::NoAwsCredentials`]).
    fn aws(&self, account: &Account) -> Result<route53::AwsCredentials, SecretError>;
}

/// Why an account could not be connected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The account's credential could not be had. The message is complete on
    /// its own (account, then what the lookup said), as it is logged per
    /// account without its chain.
    #[error("account '{account}': {error}")]
    Credential {
        /// The account.
        account: String,
        /// What the lookup said.
        error: SecretError,
    },
    /// The host's constructor refused the settings or credential.
    #[error(transparent)]
    Host(#[from] ProviderError),
}

impl ConnectError {
    /// What went wrong, without the account's name (for a line that names it already).
    pub fn reason(&self) -> String {
        match self {
            ConnectError::Credential { error, .. } => error.to_string(),
            ConnectError::Host(e) => e.to_string(),
        }
    }
}

/// Connected accounts by name.
pub type Providers = BTreeMap<String, Arc<dyn Provider>>;

/// Connects every account that some domain uses. An account that cannot be set up
/// is reported and left out, so the other accounts' domains still run.
pub fn connect_all(
    config: &Config,
    creds: &dyn Credentials,
    retry: RetryPolicy,
) -> (Providers, Vec<(String, ConnectError)>) {
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
        let connected = if account.provider.code() == manual::KIND {
            connect_manual(config, account)
        } else {
            connect(account, &used, creds, retry)
        };
        match connected {
            Ok(p) => {
                ok.insert(name.clone(), p);
            }
            Err(e) => failed.push((name.clone(), e)),
        }
    }
    (ok, failed)
}

/// Connects one account through the providers crate's host registry; `zones` are
/// the zones its domains live in (the zone-file target names its files by them).
/// The adapter's errors carry a hint naming this account's credential and
/// maildns's commands ([`help_for`]).
///
/// # Errors
/// [`ConnectError::Credential`] when the account's credential cannot be had;
/// [`ConnectError::Host`] when the adapter refuses its settings (with the hint).
pub fn connect(
    account: &Account,
    zones: &[Fqdn],
    creds: &dyn Credentials,
    retry: RetryPolicy,
) -> Result<Arc<dyn Provider>, ConnectError> {
    let host = account.provider.host;
    let named = |error| ConnectError::Credential {
        account: account.name.clone(),
        error,
    };
    let credential = match host.credential {
        CredentialKind::None => Credential::None,
        CredentialKind::Secret => Credential::Secret(creds.credential(account).map_err(named)?),
        CredentialKind::Aws => Credential::Aws(creds.aws(account).map_err(named)?),
    };
    let settings = Settings {
        zones: zones.to_vec(),
        ..account.provider.settings.clone()
    };
    let inner = (host.connect)(&settings, credential, retry).map_err(|e| helped(account, e))?;
    Ok(Arc::new(AccountProvider {
        inner,
        account: account.clone(),
    }))
}

/// Connects a `manual` account: its reads go to the authoritative servers of
/// its domains' zones ([`crate::manual::AuthoritativeReader`]).
///
/// # Errors
/// [`ConnectError::Host`] when its settings are refused (a relative notify path).
pub fn connect_manual(
    config: &Config,
    account: &Account,
) -> Result<Arc<dyn Provider>, ConnectError> {
    let manual_config = manual::Config::from_settings(&account.provider.settings)
        .map_err(|e| helped(account, e))?;
    let reader = Arc::new(crate::manual::AuthoritativeReader::new(
        config,
        &account.name,
    ));
    let inner: Arc<dyn Provider> =
        Arc::new(manual::Manual::new(manual_config, reader).map_err(|e| helped(account, e))?);
    Ok(Arc::new(AccountProvider {
        inner,
        account: account.clone(),
    }))
}

/// What the user should check after `kind` of failure on `account`, naming the
/// account's real credential variable and maildns's own commands; `None` where the
/// providers crate's generic hint says enough.
pub fn help_for(account: &Account, kind: &ErrorKind) -> Option<String> {
    let name = &account.name;
    match kind {
        ErrorKind::Auth => Some(match account.provider.host.credential {
            CredentialKind::Aws => "check the account's credential: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or the shared credentials file (AWS_PROFILE)".to_string(),
            _ => {
                let file = match &account.credential.token_file {
                    Some(f) => format!(", then token_file {}", f.display()),
                    None => String::new(),
                };
                let tsig = if account.provider.code() == "rfc2136" {
                    " (and the account's key_name and algorithm)"
                } else {
                    ""
                };
                format!(
                    "check the account's credential{tsig}: maildns reads ${}, then $CREDENTIALS_DIRECTORY/{name}, then the OS keyring (`maildns secret set {name}`){file}",
                    account.credential.env
                )
            }
        }),
        // Only a value too long for the host fits the key-size hint (DKIM keys
        // are the long values maildns writes); a refused byte says why itself.
        ErrorKind::Limit(
            LimitError::StringTooLong { .. }
            | LimitError::ValueTooLong { .. }
            | LimitError::EncodedTooLong { .. }
            | LimitError::SingleStringOnly { .. }
            | LimitError::SetTooLong { .. },
        ) => Some(
            "use 1024-bit keys for this host (dkim.bits = 1024), or run `maildns diagnose` to measure what it holds".to_string(),
        ),
        _ => None,
    }
}

fn helped(account: &Account, e: ProviderError) -> ProviderError {
    use maildns_providers::hosts::namecheap;
    if e.provider == namecheap::KIND
        && e.kind == ErrorKind::Config
        && e.message.contains(namecheap::OPT_IN_SETTING)
    {
        return e.with_help(format!(
            "account '{}' does not allow it: add {} = true to [accounts.{}] only if every write may rewrite the domain's whole host list at Namecheap",
            account.name,
            namecheap::OPT_IN_SETTING,
            account.name
        ));
    }
    match help_for(account, &e.kind) {
        Some(h) => e.with_help(h),
        None => e,
    }
}

/// A connected account: its adapter, whose errors gain [`help_for`]'s hint.
struct AccountProvider {
    inner: Arc<dyn Provider>,
    account: Account,
}

#[async_trait::async_trait]
impl Provider for AccountProvider {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn profile(&self) -> &Profile {
        self.inner.profile()
    }
    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, ProviderError> {
        let r = self.inner.find_zone(name).await;
        r.map_err(|e| helped(&self.account, e))
    }
    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, ProviderError> {
        let r = self.inner.read_txt(zone, name).await;
        r.map_err(|e| helped(&self.account, e))
    }
    async fn replace_txt(
        &self,
        zone: &Zone,
        name: &Fqdn,
        set: &TxtSet,
    ) -> Result<(), ProviderError> {
        let r = self.inner.replace_txt(zone, name, set).await;
        r.map_err(|e| helped(&self.account, e))
    }
    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), ProviderError> {
        let r = self.inner.delete_txt(zone, name).await;
        r.map_err(|e| helped(&self.account, e))
    }
    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        self.inner.zone_for(apex)
    }
    fn apply_traits(&self) -> ApplyTraits {
        self.inner.apply_traits()
    }
    fn apply_traits_for(&self, changes: &[TxtChange]) -> ApplyTraits {
        self.inner.apply_traits_for(changes)
    }
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, ProviderError> {
        let r = self.inner.read_sets(zone, names).await;
        r.map_err(|e| helped(&self.account, e))
    }
    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        let r = self.inner.apply(zone, changes).await;
        r.map_err(|e| ApplyError {
            written: e.written,
            error: helped(&self.account, e.error),
        })
    }
    async fn replace_if_unchanged(
        &self,
        zone: &Zone,
        change: &TxtChange,
    ) -> Result<(), ProviderError> {
        let r = self.inner.replace_if_unchanged(zone, change).await;
        r.map_err(|e| helped(&self.account, e))
    }
    fn rate_limits_seen(&self) -> Vec<(String, String)> {
        self.inner.rate_limits_seen()
    }
    fn requests_per_zone(&self, names: usize, changed: usize) -> ZoneRequests {
        self.inner.requests_per_zone(names, changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Credentials for Fixed {
        fn credential(&self, a: &Account) -> Result<Secret, SecretError> {
            Ok(Secret::new(match a.provider.code() {
                "rfc2136" => "c2VjcmV0LWtleQ==",
                // Two-part secrets (`PART1:PART2`).
                "porkbun" | "netcup" | "ovh" => "key-part:secret-part",
                "ionos" => "prefix.secret-part",
                "google" => {
                    let key = crate::keys::PrivateKey::generate(crate::keys::KeySpec::rsa(1024))
                        .expect("test key");
                    return Ok(Secret::new(
                        serde_json::json!({"type": "service_account", "project_id": "p",
                            "private_key_id": "k", "private_key": key.to_pem().expect("pem").as_str(),
                            "client_email": "a@p.iam.gserviceaccount.com",
                            "token_uri": "https://oauth2.googleapis.com/token"})
                        .to_string(),
                    ));
                }
                "godaddy" => "key:secret",
                _ => "token",
            }))
        }
        fn aws(&self, _: &Account) -> Result<route53::AwsCredentials, SecretError> {
            Ok(route53::AwsCredentials {
                access_key_id: "AKID".into(),
                secret_access_key: Secret::new("s"),
                session_token: None,
            })
        }
    }

    fn account_from(toml_account: &str) -> Account {
        let text = format!(
            "[accounts.a]\n{toml_account}\n[domains.\"example.com\"]\naccount = \"a\"\nspf = \"v=spf1 -all\"\n"
        );
        let c = crate::config::parse(&text, std::path::Path::new("/etc/maildns/maildns.toml"))
            .unwrap_or_else(|e| panic!("{toml_account}: {e}"));
        c.accounts["a"].clone()
    }

    /// The registry, the config's accepted `provider = ...` kinds and the
    /// descriptors agree by construction: every registered kind, configured with
    /// only the settings the registry says it requires (at their example values),
    /// is accepted by the config and connects to the adapter of that kind.
    #[test]
    fn every_registered_kind_is_accepted_by_the_config_and_connects() {
        let zone = [Fqdn::parse("example.com").unwrap()];
        for host in &maildns_providers::registry::HOSTS {
            let mut toml_account = format!("provider = \"{}\"\n", host.kind);
            for r in host.required {
                // A program must exist at load: the example's path does not here.
                let value = if r.key == "command" {
                    "[\"/bin/sh\"]"
                } else {
                    r.example
                };
                toml_account.push_str(&format!("{} = {}\n", r.key, value));
            }
            let account = account_from(&toml_account);
            assert_eq!(account.provider.code(), host.kind);
            assert_eq!(
                account.provider.needs_credential(),
                host.credential != CredentialKind::None
            );
            let p = connect(&account, &zone, &Fixed, RetryPolicy::fast())
                .unwrap_or_else(|e| panic!("{}: {e:#}", host.kind));
            assert_eq!(p.kind(), host.kind);
            assert_eq!(p.profile(), &host.profile().unwrap(), "{}", host.kind);
            // Leaving out any required setting is a config error naming it.
            for r in host.required {
                let without: String = toml_account
                    .lines()
                    .filter(|l| !l.starts_with(&format!("{} =", r.key)))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let text = format!(
                    "[accounts.a]\n{without}\n[domains.\"example.com\"]\naccount = \"a\"\nspf = \"v=spf1 -all\"\n"
                );
                let e = crate::config::parse(&text, std::path::Path::new("/m.toml"))
                    .unwrap_err()
                    .to_string();
                assert!(
                    e.contains(&format!(
                        "accounts.a.{}: provider '{}' needs {}",
                        r.key, host.kind, r.key
                    )),
                    "{e}"
                );
            }
        }
        let e = crate::config::parse(
            "[accounts.a]\nprovider = \"nosuch\"\n",
            std::path::Path::new("/m.toml"),
        )
        .unwrap_err()
        .to_string();
        let kinds: Vec<&str> = maildns_providers::registry::kinds().collect();
        assert!(e.contains(&format!("one of {}", kinds.join(", "))), "{e}");
    }

    /// The account wrapper hands the change-set methods to the adapter: its
    /// guarantees and zone naming are the adapter's, not the trait's defaults.
    #[test]
    fn a_connected_account_keeps_the_adapters_change_set_behaviour() {
        let zone = [Fqdn::parse("example.com").unwrap()];
        let account = account_from(
            "provider = \"exec\"\ncommand = [\"/bin/true\"]\natomic = true\ncompare_and_swap = true",
        );
        let p = connect(&account, &zone, &Fixed, RetryPolicy::fast()).unwrap();
        assert_eq!(
            p.apply_traits(),
            ApplyTraits {
                atomic: true,
                compare_and_swap: true,
                deferred: false
            }
        );
        assert_eq!(p.zone_for(&zone[0]).map(|z| z.name), Some(zone[0].clone()));
    }

    #[tokio::test]
    async fn a_namecheap_write_without_the_opt_in_names_the_account_and_the_setting() {
        let a = account_from(
            "provider = \"namecheap\"\napi_user = \"alice\"\nclient_ip = \"203.0.113.7\"",
        );
        let zone = Fqdn::parse("example.com").unwrap();
        let p = connect(&a, std::slice::from_ref(&zone), &Fixed, RetryPolicy::fast()).unwrap();
        let z = p.zone_for(&zone).unwrap_or(Zone {
            name: zone.clone(),
            id: zone.to_string(),
        });
        let set = TxtSet {
            ttl: 1800,
            records: vec![maildns_providers::TxtRecord::from_value("v=spf1 -all")],
        };
        let e = p
            .replace_txt(&z, &zone, &set)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("account 'a'")
                && e.contains("replace_whole_host_list = true to [accounts.a]")
                && e.contains("whole host list"),
            "{e}"
        );
        // With the opt-in the account is accepted as configured.
        let a = account_from(
            "provider = \"namecheap\"\napi_user = \"alice\"\nclient_ip = \"203.0.113.7\"\nreplace_whole_host_list = true",
        );
        assert_eq!(a.provider.settings.replace_whole_host_list, Some(true));
    }

    #[test]
    fn hints_name_the_accounts_own_variable_and_maildns_commands() {
        let a = account_from("provider = \"cloudflare\"");
        let h = help_for(&a, &ErrorKind::Auth).unwrap();
        assert!(
            h.contains("$MAILDNS_A_TOKEN") && h.contains("`maildns secret set a`"),
            "{h}"
        );
        let a = account_from("provider = \"cloudflare\"\ntoken_env = \"CF_API\"");
        let h = help_for(&a, &ErrorKind::Auth).unwrap();
        assert!(
            h.contains("$CF_API") && !h.contains("MAILDNS_A_TOKEN"),
            "{h}"
        );
        let limit =
            ErrorKind::Limit(maildns_providers::LimitError::EncodedTooLong { len: 800, max: 509 });
        // The hint the DigitalOcean adapter's refusal used to carry, now added here.
        let h = help_for(&a, &limit).unwrap();
        assert!(
            h.contains("1024-bit") && h.contains("maildns diagnose"),
            "{h}"
        );
        assert_eq!(help_for(&a, &ErrorKind::Server), None);
    }
}
