//! Typed configuration from `FILES_*` variables, one struct per concern, loaded once.
//!
//! Every variable is one entry of its concern's table (`tables.rs`): its name, its default (the
//! adapter's constant), its bounds, whether it is a secret, and what it sets. The reader
//! (`vars.rs`, `sections.rs`), the config file's keys, [`VARIABLES`] and the test that
//! docs/configuration.md documents every variable with its default all come from the tables.
//!
//! A config file (`FILES_CONFIG`, TOML) may hold any setting under its variable's name without
//! `FILES_`, in lower case (`max_upload_size = 1000`); a variable overrides the file. Every name
//! the server reads is in [`VARIABLES`]. A wrong value stops start-up with a message naming the
//! variable (and the file's key when the value came from the file); an unknown key in the file
//! stops it too. Secrets are kept in [`SecretString`](secrecy::SecretString) and never printed.

mod error;
mod load;
mod sections;
mod settings;
mod table;
mod tables;
mod variables;
mod vars;

pub use error::ConfigError;
pub use settings::{
    AmqpSettings, DEV_AUDIENCE, DEV_ISSUER, KeySource, LogFormat, LogSettings, Settings, ShutdownSettings,
    StoreSettings, TokenSettings,
};
pub use table::{Value, Var};
pub use variables::{PRODUCTION_VARIABLES, VARIABLES, variables};

#[cfg(test)]
mod tests;
