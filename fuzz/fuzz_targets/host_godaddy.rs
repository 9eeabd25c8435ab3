//! The godaddy adapter's answer parser (the records at a name and type): never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::hosts::godaddy::parse_records;
use maildns_providers::{Fqdn, Operation};

fuzz_target!(|data: &[u8]| {
    let Ok(name) = Fqdn::parse("_dmarc.example.com") else {
        return;
    };
    let _ = parse_records(data, "_dmarc", &name, Operation::Read);
});
