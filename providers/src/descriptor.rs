//! Host descriptors: one TOML file per DNS host (`providers/hosts/<code>.toml`)
//! saying what the host documents — TXT limits, credentials, API base, links,
//! rate limits. Compiled in through the [`crate::registry`]; each adapter's
//! [`crate::Profile`] is built from its descriptor ([`Descriptor::profile`]), and
//! the README's provider table is generated from them ([`markdown_table`]).

use std::time::Duration;

use serde::Deserialize;

use crate::{Profile, RateLimit, RateMethods, RateScope};

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
    /// What was confirmed in the host's own documentation (each with its source).
    #[serde(default)]
    pub confirmed: Vec<String>,
    /// What could not be confirmed there (each with the evidence used instead).
    #[serde(default)]
    pub unconfirmed: Vec<String>,
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
    /// How `min_ttl` is known: `"hint"` (default: not documented, never
    /// enforced), `"host"` (documented or refused by the host: enforced) or
    /// `"per_zone"` (the zone's own, read from the host).
    #[serde(default)]
    pub min_ttl_source: crate::MinTtlSource,
    /// Highest TTL the host accepts, in seconds (0: none documented).
    #[serde(default)]
    pub max_ttl: u32,
    /// The only TTLs the host keeps as given, in seconds (empty: any TTL
    /// between the minimum and the maximum); Linode rounds every other.
    #[serde(default)]
    pub ttl_values: Vec<u32>,
    /// Only printable ASCII (0x20..=0x7e) is accepted.
    #[serde(default)]
    pub printable_ascii_only: bool,
    /// Bytes the host refuses or mangles inside TXT data.
    #[serde(default)]
    pub forbidden_bytes: Vec<u8>,
    /// Bytes the host drops from the start and the end of a value.
    #[serde(default)]
    pub edge_bytes_dropped: Vec<u8>,
    /// The host refuses an empty value.
    #[serde(default)]
    pub empty_refused: bool,
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
    /// The documented rate limit, as text (for the README table).
    pub rate_limit: String,
    /// Shorthand for one account-wide limit on every request: requests per
    /// [`Limits::per_seconds`] (kept beside [`Limits::rates`]).
    #[serde(default)]
    pub requests: Option<u32>,
    /// Window of the shorthand limit, in seconds.
    #[serde(default)]
    pub per_seconds: Option<u64>,
    /// Every documented limit maildns keeps to, all at once (`[[limits.rates]]`).
    #[serde(default)]
    pub rates: Vec<Rate>,
    /// The host's own authoritative servers serve a write at once (self-hosted
    /// PowerDNS, an RFC 2136 primary), so they are worth asking right after it.
    #[serde(default)]
    pub serves_at_once: bool,
    /// How long after a write the host's servers serve it, when the host publishes
    /// on a schedule or after a refresh (Linode's ~15-minute cycle), in seconds;
    /// `None` when it publishes at once.
    #[serde(default)]
    pub publish_delay_seconds: Option<u64>,
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
            min_ttl_source: self.txt.min_ttl_source,
            rate_limits: self.limits.rate_limits(),
            max_ttl: (self.txt.max_ttl != 0).then_some(self.txt.max_ttl),
            ttl_values: self.txt.ttl_values.clone(),
            concurrency: self.limits.concurrency,
            serves_at_once: self.limits.serves_at_once,
            edge_bytes_dropped: self.txt.edge_bytes_dropped.clone(),
            empty_refused: self.txt.empty_refused,
            publish_delay: self.limits.publish_delay_seconds.map(Duration::from_secs),
        }
    }
}

impl Limits {
    /// The limits maildns keeps to: the `requests`/`per_seconds` shorthand (when
    /// both are set) then every `[[limits.rates]]`; a limit of 0 requests or a
    /// 0-second window is left out (not a limit anyone documents).
    pub fn rate_limits(&self) -> Vec<RateLimit> {
        let shorthand = match (self.requests, self.per_seconds) {
            (Some(requests), Some(per)) => Some(Rate {
                requests,
                per_seconds: per,
                scope: RateScope::Account,
                methods: RateMethods::All,
            }),
            _ => None,
        };
        shorthand
            .iter()
            .chain(&self.rates)
            .filter(|r| r.requests > 0 && r.per_seconds > 0)
            .map(|r| RateLimit {
                requests: r.requests,
                per: Duration::from_secs(r.per_seconds),
                scope: r.scope,
                methods: r.methods,
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    const DESEC_LIKE: &str = r#"
code = "x"
name = "X"
description = "d"
url = "https://x.example/"
api_base = "https://x.example/api"
docs = "https://x.example/docs"
[txt]
max_string_bytes = 255
max_value_bytes = 0
max_encoded_bytes = 0
multi_string = true
auto_split = true
min_ttl = 3600
[credentials]
secret = "token"
source = "env"
[limits]
concurrency = 1
rate_limit = "RRset writes 2/s, 15/min, 100/h, 300/day per domain; reads 10/s, 50/min"
[[limits.rates]]
requests = 2
per_seconds = 1
scope = "zone"
methods = "writes"
[[limits.rates]]
requests = 300
per_seconds = 86400
scope = "zone"
methods = "writes"
[[limits.rates]]
requests = 50
per_seconds = 60
methods = "reads"
"#;

    #[test]
    fn rates_list_with_scope_and_methods() {
        let d = Descriptor::parse(DESEC_LIKE).unwrap();
        let p = d.profile();
        assert_eq!(
            p.rate_limits,
            vec![
                RateLimit {
                    requests: 2,
                    per: Duration::from_secs(1),
                    scope: RateScope::Zone,
                    methods: RateMethods::Writes,
                },
                RateLimit {
                    requests: 300,
                    per: Duration::from_secs(86400),
                    scope: RateScope::Zone,
                    methods: RateMethods::Writes,
                },
                RateLimit {
                    requests: 50,
                    per: Duration::from_secs(60),
                    scope: RateScope::Account,
                    methods: RateMethods::Reads,
                },
            ]
        );
    }

    #[test]
    fn shorthand_still_works_and_bad_scope_is_refused() {
        let text = DESEC_LIKE.replace(
            "concurrency = 1\n",
            "concurrency = 1\nrequests = 5\nper_seconds = 1\n",
        );
        let p = Descriptor::parse(&text).unwrap().profile();
        assert_eq!(
            p.rate_limits[0],
            RateLimit::account(5, Duration::from_secs(1))
        );
        assert_eq!(p.rate_limits.len(), 4);
        let bad = DESEC_LIKE.replacen("scope = \"zone\"", "scope = \"domain\"", 1);
        let e = Descriptor::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("unknown variant `domain`"), "{e}");
    }
}
