//! The ovh adapter's answer parsers (a record, a quoted target): never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::hosts::ovh::{parse_record, target_value};
use maildns_providers::{Fqdn, Operation};

fuzz_target!(|data: &[u8]| {
    let Ok(name) = Fqdn::parse("example.com") else {
        return;
    };
    let _ = parse_record(data, &name, &name, Operation::Read);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = target_value(text);
    }
});
