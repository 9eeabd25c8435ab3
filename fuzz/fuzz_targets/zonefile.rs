//! The zone-file reader (the zonefile adapter's `parse`): never panics; a TXT set it
//! finds can be asked for at any name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::Fqdn;
use maildns_providers::hosts::zonefile::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(zone) = Fqdn::parse("example.com") else {
        return;
    };
    if let Ok(parsed) = parse(text, &zone) {
        for name in ["example.com", "_dmarc.example.com", "s1._domainkey.example.com"] {
            if let Ok(n) = Fqdn::parse(name) {
                let _ = parsed.txt_set(&n);
            }
        }
    }
});
