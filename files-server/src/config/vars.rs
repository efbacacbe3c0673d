//! Reading the variables: the environment over the config file, each value parsed and bounded,
//! every name checked against [`VARIABLES`](super::VARIABLES).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::error::ConfigError;
use super::table::Var;
use super::tables;
use super::variables::{VARIABLES, variables};

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
    /// The value set, if any (an empty one counts as unset).
    pub(super) fn raw(&self, var: &Var) -> Option<&str> {
        debug_assert!(VARIABLES.contains(&var.name), "{} is in no table", var.name);
        self.read.borrow_mut().insert(var.name);
        self.values
            .get(var.name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// The value set, else the table's default.
    fn text(&self, var: &Var) -> Option<Cow<'_, str>> {
        self.raw(var).map(Cow::Borrowed).or_else(|| var.default_text())
    }

    /// `error` with the file's key named when the value came from the config file.
    pub(super) fn locate(&self, mut error: ConfigError) -> ConfigError {
        if let Some(path) = self.from_file.get(error.variable) {
            let key = key_of(error.variable);
            error.problem = format!("{} (set as `{key}` in {path})", error.problem);
        }
        error
    }

    /// The value set or the default, parsed; `None` when neither is there. A secret's value is
    /// never quoted.
    pub(super) fn parse<T>(&self, var: &Var) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.text(var)
            .map(|v| {
                v.trim().parse::<T>().map_err(|e| ConfigError {
                    variable: var.name,
                    problem: if var.secret {
                        e.to_string()
                    } else {
                        format!("{e} (got {v:?})")
                    },
                })
            })
            .transpose()
    }

    /// The value set or the default, parsed: for a variable whose table entry has a default.
    pub(super) fn get<T>(&self, var: &Var) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.parse(var)?.ok_or_else(|| ConfigError {
            variable: var.name,
            problem: "has no default in its table".to_owned(),
        })
    }

    /// A whole number held to the entry's bounds.
    pub(super) fn number<T>(&self, var: &Var) -> Result<T, ConfigError>
    where
        T: TryFrom<u64>,
        T::Error: std::fmt::Display,
    {
        let n: u64 = self.get(var)?;
        if let Some(problem) = var.out_of_bounds(n) {
            return Err(ConfigError {
                variable: var.name,
                problem,
            });
        }
        T::try_from(n).map_err(|e| ConfigError {
            variable: var.name,
            problem: format!("{e} (got {n})"),
        })
    }

    /// A duration in the variable's unit (`_MS`: milliseconds, else seconds), held to its bounds.
    pub(super) fn duration(&self, var: &Var) -> Result<Duration, ConfigError> {
        let n: u64 = self.number(var)?;
        Ok(if var.is_millis() {
            Duration::from_millis(n)
        } else {
            Duration::from_secs(n)
        })
    }

    /// The value set or the default, as text.
    pub(super) fn string(&self, var: &Var) -> Option<String> {
        self.text(var).map(Cow::into_owned)
    }

    pub(super) fn required(&self, var: &Var, because: &str) -> Result<String, ConfigError> {
        self.raw(var).map(str::to_owned).ok_or_else(|| ConfigError {
            variable: var.name,
            problem: format!("required {because}"),
        })
    }

    pub(super) fn secret(&self, var: &Var) -> Option<SecretString> {
        debug_assert!(var.secret, "{} is not marked secret in its table", var.name);
        self.raw(var).map(|v| SecretString::from(v.to_owned()))
    }

    /// An `http(s)://` URL. A wrong one is quoted with its user info and query hidden: an
    /// endpoint should hold no credential, but one that does must not be printed.
    pub(super) fn url(&self, var: &Var) -> Result<Option<Url>, ConfigError> {
        let variable = var.name;
        let url = self
            .raw(var)
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

/// The variable a config file's key stands for: `max_upload_size` is `FILES_MAX_UPLOAD_SIZE`.
/// `FILES_CONFIG` has no key: the file cannot name another file.
pub(super) fn variable_of(key: &str) -> Option<&'static str> {
    variables()
        .find(|var| var.name != tables::config::FILE.name && var.key() == key)
        .map(|var| var.name)
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
