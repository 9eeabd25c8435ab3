//! DMARC parser: never panics; what parses lints and round-trips through Display.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns::records::dmarc::{Dmarc, is_dmarc};
use maildns_providers::Fqdn;

fuzz_target!(|data: &[u8]| {
    let _ = is_dmarc(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(dmarc) = Dmarc::parse(text) {
        let _ = dmarc.lint();
        if let Ok(domain) = Fqdn::parse("example.com") {
            let _ = dmarc.external_destinations(&domain);
        }
        let again = Dmarc::parse(&dmarc.to_string()).expect("printed record must reparse");
        assert_eq!(again, dmarc);
    }
});
