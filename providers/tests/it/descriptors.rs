//! Every host descriptor parses, matches its adapter's declared profile, and the
//! README's provider table is the one generated from them.

use std::time::Duration;

use maildns_providers::descriptor::{self, Descriptor};
use maildns_providers::hosts::*;
use maildns_providers::http::RetryPolicy;
use maildns_providers::{Fqdn, Profile, Provider, Secret};

fn profile_of(code: &str) -> Profile {
    let p = RetryPolicy::fast();
    let tok = || Secret::new("t");
    match code {
        "zonefile" => zonefile::ZoneFile::new(zonefile::Config {
            path: "/nonexistent".into(),
            zone: Fqdn::parse("example.com").unwrap(),
            default_ttl: 3600,
            bump_serial: true,
        })
        .profile()
        .clone(),
        "powerdns" => powerdns::PowerDns::default_profile(),
        "rfc2136" => {
            let mut c = rfc2136::Config::new(
                "127.0.0.1:53".parse().unwrap(),
                "k",
                rfc2136::TsigAlgorithm::HmacSha256,
                Secret::new("AAAA"),
            );
            c.timeout = Duration::from_secs(1);
            rfc2136::Rfc2136::new(c).unwrap().profile().clone()
        }
        "cloudflare" => cloudflare::Cloudflare::new(cloudflare::Config::new(tok()), p)
            .unwrap()
            .profile()
            .clone(),
        "digitalocean" => digitalocean::DigitalOcean::new(digitalocean::Config::new(tok()), p)
            .unwrap()
            .profile()
            .clone(),
        "hetzner" => hetzner::Hetzner::new(hetzner::Config::new(tok()), p)
            .unwrap()
            .profile()
            .clone(),
        "desec" => desec::Desec::new(desec::Config::new(tok()), p)
            .unwrap()
            .profile()
            .clone(),
        "gandi" => gandi::Gandi::new(gandi::Config::new(tok()), p)
            .unwrap()
            .profile()
            .clone(),
        "google" => google::profile(),
        "route53" => route53::profile(),
        other => panic!("no adapter for descriptor {other}"),
    }
}

#[test]
fn descriptors_parse_and_match_the_adapters() {
    let all: Vec<Descriptor> = descriptor::all().expect("descriptors parse");
    assert_eq!(all.len(), descriptor::SOURCES.len());
    for (d, (code, _)) in all.iter().zip(descriptor::SOURCES) {
        assert_eq!(d.code, code, "file name and code agree");
        let p = profile_of(&d.code);
        let ctx = format!("descriptor {} vs adapter profile", d.code);
        assert_eq!(
            d.txt.max_string_bytes, p.max_string_bytes,
            "{ctx}: max_string_bytes"
        );
        assert_eq!(
            d.txt.max_value_bytes,
            p.max_value_bytes.unwrap_or(0),
            "{ctx}: max_value_bytes"
        );
        assert_eq!(
            d.txt.max_encoded_bytes,
            p.max_encoded_bytes.unwrap_or(0),
            "{ctx}: max_encoded_bytes"
        );
        assert_eq!(d.txt.multi_string, p.multi_string, "{ctx}: multi_string");
        assert_eq!(d.txt.auto_split, p.auto_split, "{ctx}: auto_split");
        assert_eq!(d.limits.concurrency, p.concurrency, "{ctx}: concurrency");
        assert!(
            d.api_base.is_empty() || d.api_base.starts_with("http"),
            "{ctx}: api_base"
        );
    }
}

#[test]
fn readme_provider_table_is_generated_from_the_descriptors() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let table = descriptor::markdown_table(&descriptor::all().unwrap());
    assert!(
        readme.contains(&table),
        "README.md's provider table is out of date; replace it with:\n{table}"
    );
}
