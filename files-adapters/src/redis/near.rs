//! The near cache: entries this instance read from Redis, kept in process and dropped as soon as
//! Redis reports that their key changed (Redis 6's server-assisted client-side caching, in
//! broadcasting mode).
//!
//! A warm read (download-url by name: the name's latest version, then its record) then costs no
//! round trip to Redis at all. How it stays right:
//!
//! - **Redis says what changed.** One connection per cache (RESP3, apart from the pool) runs
//!   `CLIENT TRACKING ON BCAST PREFIX {prefix}:`. From then on Redis pushes to it the name of
//!   every key under the prefix that any client changes: a write or delete of any instance, an
//!   expiry, an eviction, a `FLUSHDB`. The connection's reader drops those keys here as it reads
//!   them.
//! - **Nothing is served without tracking.** Entries are served and kept only while that
//!   connection is up. When it drops (or a ping every [`PING_INTERVAL`] goes unanswered within
//!   [`PING_TIMEOUT`]), everything is dropped at once and reads go to Redis. A new connection
//!   turns tracking on again (after a [`Backoff`](files_core::Backoff) of 100 ms doubling to 5 s), and only then is
//!   the near cache emptied once more and used. The connection is kept by [`Tracking`], a future
//!   its owner runs (the cache never spawns it); while it does not run nothing is served, and
//!   once it is dropped nothing is served again.
//! - **The connection has a thread of its own.** Its reader (which drops the keys pushed), its
//!   ping and its reconnections run on a current-thread runtime on a dedicated thread, started
//!   by [`Tracking::run`] and stopped when that future is dropped. A runtime saturated with
//!   requests (or blocked by any of its tasks) then neither delays the pushes, while other
//!   threads serve reads, nor the ping's answer past its timeout, which would drop every entry
//!   at once and send every reader to Redis together.
//! - **Its state is counted** through the [`Metrics`] port: tracking on or off, each loss, and
//!   every lookup's hit or miss.
//! - **No read keeps a value that changed while it was in flight.** A read takes a [`Ticket`]
//!   (the invalidation count of its key's stripe) before it asks Redis. It keeps the answer only
//!   if the count has not moved. The check and the insert are made under the stripe's lock,
//!   and every invalidation takes that lock too.
//! - **One read of Redis per key in flight** ([`flight`]): concurrent misses of a key share
//!   the read under way, so a loss of tracking (every entry dropped) is refilled with one read
//!   per key, not one per reader.
//! - **This instance's own writes** drop the key here at once, without waiting for the push.
//! - **Entries live at most the cache's TTL**, a backstop. Misses are not kept. The size is
//!   bounded in bytes and in entries (moka: TinyLFU admission, LRU eviction), each entry weighed
//!   by what it holds in process ([`Entry::bytes`]): a record's multipart plan holds 32 bytes per
//!   part, so a count of entries alone would not bound the memory (10,000 records of 1,024 parts
//!   each hold over 320 MiB).
//!
//! What remains: another instance's change reaches this one when the push arrives, typically
//! well under a millisecond after Redis applied it. A read in between is served the previous
//! entry, as it would have been just before the change. A tracking connection that hangs
//! without closing is noticed within [`PING_INTERVAL`] plus [`PING_TIMEOUT`].

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use bb8_redis::redis::{Client, PushInfo, PushKind, Value};
use files_core::{CacheOutcome, FileId, FileRecord, Metrics};

use self::flight::Flights;
pub(super) use self::flight::{Answer, Flight};
pub use self::tracking::{PING_INTERVAL, PING_TIMEOUT};
use self::tracking::{Tracked, Tracking};

