//! Reading the variables: the environment over the config file, each value parsed and bounded,
//! every name checked against [`VARIABLES`](super::VARIABLES).

#![allow(clippy::wildcard_imports)]

use super::*;

/// The merged settings: the config file's, then the environment's on top. Remembers which
/// variables were read (so a test can hold [`VARIABLES`] to what is read) and where each value
/// came from (so an error can name the file's key).
pub(super) struct Vars {
    pub(super) values: HashMap<String, String>,
    /// Variables whose value came from the config file, with the file's path.
    pub(super) from_file: HashMap<String, String>,
    pub(super) read: RefCell<BTreeSet<&'static str>>,
}

impl Vars {
    pub(super) fn raw(&self, variable: &'static str) -> Option<&str> {
        debug_assert!(VARIABLES.contains(&variable), "{variable} is missing from VARIABLES");
        self.read.borrow_mut().insert(variable);
        self.values
            .get(variable)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// `error` with the file's key named when the value came from the config file.
    pub(super) fn locate(&self, mut error: ConfigError) -> ConfigError {
        if let Some(path) = self.from_file.get(error.variable) {
            let key = key_of(error.variable);
            error.problem = format!("{} (set as `{key}` in {path})", error.problem);
        }
        error
    }

    pub(super) fn parse<T>(&self, variable: &'static str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.raw(variable)
            .map(|v| {
                v.trim().parse::<T>().map_err(|e| ConfigError {
                    variable,
                    problem: format!("{e} (got {v:?})"),
                })
            })
            .transpose()
    }

    pub(super) fn or<T>(&self, variable: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        Ok(self.parse(variable)?.unwrap_or(default))
    }

    pub(super) fn string(&self, variable: &'static str, default: &str) -> String {
        self.raw(variable).unwrap_or(default).to_owned()
    }

    pub(super) fn required(&self, variable: &'static str, because: &str) -> Result<String, ConfigError> {
        self.raw(variable).map(str::to_owned).ok_or_else(|| ConfigError {
            variable,
            problem: format!("required {because}"),
        })
    }

    pub(super) fn secret(&self, variable: &'static str) -> Option<SecretString> {
        self.raw(variable).map(|v| SecretString::from(v.to_owned()))
    }

    pub(super) fn millis(&self, variable: &'static str, default: u64) -> Result<Duration, ConfigError> {
        let millis: u64 = self.or(variable, default)?;
        if millis == 0 {
            return Err(ConfigError {
                variable,
                problem: "must be at least 1 ms".to_owned(),
            });
        }
        Ok(Duration::from_millis(millis))
    }

    /// Whole seconds from 0 to `max`.
    pub(super) fn seconds_or_zero(
        &self,
        variable: &'static str,
        default: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        let secs: u64 = self.or(variable, default)?;
        if secs > max {
            return Err(ConfigError {
                variable,
                problem: format!("must be between 0 and {max} seconds"),
            });
        }
        Ok(Duration::from_secs(secs))
    }

    pub(super) fn seconds(&self, variable: &'static str, default: u64, max: u64) -> Result<Duration, ConfigError> {
        let secs: u64 = self.or(variable, default)?;
        if secs == 0 || secs > max {
            return Err(ConfigError {
                variable,
                problem: format!("must be between 1 and {max} seconds"),
            });
        }
        Ok(Duration::from_secs(secs))
    }

    /// An `http(s)://` URL. A wrong one is quoted with its user info and query hidden: an
    /// endpoint should hold no credential, but one that does must not be printed.
    pub(super) fn url(&self, variable: &'static str) -> Result<Option<Url>, ConfigError> {
        let url = self
            .raw(variable)
            .map(|raw| {
                Url::parse(raw.trim()).map_err(|e| ConfigError {
                    variable,
                    problem: format!("{e} (got {:?})", files_adapters::s3::redacted_endpoint(raw.trim())),
                })
            })
            .transpose()?;
        match url {
            Some(url) if !matches!(url.scheme(), "http" | "https") => Err(ConfigError {
                variable,
                problem: "must be an http:// or https:// URL".to_owned(),
            }),
            other => Ok(other),
        }
    }
}

pub(super) const SEVEN_DAYS: u64 = MAX_EXPIRY.as_secs();

/// The longest `FILES_TOKEN_MAX_LIFETIME_SECS`: the longest token `files-server dev-token` mints.
pub(super) const TEN_YEARS: u64 = 10 * 365 * 24 * 3600;

pub(super) fn secs(duration: Duration) -> u64 {
    duration.as_secs()
}

pub(super) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The variable a config file's key stands for: `max_upload_size` is `FILES_MAX_UPLOAD_SIZE`.
pub(super) fn variable_of(key: &str) -> Option<&'static str> {
    if key != key.to_ascii_lowercase() {
        return None;
    }
    let variable = format!("FILES_{}", key.to_ascii_uppercase());
    VARIABLES
        .iter()
        .copied()
        .find(|v| *v == variable && *v != "FILES_CONFIG")
}

/// The config file's key of a variable: `FILES_MAX_UPLOAD_SIZE` is `max_upload_size`.
pub(super) fn key_of(variable: &str) -> String {
    variable.trim_start_matches("FILES_").to_ascii_lowercase()
}

/// The config file's text, once the open file is known to be changeable by no one but the user
/// the process runs as (or root): it holds the JWKS URL and may hold secrets, so whoever could
/// write it could choose the keys tokens are checked with. A file owned by another user, or
/// writable by its group or others, is refused.
fn read_private(path: &str) -> Result<String, String> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let metadata = file.metadata().map_err(|e| format!("cannot read it: {e}"))?;
    check_owner_and_mode(&metadata)?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| format!("cannot read it: {e}"))?;
    Ok(text)
}

#[cfg(unix)]
fn check_owner_and_mode(metadata: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    let uid = rustix::process::geteuid().as_raw();
    if metadata.uid() != uid && metadata.uid() != 0 {
        return Err(format!(
            "refused: it is owned by uid {}, neither the user this process runs as (uid {uid}) nor root, \
             and its owner could change the settings",
            metadata.uid()
        ));
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "refused: it is writable by its group or others (mode {mode:04o}), who could change the settings; \
             remove their write permission (chmod go-w)"
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
#[allow(clippy::unnecessary_wraps)]
fn check_owner_and_mode(_metadata: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

/// The config file's settings as variables. Values are strings, whole numbers or booleans,
/// read as the variable's text would be.
pub(super) fn read_file(path: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let problem = |problem: String| ConfigError {
        variable: "FILES_CONFIG",
        problem: format!("{path}: {problem}"),
    };
    let text = read_private(path).map_err(problem)?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        // The message without the quoted line, which may hold a secret.
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        problem(match line {
            Some(line) => format!("not valid TOML, line {line}: {}", e.message()),
            None => format!("not valid TOML: {}", e.message()),
        })
    })?;
    let mut settings = Vec::with_capacity(table.len());
    for (key, value) in table {
        let Some(variable) = variable_of(&key) else {
            return Err(problem(format!(
                "unknown key `{key}` (keys are the FILES_* variables' names without FILES_, in lower case, \
                 see docs/configuration.md)"
            )));
        };
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                return Err(ConfigError {
                    variable,
                    problem: format!("must be a string, a whole number or a boolean (set as `{key}` in {path})"),
                });
            }
        };
        settings.push((variable.to_owned(), value));
    }
    Ok(settings)
}
