//! The one loop of the core's background work (the outbox relay, the janitor): a pass, then a
//! pause on the [`Clock`] port, until a stop signal.
//!
//! A stop that comes during a pass is acted on after it, so a pass is never cut short: whatever
//! it claimed is finished or released. A stop during a pause ends the pause at once. Waiting on
//! the clock port lets tests drive a loop with a fake clock instead of sleeping. Retry pacing
//! after a failure is a [`crate::Backoff`]'s, kept by the caller's pass.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::ports::Clock;

/// When a loop's next pass starts, as its pass decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// At once: the pass found a full batch, so more work may be waiting.
    Now,
    /// After this pause: the interval of an idle loop, or a back-off's delay after a failure.
    After(Duration),
}

impl Next {
    /// [`Next::Now`] when the pass was `busy`, else a pause of `interval`.
    #[must_use]
    pub(crate) const fn unless_busy(busy: bool, interval: Duration) -> Self {
        if busy { Self::Now } else { Self::After(interval) }
    }
}

/// Work done in passes by [`run_until`].
pub(crate) trait Work: Send {
    /// One pass; answers when the next should start.
    fn pass(&mut self) -> impl Future<Output = Next> + Send;
}

/// Runs `work`'s passes until `stop` completes (or the future is dropped), each pass followed by
/// the pause it asks for on `clock`. `stop` is checked before each pass and during each pause,
/// never during a pass: a pass under way when `stop` completes is finished first.
pub(crate) async fn run_until(clock: &dyn Clock, stop: impl Future<Output = ()>, mut work: impl Work) {
    let mut stop = pin!(stop);
    loop {
        if stopped(stop.as_mut()) {
            return;
        }
        if let Next::After(pause) = work.pass().await
            && sleep_unless_stopped(clock, pause, stop.as_mut()).await
        {
            return;
        }
    }
}

/// Waits `pause` on the clock, or until `stop` completes; true when it was `stop`.
async fn sleep_unless_stopped(
    clock: &dyn Clock,
    pause: Duration,
    mut stop: Pin<&mut impl Future<Output = ()>>,
) -> bool {
    let mut sleep = pin!(clock.sleep(pause));
    poll_fn(|cx| {
        if stop.as_mut().poll(cx).is_ready() {
            Poll::Ready(true)
        } else {
            sleep.as_mut().poll(cx).map(|()| false)
        }
    })
    .await
}

/// Whether `stop` has completed, without waiting for it.
fn stopped(stop: Pin<&mut impl Future<Output = ()>>) -> bool {
    stop.poll(&mut Context::from_waker(Waker::noop())).is_ready()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;
    use time::OffsetDateTime;
    use tokio::sync::{Notify, oneshot};

    use super::*;

    /// A clock whose pauses never end: a loop waiting on it waits for its stop signal.
    struct Frozen;

    #[async_trait]
    impl Clock for Frozen {
        fn now(&self) -> OffsetDateTime {
            OffsetDateTime::UNIX_EPOCH
        }

        async fn sleep(&self, _: Duration) {
            std::future::pending::<()>().await;
        }
    }

    /// Work that counts its passes, asks for `next` after each, and (when `hold` is set) waits
    /// in its third pass until the test lets it finish.
    struct Counted {
        passes: Arc<AtomicU32>,
        next: Next,
        entered: Arc<Notify>,
        hold: Option<oneshot::Receiver<()>>,
    }

    impl Work for Counted {
        async fn pass(&mut self) -> Next {
            let pass = self.passes.fetch_add(1, Ordering::SeqCst) + 1;
            if pass == 3
                && let Some(hold) = self.hold.take()
            {
                self.entered.notify_one();
                let _ = hold.await;
            }
            self.next
        }
    }

    fn counted(next: Next, hold: Option<oneshot::Receiver<()>>) -> (Counted, Arc<AtomicU32>, Arc<Notify>) {
        let passes = Arc::new(AtomicU32::default());
        let entered = Arc::new(Notify::new());
        let work = Counted {
            passes: passes.clone(),
            next,
            entered: entered.clone(),
            hold,
        };
        (work, passes, entered)
    }

    #[tokio::test]
    async fn a_stop_during_a_pause_ends_it_at_once() {
        let (work, passes, _) = counted(Next::After(Duration::from_secs(3600)), None);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            run_until(&Frozen, async move { drop(stopped.await) }, work).await;
        });
        tokio::task::yield_now().await;
        let _ = stop.send(());
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await;
        assert!(matches!(ended, Ok(Ok(()))), "the loop returned at the stop: {ended:?}");
        assert_eq!(
            passes.load(Ordering::SeqCst),
            1,
            "one pass, then the pause the stop ended"
        );
    }

    #[tokio::test]
    async fn a_busy_loop_goes_on_at_once_and_finishes_the_pass_under_way_at_a_stop() {
        let (release, hold) = oneshot::channel();
        let (work, passes, entered) = counted(Next::Now, Some(hold));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // `Frozen` never ends a pause: only passes back to back reach the third.
            run_until(&Frozen, async move { drop(stopped.await) }, work).await;
        });
        entered.notified().await;
        let _ = stop.send(());
        tokio::task::yield_now().await;
        assert!(!task.is_finished(), "the pass under way is not cut short");
        let _ = release.send(());
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await;
        assert!(
            matches!(ended, Ok(Ok(()))),
            "the loop returned after its pass: {ended:?}"
        );
        assert_eq!(passes.load(Ordering::SeqCst), 3, "no pass starts after the stop");
    }

    #[test]
    fn unless_busy_pauses_only_an_idle_loop() {
        let interval = Duration::from_secs(60);
        assert_eq!(Next::unless_busy(true, interval), Next::Now);
        assert_eq!(Next::unless_busy(false, interval), Next::After(interval));
    }

    /// The loops of the relay and the janitor can be spawned on a multi-threaded runtime.
    #[allow(dead_code, reason = "checked by the compiler, never called")]
    fn loops_are_send(relay: crate::Relay, janitor: crate::Janitor) {
        fn send(_: impl Send) {}
        send(relay.run_until(std::future::pending()));
        send(janitor.run_until(std::future::pending()));
    }
}
