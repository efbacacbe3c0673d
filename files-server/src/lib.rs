//! The Files service server: configuration, wiring, the actix-web HTTP API, error mapping and
//! telemetry. `main.rs` only parses the command line and calls in here.

pub mod cli;
pub mod config;
pub mod error;
pub mod extract;
pub mod http_metrics;
pub mod ingest;
pub mod notifications;
pub mod readiness;
pub mod request_id;
pub mod routes;
pub mod startup;
pub mod tasks;
pub mod telemetry;
pub mod wiring;

pub use config::Settings;
pub use startup::Application;
pub use wiring::Overrides;
