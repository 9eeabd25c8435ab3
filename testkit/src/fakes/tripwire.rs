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
    /// What the failure says before the hits.
    message: String,
}

impl Tripwire {
    /// A tripwire for `host`'s fake.
    pub fn new(host: &'static str) -> Tripwire {
        Tripwire::saying(format!(
            "the {host} fake was called on endpoints maildns must never use"
        ))
    }

    /// A tripwire whose failure says `message`, then the hits.
    pub fn saying(message: impl Into<String>) -> Tripwire {
        Tripwire {
            hits: Mutex::new(Vec::new()),
            message: message.into(),
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
        assert!(hits.is_empty(), "{}: {hits:?}", self.message);
    }

    /// The check a fake makes when the test drops it (on the test's thread,
    /// where a panic fails the test): panics when any broad endpoint was
    /// called, unless the test is already failing. The hits are taken, so
    /// the tripwire's own drop stays quiet.
    pub fn check_on_drop(&self) {
        let hits = self.take();
        if !hits.is_empty() && !std::thread::panicking() {
            panic!("{}: {hits:?}", self.message);
        }
    }
}

impl Drop for Tripwire {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_untouched();
        }
    }
}
