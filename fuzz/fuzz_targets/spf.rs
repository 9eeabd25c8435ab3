//! SPF parser: never panics; what parses lints and round-trips through Display.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns::records::spf::{Spf, is_spf, lint_name};
use maildns_providers::TxtRecord;

fuzz_target!(|data: &[u8]| {
    let _ = is_spf(data);
    let _ = lint_name(&[TxtRecord::from_value(data)]);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spf) = Spf::parse(text) {
        let _ = spf.lint();
        let _ = spf.lookup_targets();
        let again = Spf::parse(&spf.to_string()).expect("printed record must reparse");
        assert_eq!(again, spf);
        assert_eq!(spf.to_txt().value(), spf.to_string().into_bytes());
    }
});
