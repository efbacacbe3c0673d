//! The [`Housekeeping`] contract, for every store the janitor works on: what `claim_stale`
//! hands out (and to whom), `mark_expired`, `mark_swept`, `count_pending`, and `prune_sent`
//! never touching an unsent event.

use std::time::Duration as StdDuration;

use files_core::{FileRecord, FileState, JanitorStore, Owner, Scope};
use time::Duration;

use super::metadata::{fresh_tenant, now_micros, ok, record, uploaded_event};

/// Runs every rule; returns how many sent outbox rows `prune_sent` removed (a store that keeps
/// no sent rows removes none). The store should be empty of stale records (a fresh database); records of
/// other tests with their expiry in the past would be claimed too.
///
/// # Panics
/// When the store breaks a rule.
pub async fn run(store: &dyn JanitorStore) -> u64 {
    const RULE: &str = "housekeeping";
    let now = now_micros();
    let scope = Scope {
        tenant: fresh_tenant(),
        owner: Owner::Tenant,
    };
    let stale = |state: FileState, minutes_ago: i64| FileRecord {
        upload_expires_at: Some(now - Duration::minutes(minutes_ago)),
        ..record(scope, "stale.bin", state)
    };
    let old_pending = stale(FileState::Pending, 30);
    let older_pending = stale(FileState::Pending, 40);
    let deleted = stale(FileState::Deleted, 20);
    let fresh_pending = stale(FileState::Pending, -30); // its URL still runs
    let available = stale(FileState::Available, 50);
    let swept = FileRecord {
        upload_expires_at: None,
        ..record(scope, "swept.bin", FileState::Deleted)
    };
    for r in [
        &old_pending,
        &older_pending,
        &deleted,
        &fresh_pending,
        &available,
        &swept,
    ] {
        ok(RULE, store.insert(r).await);
    }
    assert_eq!(
        ok(RULE, store.count_pending().await),
        3,
        "{RULE}: count_pending counts the pending records"
    );

    // One at a time, the oldest expiry first; a leased record is not handed out again.
    let cutoff = now - Duration::minutes(10);
    let lease = StdDuration::from_secs(60);
    let first = ok(RULE, store.claim_stale(cutoff, 1, lease).await);
    assert_eq!(
        first.iter().map(|r| r.id).collect::<Vec<_>>(),
        [older_pending.id],
        "{RULE}: the oldest expiry first"
    );
    let rest = ok(RULE, store.claim_stale(cutoff, 10, lease).await);
    let mut rest_ids: Vec<_> = rest.iter().map(|r| r.id).collect();
    rest_ids.sort();
    let mut expected = vec![old_pending.id, deleted.id];
    expected.sort();
    assert_eq!(
        rest_ids, expected,
        "{RULE}: pending and deleted records past the cutoff, not leased ones, not available or swept ones, not those whose URL still runs"
    );
    assert!(
        ok(RULE, store.claim_stale(cutoff, 10, lease).await).is_empty(),
        "{RULE}: leased records are not handed out twice"
    );

    // A lease that ran out hands the record out again.
    let short = StdDuration::from_millis(1);
    let other_scope = Scope {
        tenant: fresh_tenant(),
        owner: Owner::Tenant,
    };
    let again = FileRecord {
        upload_expires_at: Some(now - Duration::hours(2)),
        ..record(other_scope, "again.bin", FileState::Pending)
    };
    ok(RULE, store.insert(&again).await);
    let got = ok(RULE, store.claim_stale(cutoff, 10, short).await);
    assert_eq!(got.iter().map(|r| r.id).collect::<Vec<_>>(), [again.id], "{RULE}");
    tokio::time::sleep(StdDuration::from_millis(20)).await;
    let got = ok(RULE, store.claim_stale(cutoff, 10, lease).await);
    assert_eq!(
        got.iter().map(|r| r.id).collect::<Vec<_>>(),
        [again.id],
        "{RULE}: a record whose lease ran out is handed out again"
    );

    // mark_expired moves only a pending record.
    let expired = ok(RULE, store.mark_expired(scope.tenant, old_pending.id).await);
    assert_eq!(expired.map(|r| r.state), Some(FileState::Expired), "{RULE}");
    assert_eq!(
        ok(RULE, store.mark_expired(scope.tenant, available.id).await),
        None,
        "{RULE}: mark_expired leaves an available record alone"
    );
    assert_eq!(ok(RULE, store.count_pending().await), 3, "{RULE}: again.bin is pending");

    // mark_swept: the deleted record needs the janitor no more.
    ok(RULE, store.mark_swept(scope.tenant, deleted.id).await);
    let after = ok(RULE, store.get(scope.tenant, deleted.id).await);
    assert_eq!(after.and_then(|r| r.upload_expires_at), None, "{RULE}: swept");

    // prune_sent removes sent events older than the cutoff, never an unsent one.
    let unsent_record = record(scope, "unsent.bin", FileState::Pending);
    ok(RULE, store.insert(&unsent_record).await);
    let sent_record = record(scope, "sent.bin", FileState::Pending);
    ok(RULE, store.insert(&sent_record).await);
    let sent_event = uploaded_event(&sent_record, 5, now);
    ok(
        RULE,
        store
            .mark_available(scope.tenant, sent_record.id, 5, now, &sent_event)
            .await,
    );
    let unsent_event = uploaded_event(&unsent_record, 5, now);
    ok(
        RULE,
        store
            .mark_available(scope.tenant, unsent_record.id, 5, now, &unsent_event)
            .await,
    );
    let claimed = ok(RULE, store.claim(100, lease).await);
    let ids: Vec<_> = claimed
        .iter()
        .map(|e| e.event.event_id())
        .filter(|id| *id == sent_event.event_id)
        .collect();
    ok(RULE, store.mark_sent(&ids).await);
    ok(RULE, store.release(&[unsent_event.event_id]).await);
    assert_eq!(
        ok(RULE, store.prune_sent(now - Duration::hours(1), 1000).await),
        0,
        "{RULE}: nothing was sent an hour ago"
    );
    let pruned = ok(RULE, store.prune_sent(now + Duration::hours(1), 1000).await);
    let left = ok(RULE, store.claim(100, lease).await);
    assert!(
        left.iter().any(|e| e.event.event_id() == unsent_event.event_id),
        "{RULE}: prune_sent must never remove an unsent event"
    );
    assert!(
        !left.iter().any(|e| e.event.event_id() == sent_event.event_id),
        "{RULE}: a sent event is not handed out again"
    );
    pruned
}
