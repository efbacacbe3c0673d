//! The contract of the [`Outbox`] port: what every outbox, in memory or in PostgreSQL, must
//! do with the events [`MetadataStore::mark_available`] and [`MetadataStore::mark_deleted`]
//! record (the rules record both kinds, interleaved).
//!
//! Unlike the other suites, this one needs the outbox to itself (a fresh store, or one nobody
//! else records into or claims from while it runs): its rules are about order and counts. Each
//! rule starts by draining what is there (claiming everything and marking it sent). It panics,
//! naming the broken rule, on the first violation. Where a rule waits for a lease to run out,
//! the lease is short and the rule polls for the event with a deadline rather than sleeping a
//! fixed time.
//!
//! [`Outbox`]: files_core::Outbox
//! [`MetadataStore::mark_available`]: files_core::MetadataStore::mark_available
//! [`MetadataStore::mark_deleted`]: files_core::MetadataStore::mark_deleted

use std::collections::HashSet;
use std::time::Duration;

use files_core::{
    ContentType, Deletion, DeletionReason, FileEvent, FileRecord, FileState, FileUploaded, OutboxEntry, OutboxStats,
    Sha256, TransactionalStore,
};
use time::OffsetDateTime;
use tokio::time::Instant;
use uuid::Uuid;

use super::metadata::{device_root, fresh_tenant, insert, now_micros, ok, record, tenant_root, uploaded_event};

/// A lease that runs out within a rule: long enough that the claims a rule makes while it runs
/// fit in it on a loaded machine, short enough to wait out.
const SHORT_LEASE: Duration = Duration::from_secs(2);
/// A lease that does not run out within a rule.
const LONG_LEASE: Duration = Duration::from_secs(60);
/// How long a rule waits for a short lease to run out before it counts as never running out.
const PATIENCE: Duration = Duration::from_secs(10);
/// Between two claims of a rule that waits for a lease to run out.
const POLL: Duration = Duration::from_millis(20);
/// How many events [`drain`] claims at a time.
const DRAIN_BATCH: usize = 500;

/// Runs every rule of the contract against `store`, which it needs to itself.
///
/// # Panics
/// When the store breaks a rule, or fails a call.
pub async fn run(store: &dyn TransactionalStore) {
    claims_are_oldest_first_and_at_most_the_limit(store).await;
    events_round_trip_exactly(store).await;
    a_lease_hides_an_event_until_it_runs_out(store).await;
    released_events_come_back_at_once(store).await;
    sent_events_never_come_back(store).await;
    stats_count_the_unsent_events_and_the_oldest(store).await;
    concurrent_claimers_never_share_an_event(store).await;
}

/// Claims everything there is and marks it sent, then checks the outbox is empty.
///
/// # Panics
/// When the store fails, hands out an event it was told is sent, or still reports unsent
/// events (someone else is using it).
pub async fn drain(store: &dyn TransactionalStore, rule: &str) {
    let mut sent = HashSet::new();
    loop {
        let batch = ok(rule, store.claim(DRAIN_BATCH, LONG_LEASE).await);
        if batch.is_empty() {
            break;
        }
        let ids = event_ids(&batch);
        for id in &ids {
            assert!(
                sent.insert(*id),
                "{rule}: draining, event {id} came back after being marked sent"
            );
        }
        ok(rule, store.mark_sent(&ids).await);
    }
    assert_eq!(
        ok(rule, store.stats().await),
        OutboxStats::default(),
        "{rule}: the outbox is not empty after draining it (is something else using the store?)"
    );
}

/// Records `count` events, each a millisecond later than the last: a new pending version each
/// (alternately in a device root and the tenant root) marked available, and every third one
/// deleted instead (a `file.deleted` event, the version marked available without recording).
async fn record_events(store: &dyn TransactionalStore, rule: &str, count: usize) -> Vec<FileEvent> {
    let tenant = fresh_tenant();
    let start = now_micros();
    let mut events = Vec::with_capacity(count);
    for i in 0..count {
        let scope = if i % 2 == 0 {
            device_root(tenant)
        } else {
            tenant_root(tenant)
        };
        let at = start + time::Duration::milliseconds(i64::try_from(i).unwrap_or(i64::MAX));
        let size = u64::try_from(i).unwrap_or(u64::MAX);
        if i % 3 == 2 {
            let file = FileRecord {
                size: Some(size),
                completed_at: Some(at),
                ..record(scope, &format!("event-{i}.bin"), FileState::Available)
            };
            insert(store, rule, &file).await;
            events.push(delete(store, rule, &file, at).await.into());
        } else {
            let file = record(scope, &format!("event-{i}.bin"), FileState::Pending);
            insert(store, rule, &file).await;
            events.push(
                mark(store, rule, &file, size, at, uploaded_event(&file, size, at))
                    .await
                    .into(),
            );
        }
    }
    events
}

