//! An object store that pauses one chosen call midway, so a test can run another actor (a
//! device's `complete`, a second janitor) exactly between two steps of the first one, on the
//! fake or on a real store.
//!
//! [`Gate::arm`] names the call and whether to pause before it reaches the store or after it
//! answered; the next such call pauses (once), [`Gate::reached`] waits until it has, and
//! [`Gate::release`] lets it go on. Every call is counted, paused or not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use files_core::{CompletedMultipart, ObjectInfo, ObjectKey, ObjectStore, PortError, StoredPart};
use tokio::sync::Notify;

/// A call of the [`ObjectStore`] port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// `inspect`.
    Inspect,
    /// `delete`.
    Delete,
    /// `create_multipart`.
    CreateMultipart,
    /// `list_parts`.
    ListParts,
    /// `complete_multipart`.
    CompleteMultipart,
    /// `abort_multipart`.
    AbortMultipart,
}

/// Where an armed call pauses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Before the call reaches the store (as a proxy holding the request would).
    Before,
    /// After the store answered, before the caller sees the answer (the caller's copy of the
    /// store's state is then as stale as it can be).
    After,
}

/// The pause of one call, shared by the test and the [`GatedObjects`].
#[derive(Debug, Default)]
pub struct Gate {
    armed: Mutex<Option<(Call, When)>>,
    calls: Mutex<HashMap<Call, usize>>,
    reached: Notify,
    released: Notify,
}

impl Gate {
    /// A gate with nothing armed.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The next `call` pauses `when`; once.
    pub fn arm(&self, call: Call, when: When) {
        *self.armed.lock().unwrap_or_else(PoisonError::into_inner) = Some((call, when));
    }

    /// Waits until the armed call has paused.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the paused call go on.
    pub fn release(&self) {
        self.released.notify_one();
    }

    /// How many times `call` was made so far.
    #[must_use]
    pub fn calls(&self, call: Call) -> usize {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&call)
            .copied()
            .unwrap_or_default()
    }

    /// Counts `call` and says whether it is the armed one (disarming it).
    fn take(&self, call: Call, when: When) -> bool {
        if when == When::Before {
            *self
                .calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(call)
                .or_default() += 1;
        }
        let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
        if *armed == Some((call, when)) {
            *armed = None;
            return true;
        }
        false
    }

    /// Pauses here when `call` is armed for `when`.
    async fn pass(&self, call: Call, when: When) {
        if self.take(call, when) {
            self.reached.notify_one();
            self.released.notified().await;
        }
    }
}

/// An [`ObjectStore`] whose calls go through a [`Gate`].
pub struct GatedObjects {
    inner: Arc<dyn ObjectStore>,
    gate: Arc<Gate>,
}

impl std::fmt::Debug for GatedObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatedObjects")
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl GatedObjects {
    /// `inner`, paused by `gate`.
    pub fn new(inner: Arc<dyn ObjectStore>, gate: Arc<Gate>) -> Self {
        Self { inner, gate }
    }

    async fn around<T>(&self, call: Call, inner: impl Future<Output = T>) -> T {
        self.gate.pass(call, When::Before).await;
        let answer = inner.await;
        self.gate.pass(call, When::After).await;
        answer
    }
}

#[async_trait]
impl ObjectStore for GatedObjects {
    async fn inspect(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, PortError> {
        self.around(Call::Inspect, self.inner.inspect(key)).await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), PortError> {
        self.around(Call::Delete, self.inner.delete(key)).await
    }

    async fn create_multipart(&self, key: &ObjectKey) -> Result<String, PortError> {
        self.around(Call::CreateMultipart, self.inner.create_multipart(key))
            .await
    }

    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> Result<Vec<StoredPart>, PortError> {
        self.around(Call::ListParts, self.inner.list_parts(key, upload_id))
            .await
    }

    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<CompletedMultipart, PortError> {
        self.around(
            Call::CompleteMultipart,
            self.inner.complete_multipart(key, upload_id, parts),
        )
        .await
    }

    async fn abort_multipart(&self, key: &ObjectKey, upload_id: &str) -> Result<(), PortError> {
        self.around(Call::AbortMultipart, self.inner.abort_multipart(key, upload_id))
            .await
    }
}
