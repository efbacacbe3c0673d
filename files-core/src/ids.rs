//! Identifiers: UUID newtypes that can only hold a valid UUID.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A string that is not a UUID where one was required.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} is not a UUID: {input:?}")]
pub struct InvalidId {
    /// Which identifier was being parsed (`tenant_id`, `device_id`, `file_id`).
    pub what: &'static str,
    /// The rejected input, cut to 64 characters.
    pub input: String,
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an already parsed UUID.
            #[must_use]
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The UUID inside.
            #[must_use]
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::try_parse(s).map(Self).map_err(|_| InvalidId {
                    what: $what,
                    input: s.chars().take(64).collect(),
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Always the hyphenated lowercase form: object keys and routing keys rely on it.
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A tenant of the device-management platform.
    TenantId,
    "tenant_id"
);
uuid_id!(
    /// A device, unique within the platform.
    DeviceId,
    "device_id"
);
uuid_id!(
    /// One version of one file. New ids are UUIDv7, so they sort by creation time.
    FileId,
    "file_id"
);

impl FileId {
    /// A new, time-ordered id (UUIDv7, monotonic within this process).
    #[must_use]
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for FileId {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uuid_and_prints_hyphenated_lowercase() {
        let id: TenantId = "6F9619FF-8B86-D011-B42D-00C04FC964FF"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.to_string(), "6f9619ff-8b86-d011-b42d-00c04fc964ff");
    }

    #[test]
    fn rejects_non_uuid_naming_the_identifier() {
        let err = "../etc".parse::<DeviceId>().err();
        assert_eq!(err.map(|e| e.what), Some("device_id"));
    }

    #[test]
    fn new_file_ids_sort_by_creation() {
        let a = FileId::new();
        let b = FileId::new();
        assert!(a < b);
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    /// Text in the shapes ids arrive in (path segments, the listing `cursor`): anything, UUIDs
    /// in every form `Uuid::try_parse` knows, and near misses.
    fn id_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[0-9a-fA-F-]{30,40}",
            "\\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\\}?",
            "(urn:uuid:)?[0-9a-fA-F]{32}",
            any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
            any::<u128>().prop_map(|n| Uuid::from_u128(n).hyphenated().to_string().to_uppercase()),
            any::<u128>().prop_map(|n| format!("{}x", Uuid::from_u128(n))),
            any::<u128>().prop_map(|n| format!("{}/", Uuid::from_u128(n))),
        ]
    }

    /// Parsing never panics; what it accepts prints as lowercase hyphenated and parses back to
    /// itself; what it refuses names the id and keeps at most 64 characters of the input.
    fn round_trips<T>(text: &str, what: &str) -> Result<(), TestCaseError>
    where
        T: FromStr<Err = InvalidId> + fmt::Display + PartialEq + fmt::Debug,
    {
        match text.parse::<T>() {
            Ok(id) => {
                let shown = id.to_string();
                prop_assert_eq!(shown.len(), 36);
                prop_assert_eq!(shown.to_lowercase(), shown.clone());
                prop_assert_eq!(shown.parse::<T>(), Ok(id));
            }
            Err(error) => {
                prop_assert_eq!(error.what, what);
                prop_assert!(error.input.chars().count() <= 64);
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn file_ids_parse_without_panicking_and_round_trip(text in id_text()) {
            round_trips::<FileId>(&text, "file_id")?;
        }

        #[test]
        fn tenant_ids_parse_without_panicking_and_round_trip(text in id_text()) {
            round_trips::<TenantId>(&text, "tenant_id")?;
        }

        #[test]
        fn device_ids_parse_without_panicking_and_round_trip(text in id_text()) {
            round_trips::<DeviceId>(&text, "device_id")?;
        }

        #[test]
        fn every_uuid_round_trips_through_display(n in any::<u128>()) {
            let id = FileId::from_uuid(Uuid::from_u128(n));
            prop_assert_eq!(id.to_string().parse::<FileId>(), Ok(id));
            prop_assert_eq!(id.to_string().to_uppercase().parse::<FileId>(), Ok(id));
            prop_assert_eq!(id.as_uuid().simple().to_string().parse::<FileId>(), Ok(id));
            let json = serde_json::to_string(&id).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(serde_json::from_str::<FileId>(&json).ok(), Some(id));
        }
    }
}
