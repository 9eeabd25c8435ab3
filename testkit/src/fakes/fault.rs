//! Fault injection for every HTTP fake: failures queued by a test and answered,
//! one per request, instead of serving it. Each fake turns a [`Fault`] into its
//! host's own error envelope (status, body, `Retry-After`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// A failure a fake will answer with instead of serving the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and the host's documented body for it.
    Status(u16),
    /// Answer with the host's rate-limit error and `Retry-After: secs`.
    Throttle {
        /// Seconds sent in `Retry-After`.
        retry_after: u64,
    },
}

impl Fault {
    /// The HTTP status answered: the injected one, or 429 for [`Fault::Throttle`]
    /// (hosts whose throttling answer uses another status map it themselves).
    pub fn status(self) -> u16 {
        match self {
            Fault::Status(s) => s,
            Fault::Throttle { .. } => 429,
        }
    }

    /// Seconds to send in `Retry-After`, for [`Fault::Throttle`].
    pub fn retry_after(self) -> Option<u64> {
        match self {
            Fault::Status(_) => None,
            Fault::Throttle { retry_after } => Some(retry_after),
        }
    }
}

/// Queued faults shared between a fake's handle and its server, consumed one per
/// request in the order queued.
#[derive(Debug, Default, Clone)]
pub struct Faults(Arc<Mutex<VecDeque<Fault>>>);

impl Faults {
    /// Queues `fault` for the next `n` requests.
    pub fn push(&self, fault: Fault, n: usize) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..n {
            q.push_back(fault);
        }
    }

    /// The next fault, if any (removed from the queue).
    pub fn take(&self) -> Option<Fault> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
    }
}