/// Deletes the available `file` at `at`, which must record its event; returns the event.
async fn delete(
    store: &dyn TransactionalStore,
    rule: &str,
    file: &FileRecord,
    at: OffsetDateTime,
) -> files_core::FileDeleted {
    let deletion = Deletion::new(DeletionReason::Retention, at, "bucket");
    let deleted = ok(rule, store.mark_deleted(file.tenant, file.id, &deletion).await);
    assert!(deleted.is_some(), "{rule}: an available version was not deleted");
    deletion
        .event_for(file)
        .unwrap_or_else(|| panic!("{rule}: an available version's deletion has an event"))
}

/// Marks `file` available with `event`, which must be recorded; returns the event.
async fn mark(
    store: &dyn TransactionalStore,
    rule: &str,
    file: &FileRecord,
    size: u64,
    at: OffsetDateTime,
    event: FileUploaded,
) -> FileUploaded {
    let marked = ok(rule, store.mark_available(file.tenant, file.id, size, at, &event).await);
    assert!(marked.is_some(), "{rule}: a pending version was not marked available");
    event
}

fn event_ids(entries: &[OutboxEntry]) -> Vec<Uuid> {
    entries.iter().map(|e| e.event.event_id()).collect()
}

fn events(entries: Vec<OutboxEntry>) -> Vec<FileEvent> {
    entries.into_iter().map(|e| e.event).collect()
}

fn ids_of(events: &[FileEvent]) -> Vec<Uuid> {
    events.iter().map(FileEvent::event_id).collect()
}

