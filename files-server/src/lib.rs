//! The Files service server: configuration, wiring, the actix-web HTTP API, error mapping and
//! telemetry. `main.rs` only parses the command line and calls in here.

pub mod cli;
pub mod config;
pub mod error;
pub mod extract;
pub mod ingest;
pub mod relay;
pub mod routes;
pub mod startup;
pub mod telemetry;

pub use config::Settings;
pub use startup::{Application, Overrides};
