//! The errors a store reports.

use std::time::Duration;

/// A boxed error from a store's client library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong at a session store.
///
/// Every variant says what to do about it; the [`SessionLayer`] in `tether` turns them
/// into a 503 response by default and logs them through `tracing`.
///
/// [`SessionLayer`]: https://docs.rs/tether
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store's backend could not be reached or failed; retrying later may succeed.
    #[error("session store unavailable: {context}{}", caused_by(source.as_deref()))]
    Unavailable {
        /// What the store was doing.
        context: String,
        /// The client library's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The store is configured wrongly (a malformed URL, a short secret, a directory of
    /// another user): fix the configuration; retrying cannot help.
    #[error("session store configuration: {0}")]
    Config(String),
    /// The store holds data it cannot decode (written by something else, or damaged).
    #[error("session record is corrupt: {0}")]
    Corrupt(String),
    /// The store cannot do this by design; see [`crate::Capabilities`].
    #[error("the {store} store does not support {operation}: {why}")]
    Unsupported {
        /// The store's name.
        store: &'static str,
        /// The refused operation.
        operation: &'static str,
        /// Why, and what to use instead.
        why: &'static str,
    },
    /// Lock mode: another request held the session's lock for the whole wait.
    #[error(
        "timed out after {0:?} waiting for the session lock held by another request; raise the lock wait or shorten the requests that hold it"
    )]
    LockTimeout(Duration),
    /// Two ids collided (2⁻¹²⁸ per pair: a broken random source, not bad luck).
    #[error("session id collision: the random source is not random")]
    IdCollision,
    /// The operating system could not provide random bytes for an id.
    #[error("the operating system could not provide randomness: {0}")]
    Randomness(String),
    /// The session does not fit the store (the cookie store's 4 KB limit, say).
    #[error("session too large: {size} bytes exceed the limit of {limit}")]
    TooLarge {
        /// The encoded size.
        size: usize,
        /// The store's limit.
        limit: usize,
    },
}

impl Error {
    /// A backend failure with context.
    ///
    /// ```
    /// let io = std::io::Error::other("connection refused");
    /// let err = tether_core::Error::unavailable("loading a session from redis://127.0.0.1:6379", io);
    /// assert!(err.to_string().contains("loading a session"));
    /// ```
    pub fn unavailable(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// The store did not answer within `limit` while doing `what`: the one rule for
    /// timeouts, which every store follows. A slow store is an unavailable one (`503`,
    /// retried), never "no session".
    ///
    /// ```
    /// let err = tether_core::Error::timed_out("loading a session at Redis 10.0.0.1", std::time::Duration::from_secs(2));
    /// assert!(err.is_transient());
    /// assert!(err.to_string().contains("did not answer within 2s"));
    /// ```
    pub fn timed_out(what: impl std::fmt::Display, limit: Duration) -> Self {
        Self::Unavailable {
            context: format!("{what}: no answer within {limit:?}"),
            source: Some(Box::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("did not answer within {limit:?}"),
            ))),
        }
    }

    /// A configuration mistake, with what to fix.
    ///
    /// ```
    /// let err = tether_core::Error::config("redis URL \"not a url\": expected redis://host:port");
    /// assert!(!err.is_transient());
    /// ```
    pub fn config(why: impl Into<String>) -> Self {
        Self::Config(why.into())
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::LockTimeout(_))
    }
}

fn caused_by(source: Option<&(dyn std::error::Error + Send + Sync + 'static)>) -> String {
    source.map(|e| format!(" ({e})")).unwrap_or_default()
}

/// The result of a store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
