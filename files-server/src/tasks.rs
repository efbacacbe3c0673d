//! The one owner of the server's background tasks: the outbox relay, the janitor, the readiness
//! measurement, the adapters' background work (the JWKS refresh, the near cache's key
//! tracking), the AMQP ingest and the embedded store's ingest.
//!
//! Every task is started by name in one [`JoinSet`] and stopped the same way: on shutdown each
//! gets the stop signal (its own [`CancellationToken`], a child of the owner's), the last
//! started first, and is waited for until a shared deadline, past which what is left is aborted.
//! The order matters: what produces events (the ingests, the janitor) stops before the relay
//! that publishes them, and the adapters' work (key tracking, key refresh), started while
//! wiring, stops last, after everything that uses the adapters. A task that ends before it
//! was told to stop is logged as an error.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A started task: its name and its own stop signal.
#[derive(Debug)]
struct Started {
    id: Id,
    name: &'static str,
    stop: CancellationToken,
}

/// The background tasks of one server, started by name and stopped together.
#[derive(Debug, Default)]
pub struct Tasks {
    set: JoinSet<()>,
    /// In start order.
    started: Vec<Started>,
    names: HashMap<Id, &'static str>,
    /// The parent of every task's stop signal.
    stop: CancellationToken,
}

impl Tasks {
    /// No task yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `task`, which is given its stop signal: it should return soon after the signal,
    /// leaving nothing half done (a relay pass under way is finished, for example).
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.child_token();
        let handle = self.set.spawn(task(stop.clone()));
        let id = handle.id();
        self.names.insert(id, name);
        self.started.push(Started { id, name, stop });
        tracing::debug!(task = name, "background task started");
    }

    /// Starts `work`, a future that can be stopped at any await point (an adapter's background
    /// work): it is dropped at the stop signal.
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    pub fn spawn_until_stopped(&mut self, name: &'static str, work: impl Future<Output = ()> + Send + 'static) {
        self.spawn(name, |stop| async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = work => {}
            }
        });
    }

    /// The names of the tasks still running, in start order.
    #[must_use]
    pub fn running(&self) -> Vec<&'static str> {
        self.started
            .iter()
            .filter(|task| self.names.contains_key(&task.id))
            .map(|task| task.name)
            .collect()
    }

    /// Logs every task that ends before it was told to stop; never returns (an empty set
    /// waits forever). Run it beside the server, in a `select!`: dropping it loses nothing.
    pub async fn watch(&mut self) {
        loop {
            match self.set.join_next_with_id().await {
                Some(ended) => self.ended(ended),
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Books the end of a task, logged as an error unless it was told to stop.
    fn ended(&mut self, ended: Result<(Id, ()), JoinError>) {
        let (id, failure) = match ended {
            Ok((id, ())) => (id, None),
            Err(error) => (error.id(), Some(error)),
        };
        let Some(name) = self.names.remove(&id) else { return };
        let stopped = self
            .started
            .iter()
            .find(|task| task.id == id)
            .is_some_and(|task| task.stop.is_cancelled());
        match failure {
            Some(error) if error.is_panic() => tracing::error!(task = name, "background task panicked"),
            Some(_) => tracing::debug!(task = name, "background task aborted"),
            None if stopped => tracing::debug!(task = name, "background task stopped"),
            None => tracing::error!(task = name, "background task ended before it was told to stop"),
        }
    }

    /// Stops every task, the last started first: each is told to stop, then waited for, all
    /// within `within` in all; a task still running at the deadline is aborted and named in a
    /// warning (what it held, such as the leases of a relay's or a janitor's claims, runs out
    /// by itself).
    pub async fn shutdown(mut self, within: Duration) {
        let deadline = Instant::now() + within;
        let order: Vec<(Id, &'static str, CancellationToken)> = self
            .started
            .iter()
            .rev()
            .map(|task| (task.id, task.name, task.stop.clone()))
            .collect();
        for (id, name, stop) in order {
            stop.cancel();
            while self.names.contains_key(&id) {
                match tokio::time::timeout_at(deadline, self.set.join_next_with_id()).await {
                    Ok(Some(ended)) => self.ended(ended),
                    Ok(None) => break,
                    Err(_) => {
                        tracing::warn!(
                            task = name,
                            within_ms = within.as_millis(),
                            "background task did not stop in time; aborted"
                        );
                        break;
                    }
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        self.stop.cancel();
        let left = self.running();
        if !left.is_empty() {
            tracing::warn!(tasks = ?left, "background tasks aborted at the end of the grace period");
        }
        self.set.shutdown().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn tasks_stop_last_started_first_and_a_stuck_one_is_aborted() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Tasks::new();
        for name in ["first", "second", "third"] {
            let order = order.clone();
            tasks.spawn(name, move |stop| async move {
                stop.cancelled().await;
                order.lock().unwrap().push(name);
            });
        }
        tasks.spawn_until_stopped("stuck-free", std::future::pending());
        assert_eq!(tasks.running(), ["first", "second", "third", "stuck-free"]);
        tasks.shutdown(Duration::from_secs(5)).await;
        assert_eq!(*order.lock().unwrap(), ["third", "second", "first"]);

        let mut tasks = Tasks::new();
        tasks.spawn("stuck", |_stop| std::future::pending());
        let started = Instant::now();
        tasks.shutdown(Duration::from_millis(100)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_task_that_ends_early_is_booked() {
        let mut tasks = Tasks::new();
        tasks.spawn("short", |_stop| async {});
        tasks.spawn_until_stopped("long", std::future::pending());
        let _ = tokio::time::timeout(Duration::from_millis(200), tasks.watch()).await;
        assert_eq!(tasks.running(), ["long"]);
        tasks.shutdown(Duration::from_secs(1)).await;
    }
}
