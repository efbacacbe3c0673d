//! The notifier fake, which keeps what it is given.

use std::sync::Mutex;

use async_trait::async_trait;
use files_core::{FileUploaded, Notifier, PortError};

use super::{Switch, lock};

/// A notifier that keeps what it is given.
#[derive(Debug, Default)]
pub struct RecordingNotifier {
    events: Mutex<Vec<FileUploaded>>,
    /// Fails every publication while on.
    pub switch: Switch,
}

impl RecordingNotifier {
    /// Every event published so far.
    #[must_use]
    pub fn events(&self) -> Vec<FileUploaded> {
        lock(&self.events).clone()
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    async fn publish(&self, event: &FileUploaded) -> Result<(), PortError> {
        self.switch.check()?;
        lock(&self.events).push(event.clone());
        Ok(())
    }
}
