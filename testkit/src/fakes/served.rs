//! What a fake host's name servers would serve: each fake turns its own stored
//! state (the published view where the host publishes later: Linode's lag,
//! OVH's refresh, IONOS's delay) into TXT RRsets, and a [`Mirror`] copies them
//! into a zone of a real PowerDNS, so the propagation watcher (which asks
//! authoritative servers over DNS) sees what the host serves.
//!
//! The view is read from the fake's state, never through an adapter, so a
//! value an adapter writes wrongly is served wrongly.

use std::collections::BTreeMap;
use std::time::Duration;

use maildns_providers::TxtRecord;

/// TXT RRsets by owner name (lowercase, no trailing dot): the TTL and each
/// record's value (its character-strings joined).
pub type ServedSets = BTreeMap<String, (u32, Vec<Vec<u8>>)>;

/// A fake that can say what its host's name servers serve.
pub trait ServedTxt: Send + Sync {
    /// Every TXT RRset the host serves in `zone` (no trailing dot) now.
    fn served_txt(&self, zone: &str) -> ServedSets;

    /// Every TXT record the host stores in `zone`, one line each in the
    /// host's own form (owner name and text as stored, TTL and the host's
    /// other record fields; record ids left out): what "untouched, byte for
    /// byte" is checked against.
    fn stored_txt(&self, zone: &str) -> Vec<String>;
}

/// The value a host serves for a stored TXT text: zone-file presentation
/// (`"a" "b"`, escapes) when the text starts with a quote and parses, else the
/// text itself (hosts that store the value unquoted).
pub fn wire_value(stored: &str) -> Vec<u8> {
    if stored.trim_start().starts_with('"')
        && let Some(strings) = super::common::lenient_strings(stored)
    {
        return strings.concat();
    }
    stored.as_bytes().to_vec()
}

/// `name` as an absolute lowercase owner name in `zone`: `@`, the empty
/// name and `zone` itself are the apex; a name ending in `.zone` or with a
/// trailing dot is absolute; anything else is relative to `zone`.
pub fn owner(zone: &str, name: &str) -> String {
    let zone = zone.trim_end_matches('.').to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    if name.is_empty() || name == "@" || name.trim_end_matches('.') == zone {
        return zone;
    }
    if let Some(abs) = name.strip_suffix('.') {
        return abs.to_string();
    }
    if name.ends_with(&format!(".{zone}")) {
        return name;
    }
    format!("{name}.{zone}")
}

/// Adds one served record to `sets` (the RRset's TTL is the lowest of its records').
pub fn add(sets: &mut ServedSets, zone: &str, name: &str, ttl: u32, value: Vec<u8>) {
    let e = sets.entry(owner(zone, name)).or_insert((ttl, Vec::new()));
    e.0 = e.0.min(ttl);
    e.1.push(value);
}

/// Copies what a fake serves into one zone of a real PowerDNS (created by the
/// caller), writing only the names that changed since the last copy.
pub struct Mirror {
    api_url: String,
    api_key: String,
    zone: String,
    last: ServedSets,
    client: reqwest::Client,
}

impl Mirror {
    /// A mirror into `zone` (no trailing dot) of the PowerDNS API at `api_url`.
    pub fn new(api_url: &str, api_key: &str, zone: &str) -> Mirror {
        Mirror {
            api_url: api_url.to_string(),
            api_key: api_key.to_string(),
            zone: zone.trim_end_matches('.').to_string(),
            last: ServedSets::new(),
            client: reqwest::Client::new(),
        }
    }

    /// Makes PowerDNS serve what `source` serves in the zone now; returns how
    /// many owner names changed. Retries PowerDNS's transient `database is
    /// locked` answers (several mirrors share one server).
    ///
    /// # Panics
    /// When PowerDNS refuses a change for another reason.
    pub async fn sync(&mut self, source: &dyn ServedTxt) -> usize {
        let now = source.served_txt(&self.zone);
        let mut rrsets = Vec::new();
        for (name, set) in &now {
            if self.last.get(name) != Some(set) {
                let records: Vec<serde_json::Value> = set
                    .1
                    .iter()
                    .map(|v| {
                        serde_json::json!({"content": TxtRecord::split_max(v, 255).to_presentation(), "disabled": false})
                    })
                    .collect();
                rrsets.push(
                    serde_json::json!({"name": format!("{name}."), "type": "TXT",
                    "ttl": set.0, "changetype": "REPLACE", "records": records}),
                );
            }
        }
        for name in self.last.keys().filter(|n| !now.contains_key(*n)) {
            rrsets.push(
                serde_json::json!({"name": format!("{name}."), "type": "TXT", "changetype": "DELETE"}),
            );
        }
        let changed = rrsets.len();
        if changed > 0 {
            self.patch(serde_json::json!({ "rrsets": rrsets })).await;
        }
        self.last = now;
        changed
    }

    async fn patch(&self, body: serde_json::Value) {
        let url = format!("{}/servers/localhost/zones/{}.", self.api_url, self.zone);
        let mut last = String::new();
        for _ in 0..50 {
            let r = self
                .client
                .patch(&url)
                .header("X-API-Key", &self.api_key)
                .json(&body)
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => return,
                Ok(r) if r.status().is_server_error() => {
                    last = r.text().await.unwrap_or_default();
                }
                Ok(r) => {
                    let status = r.status();
                    panic!(
                        "mirror into {}: PowerDNS refused {body}: {status} {}",
                        self.zone,
                        r.text().await.unwrap_or_default()
                    );
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("mirror into {}: PowerDNS kept failing: {last}", self.zone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_names_relative_and_absolute() {
        assert_eq!(owner("Example.com.", "@"), "example.com");
        assert_eq!(owner("example.com", ""), "example.com");
        assert_eq!(owner("example.com", "example.com"), "example.com");
        assert_eq!(owner("example.com", "_dmarc"), "_dmarc.example.com");
        assert_eq!(
            owner("example.com", "_dmarc.example.com."),
            "_dmarc.example.com"
        );
        assert_eq!(
            owner("example.com", "s._domainkey.example.com"),
            "s._domainkey.example.com"
        );
    }

    #[test]
    fn stored_texts_become_served_values() {
        assert_eq!(wire_value("\"v=spf1 \" \"-all\""), b"v=spf1 -all");
        assert_eq!(wire_value("\"a\\\"b\""), b"a\"b");
        assert_eq!(wire_value("v=DMARC1; p=none"), b"v=DMARC1; p=none");
    }
}