// An inline module: it and the near cache use each other's parts, which the structure test
// (files-server/tests/api/structure.rs) allows only within one file.
mod flight {
    //! One read of Redis per key in flight: concurrent misses of a key wait for the read under way
    //! and share its answer, instead of each asking Redis. After a loss of tracking every entry is
    //! gone at once; without this, every reader of a hot key would refill it at the same moment.
    //!
    //! - **The first miss leads.** [`NearCache::flight`] registers it under the key's stripe, with
    //!   the stripe's invalidation count: its [`Ticket`]. It reads Redis, then [`Lead::land`]s the
    //!   answer: kept in the near cache under the [`Ticket`] rule (not when the key changed since),
    //!   and handed to every read that joined.
    //! - **A later miss joins only a flight begun after the last change it knows of.** When its
    //!   key's stripe was invalidated since the flight began (a push, or this instance's own
    //!   write), the flight's answer may predate that change, so the later miss leads a read of its
    //!   own, which takes the key's place. A read that joined is answered what Redis held at some
    //!   moment after the flight began, and the flight began after the last change this instance
    //!   knew of when the joiner started: as fresh as a read of its own, give or take the time
    //!   a push takes to arrive (which a near-cache hit allows as well).
    //! - **Joiners use the answer as a plain read's, even when it is not kept.** Their reads
    //!   started before it came back.
    //! - **Failures are shared too**, their cause behind an [`Arc`]: with Redis down, one timeout
    //!   per key, not one per reader.
    //! - **Bounded.** A flight leaves the map when it lands, and when its leader is dropped before
    //!   (its caller gave up): the joiners then see the flight end without an answer and read
    //!   again, one of them leading. Joiners wait at most the call timeout.

    use std::collections::HashMap;
    use std::error::Error;
    use std::fmt;
    use std::sync::Arc;

    use files_core::PortError;
    use tokio::sync::watch;

    use super::{Entry, NearCache, Stripe, Ticket};

    /// What a read of Redis answers: the key's entry, none, or a failure.
    pub(crate) type Answer = Result<Option<Entry>, PortError>;

    /// An [`Answer`] that can be handed to many.
    type Shared = Result<Option<Entry>, SharedError>;

    /// What a read that missed the near cache does.
    pub(crate) enum Flight<'a> {
        /// Reads Redis, then [`Lead::land`]s the answer.
        Lead(Lead<'a>),
        /// Waits for the read under way ([`Joined::answer`]).
        Join(Joined),
    }

    /// A read of Redis in flight for one key, in its stripe's map.
    pub(super) struct InFlight {
        /// Told apart from a later flight of the same key that took its place.
        id: u64,
        /// The stripe's invalidation count when it began: joined only while it has not moved.
        seen: u64,
        answer: watch::Receiver<Option<Shared>>,
    }

