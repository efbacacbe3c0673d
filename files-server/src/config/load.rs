//! Loading the settings: the config file and the environment merged, then each concern read
//! from its table's variables.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use super::error::ConfigError;
use super::sections::{amqp, database, janitor, limits, log, redis, shutdown, store, tokens};
use super::settings::Settings;
use super::tables;
use super::variables::VARIABLES;
use super::vars::{Vars, read_file};

impl Settings {
    /// Reads the process environment (and the config file `FILES_CONFIG` names).
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is wrong.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars().filter(|(k, _)| k.starts_with("FILES_")))
    }

    /// Reads the given variables (tests pass their own), on top of the config file that
    /// `FILES_CONFIG` among them names.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is wrong, or `FILES_CONFIG` when the file
    /// cannot be read, is not TOML, or has a key that is not a setting.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = vars.into_iter().collect();
        let unknown_variables = env
            .keys()
            .filter(|name| name.starts_with("FILES_") && !VARIABLES.contains(&name.as_str()))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut values = HashMap::new();
        let mut from_file = HashMap::new();
        if let Some(path) = env
            .get(tables::config::FILE.name)
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
        {
            for (variable, value) in read_file(path)? {
                from_file.insert(variable.clone(), path.to_owned());
                values.insert(variable, value);
            }
        }
        for (name, value) in env {
            if !value.trim().is_empty() {
                from_file.remove(&name);
                values.insert(name, value);
            }
        }
        let vars = Vars {
            values,
            from_file,
            read: RefCell::default(),
        };
        let mut settings = Self::read(&vars).map_err(|e| vars.locate(e))?;
        settings.unknown_variables = unknown_variables;
        Ok(settings)
    }

    /// Each concern's settings from `vars`.
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        use tables::{events, metrics, server, tokens::DEV_DIR};
        Ok(Self {
            listen: vars.get(&server::LISTEN)?,
            store: store(vars)?,
            tokens: tokens(vars)?,
            limits: limits(vars)?,
            events_secret: vars.secret(&events::SECRET),
            body_timeout: vars.duration(&server::BODY_TIMEOUT)?,
            metrics_listen: vars.parse(&server::METRICS_LISTEN)?,
            workers: vars.parse(&server::WORKERS)?,
            dev_dir: vars
                .raw(&DEV_DIR)
                .map_or_else(files_adapters::jwks::DevKey::default_dir, PathBuf::from),
            metrics_max_devices: vars.number(&metrics::MAX_DEVICES)?,
            database: database(vars)?,
            redis: redis(vars)?,
            amqp: amqp(vars)?,
            log: log(vars)?,
            shutdown: shutdown(vars)?,
            janitor: janitor(vars)?,
            unknown_variables: Vec::new(),
        })
    }
}
