//! Host descriptors: one TOML file per DNS host (`providers/hosts/<code>.toml`)
//! saying what the host documents — TXT limits, credentials, API base, links,
//! rate limits. Compiled in, so `maildns` can list them; a test checks each one
//! against its adapter's declared [`crate::Profile`] and the README's table.

use serde::Deserialize;

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
}

/// The descriptor files, compiled in.
pub const SOURCES: [(&str, &str); 10] = [
    ("zonefile", include_str!("../hosts/zonefile.toml")),
    ("powerdns", include_str!("../hosts/powerdns.toml")),
    ("rfc2136", include_str!("../hosts/rfc2136.toml")),
    ("cloudflare", include_str!("../hosts/cloudflare.toml")),
    ("route53", include_str!("../hosts/route53.toml")),
    ("digitalocean", include_str!("../hosts/digitalocean.toml")),
    ("hetzner", include_str!("../hosts/hetzner.toml")),
    ("gandi", include_str!("../hosts/gandi.toml")),
    ("desec", include_str!("../hosts/desec.toml")),
    ("google", include_str!("../hosts/google.toml")),
];

/// Every descriptor, parsed, in [`SOURCES`] order.
pub fn all() -> Result<Vec<Descriptor>, toml::de::Error> {
    SOURCES.iter().map(|(_, s)| toml::from_str(s)).collect()
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
