//! Tests of the near cache.

#![allow(clippy::unwrap_used)]

use files_core::multipart::{MultipartUpload, PartPlan};
use files_core::{FileId, FileName, FileState, Owner, PortError, Sha256, TenantId};
use time::OffsetDateTime;

use super::*;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

fn live() -> NearCache {
    live_with(100, MIB)
}

fn live_with(capacity: u64, max_bytes: u64) -> NearCache {
    let near = NearCache::new(capacity, max_bytes, Duration::from_secs(60));
    near.established();
    near
}

/// A record sent in `parts` parts of 5 MiB, as a read from Redis would have kept it.
fn record_with_parts(parts: u16) -> FileRecord {
    let digests = (0..parts)
        .map(|i| Sha256::from_bytes([u8::try_from(i % 251).unwrap(); 32]))
        .collect();
    let size = u64::from(parts) * 5 * MIB;
    FileRecord {
        id: FileId::new(),
        tenant: TenantId::from_uuid(uuid::Uuid::now_v7()),
        owner: Owner::Tenant,
        name: FileName::parse("backup.tar").unwrap(),
        sha256: Sha256::from_bytes([7; 32]),
        size: Some(size),
        content_type: None,
        state: FileState::Available,
        created_at: OffsetDateTime::UNIX_EPOCH,
        completed_at: Some(OffsetDateTime::UNIX_EPOCH),
        multipart: Some(MultipartUpload {
            upload_id: "an-upload-id-of-the-store".to_owned(),
            plan: PartPlan::new(size, 5 * MIB, digests).unwrap(),
            expires_at: OffsetDateTime::UNIX_EPOCH,
        }),
        upload_expires_at: Some(OffsetDateTime::UNIX_EPOCH),
    }
}

/// Keeps `entry` under `key` as a read from Redis does.
fn fill(near: &NearCache, key: String, entry: Entry) {
    lead(near, &key).land(Ok(Some(entry))).unwrap();
}

/// What the entries held hold at least, counted apart from the weigher: each key and, for a
/// record, the 32 bytes of each part's SHA-256.
fn bytes_held_at_least(near: &NearCache) -> (u64, u64) {
    near.entries.run_pending_tasks();
    let (mut entries, mut bytes) = (0, 0);
    for (key, entry) in &near.entries {
        entries += 1;
        bytes += key.len() as u64;
        if let Entry::File(record) = entry {
            bytes += record
                .multipart
                .as_ref()
                .map_or(0, |upload| 32 * u64::from(upload.plan.part_count()));
        }
    }
    (entries, bytes)
}

#[test]
fn records_with_large_plans_are_bounded_by_the_byte_budget() {
    // The default entry cap, a 2 MiB budget, and 400 records of 1,024 parts (32 KiB of
    // SHA-256s each, 12.5 MiB in all): counted in entries, every one of them would be kept.
    let budget = 2 * MIB;
    let near = live_with(crate::redis::RedisConfig::DEFAULT_NEAR_CACHE_CAPACITY, budget);
    let record = record_with_parts(1024);
    for _ in 0..400 {
        let key = format!("files:v2:file:{}:{}", record.tenant, FileId::new());
        fill(&near, key, Entry::File(Box::new(record.clone())));
    }
    let (entries, bytes) = bytes_held_at_least(&near);
    assert!(
        bytes <= budget,
        "{entries} entries hold at least {bytes} bytes, over the budget of {budget}"
    );
    assert!(entries > 0, "nothing was kept");
    assert!(near.entries.weighted_size() <= budget);
    let one = Entry::File(Box::new(record)).bytes("k") as u64;
    assert!(
        one > 32 * KIB && one < 34 * KIB,
        "a 1,024-part record is weighed {one} bytes"
    );
}

#[test]
fn small_entries_are_bounded_by_the_entry_cap() {
    let near = live_with(1_000, 64 * MIB);
    for i in 0..3_000 {
        fill(&near, format!("files:v1:latest:{i}"), Entry::Latest(FileId::new()));
    }
    let (entries, _) = bytes_held_at_least(&near);
    assert!(entries <= 1_000, "{entries} entries kept over a cap of 1,000");
    assert!(entries > 0, "nothing was kept");
}

#[test]
fn nothing_is_served_or_kept_before_tracking_is_on() {
    let near = NearCache::new(100, MIB, Duration::from_secs(60));
    fill(&near, "k".to_owned(), Entry::Latest(FileId::new()));
    assert!(near.entries.get("k").is_none(), "kept before tracking was on");
    near.entries.insert("k".to_owned(), Entry::Latest(FileId::new()));
    assert!(near.get("k").is_none());
    assert_eq!(near.hits(), 0);
}

