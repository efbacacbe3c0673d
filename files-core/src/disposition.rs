//! `Content-Disposition: attachment` with the file's name, as RFC 6266 writes it: an ASCII
//! `filename` for old clients and the exact UTF-8 name in `filename*` (RFC 8187 encoding).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::values::FileName;

/// RFC 8187 `attr-char`: letters, digits and `!#$&+-.^_`|~` stay; everything else is encoded.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="…"; filename*=UTF-8''…` for `name`.
#[must_use]
pub fn attachment(name: &FileName) -> String {
    let fallback: String = name
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = utf8_percent_encode(name.as_str(), ATTR_CHAR);
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disposition(name: &str) -> String {
        attachment(&FileName::parse(name).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn names_are_quoted_for_old_clients_and_exact_in_filename_star() {
        assert_eq!(
            disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            disposition("café 2026.log"),
            "attachment; filename=\"caf_ 2026.log\"; filename*=UTF-8''caf%C3%A9%202026.log"
        );
        assert_eq!(
            disposition("a\"b\\c;d.txt"),
            "attachment; filename=\"a_b_c;d.txt\"; filename*=UTF-8''a%22b%5Cc%3Bd.txt"
        );
    }
}
