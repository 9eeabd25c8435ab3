//! The one list of DNS hosts: for each kind (the config's `provider = "..."`),
//! its descriptor, the [`Profile`] built from that descriptor, the settings it
//! needs, the credential it takes, and the constructor that connects it.
//!
//! Adding a host means one module under [`crate::hosts`] (with its `HOST`
//! entry), one descriptor in `providers/hosts/<kind>.toml`, and one line in
//! [`HOSTS`]. The caller (maildns's config) reads account settings into the typed
//! [`Settings`], checks [`Host::required`], obtains the [`Credential`] the host's
//! [`CredentialKind`] names, and calls [`Host::connect`].

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::descriptor::Descriptor;
use crate::hosts::{
    cloudflare, desec, digitalocean, exec, gandi, google, hetzner, manual, powerdns, rfc2136,
    route53, zonefile,
};
use crate::http::RetryPolicy;
use crate::{Error, ErrorKind, Fqdn, Operation, Profile, Provider, Secret};

/// Every host maildns can drive, in the order the README's table lists them.
pub static HOSTS: [Host; 12] = [
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
];

/// The host registered as `kind`.
pub fn host(kind: &str) -> Option<&'static Host> {
    HOSTS.iter().find(|h| h.kind == kind)
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
}

impl Settings {
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
