//! The netcup adapter's answer parsers (the envelope, its record list, the zone's
//! TTL): never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::hosts::netcup::{parse_envelope, parse_records, parse_zone_ttl};
use maildns_providers::{Fqdn, Operation};

fuzz_target!(|data: &[u8]| {
    let Ok(name) = Fqdn::parse("example.com") else {
        return;
    };
    if let Ok(envelope) = parse_envelope(data, &name, Operation::Read) {
        let _ = parse_records(&envelope.responsedata, &name, Operation::Read);
        let _ = parse_zone_ttl(&envelope.responsedata, &name);
    }
});
