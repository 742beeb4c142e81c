//! Whether anything sent on the invalidation channel is still unread: what lets a
//! pushed read be served at once without missing a write that completed before it
//! began.
//!
//! Redis writes a broadcast invalidation to every tracking connection before it
//! writes the reply of the write that caused it (in one turn of its event loop, the
//! invalidations first). So when a write has completed, its invalidation is already
//! in this instance's socket buffer, or read and applied. A read that finds the
//! channel quiet (no byte waiting in the socket, none read and not yet applied) has
//! every invalidation of every write completed before it; one that does not waits
//! for a fence.

/// A store's check that its invalidation channel has nothing unread (see the module
/// docs). Cheap: a read calls it every time (Redis: one non-blocking `MSG_PEEK` per
/// tracking connection).
pub trait Quiet: Send + Sync + 'static {
    /// `true` when every byte the server sent on the channel so far has been read
    /// and applied; `false` when in doubt.
    fn quiet(&self) -> bool;
}
