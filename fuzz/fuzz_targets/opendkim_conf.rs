//! opendkim.conf parser: never panics, whatever the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns::signer::opendkim::OpenDkimConf;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = OpenDkimConf::parse(text) {
        let _ = c.user_and_group();
        let _ = c.key_table.as_ref().and_then(|t| t.path());
        let _ = c.signing_table.as_ref().and_then(|t| t.path());
    }
});
