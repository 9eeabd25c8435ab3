//! (being written)
/// x
pub struct Diagnosis;
/// x
pub struct SqliteStore;
/// x
pub struct StoreError;
/// x
pub trait Store {}
/// x
pub struct StoredEvent;
