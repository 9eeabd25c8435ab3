//! The exec host's answer parser: never panics; what it accepts holds only
//! well-formed TXT records (at most 255 bytes per string) for the names asked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::Fqdn;
use maildns_providers::hosts::exec::{parse_answer, parse_sets};

fuzz_target!(|data: &[u8]| {
    let (Ok(a), Ok(b)) = (Fqdn::parse("example.com"), Fqdn::parse("_dmarc.example.com")) else {
        return;
    };
    let Ok(answer) = parse_answer(data) else {
        return;
    };
    if let Ok(sets) = parse_sets(&answer, &[a, b]) {
        assert_eq!(sets.len(), 2);
        for set in sets.values().flatten() {
            for r in &set.records {
                assert!(r.strings().iter().all(|s| s.len() <= 255));
            }
        }
    }
});
