//! The RFC 2136 adapter's answer parser (DNS wire format): never panics; what it
//! accepts holds only well-formed TXT records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::Fqdn;
use maildns_providers::hosts::rfc2136::parse_answer;

fuzz_target!(|data: &[u8]| {
    let Ok(name) = Fqdn::parse("example.com") else {
        return;
    };
    if let Ok(Some(set)) = parse_answer(data, &name) {
        for r in &set.records {
            assert!(!r.strings().is_empty());
        }
    }
});
