//! Log lines captured in memory, for tests that read what a `tracing` subscriber wrote.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

/// A writer that keeps every line written; clones share the lines. Give a subscriber
/// `.with_writer(move || captured.clone())` and read them back with [`CapturedLog::text`].
#[derive(Debug, Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    /// Everything written so far.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}
