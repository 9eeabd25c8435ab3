//! DKIM key rotation: a pure state machine ([`machine`]) and the persistent
//! state it works on ([`store`]).
//!
//! # Lifecycle of one key (per domain and algorithm)
//!
//! ```text
//! Planned -GenerateKey-> Generated -PublishKey-> Published
//!   -AwaitPropagation{Present}-> Propagated --(safe_after <= now)-SwitchSigner-> Switched
//!   -ConfirmSigner-> Active            (the previous Active key becomes Retiring)
//!   ... rotation_interval after activation a new key is Planned ...
//! Retiring --(retired_at + overlap <= now)-RevokeKey|UnpublishKey-> Withdrawing
//!   -AwaitPropagation{Revoked|Absent}-> Withdrawn
//!   -[(withdrawal_safe_after <= now)-PublishPrivateKey-> Disclosed]-DeletePrivateKey-> Destroyed
//! ```
//!
//! A signer switch that fails its pre-reload checks puts the key in
//! `SwitchFailed`: the algorithm is blocked ([`machine::Action::Failed`] on
//! every step, shown by `status`), nothing of it is removed, and the signer
//! keeps the old key until an operator calls [`machine::unblock`]. A switch is
//! confirmed only by a probe signature (see [`runner`]); until then the key
//! stays `Switched` and a probe that shows another key holds it
//! ([`machine::KeyRecord::held`], [`machine::BlockKind::NotSigning`]), retried
//! with backoff. Retirement steps are held the same way while a probe shows the
//! signer still signing with the old key ([`machine::BlockKind::StillSigning`]),
//! and the daemon's periodic probe records drift of active keys
//! ([`machine::BlockKind::Drift`]). The first key of a domain (bootstrap) takes
//! the same path without a previous key to retire.
//!
//! Selectors come from a strftime format (default `%Y%m`, as in the seed),
//! with a suffix `a`, `b`, ... on collision, and are never reused within
//! 12 months. Defaults: rotate 30 days after activation, keep the old record
//! 14 days (at least 5), revoke with an empty `p=`, delete the private key.
//! When the DNS host cannot hold the configured RSA size
//! (`max_bits_for_host`), the key falls back to a size that fits, never below
//! 1024 bits, with a warning and an event.
//!
//! # Invariants (checked by the tests, over random observation sequences and crashes)
//!
//! - The signer is never switched to a key before the watcher saw every
//!   authoritative server serve it and its `safe_after` time has passed.
//! - The record of a key the signer may be using (active, or switched but not
//!   yet confirmed, or failed to switch) is never revoked or removed.
//! - A private key is never deleted or disclosed before it has stopped
//!   signing and its record has been withdrawn everywhere; it is never
//!   disclosed before the withdrawal's safe-after time (resolvers may serve a
//!   cached copy of the full record for the previous TTL).
//! - At most one key pending and one signing per domain and algorithm.
//! - Steps are deterministic; a step on the state it produced, with no new
//!   observation, asks for the same actions (so a crash between saving and
//!   performing only repeats idempotent actions).
//!
//! # The runner's loop
//!
//! ```text
//! let _store = SqliteStore::open_locked(state_dir)?;      // one driver per store
//! loop {
//!     let state = store.load(&domain)?;
//!     let d = machine::step(&state, &observations, clock.now(), &policy);
//!     store.save(&d.state, &d.events)?;                     // one transaction
//!     observations = perform each of d.work() (idempotently) -> Observation;
//!     if observations.is_empty() { sleep until d.wait_until() / next_due() }
//! }
//! ```

pub mod actions;
pub mod adopt;
pub mod keyring;
pub mod machine;
mod perform;
pub mod policy;
pub mod runner;
pub mod schedule;
pub mod selector;
pub mod state;
pub mod status;
pub mod store;
pub mod strength;

pub use machine::{
    Action, AdoptError, Algorithm, BlockKind, Blocked, Decision, Disposal, DomainState, Event,
    Expect, KeyRecord, KeySpec, KeyStatus, Observation, Policy, PolicyError, PolicySettings,
    Scheduled, ScheduledAction, Selector, Verdict, Warning, Withdrawal, adopt, check_invariants,
    next_due, retry_held, rotate_now, schedule, step, unblock,
};
pub use runner::{Performed, RunOutcome, Runner, RunnerError, Start};
pub use store::{
    Diagnosis, LedgerChange, LedgerEntry, PgOptions, PgStore, Request, SqliteStore, Store,
    StoreError, StoredEvent,
};
