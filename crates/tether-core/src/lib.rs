//! The session contract shared by every tether store.
//!
//! This crate talks to no store or network: it defines what a session is ([`Id`], [`Record`],
//! [`Changes`]), what a store must do ([`SessionStore`]), how it fails ([`Error`]),
//! and the pieces stores share (the capacity policy [`SessionLimits`], the lock pacing
//! [`LockWait`], the handle of a background task [`Background`]), and the one piece of
//! file handling every store with secrets shares ([`private_file`]: key files and
//! session databases that only their owner can read, created exclusively).
//! Stores depend on it alone (plus their client library); the `tether` crate puts them
//! behind a Tower layer.

mod at_rest;
mod background;
mod cached;
mod capabilities;
mod error;
mod id;
pub mod keys;
mod lifetime;
mod limits;
mod lock_wait;
mod near_cache;
mod opened;
pub mod private_file;
mod record;
mod revocation;
mod store;

pub use at_rest::HashedIds;
pub use background::Background;
pub use cached::CachedStore;
pub use capabilities::Capabilities;
pub use error::{BoxError, Error, Result};
pub use id::{ID_BYTES, ID_LEN, Id, IdText, InvalidId, fill_random};
pub use lifetime::Lifetime;
pub use limits::{SessionLimits, sessions_beyond_cap};
pub use lock_wait::LockWait;
pub use near_cache::{
    Barrier, Echo, Feed, Freshness, Invalidator, Lookup, NearCache, NearCacheConfig,
    NearCacheStats, Quiet, Ticket,
};
pub use opened::OpenedCache;
pub use record::{Changes, Expiry, Record, SessionInfo, Touch, unix_ms};
pub use revocation::NotBefore;
pub use store::{ClientStore, Created, LockOptions, LockToken, Saved, SessionStore};

pub use async_trait::async_trait;

/// A store URL with any password replaced, for logs and error messages.
///
/// ```
/// assert_eq!(tether_core::redact_url("redis://:hunter2@10.0.0.1:6379/0"), "redis://…@10.0.0.1:6379/0");
/// assert_eq!(tether_core::redact_url("redis://127.0.0.1"), "redis://127.0.0.1");
/// ```
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
