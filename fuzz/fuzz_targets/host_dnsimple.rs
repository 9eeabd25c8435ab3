//! The dnsimple adapter's answer parsers (a page of records, `/whoami`, a
//! quoted TXT `content`): never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::hosts::dnsimple::{content_value, parse_records, parse_whoami};
use maildns_providers::{Fqdn, Operation};

fuzz_target!(|data: &[u8]| {
    let Ok(name) = Fqdn::parse("example.com") else {
        return;
    };
    let _ = parse_records(data, &name, Operation::Read);
    let _ = parse_whoami(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = content_value(text);
    }
});
