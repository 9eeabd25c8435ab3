//! DKIM key record parsers: never panic; what parses lints and round-trips through Display.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns::records::dkim::{DkimKey, is_dkim, parse_opendkim_txt};

fuzz_target!(|data: &[u8]| {
    let _ = is_dkim(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_opendkim_txt(text);
    if let Ok((key, _warnings)) = DkimKey::parse_lenient(text) {
        let _ = key.lint();
        let _ = key.key_bits();
        let again = DkimKey::parse(&key.to_string()).expect("printed record must reparse");
        assert_eq!(again, key);
        let txt = key.to_txt();
        assert!(txt.strings().iter().all(|s| s.len() <= 255));
        assert_eq!(txt.value(), key.to_string().into_bytes());
    }
});
