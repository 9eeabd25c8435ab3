//! The one list of DNS hosts: for each kind (the config's `provider = "..."`),
//! its descriptor, the [`Profile`] built from that descriptor, the settings it
//! needs, the credential it takes, and the constructor that connects it.
//!
//! Adding a host means one module under [`crate::hosts`] (with its `HOST`
//! entry), one descriptor in `providers/hosts/<kind>.toml`, and one line in
//! [`HOSTS`]. The caller (maildns's config) reads account settings into the typed
//! [`Settings`], checks [`Host::required`], [`Host::accepts`] and
//! [`Host::problems`] when the configuration loads, obtains the [`Credential`] the host's
//! [`CredentialKind`] names, and calls [`Host::connect`].

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::descriptor::Descriptor;
use crate::hosts::dnsimple;
use crate::hosts::godaddy;
use crate::hosts::namecheap;
use crate::hosts::{azure, bunny, scaleway};
use crate::hosts::{
    cloudflare, desec, digitalocean, exec, gandi, google, hetzner, ionos, manual, netcup, porkbun,
    powerdns, rfc2136, route53, zonefile,
};
use crate::hosts::{linode, ovh, vultr};
use crate::http::RetryPolicy;
use crate::{Error, ErrorKind, Fqdn, Operation, Profile, Provider, Secret};

/// Every host maildns can drive, in the order the README's table lists them.
pub static HOSTS: [Host; 24] = [
    zonefile::HOST,
    powerdns::HOST,
    rfc2136::HOST,
    cloudflare::HOST,
    route53::HOST,
    digitalocean::HOST,
    hetzner::HOST,
    gandi::HOST,
    desec::HOST,
    google::HOST,
    exec::HOST,
    manual::HOST,
    azure::HOST,
    scaleway::HOST,
    bunny::HOST,
    ovh::HOST,
    linode::HOST,
    vultr::HOST,
    porkbun::HOST,
    netcup::HOST,
    ionos::HOST,
    dnsimple::HOST,
    namecheap::HOST,
    godaddy::HOST,
];

/// The host registered as `kind`.
pub fn host(kind: &str) -> Option<&'static Host> {
    HOSTS.iter().find(|h| h.kind == kind)
}

/// The kinds whose accounts read the setting `key`, in [`HOSTS`] order.
pub fn accepting(key: &str) -> impl Iterator<Item = &'static str> + '_ {
    HOSTS.iter().filter(move |h| h.accepts(key)).map(|h| h.kind)
}

/// Every registered kind, in [`HOSTS`] order.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    HOSTS.iter().map(|h| h.kind)
}

/// What credential a host takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// None (a local file).
    None,
    /// One secret: an API token, API key, TSIG secret or service-account key.
    Secret,
    /// An AWS access key.
    Aws,
}

/// The credential handed to [`Host::connect`], of the host's [`CredentialKind`].
#[derive(Debug, Clone)]
pub enum Credential {
    /// No credential.
    None,
    /// One secret.
    Secret(Secret),
    /// An AWS access key.
    Aws(route53::AwsCredentials),
}

impl Credential {
    /// The secret, or a configuration error for `kind` when another credential was given.
    pub(crate) fn secret(self, kind: &'static str) -> Result<Secret, Error> {
        match self {
            Credential::Secret(s) => Ok(s),
            _ => Err(settings_error(kind, "this host needs a secret credential")),
        }
    }
}