#[test]
fn a_read_keeps_its_value_only_when_nothing_changed_since_its_ticket() {
    let near = live();
    fill(&near, "k".to_owned(), Entry::Latest(FileId::new()));
    assert!(near.get("k").is_some());
    assert_eq!(near.hits(), 1);

    // The key changed while the read was in flight: its answer is not kept.
    let read = lead(&near, "k");
    near.invalidate("k");
    assert!(near.get("k").is_none());
    read.land(Ok(Some(Entry::Latest(FileId::new())))).unwrap();
    assert!(near.get("k").is_none(), "a value overtaken by an invalidation was kept");

    // Everything changed (FLUSHDB, or tracking lost and back).
    let read = lead(&near, "k");
    near.invalidate_all();
    read.land(Ok(Some(Entry::Latest(FileId::new())))).unwrap();
    assert!(near.get("k").is_none());
}

#[test]
fn tracking_lost_drops_everything_and_stops_reads_in_flight_from_keeping_theirs() {
    let near = live();
    fill(&near, "a".to_owned(), Entry::Latest(FileId::new()));
    let in_flight = lead(&near, "b");
    near.pushed(&PushInfo {
        kind: PushKind::Disconnection,
        data: Vec::new(),
    });
    assert!(!near.tracking());
    assert!(near.get("a").is_none());
    in_flight.land(Ok(Some(Entry::Latest(FileId::new())))).unwrap();
    near.established();
    assert!(near.get("a").is_none() && near.get("b").is_none());
}