    /// The leader of a key's flight: the one read that asks Redis.
    pub(crate) struct Lead<'a> {
        near: &'a NearCache,
        key: String,
        id: u64,
        ticket: Ticket,
        /// Whoever joined; `None` once landed.
        answer: Option<watch::Sender<Option<Shared>>>,
    }

    /// A read that waits for the flight under way.
    pub(crate) struct Joined(watch::Receiver<Option<Shared>>);

    impl NearCache {
        /// The flight of a read of `key` that missed the near cache: joins the one under way, if it
        /// began after the key's stripe last changed; else leads one.
        pub(crate) fn flight(&self, key: &str) -> Flight<'_> {
            let index = self.stripe_of(key);
            let mut stripe = self.stripe(index);
            if let Some(flight) = stripe.flights.get(key)
                && flight.seen == stripe.invalidations
            {
                return Flight::Join(Joined(flight.answer.clone()));
            }
            let id = self.flights_begun.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let seen = stripe.invalidations;
            let (sender, receiver) = watch::channel(None);
            // A flight begun before the last change is left to its own leader and joiners.
            stripe.flights.insert(
                key.to_owned(),
                InFlight {
                    id,
                    seen,
                    answer: receiver,
                },
            );
            Flight::Lead(Lead {
                near: self,
                key: key.to_owned(),
                id,
                ticket: Ticket {
                    stripe: index,
                    seen,
                    live: self.is_live(),
                },
                answer: Some(sender),
            })
        }
    }

    impl Stripe {
        /// Takes the flight `id` of `key` out of the map, unless a later one took its place.
        fn end(&mut self, key: &str, id: u64) {
            if self.flights.get(key).is_some_and(|flight| flight.id == id) {
                self.flights.remove(key);
            }
        }
    }

    /// The flights under way in one stripe, by key.
    pub(super) type Flights = HashMap<String, InFlight>;

    impl Lead<'_> {
        /// Ends the flight with `answer`: kept when it found an entry and nothing changed since its
        /// ticket, handed to every read that joined, and returned.
        pub(crate) fn land(mut self, answer: Answer) -> Answer {
            let Some(sender) = self.answer.take() else {
                return answer;
            };
            {
                let mut stripe = self.near.stripe(self.ticket.stripe);
                if let Ok(Some(entry)) = &answer {
                    self.near.keep(&stripe, self.key.clone(), entry.clone(), self.ticket);
                }
                stripe.end(&self.key, self.id);
            }
            // Out of the map, no one joins any more: the receivers left are the joiners'.
            if sender.receiver_count() == 0 {
                return answer;
            }
            let (mine, theirs) = match answer {
                Ok(found) => (Ok(found.clone()), Ok(found)),
                Err(error) => {
                    let shared = SharedError::from(error);
                    (Err(shared.clone().into()), Err(shared))
                }
            };
            sender.send_replace(Some(theirs));
            mine
        }
    }

    impl Drop for Lead<'_> {
        /// A leader dropped before it landed (its caller gave up) takes its flight out of the map;
        /// its joiners see the flight end without an answer.
        fn drop(&mut self) {
            if self.answer.is_some() {
                self.near.stripe(self.ticket.stripe).end(&self.key, self.id);
            }
        }
    }

    impl Joined {
        /// The flight's answer; `None` when its leader was dropped before it had one (read again).
        pub(crate) async fn answer(mut self) -> Option<Answer> {
            let landed = self.0.wait_for(Option::is_some).await.ok()?;
            landed.clone().map(|shared| shared.map_err(PortError::from))
        }
    }

    /// A failed read's [`PortError`], shared by the leader and its joiners.
    #[derive(Debug, Clone)]
    enum SharedError {
        Unavailable(SharedCause),
        Failed(SharedCause),
    }

    impl From<PortError> for SharedError {
        fn from(error: PortError) -> Self {
            match error {
                PortError::Unavailable(cause) => Self::Unavailable(SharedCause(Arc::from(cause))),
                PortError::Failed(cause) => Self::Failed(SharedCause(Arc::from(cause))),
            }
        }
    }

    impl From<SharedError> for PortError {
        fn from(error: SharedError) -> Self {
            match error {
                SharedError::Unavailable(cause) => Self::unavailable(cause),
                SharedError::Failed(cause) => Self::failed(cause),
            }
        }
    }

    /// A cause behind an [`Arc`], shown (and its chain walked) as the cause itself.
    #[derive(Debug, Clone)]
    struct SharedCause(Arc<dyn Error + Send + Sync>);

    impl fmt::Display for SharedCause {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.fmt(f)
        }
    }

    impl Error for SharedCause {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.0.source()
        }
    }
}

/// How many locks the keys are spread over.
const STRIPES: usize = 64;

/// What moka keeps per entry besides its key and value (hash table slot, entry info, the
/// deque nodes of its policies, the key's `Arc`): about 250 bytes, measured with a counting
/// allocator over 100,000 small entries of moka 0.12.
const ENTRY_OVERHEAD: usize = 256;

/// [`NearCache::state`]: tracking off, for now.
const OFF: u8 = 0;
/// [`NearCache::state`]: tracking on, entries served.
const ON: u8 = 1;
/// [`NearCache::state`]: tracking stopped by its owner, never on again.
const STOPPED: u8 = 2;

/// What one entry holds: what the key's reader would have parsed from Redis.
#[derive(Debug, Clone)]
pub(super) enum Entry {
    File(Box<FileRecord>),
    Latest(FileId),
}

