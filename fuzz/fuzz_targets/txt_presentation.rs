//! Presentation-format parser: never panics; what parses presents and reparses to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::TxtRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = TxtRecord::parse_presentation_bytes(data) {
        let text = record.to_presentation();
        let back = TxtRecord::parse_presentation(&text).expect("presented record must reparse");
        assert_eq!(back, record);
        assert!(record.strings().iter().all(|s| s.len() <= 255));
    }
});
