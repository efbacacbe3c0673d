//! The notifier fake, which keeps what it is given.

use std::sync::Mutex;

use async_trait::async_trait;
use files_core::{FileDeleted, FileEvent, FileUploaded, Notifier, PortError};

use super::{Switch, lock};

/// A notifier that keeps what it is given.
#[derive(Debug, Default)]
pub struct RecordingNotifier {
    events: Mutex<Vec<FileEvent>>,
    /// Fails every publication while on.
    pub switch: Switch,
}

impl RecordingNotifier {
    /// Every `file.uploaded` event published so far.
    #[must_use]
    pub fn events(&self) -> Vec<FileUploaded> {
        self.all()
            .into_iter()
            .filter_map(|event| match event {
                FileEvent::Uploaded(event) => Some(event),
                FileEvent::Deleted(_) => None,
            })
            .collect()
    }

    /// Every `file.deleted` event published so far.
    #[must_use]
    pub fn deletions(&self) -> Vec<FileDeleted> {
        self.all()
            .into_iter()
            .filter_map(|event| match event {
                FileEvent::Deleted(event) => Some(event),
                FileEvent::Uploaded(_) => None,
            })
            .collect()
    }

    /// Every event published so far, of either type, in order.
    #[must_use]
    pub fn all(&self) -> Vec<FileEvent> {
        lock(&self.events).clone()
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    async fn publish(&self, event: &FileEvent) -> Result<(), PortError> {
        self.switch.check()?;
        lock(&self.events).push(event.clone());
        Ok(())
    }
}