/// Claims (with `lease`) until a claim hands something out, for at most [`PATIENCE`].
async fn claim_when_free(store: &dyn TransactionalStore, rule: &str, lease: Duration) -> Vec<OutboxEntry> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let batch = ok(rule, store.claim(DRAIN_BATCH, lease).await);
        if !batch.is_empty() {
            return batch;
        }
        assert!(
            Instant::now() < deadline,
            "{rule}: nothing came back within {PATIENCE:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// `claim` hands out the events in the order they were recorded, at most `limit` at a time
/// (none for a limit of 0), each once.
///
/// # Panics
/// When the store breaks the rule.
pub async fn claims_are_oldest_first_and_at_most_the_limit(store: &dyn TransactionalStore) {
    const RULE: &str = "claims are oldest first and at most the limit";
    drain(store, RULE).await;
    let recorded = record_events(store, RULE, 5).await;
    assert!(
        ok(RULE, store.claim(0, LONG_LEASE).await).is_empty(),
        "{RULE}: a limit of 0"
    );
    let mut pages = Vec::new();
    for limit in [2, 2, 10] {
        let page = ok(RULE, store.claim(limit, LONG_LEASE).await);
        assert!(
            page.len() <= limit,
            "{RULE}: {} events for a limit of {limit}",
            page.len()
        );
        pages.push(events(page));
    }
    assert_eq!(
        pages,
        [&recorded[0..2], &recorded[2..4], &recorded[4..5]],
        "{RULE}: pages"
    );
    assert!(
        ok(RULE, store.claim(10, LONG_LEASE).await).is_empty(),
        "{RULE}: everything is claimed"
    );
    ok(RULE, store.mark_sent(&ids_of(&recorded)).await);
}

/// What `claim` hands out is the event `mark_available` was given, field for field: both kinds
/// of root, sizes of zero and the largest a store keeps, content types absent and present,
/// names with any character a name may hold, times to the nanosecond.
///
/// # Panics
/// When the store breaks the rule.
pub async fn events_round_trip_exactly(store: &dyn TransactionalStore) {
    const RULE: &str = "events round-trip exactly";
    drain(store, RULE).await;
    let tenant = fresh_tenant();
    let content_type =
        ContentType::parse("text/plain; charset=utf-8").unwrap_or_else(|e| panic!("test content type: {e}"));
    let largest = u64::try_from(i64::MAX).unwrap_or(u64::MAX);
    let files = [
        FileRecord {
            content_type: Some(content_type),
            sha256: Sha256::from_bytes([0xff; 32]),
            ..record(
                device_root(tenant),
                "日本語 ✓ 'quoted' \"double\" % _ \\",
                FileState::Pending,
            )
        },
        FileRecord {
            sha256: Sha256::from_bytes([0; 32]),
            ..record(tenant_root(tenant), &"é".repeat(127), FileState::Pending)
        },
    ];
    let mut recorded = Vec::new();
    for (file, size) in files.iter().zip([0, largest]) {
        insert(store, RULE, file).await;
        let at = now_micros();
        // An event time with nanoseconds, and a bucket name that needs escaping in JSON.
        let occurred_at = OffsetDateTime::now_utc().replace_nanosecond(123_456_789).unwrap_or(at);
        let event = FileUploaded::new(Uuid::new_v4(), file, size, "bucket \"b\" \\ é", occurred_at);
        recorded.push(mark(store, RULE, file, size, at, event).await.into());
    }
    assert_eq!(events(ok(RULE, store.claim(10, LONG_LEASE).await)), recorded, "{RULE}");
    ok(RULE, store.mark_sent(&ids_of(&recorded)).await);
}

/// A claimed event is not handed out again while its lease runs, and is once it ran out; the
/// other events are meanwhile.
///
/// # Panics
/// When the store breaks the rule.
pub async fn a_lease_hides_an_event_until_it_runs_out(store: &dyn TransactionalStore) {
    const RULE: &str = "a lease hides an event until it runs out";
    drain(store, RULE).await;
    let recorded = record_events(store, RULE, 2).await;
    let started = Instant::now();
    assert_eq!(
        events(ok(RULE, store.claim(1, SHORT_LEASE).await)),
        recorded[..1],
        "{RULE}: the first"
    );
    assert_eq!(
        events(ok(RULE, store.claim(10, LONG_LEASE).await)),
        recorded[1..],
        "{RULE}: the other is free"
    );
    let hidden = ok(RULE, store.claim(10, LONG_LEASE).await);
    // `started` is taken before the lease was: while less than the lease has passed since, the
    // lease runs for sure and the event must stay hidden. A machine so slow that the lease may
    // have run out already makes this check say nothing, rather than fail wrongly.
    if started.elapsed() < SHORT_LEASE {
        assert!(hidden.is_empty(), "{RULE}: both are leased");
    }
    let again = if hidden.is_empty() {
        events(claim_when_free(store, RULE, LONG_LEASE).await)
    } else {
        events(hidden)
    };
    let waited = started.elapsed();
    assert_eq!(again, recorded[..1], "{RULE}: the first comes back");
    assert!(
        waited >= SHORT_LEASE / 2,
        "{RULE}: it came back after {waited:?}, before its lease of {SHORT_LEASE:?} ran out"
    );
    ok(RULE, store.mark_sent(&ids_of(&recorded)).await);
}

/// Released events can be claimed again at once, still in order; releasing a sent event, an
/// unknown one or none at all changes nothing.
///
/// # Panics
/// When the store breaks the rule.
pub async fn released_events_come_back_at_once(store: &dyn TransactionalStore) {
    const RULE: &str = "released events come back at once";
    drain(store, RULE).await;
    let recorded = record_events(store, RULE, 3).await;
    assert_eq!(
        events(ok(RULE, store.claim(10, LONG_LEASE).await)),
        recorded,
        "{RULE}: all"
    );
    ok(RULE, store.release(&[]).await);
    ok(
        RULE,
        store
            .release(&[recorded[2].event_id(), Uuid::new_v4(), recorded[1].event_id()])
            .await,
    );
    assert_eq!(
        events(ok(RULE, store.claim(10, LONG_LEASE).await)),
        recorded[1..],
        "{RULE}: the released ones, in order"
    );
    ok(RULE, store.mark_sent(&[recorded[0].event_id()]).await);
    ok(RULE, store.release(&[recorded[0].event_id()]).await);
    assert!(
        ok(RULE, store.claim(10, LONG_LEASE).await).is_empty(),
        "{RULE}: releasing a sent event does not bring it back"
    );
    ok(RULE, store.mark_sent(&ids_of(&recorded)).await);
}

/// An event marked sent is never handed out again, whether its lease runs out or it is
/// released; an event can be marked sent without being claimed; marking sent twice, an
/// unknown event or none at all is harmless.
///
/// # Panics
/// When the store breaks the rule.
pub async fn sent_events_never_come_back(store: &dyn TransactionalStore) {
    const RULE: &str = "sent events never come back";
    drain(store, RULE).await;
    let recorded = record_events(store, RULE, 3).await;
    let (sent, unsent, unclaimed) = (&recorded[0], &recorded[1], &recorded[2]);
    assert_eq!(
        events(ok(RULE, store.claim(2, SHORT_LEASE).await)),
        recorded[..2],
        "{RULE}: claimed"
    );
    ok(RULE, store.mark_sent(&[sent.event_id(), Uuid::new_v4()]).await);
    ok(RULE, store.mark_sent(&[unclaimed.event_id()]).await);
    ok(RULE, store.mark_sent(&[]).await);
    ok(RULE, store.release(&[sent.event_id(), unclaimed.event_id()]).await);
    // The unsent one's lease runs out; the sent one's ran out too by then.
    assert_eq!(
        events(claim_when_free(store, RULE, LONG_LEASE).await),
        std::slice::from_ref(unsent),
        "{RULE}: only the unsent one comes back"
    );
    ok(RULE, store.mark_sent(&[unsent.event_id()]).await);
    ok(RULE, store.mark_sent(&[unsent.event_id()]).await);
    assert!(
        ok(RULE, store.claim(10, LONG_LEASE).await).is_empty(),
        "{RULE}: nothing left"
    );
    assert_eq!(ok(RULE, store.stats().await), OutboxStats::default(), "{RULE}: stats");
}

/// `stats` counts the unsent events, leased or not, and gives the recording time of the oldest
/// of them; `None` when there are none.
///
/// # Panics
/// When the store breaks the rule.
pub async fn stats_count_the_unsent_events_and_the_oldest(store: &dyn TransactionalStore) {
    const RULE: &str = "stats count the unsent events and the oldest";
    drain(store, RULE).await;
    let recorded = record_events(store, RULE, 3).await;
    assert_eq!(ok(RULE, store.stats().await).depth, 3, "{RULE}: recorded");
    let claimed = ok(RULE, store.claim(10, LONG_LEASE).await);
    assert_eq!(events(claimed.clone()), recorded, "{RULE}: claimed");
    let recorded_at: Vec<OffsetDateTime> = claimed.iter().map(|e| e.recorded_at).collect();
    assert!(
        recorded_at.is_sorted(),
        "{RULE}: recorded one after another: {recorded_at:?}"
    );
    assert_eq!(
        ok(RULE, store.stats().await),
        OutboxStats {
            depth: 3,
            oldest: recorded_at.first().copied()
        },
        "{RULE}: leased events still wait"
    );
    ok(RULE, store.mark_sent(&[recorded[0].event_id()]).await);
    assert_eq!(
        ok(RULE, store.stats().await),
        OutboxStats {
            depth: 2,
            oldest: recorded_at.get(1).copied()
        },
        "{RULE}: the oldest was sent"
    );
    ok(RULE, store.mark_sent(&ids_of(&recorded)).await);
    assert_eq!(
        ok(RULE, store.stats().await),
        OutboxStats::default(),
        "{RULE}: all sent"
    );
}

/// Two claimers claiming in a loop at the same time never get the same event, and between them
/// get every one.
///
/// # Panics
/// When the store breaks the rule.
pub async fn concurrent_claimers_never_share_an_event(store: &dyn TransactionalStore) {
    const RULE: &str = "concurrent claimers never share an event";
    const EVENTS: usize = 40;
    drain(store, RULE).await;
    let recorded = record_events(store, RULE, EVENTS).await;
    let (first, second) = futures::join!(claim_until_empty(store, RULE), claim_until_empty(store, RULE));
    let first_set: HashSet<Uuid> = first.iter().copied().collect();
    let second_set: HashSet<Uuid> = second.iter().copied().collect();
    assert_eq!(first_set.len(), first.len(), "{RULE}: one claimer got an event twice");
    assert_eq!(second_set.len(), second.len(), "{RULE}: one claimer got an event twice");
    let shared: Vec<&Uuid> = first_set.intersection(&second_set).collect();
    assert!(shared.is_empty(), "{RULE}: both got {shared:?}");
    let all: HashSet<Uuid> = first_set.union(&second_set).copied().collect();
    assert_eq!(
        all,
        ids_of(&recorded).into_iter().collect::<HashSet<_>>(),
        "{RULE}: between them, every event"
    );
    ok(RULE, store.mark_sent(&ids_of(&recorded)).await);
    assert_eq!(
        ok(RULE, store.stats().await),
        OutboxStats::default(),
        "{RULE}: all sent"
    );
}

/// Claims a few events at a time until a claim hands out nothing; returns every event id it
/// got, in the order it got them.
async fn claim_until_empty(store: &dyn TransactionalStore, rule: &str) -> Vec<Uuid> {
    let mut got = Vec::new();
    let mut seen = HashSet::new();
    loop {
        let batch = ok(rule, store.claim(3, LONG_LEASE).await);
        if batch.is_empty() {
            return got;
        }
        for id in event_ids(&batch) {
            // Also what stops the loop when leases do not hold.
            assert!(seen.insert(id), "{rule}: event {id} was claimed again while leased");
            got.push(id);
        }
        // Let the other claimer in between.
        tokio::task::yield_now().await;
    }
}