/// An account's settings for its host, typed (the caller parses and locates them).
/// Each host uses the fields it knows and ignores the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// The zones the account's domains live in (the zone-file target names its files by them).
    pub zones: Vec<Fqdn>,
    /// Zone file path; `{zone}` in it is replaced by each zone's name.
    pub path: Option<PathBuf>,
    /// Bump the SOA serial when the zone file holds it (default: yes).
    pub bump_serial: Option<bool>,
    /// API base URL (required for PowerDNS; an override for cloud hosts).
    pub base_url: Option<String>,
    /// PowerDNS server id (default `localhost`).
    pub server_id: Option<String>,
    /// RFC 2136 primary server.
    pub server: Option<std::net::SocketAddr>,
    /// RFC 2136 TSIG key name.
    pub key_name: Option<String>,
    /// RFC 2136 TSIG algorithm (default `hmac-sha256`).
    pub algorithm: Option<rfc2136::TsigAlgorithm>,
    /// Google Cloud project (default: the service account's).
    pub project: Option<String>,
    /// Wait for Route 53 changes to reach INSYNC (default: no).
    pub wait_insync: Option<bool>,
    /// The exec host's program and arguments (no shell).
    pub command: Option<Vec<String>>,
    /// The exec host's time limit for one run of its program.
    pub timeout: Option<std::time::Duration>,
    /// The exec host's program applies a change set all or nothing.
    pub atomic: Option<bool>,
    /// The exec host's program refuses a change whose old set it no longer holds.
    pub compare_and_swap: Option<bool>,
    /// The manual host's form for values (default one string).
    pub value_form: Option<manual::ValueForm>,
    /// The manual host's notify command (program and arguments, no shell).
    pub notify: Option<Vec<String>>,
    /// Azure: directory (tenant) id of the service principal.
    pub tenant_id: Option<String>,
    /// Azure: application (client) id of the service principal.
    pub client_id: Option<String>,
    /// Azure: subscription holding the zones' resource group.
    pub subscription_id: Option<String>,
    /// Azure: resource group holding the zones.
    pub resource_group: Option<String>,
    /// OAuth token endpoint override (Azure: Entra ID's; tests, sovereign clouds).
    pub token_url: Option<String>,
    /// OVHcloud application key (not secret; the secret is `APPLICATION_SECRET:CONSUMER_KEY`).
    pub application_key: Option<String>,
    /// OVHcloud API endpoint: `ovh-eu` (default), `ovh-ca` or `ovh-us`.
    pub endpoint: Option<String>,
    /// Netcup customer number (not a secret; the API key and password are).
    pub customer_number: Option<String>,
    /// DNSimple numeric account id (default: the account token's, from `/whoami`).
    pub account_id: Option<String>,
    /// Namecheap `ApiUser`.
    pub api_user: Option<String>,
    /// Namecheap `UserName` (default: `api_user`).
    pub username: Option<String>,
    /// Namecheap `ClientIp`: the whitelisted IPv4 address requests come from.
    pub client_ip: Option<String>,
    /// Namecheap: allow writes, each of which replaces the domain's whole host list.
    pub replace_whole_host_list: Option<bool>,
}

impl Settings {
    /// The text settings, each with its key ([`Settings`] field name).
    pub fn texts(&self) -> [(&'static str, Option<&str>); 16] {
        [
            ("base_url", self.base_url.as_deref()),
            ("server_id", self.server_id.as_deref()),
            ("key_name", self.key_name.as_deref()),
            ("project", self.project.as_deref()),
            ("tenant_id", self.tenant_id.as_deref()),
            ("client_id", self.client_id.as_deref()),
            ("subscription_id", self.subscription_id.as_deref()),
            ("resource_group", self.resource_group.as_deref()),
            ("token_url", self.token_url.as_deref()),
            ("application_key", self.application_key.as_deref()),
            ("endpoint", self.endpoint.as_deref()),
            ("customer_number", self.customer_number.as_deref()),
            ("account_id", self.account_id.as_deref()),
            ("api_user", self.api_user.as_deref()),
            ("username", self.username.as_deref()),
            ("client_ip", self.client_ip.as_deref()),
        ]
    }

    /// Whether the setting named `key` (a [`Settings`] field name) is given.
    pub fn is_set(&self, key: &str) -> bool {
        match key {
            "path" => self.path.is_some(),
            "bump_serial" => self.bump_serial.is_some(),
            "base_url" => self.base_url.is_some(),
            "server_id" => self.server_id.is_some(),
            "server" => self.server.is_some(),
            "key_name" => self.key_name.is_some(),
            "algorithm" => self.algorithm.is_some(),
            "project" => self.project.is_some(),
            "wait_insync" => self.wait_insync.is_some(),
            "command" => self.command.is_some(),
            "timeout" => self.timeout.is_some(),
            "atomic" => self.atomic.is_some(),
            "compare_and_swap" => self.compare_and_swap.is_some(),
            "value_form" => self.value_form.is_some(),
            "notify" => self.notify.is_some(),
            "tenant_id" => self.tenant_id.is_some(),
            "client_id" => self.client_id.is_some(),
            "subscription_id" => self.subscription_id.is_some(),
            "resource_group" => self.resource_group.is_some(),
            "token_url" => self.token_url.is_some(),
            "application_key" => self.application_key.is_some(),
            "endpoint" => self.endpoint.is_some(),
            "customer_number" => self.customer_number.is_some(),
            "account_id" => self.account_id.is_some(),
            "api_user" => self.api_user.is_some(),
            "username" => self.username.is_some(),
            "client_ip" => self.client_ip.is_some(),
            "replace_whole_host_list" => self.replace_whole_host_list.is_some(),
            _ => false,
        }
    }
}

/// A setting a host cannot do without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Required {
    /// Its [`Settings`] field name.
    pub key: &'static str,
    /// An example value, as TOML.
    pub example: &'static str,
}

