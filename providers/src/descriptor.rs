//! Host descriptors: one TOML file per DNS host (`providers/hosts/<code>.toml`)
//! saying what the host documents — TXT limits, credentials, API base, links,
//! rate limits. Compiled in through the [`crate::registry`]; each adapter's
//! [`crate::Profile`] is built from its descriptor ([`Descriptor::profile`]), and
//! the README's provider table is generated from them ([`markdown_table`]).

use std::time::Duration;

use serde::Deserialize;

use crate::{Profile, RateLimit};

/// One host's descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Descriptor {
    /// Short code: the adapter's `Provider::kind()` and the config's `provider =`.
    pub code: String,
    /// Display name.
    pub name: String,
    /// One sentence on the host and how maildns talks to it.
    pub description: String,
    /// The host's home page.
    pub url: String,
    /// Default API base URL (empty for non-HTTP hosts).
    pub api_base: String,
    /// API reference.
    pub docs: String,
    /// Quirks worth knowing.
    #[serde(default)]
    pub notes: Option<String>,
    /// Documented TXT limits.
    pub txt: TxtLimits,
    /// The credential.
    pub credentials: Credentials,
    /// Rate limits and concurrency.
    pub limits: Limits,
}

/// Documented TXT limits (0 = none).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxtLimits {
    /// Bytes per character-string.
    pub max_string_bytes: usize,
    /// Bytes of a record's joined value (0: none).
    pub max_value_bytes: usize,
    /// Bytes of the encoded record as the host counts it (0: none).
    pub max_encoded_bytes: usize,
    /// The host keeps a record's strings as sent.
    pub multi_string: bool,
    /// The host splits long strings itself.
    pub auto_split: bool,
    /// Lowest TTL the host accepts, in seconds.
    pub min_ttl: u32,
    /// Highest TTL the host accepts, in seconds (0: none documented).
    #[serde(default)]
    pub max_ttl: u32,
    /// Only printable ASCII (0x20..=0x7e) is accepted.
    #[serde(default)]
    pub printable_ascii_only: bool,
    /// Bytes the host refuses or mangles inside TXT data.
    #[serde(default)]
    pub forbidden_bytes: Vec<u8>,
}

/// What the credential is and where maildns reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// What it is (empty: none needed).
    pub secret: String,
    /// Where it comes from.
    pub source: String,
}

/// Request limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Requests maildns keeps in flight.
    pub concurrency: usize,
    /// The documented rate limit, as text.
    pub rate_limit: String,
    /// The rate limit maildns keeps to: requests per [`Limits::per_seconds`].
    #[serde(default)]
    pub requests: Option<u32>,
    /// Window of the rate limit, in seconds.
    #[serde(default)]
    pub per_seconds: Option<u64>,
    /// The host's own authoritative servers serve a write at once (self-hosted
    /// PowerDNS, an RFC 2136 primary), so they are worth asking right after it.
    #[serde(default)]
    pub serves_at_once: bool,
    /// Every documented rate limit (`[[limits.rates]]`), e.g. deSEC's RRset
    /// writes per domain (2/s, 15/min, 100/h, 300/day) and reads (10/s, 50/min).
    #[serde(default)]
    pub rates: Vec<Rate>,
}

/// One documented rate limit (`[[limits.rates]]`): at most `requests` requests in
/// any window of `per_seconds` seconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Requests allowed per window.
    pub requests: u32,
    /// Window length, in seconds.
    pub per_seconds: u64,
    /// `"account"` (default): every request of the account; `"zone"`: each zone apart.
    #[serde(default)]
    pub scope: RateScope,
    /// `"all"` (default), `"writes"` (POST, PUT, PATCH, DELETE) or `"reads"` (GET, HEAD).
    #[serde(default)]
    pub methods: RateMethods,
}

/// What a rate limit counts the requests of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateScope {
    /// Every request of the account (API token).
    #[default]
    Account,
    /// Each zone (domain) apart.
    Zone,
}

/// Which requests a rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateMethods {
    /// Every request.
    #[default]
    All,
    /// POST, PUT, PATCH, DELETE.
    Writes,
    /// GET, HEAD.
    Reads,
}

impl Descriptor {
    /// Parses one descriptor file.
    ///
    /// # Errors
    /// The TOML does not parse or does not have the descriptor's shape.
    pub fn parse(text: &str) -> Result<Descriptor, toml::de::Error> {
        toml::from_str(text)
    }

    /// What the adapter enforces, as the descriptor documents it (`0` limits are none;
    /// a rate limit needs both `requests` and `per_seconds`).
    pub fn profile(&self) -> Profile {
        let some = |n: usize| (n != 0).then_some(n);
        Profile {
            max_string_bytes: self.txt.max_string_bytes,
            max_value_bytes: some(self.txt.max_value_bytes),
            max_encoded_bytes: some(self.txt.max_encoded_bytes),
            multi_string: self.txt.multi_string,
            auto_split: self.txt.auto_split,
            printable_ascii_only: self.txt.printable_ascii_only,
            forbidden_bytes: self.txt.forbidden_bytes.clone(),
            min_ttl: self.txt.min_ttl,
            max_ttl: (self.txt.max_ttl != 0).then_some(self.txt.max_ttl),
            rate_limit: match (self.limits.requests, self.limits.per_seconds) {
                (Some(requests), Some(per)) => Some(RateLimit {
                    requests,
                    per: Duration::from_secs(per),
                }),
                _ => None,
            },
            concurrency: self.limits.concurrency,
            serves_at_once: self.limits.serves_at_once,
        }
    }
}

/// Every registered host's descriptor, parsed, in [`crate::registry::HOSTS`] order.
///
/// # Errors
/// The first descriptor that does not parse, with its host's kind.
pub fn all() -> Result<Vec<Descriptor>, crate::Error> {
    crate::registry::HOSTS
        .iter()
        .map(|h| h.descriptor().cloned())
        .collect()
}

/// The README's provider table, generated from the descriptors.
pub fn markdown_table(descriptors: &[Descriptor]) -> String {
    let none = |n: usize| {
        if n == 0 {
            "—".to_string()
        } else {
            n.to_string()
        }
    };
    let mut out = String::from(
        "| provider | host | TXT per string | per value | encoded | keeps split | host splits | concurrency | rate limit | credential |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for d in descriptors {
        out.push_str(&format!(
            "| `{}` | [{}]({}) | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            d.code,
            d.name,
            d.docs,
            d.txt.max_string_bytes,
            none(d.txt.max_value_bytes),
            none(d.txt.max_encoded_bytes),
            if d.txt.multi_string { "yes" } else { "no" },
            if d.txt.auto_split { "yes" } else { "no" },
            d.limits.concurrency,
            if d.limits.rate_limit.is_empty() {
                "not documented"
            } else {
                &d.limits.rate_limit
            },
            if d.credentials.secret.is_empty() {
                "none"
            } else {
                &d.credentials.secret
            },
        ));
    }
    out
}
