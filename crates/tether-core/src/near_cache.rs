//! A near cache: opened session records kept in this process, dropped when the store's
//! server says another writer changed them.
//!
//! The cache is only as good as the invalidations that reach it, so it is served only
//! while its [`Feed`] (the store's push channel: Redis client tracking, PostgreSQL
//! `LISTEN`) is live. The rules, each with a test:
//!
//! - **A lost channel flushes and bypasses.** [`Feed::lost`] empties the cache and
//!   sends every read to the store until [`Feed::live`] says the channel is back.
//!   A feed that is dropped (its task ended) counts as lost for good.
//! - **No stale insert.** A read that missed takes a [`Ticket`] before it asks the
//!   store; its answer is kept only if no invalidation of that id, no flush and no
//!   loss happened since. Whatever ran first, an answer older than an invalidation
//!   never stays in the cache.
//! - **Deadlines are checked on every hit.** A record past its idle or absolute
//!   deadline is never served from here; it is dropped and read from the store (which
//!   may know of a refresh made elsewhere).

use std::hash::BuildHasher as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use quick_cache::Weighter;
use quick_cache::sync::Cache;
use serde_json::Value;

use crate::{Id, Record};

mod echo;
mod fence;

pub use echo::Echo;
pub use fence::Barrier;

/// What a cached read promises about writes made on other instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Freshness {
    /// A read sees every write that completed, on any instance, before the read
    /// began, as an uncached store does: before a cached record is served, a fence
    /// sent after the read began comes back through the invalidation channel (a
    /// `PING` on Redis's tracking connection, a notification on PostgreSQL's). One
    /// fence is in flight at a time and serves every read that arrived before it was
    /// sent, so under load a round trip covers many reads, and it carries no session
    /// data.
    #[default]
    Fenced,
    /// A cached record is served at once, with no round trip: a write completed on
    /// another instance is seen once its invalidation arrived (well under a
    /// millisecond on one network). A read in between, on another instance, finds
    /// the old record. Each write waits for its own invalidation to come back before
    /// answering ([`NearCacheConfig::echo_wait`]), which keeps that window short.
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

#[derive(Clone)]
struct Entry {
    record: Arc<Record>,
    weight: u64,
}

/// Weighs an entry by its estimated bytes, and never less than the byte budget over
/// the entry budget: so both bounds hold with one weight.
#[derive(Clone)]
struct ByBytes {
    floor: u64,
}

impl Weighter<Id, Entry> for ByBytes {
    fn weight(&self, _: &Id, entry: &Entry) -> u64 {
        entry.weight.max(self.floor)
    }
}

/// Invalidation counters: an id's invalidation bumps one of these.
const STRIPES: usize = 4096;

/// The cache shared by a [`CachedStore`](crate::CachedStore) and its [`Feed`].
pub struct NearCache {
    entries: Cache<Id, Entry, ByBytes>,
    stripes: Box<[AtomicU64]>,
    hasher: std::hash::RandomState,
    live: AtomicBool,
    epoch: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    bypassed: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
    echoes: echo::Echoes,
    echo_timeouts: AtomicU64,
    echo_wait: std::time::Duration,
    freshness: Freshness,
    fences: Arc<fence::Fences>,
    fenced: AtomicU64,
}

impl std::fmt::Debug for NearCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearCache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Taken by a read that missed, before it asks the store.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    stripe: u64,
    epoch: u64,
}

/// What the cache says about one read.
#[derive(Debug)]
pub enum Lookup {
    /// The record, live at the time asked.
    Hit(Arc<Record>),
    /// Not here: ask the store, then [`NearCache::put`] the answer with this ticket.
    Miss(Ticket),
    /// The channel is not live: ask the store and keep nothing.
    Bypass,
}

