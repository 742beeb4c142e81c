//! `Capabilities`: what a store can do beyond the core operations.

use crate::Id;

/// What a store can do beyond the core operations every store supports.
///
/// A store that lacks a capability refuses the matching operations with
/// [`Error::Unsupported`](crate::Error::Unsupported); it never pretends.
///
/// ```
/// use tether_core::Capabilities;
/// assert!(Capabilities::ALL.user_index && Capabilities::ALL.locking);
/// assert_eq!(Capabilities::ALL.size_limit, None);
/// let memory_like = Capabilities::ALL.in_process();
/// assert!(memory_like.in_process && !Capabilities::ALL.in_process);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
// Independent yes/no facts about a store, each set by its own builder method.
#[allow(clippy::struct_excessive_bools)]
pub struct Capabilities {
    /// Lists and deletes a user's sessions, caps them per user.
    pub user_index: bool,
    /// Per-session locks for strict read-modify-write.
    pub locking: bool,
    /// The largest record the store can hold, if it has a limit (the cookie store's
    /// 4 KB): a larger one is refused with [`Error::TooLarge`](crate::Error::TooLarge), never truncated.
    pub size_limit: Option<usize>,
    /// Keeps sessions in this process's memory only: nothing it holds can be read
    /// from outside the process, so the layer gives it the presented ids as they are.
    /// Every other store is given keys at rest ([`Id::at_rest`], through
    /// [`HashedIds`](crate::HashedIds)).
    pub in_process: bool,
    /// Hashes the ids it is given itself ([`HashedIds`](crate::HashedIds)): the layer
    /// gives it presented ids, and does not wrap it again.
    pub keys_at_rest: bool,
}

impl Capabilities {
    /// Everything, without a size limit.
    pub const ALL: Self = Self {
        user_index: true,
        locking: true,
        size_limit: None,
        in_process: false,
        keys_at_rest: false,
    };

    /// Nothing beyond the core operations, and the given size limit.
    pub const fn minimal(size_limit: Option<usize>) -> Self {
        Self {
            user_index: false,
            locking: false,
            size_limit,
            in_process: false,
            keys_at_rest: false,
        }
    }

    /// With or without the user index.
    #[must_use]
    pub const fn with_user_index(mut self, user_index: bool) -> Self {
        self.user_index = user_index;
        self
    }

    /// With or without locks.
    #[must_use]
    pub const fn with_locking(mut self, locking: bool) -> Self {
        self.locking = locking;
        self
    }

    /// With a size limit.
    #[must_use]
    pub const fn with_size_limit(mut self, size_limit: Option<usize>) -> Self {
        self.size_limit = size_limit;
        self
    }

    /// Marked as keeping sessions in this process only ([`Capabilities::in_process`]).
    #[must_use]
    pub const fn in_process(mut self) -> Self {
        self.in_process = true;
        self
    }

    /// The id to give a store with these capabilities for the session `id`: `id`
    /// itself when the store keeps sessions in process or hashes ids itself, else
    /// [`Id::at_rest`].
    ///
    /// ```
    /// use tether_core::{Capabilities, Id};
    /// let id = Id::generate()?;
    /// assert_eq!(Capabilities::ALL.key(&id), id.at_rest());
    /// assert_eq!(Capabilities::ALL.in_process().key(&id), id);
    /// # Ok::<(), tether_core::Error>(())
    /// ```
    pub fn key(&self, id: &Id) -> Id {
        if self.in_process || self.keys_at_rest {
            *id
        } else {
            id.at_rest()
        }
    }

    /// Marked as hashing the ids it is given ([`Capabilities::keys_at_rest`]).
    #[must_use]
    pub const fn keys_at_rest(mut self) -> Self {
        self.keys_at_rest = true;
        self
    }
}
