//! The namecheap adapter's XML answer parsers (getHosts, setHosts, getList):
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::hosts::namecheap::{parse_get_hosts, parse_get_list, parse_set_hosts};
use maildns_providers::{Fqdn, Operation};

fuzz_target!(|data: &[u8]| {
    let Ok(name) = Fqdn::parse("example.com") else {
        return;
    };
    let _ = parse_get_hosts(data, &name, Operation::Read);
    let _ = parse_set_hosts(data, &name, Operation::Replace);
    let _ = parse_get_list(data, &name, Operation::FindZone);
});
