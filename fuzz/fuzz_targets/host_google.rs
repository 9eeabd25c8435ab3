//! The Google Cloud DNS adapter's answer parser (rrsets list): never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::hosts::google::parse_rrsets;
use maildns_providers::{Fqdn, Operation};

fuzz_target!(|data: &[u8]| {
    let Ok(name) = Fqdn::parse("example.com") else {
        return;
    };
    if let Ok((Some(set), _next)) = parse_rrsets(data, &name, Operation::Read) {
        assert!(set.records.iter().all(|r| !r.strings().is_empty()));
    }
});
