//! What a configuration table is made of: [`Var`], one variable with its default, bounds,
//! secrecy and description, and [`table!`], which declares a concern's variables and the list
//! of them at once, so adding a variable is one entry.

use std::borrow::Cow;
use std::ops::RangeInclusive;
use std::time::Duration;

/// One `FILES_*` variable, as the reader, the config file's key check, [`VARIABLES`](super::VARIABLES)
/// and the documentation test see it.
#[derive(Debug)]
pub struct Var {
    /// The variable's name; the config file's key is the name without `FILES_`, in lower case.
    pub name: &'static str,
    /// Its value when it is unset; `None` when unset means "off", "required" or a default that
    /// depends on other settings (the description says which).
    pub default: Option<Value>,
    /// The whole numbers it may hold, in its unit (seconds for `_SECS`, milliseconds for `_MS`).
    pub bounds: Option<RangeInclusive<u64>>,
    /// Kept in a `SecretString`, never printed, never quoted in an error.
    pub secret: bool,
    /// What it sets, in one line.
    pub about: &'static str,
}

/// A default as the table writes it: the adapter's constant where there is one.
#[derive(Debug, Clone, Copy)]
pub enum Value {
    /// Text, read as the variable's text would be (an address, a name, a choice).
    Text(&'static str),
    /// A whole number.
    Number(u64),
    /// `true` or `false`.
    Flag(bool),
    /// A duration, written in the variable's unit (`_SECS`: seconds, `_MS`: milliseconds).
    Duration(Duration),
    /// A default only a function can give (a type whose defaults are not constants), as text.
    Of(fn() -> String),
}

impl Var {
    /// A variable with no default, no bounds, not secret.
    pub const fn new(name: &'static str, about: &'static str) -> Self {
        Self {
            name,
            default: None,
            bounds: None,
            secret: false,
            about,
        }
    }

    /// With this default.
    pub const fn default(self, value: Value) -> Self {
        Self {
            default: Some(value),
            ..self
        }
    }

    /// Held to these whole numbers (in its unit).
    pub const fn bounds(self, bounds: RangeInclusive<u64>) -> Self {
        Self {
            bounds: Some(bounds),
            ..self
        }
    }

    /// A secret.
    pub const fn secret(self) -> Self {
        Self { secret: true, ..self }
    }

    /// Milliseconds (`_MS`) rather than seconds.
    pub fn is_millis(&self) -> bool {
        self.name.ends_with("_MS")
    }

    /// The config file's key: `FILES_MAX_UPLOAD_SIZE` is `max_upload_size`.
    pub fn key(&self) -> String {
        self.name.trim_start_matches("FILES_").to_ascii_lowercase()
    }

    /// The default as the variable's text (`900` for 15 minutes in a `_SECS` variable).
    pub fn default_text(&self) -> Option<Cow<'static, str>> {
        Some(match self.default? {
            Value::Text(text) => Cow::Borrowed(text),
            Value::Number(n) => Cow::Owned(n.to_string()),
            Value::Flag(flag) => Cow::Owned(flag.to_string()),
            Value::Duration(d) if self.is_millis() => Cow::Owned(d.as_millis().to_string()),
            Value::Duration(d) => Cow::Owned(d.as_secs().to_string()),
            Value::Of(default) => Cow::Owned(default()),
        })
    }

    /// What is wrong with `n`, if it is out of bounds.
    pub fn out_of_bounds(&self, n: u64) -> Option<String> {
        let bounds = self.bounds.as_ref().filter(|b| !b.contains(&n))?;
        let unit = if self.is_millis() {
            " ms"
        } else if self.name.ends_with("_SECS") {
            " seconds"
        } else {
            ""
        };
        Some(if *bounds.end() == u64::MAX {
            format!("must be at least {}{unit}", bounds.start())
        } else {
            format!("must be between {} and {}{unit}", bounds.start(), bounds.end())
        })
    }
}

/// Declares one concern's table in the module it is invoked in (a module per concern, which
/// imports what the entries name): a constant per variable and `ALL`, every variable of the
/// concern in the documentation's order, so adding a variable is one entry.
macro_rules! table {
    ($($(#[$vdoc:meta])* $name:ident = $var:expr;)+) => {
        $( $(#[$vdoc])* pub(crate) const $name: Var = $var; )+
        /// Every variable of this concern.
        pub(crate) const ALL: &[Var] = &[$($name),+];
    };
}
pub(super) use table;