/// What the near cache told its metrics.
#[derive(Default)]
struct Counted {
    tracking: Mutex<Vec<bool>>,
    losses: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Metrics for Counted {
    fn near_cache_tracking(&self, on: bool) {
        self.tracking.lock().unwrap().push(on);
    }
    fn near_cache_tracking_lost(&self) {
        self.losses.fetch_add(1, Ordering::Relaxed);
    }
    fn near_cache_lookup(&self, outcome: CacheOutcome) {
        match outcome {
            CacheOutcome::Hit => self.hits.fetch_add(1, Ordering::Relaxed),
            _ => self.misses.fetch_add(1, Ordering::Relaxed),
        };
    }
}

#[test]
fn tracking_and_lookups_are_counted_and_a_loss_once() {
    let near = NearCache::new(100, MIB, Duration::from_secs(60));
    let counted = Arc::new(Counted::default());
    near.count_in(counted.clone());
    assert!(near.get("k").is_none(), "served before tracking");
    near.established();
    fill(&near, "k".to_owned(), Entry::Latest(FileId::new()));
    assert!(near.get("k").is_some());
    // The push and the tracking loop both see one loss.
    near.pushed(&PushInfo {
        kind: PushKind::Disconnection,
        data: Vec::new(),
    });
    near.lost();
    assert_eq!(*counted.tracking.lock().unwrap(), [false, true, false]);
    assert_eq!(counted.losses.load(Ordering::Relaxed), 1);
    assert_eq!(counted.hits.load(Ordering::Relaxed), 1);
    assert_eq!(counted.misses.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn dropping_the_tracking_future_stops_serving_for_good_and_its_thread() {
    let near = Arc::new(NearCache::new(100, MIB, Duration::from_secs(60)));
    let counted = Arc::new(Counted::default());
    near.count_in(counted.clone());
    // Nothing listens there: the thread keeps trying to connect.
    let client = Client::open("redis://127.0.0.1:1/?protocol=resp3").unwrap();
    let first = tracking(&near, client.clone(), "p".to_owned()).unwrap();
    assert!(tracking(&near, client, "p".to_owned()).is_none());
    near.established();

    // Polled once: the thread is started, and the future waits for it.
    let mut run = Box::pin(first.run());
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(run.as_mut().poll(&mut context).is_pending());
    assert!(near.tracking());
    drop(run);
    assert!(!near.tracking(), "entries served with no tracking connection");
    assert_eq!(counted.losses.load(Ordering::Relaxed), 1);
    // Whatever the thread does before it sees the stop, tracking stays off.
    near.established();
    assert!(!near.tracking(), "tracking came back on after its owner stopped it");

    // The thread lets go of the cache: it stopped.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while Arc::weak_count(&near) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the tracking thread still holds the cache 10 s after its owner stopped it"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_tracking_dropped_before_it_ran_leaves_the_cache_off() {
    let near = Arc::new(NearCache::new(100, MIB, Duration::from_secs(60)));
    let client = Client::open("redis://127.0.0.1:1/?protocol=resp3").unwrap();
    drop(tracking(&near, client, "p".to_owned()).unwrap());
    near.established();
    assert!(!near.tracking());
    fill(&near, "k".to_owned(), Entry::Latest(FileId::new()));
    assert!(near.get("k").is_none());
}

#[test]
fn invalidation_pushes_drop_their_keys_and_a_null_drops_everything() {
    let near = live();
    for key in ["a", "b", "c"] {
        fill(&near, key.to_owned(), Entry::Latest(FileId::new()));
    }
    near.pushed(&PushInfo {
        kind: PushKind::Invalidate,
        data: vec![Value::Array(vec![Value::BulkString(b"a".to_vec())])],
    });
    assert!(near.get("a").is_none());
    assert!(near.get("b").is_some() && near.get("c").is_some());
    near.pushed(&PushInfo {
        kind: PushKind::Invalidate,
        data: vec![Value::Nil],
    });
    assert!(near.get("b").is_none() && near.get("c").is_none());
}

/// Reads of Redis in flight, in every stripe.
fn flights(near: &NearCache) -> usize {
    (0..STRIPES).map(|index| near.stripe(index).flights.len()).sum()
}

fn lead<'a>(near: &'a NearCache, key: &str) -> flight::Lead<'a> {
    match near.flight(key) {
        Flight::Lead(lead) => lead,
        Flight::Join(_) => panic!("{key}: joined a flight where it should lead one"),
    }
}

fn join(near: &NearCache, key: &str) -> flight::Joined {
    match near.flight(key) {
        Flight::Join(joined) => joined,
        Flight::Lead(_) => panic!("{key}: led a flight where it should join one"),
    }
}

fn latest(answer: Option<Answer>) -> Option<FileId> {
    match answer {
        Some(Ok(Some(Entry::Latest(id)))) => Some(id),
        _ => None,
    }
}

#[tokio::test]
async fn concurrent_misses_of_a_key_read_once_and_share_the_answer() {
    let near = live();
    let leader = lead(&near, "k");
    let joined: Vec<_> = (0..3).map(|_| join(&near, "k")).collect();
    // Another key has a flight of its own.
    let other = lead(&near, "other");
    assert_eq!(flights(&near), 2);

    let id = FileId::new();
    assert_eq!(latest(Some(leader.land(Ok(Some(Entry::Latest(id)))))), Some(id));
    for joined in joined {
        assert_eq!(latest(joined.answer().await), Some(id));
    }
    assert!(near.get("k").is_some(), "the answer was not kept");
    drop(other);
    assert_eq!(flights(&near), 0, "a flight outlived its read");
}

#[tokio::test]
async fn an_answer_overtaken_by_an_invalidation_is_shared_with_its_joiners_but_not_kept() {
    let near = live();
    let first = lead(&near, "k");
    let joined_before = join(&near, "k");
    // The key changes while the first read is in flight (a push, or this instance's write).
    near.invalidate("k");
    // A miss from now on does not join the flight begun before the change: it reads anew...
    let second = lead(&near, "k");
    // ...and later misses join that one.
    let joined_after = join(&near, "k");

    let (old, new) = (FileId::new(), FileId::new());
    first.land(Ok(Some(Entry::Latest(old)))).unwrap();
    // Its joiner started before the answer came back: it may use it, as a read of its own.
    assert_eq!(latest(joined_before.answer().await), Some(old));
    assert!(
        near.get("k").is_none(),
        "an answer overtaken by an invalidation was kept"
    );
    // The first flight's end left the second in place.
    let joined_late = join(&near, "k");

    second.land(Ok(Some(Entry::Latest(new)))).unwrap();
    assert_eq!(latest(joined_after.answer().await), Some(new));
    assert_eq!(latest(joined_late.answer().await), Some(new));
    assert!(matches!(near.get("k"), Some(Entry::Latest(id)) if id == new));
    assert_eq!(flights(&near), 0);
}

#[tokio::test]
async fn an_answer_read_while_tracking_was_off_is_shared_but_not_kept() {
    let near = NearCache::new(100, MIB, Duration::from_secs(60));
    let leader = lead(&near, "k");
    let joined = join(&near, "k");
    // Tracking comes on while the read is in flight: it began without it.
    near.established();
    let id = FileId::new();
    leader.land(Ok(Some(Entry::Latest(id)))).unwrap();
    assert_eq!(latest(joined.answer().await), Some(id));
    assert!(near.get("k").is_none());
}

#[tokio::test]
async fn a_leader_dropped_before_it_answered_ends_its_flight_and_its_joiners_read_again() {
    let near = live();
    let leader = lead(&near, "k");
    let joined = join(&near, "k");
    // Its caller gave up (a timeout around it, a client gone).
    drop(leader);
    assert!(joined.answer().await.is_none(), "a joiner was answered by no one");
    assert_eq!(flights(&near), 0, "the flight of a dropped leader stayed");
    // The next miss leads.
    let again = lead(&near, "k");
    again.land(Ok(None)).unwrap();
    assert_eq!(flights(&near), 0);
}

#[tokio::test]
async fn a_failed_read_is_shared_with_its_kind_and_cause() {
    let near = live();
    for unavailable in [true, false] {
        let leader = lead(&near, "k");
        let joined = join(&near, "k");
        let cause = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused by the test");
        let error = if unavailable {
            PortError::unavailable(cause)
        } else {
            PortError::failed(cause)
        };
        let led = leader.land(Err(error));
        let waited = joined.answer().await.unwrap();
        for answer in [led, waited] {
            match answer {
                Err(PortError::Unavailable(cause)) if unavailable => {
                    assert_eq!(cause.to_string(), "refused by the test")
                }
                Err(PortError::Failed(cause)) if !unavailable => assert_eq!(cause.to_string(), "refused by the test"),
                other => panic!("expected the leader's failure, got {other:?}"),
            }
        }
    }
    assert!(near.get("k").is_none());
    assert_eq!(flights(&near), 0);
}