impl NearCache {
    /// An empty cache and the feed that makes it live. The cache serves nothing until
    /// the feed's owner calls [`Feed::live`].
    ///
    /// ```
    /// use tether_core::{Expiry, Id, Lookup, NearCache, NearCacheConfig, Record};
    /// let (cache, mut feed) = NearCache::new(&NearCacheConfig::default());
    /// let id = Id::generate()?;
    /// assert!(matches!(cache.get(&id, time::OffsetDateTime::now_utc()), Lookup::Bypass));
    /// feed.live();
    /// let Lookup::Miss(ticket) = cache.get(&id, time::OffsetDateTime::now_utc()) else { panic!() };
    /// let record = Record::new(time::OffsetDateTime::now_utc(), &Expiry::default());
    /// cache.put(&id, &std::sync::Arc::new(record), ticket);
    /// assert!(matches!(cache.get(&id, time::OffsetDateTime::now_utc()), Lookup::Hit(_)));
    /// feed.invalidate(&id);
    /// assert!(matches!(cache.get(&id, time::OffsetDateTime::now_utc()), Lookup::Miss(_)));
    /// # Ok::<(), tether_core::Error>(())
    /// ```
    pub fn new(config: &NearCacheConfig) -> (Arc<Self>, Feed) {
        let max_entries = config.max_entries.max(1);
        let max_bytes = config.max_bytes.max(1);
        let cache = Arc::new(Self {
            entries: Cache::with_weighter(
                usize::try_from(max_entries.min(1 << 20)).unwrap_or(1 << 20),
                max_bytes,
                ByBytes {
                    floor: (max_bytes / max_entries).max(1),
                },
            ),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            hasher: std::hash::RandomState::new(),
            live: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            bypassed: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            echoes: echo::Echoes::default(),
            echo_timeouts: AtomicU64::new(0),
            echo_wait: config.echo_wait,
            freshness: config.freshness,
            fences: Arc::new(fence::Fences::default()),
            fenced: AtomicU64::new(0),
        });
        let feed = Feed {
            cache: cache.clone(),
            live: false,
        };
        (cache, feed)
    }

    fn stripe(&self, id: &Id) -> &AtomicU64 {
        let index = usize::try_from(self.hasher.hash_one(id) % STRIPES as u64).unwrap_or(0);
        &self.stripes[index]
    }

    /// Whether the cache is served now.
    pub fn is_live(&self) -> bool {
        self.live.load(SeqCst)
    }

    /// A read through the cache: [`NearCache::get`], after a fence when the cache is
    /// [`Freshness::Fenced`] and holds `id` (a read that will miss needs none).
    pub async fn read(&self, id: &Id) -> Lookup {
        if self.freshness == Freshness::Fenced
            && self.is_live()
            && self.entries.contains_key(id)
            && !self.pass_fence().await
        {
            self.bypassed.fetch_add(1, SeqCst);
            return Lookup::Bypass;
        }
        if self.freshness == Freshness::Pushed && self.entries.contains_key(id) {
            // Let the runtime read what has arrived on the channel first: a task that
            // yields resumes after the I/O driver was polled.
            tokio::task::yield_now().await;
        }
        self.get(id, time::OffsetDateTime::now_utc())
    }

    /// The record under `id` if it is here and live at `now` (no fence).
    pub fn get(&self, id: &Id, now: time::OffsetDateTime) -> Lookup {
        if !self.is_live() {
            self.bypassed.fetch_add(1, SeqCst);
            return Lookup::Bypass;
        }
        let ticket = Ticket {
            epoch: self.epoch.load(SeqCst),
            stripe: self.stripe(id).load(SeqCst),
        };
        match self.entries.get(id) {
            Some(entry) if !entry.record.is_expired(now) => {
                self.hits.fetch_add(1, SeqCst);
                Lookup::Hit(entry.record)
            }
            found => {
                if found.is_some() {
                    self.entries.remove(id);
                }
                self.misses.fetch_add(1, SeqCst);
                Lookup::Miss(ticket)
            }
        }
    }

    /// Keeps what the store answered a read that missed, unless something invalidated
    /// the id (or flushed the cache) since the read took `ticket`.
    pub fn put(&self, id: &Id, record: &Arc<Record>, ticket: Ticket) {
        let weight = approx_bytes(record);
        if !self.still(id, ticket) {
            return;
        }
        self.entries.insert(
            *id,
            Entry {
                record: record.clone(),
                weight,
            },
        );
        // An invalidation may have landed between the check and the insert: check
        // again, and take back what was put (the invalidator bumps before removing,
        // so one of the two always sees the other).
        if !self.still(id, ticket) {
            self.entries
                .remove_if(id, |entry| Arc::ptr_eq(&entry.record, record));
        }
    }

    fn still(&self, id: &Id, ticket: Ticket) -> bool {
        self.is_live()
            && self.epoch.load(SeqCst) == ticket.epoch
            && self.stripe(id).load(SeqCst) == ticket.stripe
    }

    /// Drops `id`: a write changed it (here or on another instance).
    pub fn invalidate(&self, id: &Id) {
        self.stripe(id).fetch_add(1, SeqCst);
        self.entries.remove(id);
        self.invalidations.fetch_add(1, SeqCst);
    }

    /// Empties the cache; reads in flight keep nothing.
    pub fn flush(&self) {
        self.epoch.fetch_add(1, SeqCst);
        self.entries.clear();
        self.flushes.fetch_add(1, SeqCst);
    }

    /// Starts waiting for the server's invalidation of `id` (see [`Echo`]): call it
    /// before sending a write, await the echo after the write's reply.
    pub fn expect_echo(self: &Arc<Self>, id: &Id) -> Echo {
        echo::Echoes::expect(self, id)
    }

