//! The Route 53 adapter's answer parser (ListResourceRecordSets XML) and its TXT
//! `Value` parser: never panic; a value that parses formats back to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::hosts::route53::{format_value, parse_rrsets, parse_value};
use maildns_providers::{Fqdn, Operation};

fuzz_target!(|data: &[u8]| {
    let Ok(name) = Fqdn::parse("example.com") else {
        return;
    };
    let _ = parse_rrsets(data, &name, Operation::Read);
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(r) = parse_value(text)
    {
        assert_eq!(parse_value(&format_value(&r)).ok(), Some(r));
    }
});
