//! What a near cache promises, how much it holds, and what it reports.

/// What a cached read promises about writes made on other instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Freshness {
    /// A read sees every write that completed, on any instance, before the read
    /// began, as an uncached store does: before a cached record is served, a fence
    /// sent after the read began comes back through the invalidation channel (a
    /// `PING` on Redis's tracking connection, a query on PostgreSQL's `LISTEN` connection). One
    /// fence is in flight at a time and serves every read that arrived before it was
    /// sent, so under load a round trip covers many reads, and it carries no session
    /// data.
    #[default]
    Fenced,
    /// A cached record is served at once, with no round trip, when the store's
    /// channel has nothing unread ([`Quiet`](crate::Quiet): Redis over TCP peeks at
    /// its tracking sockets), and after a fence otherwise. Redis writes an
    /// invalidation to every tracking connection before the reply of the write that
    /// caused it, so a read that begins after a write completed finds that
    /// invalidation applied or waiting: on one host it is never stale; between hosts,
    /// as long as the invalidation's packets are not held up longer than the writer's
    /// reply, its response and the next request together (a lost packet's
    /// retransmission can). Where the store cannot tell (Redis over TLS or a Unix
    /// socket; PostgreSQL, whose notifications follow a signal with no such order), a
    /// write completed on another instance is seen once its invalidation arrived,
    /// and a read in between finds the old record. Each write waits for its own
    /// invalidation to come back before answering ([`NearCacheConfig::echo_wait`]),
    /// which keeps that window short.
    Pushed,
}

/// How much a near cache may hold.
///
/// ```
/// let config = tether_core::NearCacheConfig::default().with_max_entries(10_000).with_max_bytes(8 << 20);
/// assert_eq!(config.max_entries, 10_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearCacheConfig {
    /// The most sessions kept (default 100,000); the least recently used go first.
    pub max_entries: u64,
    /// The most bytes kept, as estimated from each record's data (default 64 MiB).
    pub max_bytes: u64,
    /// How long a write through the cached store waits, after the store's reply, for
    /// its own invalidation to come back from the server (default 250 ms; it comes
    /// within a millisecond on one network). Once it came, every other instance has
    /// been sent its copy, so the next request a browser sends, to any instance, does
    /// not find the old record. Zero answers at once.
    pub echo_wait: std::time::Duration,
    /// What a read promises (default [`Freshness::Fenced`]).
    pub freshness: Freshness,
}

impl Default for NearCacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            max_bytes: 64 << 20,
            echo_wait: std::time::Duration::from_millis(250),
            freshness: Freshness::Fenced,
        }
    }
}

impl NearCacheConfig {
    /// At most `max_entries` sessions.
    #[must_use]
    pub fn with_max_entries(mut self, max_entries: u64) -> Self {
        self.max_entries = max_entries.max(1);
        self
    }

    /// What a read promises.
    #[must_use]
    pub fn with_freshness(mut self, freshness: Freshness) -> Self {
        self.freshness = freshness;
        self
    }

    /// Waits at most `echo_wait` for a write's own invalidation (zero: not at all;
    /// only [`Freshness::Pushed`] waits).
    #[must_use]
    pub fn with_echo_wait(mut self, echo_wait: std::time::Duration) -> Self {
        self.echo_wait = echo_wait;
        self
    }

    /// At most `max_bytes` bytes of records.
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes.max(1);
        self
    }
}

/// What a near cache did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearCacheStats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that asked the store while the cache was live.
    pub misses: u64,
    /// Reads that asked the store because the channel was not live.
    pub bypassed: u64,
    /// Invalidations received or made by this instance's own writes.
    pub invalidations: u64,
    /// Times the whole cache was emptied (channel lost, a flush from the server).
    pub flushes: u64,
    /// Sessions held now.
    pub entries: u64,
    /// Writes whose own invalidation did not come back in time.
    pub echo_timeouts: u64,
    /// Reads that waited for a fence.
    pub fenced: u64,
    /// Fences sent (each served every read that waited for it).
    pub fences: u64,
    /// Whether the channel is live (the cache is served).
    pub live: bool,
}
