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
//! - **A fenced read waits for its fence.** With [`Freshness::Fenced`] (the default) a
//!   cached record is served only after a fence sent after the read began came back
//!   through the channel ([`Barrier`], shared by every read waiting), so every write
//!   completed before the read began has been applied. With [`Freshness::Pushed`] it
//!   is served at once, and writes wait for their own invalidation ([`Echo`]).

use std::hash::BuildHasher as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use quick_cache::Weighter;
use quick_cache::sync::Cache;
use serde_json::Value;

use crate::{Id, Record};

mod config;
mod echo;
mod feed;
mod fence;
mod quiet;

pub use config::{Freshness, NearCacheConfig, NearCacheStats};
pub use echo::Echo;
pub use feed::{Feed, Invalidator};
pub use fence::Barrier;
pub use quiet::Quiet;

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
    /// The channel's check that nothing is unread (pushed reads), while it is up.
    quiet: std::sync::RwLock<Option<Arc<dyn Quiet>>>,
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
            quiet: std::sync::RwLock::new(None),
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

    /// A read through the cache: [`NearCache::get`], after a fence when the cache holds
    /// `id` (a read that will miss needs none) and is [`Freshness::Fenced`], or
    /// [`Freshness::Pushed`] with something unread on the channel ([`Quiet`]).
    pub async fn read(&self, id: &Id) -> Lookup {
        let needs_fence = match self.freshness {
            Freshness::Fenced => self.is_live() && self.entries.contains_key(id),
            Freshness::Pushed => {
                if let Some(quiet) = self.channel_quiet() {
                    // Something is unread: a fence makes sure it was applied before
                    // a cached record is served.
                    !quiet && self.entries.contains_key(id)
                } else {
                    // No way to tell: let the runtime read what has arrived on the
                    // channel first (a task that yields resumes after the I/O
                    // driver was polled).
                    if self.entries.contains_key(id) {
                        tokio::task::yield_now().await;
                    }
                    false
                }
            }
        };
        if needs_fence && !self.fence().await {
            self.bypassed.fetch_add(1, SeqCst);
            return Lookup::Bypass;
        }
        self.get(id, time::OffsetDateTime::now_utc())
    }

    /// The record under `id` when a read can be answered from here at once: the cache
    /// is [`Freshness::Pushed`] and live, its channel says it has nothing unread, and
    /// it holds `id` unexpired (counted as a hit). `None` otherwise, counting nothing:
    /// the caller reads through [`NearCache::read`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> tether_core::Result<()> {
    /// use std::sync::Arc;
    /// use tether_core::{Expiry, Freshness, Id, Lookup, NearCache, NearCacheConfig, Quiet, Record};
    /// struct NothingUnread;
    /// impl Quiet for NothingUnread {
    ///     fn quiet(&self) -> bool { true }
    /// }
    /// let (cache, mut feed) = NearCache::new(&NearCacheConfig::default().with_freshness(Freshness::Pushed));
    /// feed.set_quiet(Arc::new(NothingUnread));
    /// feed.live();
    /// let id = Id::generate()?;
    /// assert!(cache.ready(&id).is_none());
    /// let Lookup::Miss(ticket) = cache.read(&id).await else { unreachable!() };
    /// cache.put(&id, &Arc::new(Record::new(time::OffsetDateTime::now_utc(), &Expiry::default())), ticket);
    /// assert!(cache.ready(&id).is_some());
    /// assert_eq!(cache.stats().hits, 1);
    /// # Ok(()) }
    /// ```
    pub fn ready(&self, id: &Id) -> Option<Arc<Record>> {
        if self.freshness != Freshness::Pushed
            || !self.is_live()
            || self.channel_quiet() != Some(true)
        {
            return None;
        }
        let record = self.entries.get(id)?.record;
        if record.is_expired(time::OffsetDateTime::now_utc()) {
            return None;
        }
        self.hits.fetch_add(1, SeqCst);
        Some(record)
    }

    /// Whether the channel has nothing unread (`None`: it cannot tell).
    fn channel_quiet(&self) -> Option<bool> {
        self.quiet
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|q| q.quiet())
    }

    /// The record under `id` if it is here and live at `now` (no fence).
    pub fn get(&self, id: &Id, now: time::OffsetDateTime) -> Lookup {
        if !self.is_live() {
            self.bypassed.fetch_add(1, SeqCst);
            return Lookup::Bypass;
        }
        match self.entries.get(id) {
            Some(entry) if !entry.record.is_expired(now) => {
                self.hits.fetch_add(1, SeqCst);
                Lookup::Hit(entry.record)
            }
            found => {
                // Taken before the store is asked: an invalidation from now on
                // keeps its answer out (one before it, the answer already has).
                let ticket = Ticket {
                    epoch: self.epoch.load(SeqCst),
                    stripe: self.stripe(id).load(SeqCst),
                };
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
        self.freshness == Freshness::Pushed || self.fence().await
    }

    /// Waits for a fence sent after this call, counting the read that waited.
    async fn fence(&self) -> bool {
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