/// A setting whose value a host refuses, found before connecting (at load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingProblem {
    /// Its [`Settings`] field name (the config key).
    pub key: &'static str,
    /// What is wrong with the value (settings hold no secrets, so the value may be quoted).
    pub message: String,
}

impl SettingProblem {
    /// A problem with `key`.
    pub fn new(key: &'static str, message: impl Into<String>) -> Self {
        SettingProblem {
            key,
            message: message.into(),
        }
    }
}

/// Checks the values of a host's settings with the same parsers its
/// constructor uses, so that a value the host would refuse is reported when
/// the configuration loads, not when the account first connects.
pub type Check = fn(&Settings) -> Vec<SettingProblem>;

/// A [`Check`] for hosts whose settings need none beyond their types.
pub fn no_check(_: &Settings) -> Vec<SettingProblem> {
    Vec::new()
}

/// The constructor of a host's adapter.
pub type Connect = fn(&Settings, Credential, RetryPolicy) -> Result<Arc<dyn Provider>, Error>;

/// One DNS host.
#[derive(Debug)]
pub struct Host {
    /// Short code: the adapter's [`Provider::kind`] and the config's `provider =`.
    pub kind: &'static str,
    /// The descriptor file's text (`providers/hosts/<kind>.toml`, compiled in).
    pub descriptor_toml: &'static str,
    /// The credential it takes.
    pub credential: CredentialKind,
    /// Settings it cannot do without, in the order they are reported missing.
    pub required: &'static [Required],
    /// Settings it reads besides the required ones; any other setting given to
    /// an account of this host is a configuration error.
    pub optional: &'static [&'static str],
    /// Checks the settings' values before connecting.
    pub check: Check,
    /// Builds the adapter.
    pub connect: Connect,
}

impl PartialEq for Host {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

impl Eq for Host {}

fn settings_error(kind: &'static str, message: impl Into<String>) -> Error {
    Error::new(
        kind,
        Operation::Authenticate,
        None,
        ErrorKind::Config,
        message,
    )
}

/// Descriptors parsed at first use, in [`HOSTS`] order.
fn parsed() -> &'static [Result<Descriptor, String>] {
    static PARSED: OnceLock<Vec<Result<Descriptor, String>>> = OnceLock::new();
    PARSED.get_or_init(|| {
        HOSTS
            .iter()
            .map(|h| Descriptor::parse(h.descriptor_toml).map_err(|e| e.to_string()))
            .collect()
    })
}

impl Host {
    /// The host's descriptor, parsed once.
    ///
    /// # Errors
    /// The compiled-in descriptor does not parse, or names another kind
    /// ([`ErrorKind::Config`]); the registry test makes sure none does.
    pub fn descriptor(&self) -> Result<&'static Descriptor, Error> {
        let at = HOSTS
            .iter()
            .position(|h| h.kind == self.kind)
            .ok_or_else(|| settings_error(self.kind, "host is not registered"))?;
        match &parsed()[at] {
            Ok(d) if d.code == self.kind => Ok(d),
            Ok(d) => Err(settings_error(
                self.kind,
                format!("the host descriptor says code = '{}'", d.code),
            )),
            Err(e) => Err(settings_error(
                self.kind,
                format!("the host descriptor does not parse: {e}"),
            )),
        }
    }

    /// Whether an account of this host reads the setting `key` ([`Settings`] field name).
    pub fn accepts(&self, key: &str) -> bool {
        self.required.iter().any(|r| r.key == key) || self.optional.contains(&key)
    }

    /// Every problem with the values of `settings` that connecting would
    /// report: a text setting written empty, a `base_url` that is not https (plain http only to loopback)
    /// and whatever the host's [`Check`] finds. Missing required settings and
    /// settings the host does not read are the caller's to report (it knows
    /// where they are written).
    pub fn problems(&self, settings: &Settings) -> Vec<SettingProblem> {
        // A setting written empty names nothing: an error, whichever host
        // (and the only one for the account: its other checks would only
        // repeat it).
        let empty: Vec<SettingProblem> = settings
            .texts()
            .into_iter()
            .filter(|(_, v)| v.is_some_and(|v| v.trim().is_empty()))
            .map(|(key, _)| SettingProblem::new(key, "is empty: give a value, or remove the key"))
            .collect();
        if !empty.is_empty() {
            return empty;
        }
        let mut out = Vec::new();
        if self.accepts("base_url")
            && let Some(url) = &settings.base_url
            && let Err(m) = crate::http::check_base_url(url)
        {
            out.push(SettingProblem::new("base_url", m));
        }
        out.extend((self.check)(settings));
        out
    }

    /// What the host can hold and how hard it may be driven, from its descriptor.
    ///
    /// # Errors
    /// As [`Host::descriptor`].
    pub fn profile(&self) -> Result<Profile, Error> {
        Ok(self.descriptor()?.profile())
    }
}

