//! The [`Switch`] that makes a fake fail, shared by every fake.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use files_core::PortError;

/// Makes a fake fail while it is on. Clones share the state.
#[derive(Debug, Clone, Default)]
pub struct Switch(Arc<AtomicU8>);

const WORKS: u8 = 0;
const UNAVAILABLE: u8 = 1;
const FAILED: u8 = 2;

impl Switch {
    /// Every call fails with [`PortError::Unavailable`] from now on (the dependency is down).
    pub fn fail(&self) {
        self.0.store(UNAVAILABLE, Ordering::SeqCst);
    }

    /// Every call fails with [`PortError::Failed`] from now on (the dependency answers wrongly).
    pub fn answer_wrongly(&self) {
        self.0.store(FAILED, Ordering::SeqCst);
    }

    /// Calls succeed again.
    pub fn recover(&self) {
        self.0.store(WORKS, Ordering::SeqCst);
    }

    /// Fails the call when the switch is on.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] or [`PortError::Failed`] while on.
    pub fn check(&self) -> Result<(), PortError> {
        match self.0.load(Ordering::SeqCst) {
            UNAVAILABLE => Err(PortError::unavailable("switched off by the test")),
            FAILED => Err(PortError::failed("made to answer wrongly by the test")),
            _ => Ok(()),
        }
    }
}

/// Locks `mutex`, going on past a poisoned lock: a test that panicked holding it already failed.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
