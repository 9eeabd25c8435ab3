//! The hetzner adapter's answer parser: never panics; what it accepts holds only
//! well-formed TXT records (at most 255 bytes per string).
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::Fqdn;
use maildns_providers::hosts::hetzner::parse_rrset;

fuzz_target!(|data: &[u8]| {
    let Ok(name) = Fqdn::parse("example.com") else {
        return;
    };
    if let Ok(Some(set)) = parse_rrset(data, &name) {
        for r in &set.records {
            assert!(r.strings().iter().all(|s| s.len() <= 255));
        }
    }
});