impl Entry {
    /// An estimate of the bytes the entry of `key` holds in process, moka's own bookkeeping
    /// included: what is counted against the near cache's byte budget. A record counts its
    /// strings and its multipart plan (32 bytes per part: a 1,024-part plan is 32 KiB), the
    /// bulk of a large entry. Entries are clones of what a read parsed, so their vectors and
    /// strings hold no spare capacity and their lengths are their sizes.
    pub(super) fn bytes(&self, key: &str) -> usize {
        let value = match self {
            Self::Latest(_) => 0,
            Self::File(record) => {
                let content_type = record.content_type.as_ref().map_or(0, |c| c.as_str().len());
                let multipart = record.multipart.as_ref().map_or(0, |upload| {
                    upload.upload_id.len() + std::mem::size_of_val(upload.plan.sha256s())
                });
                std::mem::size_of::<FileRecord>() + record.name.as_str().len() + content_type + multipart
            }
        };
        ENTRY_OVERHEAD + key.len() + std::mem::size_of::<Self>() + value
    }
}

/// What a read saw before it asked Redis: its value may be kept only if tracking was on then
/// and nothing changed since.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    stripe: usize,
    /// The stripe's invalidations.
    seen: u64,
    /// Whether tracking was on.
    live: bool,
}

/// What one stripe of keys holds.
#[derive(Default)]
struct Stripe {
    /// Invalidations of its keys so far.
    invalidations: u64,
    /// Its keys' reads of Redis under way.
    flights: Flights,
}

/// The entries of one cache (shared by its clones and its tracking task).
pub(super) struct NearCache {
    entries: moka::sync::Cache<String, Entry>,
    stripes: Box<[Mutex<Stripe>]>,
    /// Flights begun so far: each one's id.
    flights_begun: AtomicU64,
    hasher: RandomState,
    /// Whether tracking is on ([`OFF`], [`ON`] or, for good, [`STOPPED`]): entries are served
    /// and kept only while it is on.
    state: AtomicU8,
    hits: AtomicU64,
    /// Where its state and lookups are counted; nowhere until set.
    metrics: OnceLock<Arc<dyn Metrics>>,
    /// Whether its [`Tracking`] was handed out: one connection per cache.
    tracking_taken: AtomicBool,
}

impl std::fmt::Debug for NearCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearCache")
            .field("live", &self.is_live())
            .field("hits", &self.hits.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl NearCache {
    /// At most `capacity` entries holding at most `max_bytes` in all ([`Entry::bytes`]), each
    /// for at most `ttl`. Not served until tracking is on.
    ///
    /// One moka capacity bounds both: it is `max_bytes`, and each entry weighs its bytes but at
    /// least `max_bytes / capacity` (rounded up), so no more than `capacity` entries fit.
    pub(super) fn new(capacity: u64, max_bytes: u64, ttl: Duration) -> Self {
        let least = u32::try_from(max_bytes.div_ceil(capacity.max(1))).unwrap_or(u32::MAX);
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(move |key: &String, entry: &Entry| {
                    u32::try_from(entry.bytes(key)).unwrap_or(u32::MAX).max(least)
                })
                .time_to_live(ttl)
                .build(),
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
            flights_begun: AtomicU64::new(0),
            hasher: RandomState::new(),
            state: AtomicU8::new(OFF),
            hits: AtomicU64::new(0),
            metrics: OnceLock::new(),
            tracking_taken: AtomicBool::new(false),
        }
    }

    /// Counts the state and lookups in `metrics` from now on; the first call wins.
    pub(super) fn count_in(&self, metrics: Arc<dyn Metrics>) {
        let live = self.is_live();
        if self.metrics.set(metrics).is_ok()
            && let Some(metrics) = self.metrics.get()
        {
            metrics.near_cache_tracking(live);
        }
    }

    fn count(&self, count: impl FnOnce(&dyn Metrics)) {
        if let Some(metrics) = self.metrics.get() {
            count(metrics.as_ref());
        }
    }

    fn stripe(&self, index: usize) -> MutexGuard<'_, Stripe> {
        // A count and a map whose entries go in and out whole: a panic elsewhere cannot have
        // left them half-updated.
        self.stripes[index].lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stripe_of(&self, key: &str) -> usize {
        // The remainder is below STRIPES, so the narrowing cannot lose anything.
        (self.hasher.hash_one(key) % STRIPES as u64) as usize
    }

    fn is_live(&self) -> bool {
        self.state.load(Ordering::Acquire) == ON
    }

    /// The entry of `key`, while tracking is on.
    pub(super) fn get(&self, key: &str) -> Option<Entry> {
        let entry = if self.is_live() { self.entries.get(key) } else { None };
        if entry.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            self.count(|metrics| metrics.near_cache_lookup(CacheOutcome::Hit));
        } else {
            self.count(|metrics| metrics.near_cache_lookup(CacheOutcome::Miss));
        }
        entry
    }

    /// Keeps what a read found, unless tracking was off when it took its ticket, is off now, or
    /// the key (or its stripe) changed since. Called under the lock of the ticket's stripe
    /// (`stripe`), which every invalidation takes too.
    fn keep(&self, stripe: &Stripe, key: String, entry: Entry, ticket: Ticket) {
        if ticket.live && stripe.invalidations == ticket.seen && self.is_live() {
            self.entries.insert(key, entry);
        }
    }

    /// `key` changed (or may have): dropped, and no read started before is kept or joined.
    pub(super) fn invalidate(&self, key: &str) {
        let mut stripe = self.stripe(self.stripe_of(key));
        stripe.invalidations += 1;
        self.entries.invalidate(key);
    }

    /// Everything may have changed.
    pub(super) fn invalidate_all(&self) {
        for index in 0..STRIPES {
            self.stripe(index).invalidations += 1;
        }
        self.entries.invalidate_all();
    }

    fn counted_lost(&self) {
        self.count(|metrics| {
            metrics.near_cache_tracking(false);
            metrics.near_cache_tracking_lost();
        });
    }

    /// Whether entries are served (tracking is on).
    pub(super) fn tracking(&self) -> bool {
        self.is_live()
    }

    /// Reads served from the near cache so far.
    pub(super) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

