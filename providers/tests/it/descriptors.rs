//! The host registry, the descriptors and the adapters agree by construction:
//! every registered kind has a descriptor naming it, builds from minimal settings,
//! and enforces the profile its descriptor documents; the README's provider table
//! is the one generated from the descriptors.

use maildns_providers::descriptor;
use maildns_providers::hosts::route53;
use maildns_providers::http::RetryPolicy;
use maildns_providers::registry::{
    self, Credential, CredentialKind, HOSTS, Host, Settings, host, kinds,
};
use maildns_providers::{ErrorKind, Fqdn, RateLimit, Secret};
use maildns_testkit::fakes::google::TestServiceAccount;

fn minimal(h: &Host) -> (Settings, Credential) {
    let mut s = Settings {
        zones: vec![Fqdn::parse("example.com").unwrap()],
        ..Settings::default()
    };
    for r in h.required {
        match r.key {
            "path" => s.path = Some("/nonexistent/{zone}.zone".into()),
            "base_url" => s.base_url = Some("http://127.0.0.1:9/api/v1".into()),
            "server" => s.server = Some("127.0.0.1:53".parse().unwrap()),
            "key_name" => s.key_name = Some("maildns".into()),
            "command" => s.command = Some(vec!["/usr/local/bin/dns-host".into()]),
            other => panic!("{}: no minimal value for required {other}", h.kind),
        }
        assert!(s.is_set(r.key), "{}: {} is a Settings field", h.kind, r.key);
        assert!(!r.example.is_empty());
    }
    let cred = match h.credential {
        CredentialKind::None => Credential::None,
        CredentialKind::Aws => Credential::Aws(route53::AwsCredentials {
            access_key_id: "AKID".into(),
            secret_access_key: Secret::new("s"),
            session_token: None,
        }),
        CredentialKind::Secret if h.kind == "google" => Credential::Secret(Secret::new(
            TestServiceAccount::generate("a@p.iam.gserviceaccount.com", 1024)
                .json("p", "https://oauth2.googleapis.com/token"),
        )),
        CredentialKind::Secret => Credential::Secret(Secret::new("c2VjcmV0LWtleQ==")),
    };
    (s, cred)
}

#[test]
fn every_registered_kind_builds_from_minimal_settings_with_its_descriptors_profile() {
    let mut seen = Vec::new();
    for h in &HOSTS {
        assert!(!seen.contains(&h.kind), "{} registered twice", h.kind);
        seen.push(h.kind);
        let d = h.descriptor().unwrap_or_else(|e| panic!("{}: {e}", h.kind));
        assert_eq!(d.code, h.kind, "descriptor and registry agree");
        assert!(
            d.api_base.is_empty() || d.api_base.starts_with("http"),
            "{}: api_base",
            h.kind
        );
        let (s, c) = minimal(h);
        let p =
            (h.connect)(&s, c, RetryPolicy::fast()).unwrap_or_else(|e| panic!("{}: {e}", h.kind));
        assert_eq!(p.kind(), h.kind, "the adapter reports its registered kind");
        assert_eq!(
            p.profile(),
            &d.profile(),
            "{}: profile from the descriptor",
            h.kind
        );
        assert_eq!(host(h.kind), Some(h));
    }
    assert_eq!(kinds().collect::<Vec<_>>(), seen);
    assert_eq!(
        seen,
        [
            "zonefile",
            "powerdns",
            "rfc2136",
            "cloudflare",
            "route53",
            "digitalocean",
            "hetzner",
            "gandi",
            "desec",
            "google",
            "exec",
            "manual"
        ]
    );
    assert_eq!(host("nosuchhost"), None);
    assert_eq!(descriptor::all().unwrap().len(), HOSTS.len());
}

#[test]
fn a_required_setting_left_out_is_a_config_error() {
    let mut checked = 0;
    for h in HOSTS.iter().filter(|h| !h.required.is_empty()) {
        let (_, c) = minimal(h);
        let e = match (h.connect)(&Settings::default(), c, RetryPolicy::fast()) {
            Err(e) => e,
            Ok(_) => panic!("{} built without its required settings", h.kind),
        };
        assert_eq!(e.kind, ErrorKind::Config, "{}", h.kind);
        assert_eq!(e.provider, h.kind);
        checked += 1;
    }
    assert_eq!(
        checked, 4,
        "zonefile, powerdns, rfc2136 and exec need settings"
    );
    // A credential of the wrong kind is refused, not unwrapped.
    let e = match (registry::host("cloudflare").unwrap().connect)(
        &Settings::default(),
        Credential::None,
        RetryPolicy::fast(),
    ) {
        Err(e) => e,
        Ok(_) => panic!("cloudflare built without a token"),
    };
    assert_eq!(e.kind, ErrorKind::Config);
}

#[test]
fn descriptor_profiles_hold_the_documented_limits() {
    let p = host("digitalocean").unwrap().profile().unwrap();
    assert_eq!(p.max_encoded_bytes, Some(509));
    assert!(!p.multi_string && p.auto_split && p.printable_ascii_only);
    assert_eq!(p.forbidden_bytes, vec![b'\\']);
    assert_eq!(p.min_ttl, 30);
    let cf = host("cloudflare").unwrap().profile().unwrap();
    assert_eq!(cf.max_value_bytes, Some(4080));
    assert_eq!(
        cf.rate_limit,
        Some(RateLimit {
            requests: 1200,
            per: std::time::Duration::from_secs(300)
        })
    );
    assert_eq!(host("desec").unwrap().profile().unwrap().min_ttl, 3600);
    assert_eq!(
        host("route53")
            .unwrap()
            .profile()
            .unwrap()
            .max_encoded_bytes,
        Some(4000)
    );
    assert_eq!(host("zonefile").unwrap().profile().unwrap().concurrency, 1);
    assert_eq!(
        host("powerdns").unwrap().profile().unwrap().rate_limit,
        None
    );
    assert_eq!(host("rfc2136").unwrap().profile().unwrap().concurrency, 4);
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
