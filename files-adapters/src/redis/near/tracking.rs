//! The near cache's tracking connection: a RESP3 connection with `CLIENT TRACKING ON BCAST`
//! for the cache's prefix, on a thread of its own with a current-thread runtime, pinged every
//! [`PING_INTERVAL`], started again after any failure. It knows the cache only as [`Tracked`]:
//! what it tells it (tracking on, lost, stopped by its owner, a key pushed).

use std::sync::{Arc, Weak};
use std::time::Duration;

use bb8_redis::redis::{self as driver, AsyncConnectionConfig, Client, PushInfo, PushKind};
use files_core::Backoff;
use tokio::sync::{Notify, oneshot};

/// What a cache kept by a tracking connection is told.
pub(crate) trait Tracked: Send + Sync + 'static {
    /// Tracking is on: what was kept before is dropped, and the cache is used from now on
    /// (unless its owner stopped it).
    fn established(&self);
    /// Tracking is off: nothing is served or kept until it is on again.
    fn lost(&self);
    /// Tracking is off for good (its owner stopped it).
    fn stopped(&self);
    /// A push on the tracking connection (an invalidation, or the connection's end).
    fn pushed(&self, push: &PushInfo);
}

/// How often the tracking connection is pinged to find a connection that hangs.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);

/// How long the tracking connection's ping may take before the connection counts as hung (and
/// the bound on connecting it and turning tracking on). Its own, not the cache's call timeout:
/// a lost tracking drops every entry, and the refill costs far more than a late answer, so it
/// allows for a machine under load. It is what a hung connection may cost: entries served
/// without their invalidations for at most [`PING_INTERVAL`] plus this.
pub const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// The pace of the attempts to turn tracking on: 100 ms doubling to 5 s, so tracking is back
/// within seconds of Redis.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// The name of the tracking connection's thread (at most 15 bytes, as Linux shows them).
const THREAD_NAME: &str = "near-cache";

/// What keeps tracking on for a near cache: connects, turns tracking on, pings, and starts again
/// after any failure, with [`BACKOFF`], on a thread of its own. Built by the near cache's
/// `tracking`; run by the cache's owner.
pub(crate) struct Tracking<C: Tracked> {
    near: OffWhenDropped<C>,
    client: Client,
    prefix: String,
}

/// Turns tracking off for its cache when dropped: entries must not be served without the
/// connection that drops them. The owner's ([`Tracking`], and the future of [`Tracking::run`])
/// turns it off for good, at once, when the owner stops it (or its task is aborted), even
/// before the thread has seen the stop; the thread's when its work ends, or unwinds.
struct OffWhenDropped<C: Tracked> {
    near: Weak<C>,
    for_good: bool,
}

impl<C: Tracked> Drop for OffWhenDropped<C> {
    fn drop(&mut self) {
        if let Some(near) = self.near.upgrade() {
            if self.for_good {
                near.stopped();
            } else {
                near.lost();
            }
        }
    }
}

impl<C: Tracked> Tracking<C> {
    /// The tracking of `near`'s keys under `prefix`, through `client`; not started until run.
    pub(super) fn new(near: Weak<C>, client: Client, prefix: String) -> Self {
        Self {
            near: OffWhenDropped { near, for_good: true },
            client,
            prefix,
        }
    }