/// What the tracking connection tells the cache.
impl Tracked for NearCache {
    /// Tracking is off: nothing is served or kept until it is on again. Counted as a loss
    /// when it was on.
    fn lost(&self) {
        let was_live = self
            .state
            .compare_exchange(ON, OFF, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        self.invalidate_all();
        if was_live {
            self.counted_lost();
        }
    }

    /// Tracking is off for good (its owner stopped it): nothing is served or kept any more,
    /// whatever the tracking connection's thread does before it sees the stop.
    fn stopped(&self) {
        let was_live = self.state.swap(STOPPED, Ordering::AcqRel) == ON;
        self.invalidate_all();
        if was_live {
            self.counted_lost();
        }
    }

    /// Tracking is on: what was kept before is dropped, and the cache is used from now on
    /// (unless its owner stopped it).
    fn established(&self) {
        self.invalidate_all();
        if self
            .state
            .compare_exchange(OFF, ON, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.count(|metrics| metrics.near_cache_tracking(true));
        }
    }

    /// A push on the tracking connection.
    fn pushed(&self, push: &PushInfo) {
        match push.kind {
            PushKind::Invalidate => match push.data.first() {
                Some(Value::Array(keys)) => {
                    for key in keys {
                        match key {
                            Value::BulkString(bytes) => match std::str::from_utf8(bytes) {
                                Ok(key) => self.invalidate(key),
                                // Not a key of ours (ours are UTF-8): still, drop everything
                                // rather than guess.
                                Err(_) => self.invalidate_all(),
                            },
                            _ => self.invalidate_all(),
                        }
                    }
                }
                // After FLUSHDB or FLUSHALL, Redis sends a null: everything changed.
                _ => self.invalidate_all(),
            },
            PushKind::Disconnection => self.lost(),
            _ => {}
        }
    }
}

/// The tracking of `near`, or `None` when it was handed out before (one connection per cache).
pub(super) fn tracking(near: &Arc<NearCache>, client: Client, prefix: String) -> Option<Tracking<NearCache>> {
    if near.tracking_taken.swap(true, Ordering::AcqRel) {
        return None;
    }
    Some(Tracking::new(Arc::downgrade(near), client, prefix))
}

#[cfg(test)]
mod tests;
mod tracking;
