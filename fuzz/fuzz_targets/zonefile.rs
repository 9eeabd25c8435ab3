//! The zone-file reader (`read_records`, the zonefile adapter's reader): never
//! panics on any text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::Fqdn;
use maildns_providers::hosts::zonefile::read_records;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(zone) = Fqdn::parse("example.com") else {
        return;
    };
    if let Ok(records) = read_records(text, &zone) {
        for r in &records {
            let _ = (r.owner.to_string(), r.txt.as_ref().map(|t| t.to_presentation()));
        }
    }
});
