//! The little XML the multipart calls need, read and written by hand: S3's answers are flat
//! documents of known elements without attributes on the ones read here, so a search for
//! `<Name>…</Name>` with entity decoding is enough, and rusty-s3 0.11 cannot carry part
//! checksums (its `CompleteMultipartUpload` body has ETags only, its `ListParts` answer has no
//! `ChecksumSHA256`).

use files_core::StoredPart;

/// The S3 namespace of request documents.
const S3_XML_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Escapes text for an XML element's content.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Decodes the predefined entities and character references of XML text; `None` for an
/// unknown or malformed reference.
pub(crate) fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find(';')?;
        let entity = &after[..end];
        match entity {
            "amp" => out.push('&'),
            "lt" => out.push('<'),
            "gt" => out.push('>'),
            "quot" => out.push('"'),
            "apos" => out.push('\''),
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x").or_else(|| entity.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok()?
                } else {
                    entity.strip_prefix('#')?.parse().ok()?
                };
                out.push(char::from_u32(code)?);
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The raw contents of every `<tag>…</tag>` in `xml`, in order (not nested in one another).
pub(crate) fn elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let inner = &rest[start + open.len()..];
        let Some(end) = inner.find(&close) else { break };
        found.push(&inner[..end]);
        rest = &inner[end + close.len()..];
    }
    found
}

/// The unescaped, trimmed text of the first `<tag>…</tag>` in `xml`.
pub(crate) fn text(xml: &str, tag: &str) -> Option<String> {
    elements(xml, tag)
        .first()
        .and_then(|raw| unescape(raw))
        .map(|text| text.trim().to_owned())
}

/// The name of the document's root element (after the declaration and comments).
pub(crate) fn root(xml: &str) -> Option<&str> {
    let mut rest = xml;
    loop {
        let at = rest.find('<')?;
        rest = &rest[at + 1..];
        if rest.starts_with('?') || rest.starts_with('!') {
            continue;
        }
        let end = rest.find(|c: char| c == '>' || c == '/' || c.is_whitespace())?;
        return Some(&rest[..end]);
    }
}

/// An S3 error document's code and message.
pub(crate) fn error(xml: &str) -> Option<(String, String)> {
    if root(xml)? != "Error" {
        return None;
    }
    Some((text(xml, "Code")?, text(xml, "Message").unwrap_or_default()))
}

/// The body of `CompleteMultipartUpload`: each part's number, ETag and, when known, SHA-256.
pub(crate) fn complete_body(parts: &[StoredPart]) -> String {
    let mut body = format!(r#"<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload xmlns="{S3_XML_NS}">"#);
    for part in parts {
        body.push_str("<Part><PartNumber>");
        body.push_str(&part.part_number.to_string());
        body.push_str("</PartNumber><ETag>");
        body.push_str(&escape(&part.etag));
        body.push_str("</ETag>");
        if let Some(sha256) = &part.sha256 {
            body.push_str("<ChecksumSHA256>");
            body.push_str(&escape(&sha256.to_base64()));
            body.push_str("</ChecksumSHA256>");
        }
        body.push_str("</Part>");
    }
    body.push_str("</CompleteMultipartUpload>");
    body
}

/// One page of a `ListParts` answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PartsPage {
    pub parts: Vec<StoredPart>,
    /// The marker of the next page when the list is truncated.
    pub next_marker: Option<u16>,
}

