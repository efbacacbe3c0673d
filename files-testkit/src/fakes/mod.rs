//! In-memory fakes of every port, each with a [`Switch`] that makes it fail.
//!
//! The metadata store and cache fakes are the embedded default's memory adapters behind a
//! switch, so they pass the same contract as what the embedded default runs.

mod cache;
mod clock;
mod metadata;
mod metrics;
mod notifier;
mod objects;
mod switch;
mod tokens;

pub use cache::FakeCache;
pub use clock::FakeClock;
pub use metadata::FakeMetadataStore;
pub use metrics::{Recorded, RecordingMetrics};
pub use notifier::RecordingNotifier;
pub use objects::{FakeObjectStore, FakeStoreRefusal};
pub use switch::Switch;
use switch::lock;
pub use tokens::FakeTokenVerifier;