/// The profile of the host registered as `kind`, for its adapter's constructor.
pub(crate) fn profile(kind: &'static str) -> Result<Profile, Error> {
    host(kind)
        .ok_or_else(|| settings_error(kind, "host is not registered"))?
        .profile()
}

/// A required setting the caller did not check, as a configuration error.
pub(crate) fn missing(kind: &'static str, key: &str) -> Error {
    settings_error(kind, format!("the setting {key} is missing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings with every field given.
    fn every_setting() -> Settings {
        let s = || Some("x".to_string());
        Settings {
            zones: Vec::new(),
            path: Some(PathBuf::from("/z")),
            bump_serial: Some(true),
            base_url: s(),
            server_id: s(),
            server: Some("127.0.0.1:53".parse().unwrap()),
            key_name: s(),
            algorithm: Some(rfc2136::TsigAlgorithm::HmacSha256),
            project: s(),
            wait_insync: Some(true),
            command: Some(vec!["/bin/true".into()]),
            timeout: Some(std::time::Duration::from_secs(1)),
            atomic: Some(true),
            compare_and_swap: Some(true),
            value_form: Some(manual::ValueForm::OneString),
            notify: Some(vec!["/bin/true".into()]),
            tenant_id: s(),
            client_id: s(),
            subscription_id: s(),
            resource_group: s(),
            token_url: s(),
            application_key: s(),
            endpoint: s(),
            customer_number: s(),
            account_id: s(),
            api_user: s(),
            username: s(),
            client_ip: s(),
            replace_whole_host_list: Some(true),
        }
    }

    /// Every key a host declares (required or optional) is a [`Settings`]
    /// field: a misspelt key would make the config refuse a setting the host reads.
    #[test]
    fn declared_keys_are_settings_fields() {
        let all = every_setting();
        for h in &HOSTS {
            for key in h
                .required
                .iter()
                .map(|r| r.key)
                .chain(h.optional.iter().copied())
            {
                assert!(all.is_set(key), "{}: {key} is not a Settings field", h.kind);
            }
        }
    }

    /// `accepting` names the hosts that read a key.
    #[test]
    fn accepting_names_the_hosts_that_read_a_key() {
        assert_eq!(accepting("tenant_id").collect::<Vec<_>>(), ["azure"]);
        assert_eq!(accepting("client_ip").collect::<Vec<_>>(), ["namecheap"]);
        assert!(accepting("base_url").count() > 15);
        assert_eq!(accepting("nosuch").count(), 0);
        let h = host("cloudflare").unwrap();
        assert!(h.accepts("base_url") && !h.accepts("tenant_id"));
    }

    #[test]
    fn problems_use_the_constructors_parsers() {
        let azure = host("azure").unwrap();
        let mut s = Settings {
            tenant_id: Some("a b".into()),
            token_url: Some("ftp://x/".into()),
            ..Settings::default()
        };
        let keys: Vec<&str> = azure.problems(&s).iter().map(|p| p.key).collect();
        assert_eq!(keys, ["tenant_id", "token_url"]);
        s.base_url = Some("http://example.net/".into());
        let p = host("cloudflare").unwrap().problems(&s);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "base_url");
        s.base_url = Some("http://127.0.0.1:8080/".into());
        assert!(host("cloudflare").unwrap().problems(&s).is_empty());
        let nc = Settings {
            client_ip: Some("203.0.113.7".into()),
            api_user: Some("alice".into()),
            ..Settings::default()
        };
        assert!(host("namecheap").unwrap().problems(&nc).is_empty());
    }
}