    /// Keeps tracking on until every handle on the cache is gone; stopped by dropping it.
    ///
    /// The first poll starts the connection's thread: a current-thread runtime of its own,
    /// which no task of the caller's runtime can hold up. The future waits for that thread,
    /// and dropping it stops it (and turns tracking off at once). When the thread cannot be
    /// started, or fails, the future ends and the near cache serves nothing.
    pub(crate) async fn run(self) {
        let Self {
            near: off,
            client,
            prefix,
        } = self;
        let near = off.near.clone();
        // Dropped with this future, which tells the thread to stop.
        let (_stop, stopped) = oneshot::channel::<()>();
        let (ended, thread_ended) = oneshot::channel::<()>();
        // The caller's subscriber (a test's, say), so the thread logs where the caller does.
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        let started = std::thread::Builder::new().name(THREAD_NAME.to_owned()).spawn(move || {
            let _dispatch = tracing::dispatcher::set_default(&dispatch);
            let _off = OffWhenDropped {
                near: near.clone(),
                for_good: false,
            };
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => {
                    tracing::error!(%error, "Redis near cache: no runtime for key tracking; reading from Redis");
                    return;
                }
            };
            runtime.block_on(async {
                tokio::select! {
                    _ = stopped => {}
                    () = keep_tracking(&near, &client, &prefix) => {}
                }
            });
            // The runtime, and the connection's tasks with it, end before the thread says so.
            drop(runtime);
            let _ = ended.send(());
        });
        if let Err(error) = started {
            tracing::error!(%error, "Redis near cache: no thread for key tracking; reading from Redis");
            return;
        }
        if thread_ended.await.is_err() {
            tracing::error!("Redis near cache: the key tracking thread failed; reading from Redis");
        }
        drop(off);
    }
}

/// Keeps tracking on for `near`, reconnecting with [`BACKOFF`], until every handle on the cache
/// is gone. Runs on the tracking thread's runtime.
async fn keep_tracking<C: Tracked>(near: &Weak<C>, client: &Client, prefix: &str) {
    let mut backoff = BACKOFF;
    let mut failed = false;
    loop {
        let disconnected = Arc::new(Notify::new());
        match connect(near, client, prefix, &disconnected).await {
            Ok(mut connection) => {
                let Some(cache) = near.upgrade() else { return };
                cache.established();
                drop(cache);
                if failed {
                    tracing::info!("Redis near cache: key tracking is back on");
                }
                backoff.reset();
                loop {
                    tokio::select! {
                        () = disconnected.notified() => break,
                        () = tokio::time::sleep(PING_INTERVAL) => {}
                    }
                    if near.strong_count() == 0 {
                        return;
                    }
                    let ping =
                        tokio::time::timeout(PING_TIMEOUT, driver::cmd("PING").query_async::<String>(&mut connection))
                            .await;
                    if !matches!(ping, Ok(Ok(_))) {
                        break;
                    }
                }
                let Some(cache) = near.upgrade() else { return };
                cache.lost();
                tracing::warn!("Redis near cache: key tracking lost; reading from Redis until it is back");
            }
            Err(error) => {
                if near.strong_count() == 0 {
                    return;
                }
                if failed {
                    tracing::debug!(%error, "Redis near cache: key tracking still off");
                } else {
                    tracing::warn!(%error, "Redis near cache: cannot turn key tracking on; reading from Redis");
                }
            }
        }
        failed = true;
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// A RESP3 connection whose pushes reach `near`, with tracking on for every key under `prefix`.
async fn connect<C: Tracked>(
    near: &Weak<C>,
    client: &Client,
    prefix: &str,
    disconnected: &Arc<Notify>,
) -> driver::RedisResult<driver::aio::MultiplexedConnection> {
    let (near, disconnected) = (near.clone(), disconnected.clone());
    // Called by the connection's reader, in order with the replies, before the next one.
    let on_push = move |push: PushInfo| -> Result<(), std::convert::Infallible> {
        if let Some(cache) = near.upgrade() {
            cache.pushed(&push);
        }
        if push.kind == PushKind::Disconnection {
            disconnected.notify_one();
        }
        Ok(())
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(PING_TIMEOUT))
        .set_response_timeout(Some(PING_TIMEOUT))
        .set_push_sender(on_push);
    let mut connection = client.get_multiplexed_async_connection_with_config(&config).await?;
    driver::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(format!("{prefix}:"))
        .query_async::<()>(&mut connection)
        .await?;
    Ok(connection)
}
