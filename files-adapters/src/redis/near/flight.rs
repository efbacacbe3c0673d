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
pub(in crate::redis) type Answer = Result<Option<Entry>, PortError>;

/// An [`Answer`] that can be handed to many.
type Shared = Result<Option<Entry>, SharedError>;

/// What a read that missed the near cache does.
pub(in crate::redis) enum Flight<'a> {
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
pub(in crate::redis) struct Lead<'a> {
    near: &'a NearCache,
    key: String,
    id: u64,
    ticket: Ticket,
    /// Whoever joined; `None` once landed.
    answer: Option<watch::Sender<Option<Shared>>>,
}

/// A read that waits for the flight under way.
pub(in crate::redis) struct Joined(watch::Receiver<Option<Shared>>);

impl NearCache {
    /// The flight of a read of `key` that missed the near cache: joins the one under way, if it
    /// began after the key's stripe last changed; else leads one.
    pub(in crate::redis) fn flight(&self, key: &str) -> Flight<'_> {
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
    pub(in crate::redis) fn land(mut self, answer: Answer) -> Answer {
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
    pub(in crate::redis) async fn answer(mut self) -> Option<Answer> {
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
