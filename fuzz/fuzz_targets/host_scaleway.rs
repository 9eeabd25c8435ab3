//! The scaleway adapter's answer parsers (a page of records, a quoted TXT
//! `data`): never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::hosts::scaleway::{decode_data, parse_records};
use maildns_providers::{Fqdn, Operation};

fuzz_target!(|data: &[u8]| {
    let Ok(name) = Fqdn::parse("_dmarc.example.com") else {
        return;
    };
    let _ = parse_records(data, "_dmarc", &name, Operation::Read);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode_data(text);
    }
});
