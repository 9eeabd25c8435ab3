//! OpenDKIM KeyTable and SigningTable parsers: never panic; what parses renders to
//! text that parses again to the same table (lines maildns does not own kept as they are).
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns::signer::opendkim::{KeyTable, SigningTable};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = KeyTable::parse(text) {
        for e in t.entries() {
            let _ = t.get(&e.name);
        }
        let again = KeyTable::parse(&t.render()).expect("rendered key.table must reparse");
        assert_eq!(again.entries().count(), t.entries().count());
    }
    if let Ok(t) = SigningTable::parse(text) {
        let _ = t.lookup("user@example.com");
        let again = SigningTable::parse(&t.render()).expect("rendered signing.table must reparse");
        assert_eq!(again.entries().count(), t.entries().count());
    }
});