/// Reads a `ListPartsResult`.
pub(crate) fn parts_page(xml: &str) -> Result<PartsPage, String> {
    if root(xml) != Some("ListPartsResult") {
        return Err(format!(
            "not a ListPartsResult: {}",
            xml.chars().take(200).collect::<String>()
        ));
    }
    let mut parts = Vec::new();
    for part in elements(xml, "Part") {
        let part_number = text(part, "PartNumber")
            .and_then(|n| n.parse().ok())
            .ok_or("a part without a valid PartNumber")?;
        let size = text(part, "Size")
            .and_then(|n| n.parse().ok())
            .ok_or("a part without a valid Size")?;
        let etag = text(part, "ETag").unwrap_or_default();
        let sha256 = match text(part, "ChecksumSHA256") {
            Some(value) if !value.is_empty() => Some(
                files_core::Sha256::parse(&value)
                    .map_err(|e| format!("part {part_number}: ChecksumSHA256 {value:?}: {e}"))?,
            ),
            _ => None,
        };
        parts.push(StoredPart {
            part_number,
            size,
            sha256,
            etag,
        });
    }
    let truncated = text(xml, "IsTruncated").is_some_and(|t| t.eq_ignore_ascii_case("true"));
    let next_marker = if truncated {
        Some(
            text(xml, "NextPartNumberMarker")
                .and_then(|n| n.parse().ok())
                .ok_or("a truncated list without a valid NextPartNumberMarker")?,
        )
    } else {
        None
    };
    Ok(PartsPage { parts, next_marker })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use files_core::Sha256;

    use super::*;

    #[test]
    fn text_round_trips_through_escape_and_unescape() {
        let text = r#""etag" <a> & 'b' ünï"#;
        assert_eq!(unescape(&escape(text)).as_deref(), Some(text));
        assert_eq!(unescape("&#34;x&#x22;").as_deref(), Some("\"x\""));
        assert_eq!(unescape("&bogus;"), None);
        assert_eq!(unescape("a & b"), None);
    }

    #[test]
    fn the_complete_body_carries_escaped_etags_and_checksums() {
        let sha = Sha256::from_bytes([7; 32]);
        let body = complete_body(&[
            StoredPart {
                part_number: 1,
                size: 5,
                sha256: Some(sha),
                etag: "\"a&b\"".to_owned(),
            },
            StoredPart {
                part_number: 2,
                size: 1,
                sha256: None,
                etag: "e2".to_owned(),
            },
        ]);
        assert_eq!(root(&body), Some("CompleteMultipartUpload"));
        assert!(body.contains(&format!(
            "<Part><PartNumber>1</PartNumber><ETag>&quot;a&amp;b&quot;</ETag><ChecksumSHA256>{}</ChecksumSHA256></Part>",
            sha.to_base64()
        )));
        assert!(body.contains("<Part><PartNumber>2</PartNumber><ETag>e2</ETag></Part>"));
    }

    #[test]
    fn a_list_parts_page_is_read_with_its_marker() {
        let sha = Sha256::from_bytes([9; 32]);
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket>
<PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker>2</NextPartNumberMarker>
<MaxParts>2</MaxParts><IsTruncated>true</IsTruncated>
<Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag><Size>5242880</Size><ChecksumSHA256>{}</ChecksumSHA256></Part>
<Part><PartNumber>2</PartNumber><ETag>"e2"</ETag><Size>3</Size></Part></ListPartsResult>"#,
            sha.to_base64()
        );
        let page = parts_page(&xml).unwrap();
        assert_eq!(page.next_marker, Some(2));
        assert_eq!(
            page.parts,
            [
                StoredPart {
                    part_number: 1,
                    size: 5_242_880,
                    sha256: Some(sha),
                    etag: "\"e1\"".to_owned()
                },
                StoredPart {
                    part_number: 2,
                    size: 3,
                    sha256: None,
                    etag: "\"e2\"".to_owned()
                },
            ]
        );
        let last = xml.replace("<IsTruncated>true", "<IsTruncated>false");
        assert_eq!(parts_page(&last).unwrap().next_marker, None);
        assert!(parts_page("<Error><Code>NoSuchUpload</Code></Error>").is_err());
    }

    #[test]
    fn error_documents_give_their_code() {
        let xml = r#"<?xml version="1.0"?><Error><Code>NoSuchUpload</Code><Message>gone &amp; done</Message></Error>"#;
        assert_eq!(error(xml), Some(("NoSuchUpload".to_owned(), "gone & done".to_owned())));
        assert_eq!(error("<CompleteMultipartUploadResult/>"), None);
    }
}