    /// How long a write waits for its echo: zero unless reads are
    /// [`Freshness::Pushed`] (a fenced read needs no such wait).
    pub fn echo_wait(&self) -> std::time::Duration {
        match self.freshness {
            Freshness::Pushed => self.echo_wait,
            Freshness::Fenced => std::time::Duration::ZERO,
        }
    }

    /// What a read promises.
    pub fn freshness(&self) -> Freshness {
        self.freshness
    }

    /// For a [`Freshness::Fenced`] cache, waits for a fence sent after this call;
    /// `false` when the channel cannot give one (the read goes to the store). At once
    /// `true` for a pushed cache.
    pub async fn pass_fence(&self) -> bool {
        if self.freshness == Freshness::Pushed {
            return true;
        }
        self.fenced.fetch_add(1, SeqCst);
        self.fences.pass().await
    }

    /// A write's echo did not come in time.
    pub fn echo_missed(&self) {
        self.echo_timeouts.fetch_add(1, SeqCst);
    }

    /// What the cache did so far.
    pub fn stats(&self) -> NearCacheStats {
        NearCacheStats {
            hits: self.hits.load(SeqCst),
            misses: self.misses.load(SeqCst),
            bypassed: self.bypassed.load(SeqCst),
            invalidations: self.invalidations.load(SeqCst),
            flushes: self.flushes.load(SeqCst),
            entries: self.entries.len() as u64,
            live: self.is_live(),
            echo_timeouts: self.echo_timeouts.load(SeqCst),
            fenced: self.fenced.load(SeqCst),
            fences: self.fences.sent(),
        }
    }
}

/// The side of a [`NearCache`] its store's invalidation channel drives. There is one
/// per cache; dropping it leaves the cache bypassed for good.
#[derive(Debug)]
pub struct Feed {
    cache: Arc<NearCache>,
    live: bool,
}

impl Feed {
    /// The channel is up and every change from now on will be reported: serve the
    /// cache (empty: it was flushed when the channel was lost, or never filled).
    pub fn live(&mut self) {
        if !self.live {
            self.cache.flush();
            self.live = true;
            self.cache.live.store(true, SeqCst);
        }
    }

    /// The channel's fence, for [`Freshness::Fenced`] reads: give it when the
    /// channel is up (a fenced cache serves nothing without one); a loss drops it.
    pub fn set_barrier(&self, barrier: Arc<dyn Barrier>) {
        self.cache.fences.set(Some(barrier));
    }

    /// The channel is down (or was never up): stop serving, forget everything.
    pub fn lost(&mut self) {
        self.cache.fences.set(None);
        self.live = false;
        self.cache.live.store(false, SeqCst);
        self.cache.flush();
        self.cache.echoes.all();
    }

    /// Whether this feed last said live.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The server says `id` changed.
    pub fn invalidate(&self, id: &Id) {
        self.invalidator().invalidate(id);
    }

    /// The server says everything may have changed (a `FLUSHALL`, a failover).
    pub fn flush(&self) {
        self.invalidator().flush();
    }

    /// A handle that applies invalidations where they are read (in the connection's
    /// own task, with no hop through a channel): the sooner applied, the shorter the
    /// window in which another instance's change is not seen here.
    pub fn invalidator(&self) -> Invalidator {
        Invalidator(self.cache.clone())
    }

    /// The cache this feed drives.
    pub fn cache(&self) -> &Arc<NearCache> {
        &self.cache
    }
}

/// Applies the server's invalidations to a [`NearCache`]; clones share it. Only the
/// [`Feed`] says whether the channel is live.
#[derive(Debug, Clone)]
pub struct Invalidator(Arc<NearCache>);

impl Invalidator {
    /// The server says `id` changed.
    pub fn invalidate(&self, id: &Id) {
        self.0.invalidate(id);
        self.0.echoes.came(id);
    }

    /// The server says everything may have changed.
    pub fn flush(&self) {
        self.0.flush();
        self.0.echoes.all();
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.lost();
    }
}

/// About what a record takes in memory: its data's keys and values and a fixed part.
fn approx_bytes(record: &Record) -> u64 {
    let data: usize = record
        .data
        .iter()
        .map(|(k, v)| k.len() + 48 + value_bytes(v))
        .sum();
    (data + record.user.as_ref().map_or(0, String::len) + 160) as u64
}

fn value_bytes(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 16,
        Value::String(s) => s.len() + 24,
        Value::Array(items) => items.iter().map(value_bytes).sum::<usize>() + 24,
        Value::Object(map) => {
            map.iter()
                .map(|(k, v)| k.len() + 48 + value_bytes(v))
                .sum::<usize>()
                + 24
        }
    }
}

#[cfg(test)]
#[path = "near_cache/tests.rs"]
mod tests;
