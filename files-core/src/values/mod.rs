//! Validated values that come from callers: file names, checksums, content types.

mod content_type;
mod file_name;
mod invalid;
mod sha256;

pub use content_type::ContentType;
pub use file_name::FileName;
pub use invalid::InvalidValue;
pub use sha256::Sha256;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
