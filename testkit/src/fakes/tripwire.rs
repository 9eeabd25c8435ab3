//! A tripwire for the broad endpoints a host offers and maildns must never call
//! (whole-zone or whole-type replacements, zone imports, domain deletion, any
//! command outside the few an adapter needs). A fake serves such a request as the
//! host would, records it here, and fails the test when it is dropped (or when the
//! test calls [`Tripwire::assert_untouched`]).

use std::sync::Mutex;

use super::common::lock;

/// Broad endpoints called so far, each as `METHOD path (why)`.
#[derive(Debug, Default)]
pub struct Tripwire {
    hits: Mutex<Vec<String>>,
    /// The host's name, for the failure message.
    host: &'static str,
}

impl Tripwire {
    /// A tripwire for `host`'s fake.
    pub fn new(host: &'static str) -> Tripwire {
        Tripwire {
            hits: Mutex::new(Vec::new()),
            host,
        }
    }

    /// Records that a broad endpoint was called.
    pub fn hit(&self, what: impl Into<String>) {
        lock(&self.hits).push(what.into());
    }

    /// The broad endpoints called so far.
    pub fn hits(&self) -> Vec<String> {
        lock(&self.hits).clone()
    }

    /// Takes the hits recorded so far (a test that calls a broad endpoint on
    /// purpose clears them this way).
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.hits))
    }

    /// Panics when any broad endpoint was called.
    pub fn assert_untouched(&self) {
        let hits = self.hits();
        assert!(
            hits.is_empty(),
            "the {} fake was called on endpoints maildns must never use: {hits:?}",
            self.host
        );
    }
}

impl Drop for Tripwire {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_untouched();
        }
    }
}
