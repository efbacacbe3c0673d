//! The object store and URL signer fake, whose signed requests are checked as a real store checks them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use files_core::{
    CompletedMultipart, DownloadSpec, NoSuchUpload, ObjectInfo, ObjectKey, ObjectStore, PartSpec, PortError,
    PresignedRequest, Sha256, SignError, StoredPart, UploadSpec, UrlSigner,
};
use sha2::Digest as _;
use uuid::Uuid;

use super::{Switch, lock};

/// An object as the fake store keeps it.
#[derive(Debug, Clone)]
struct FakeObject {
    info: ObjectInfo,
    /// The bytes, when it was uploaded through [`FakeObjectStore::receive_put`] (not when a test
    /// planted only its description with [`FakeObjectStore::put`]).
    bytes: Option<Vec<u8>>,
}

/// A multipart upload in progress in the fake store.
#[derive(Debug, Clone)]
struct FakeUpload {
    key: String,
    /// The verified parts by number: bytes and SHA-256.
    parts: BTreeMap<u16, (Vec<u8>, Sha256)>,
}

/// What a query value of the fake's URLs escapes: all but RFC 3986's unreserved characters.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// S3's smallest part but the last.
const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// The fake's ETag of a part.
fn part_etag(sha256: &Sha256) -> String {
    format!("\"{}\"", sha256.to_hex())
}

/// Why the fake store refused a request sent to one of its URLs, as a real store would.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FakeStoreRefusal {
    /// The store's switch is on.
    Unavailable,
    /// Another method than the URL was signed for.
    Method(String),
    /// Not a URL of this fake (`memory://fake-bucket/{key}?...`), or not one of our keys.
    Url(String),
    /// The upload declares no `x-amz-checksum-sha256`, or one that is not a SHA-256.
    MissingChecksum,
    /// The body's SHA-256 is not the declared one (S3's `BadDigest`).
    BadDigest,
    /// The body's length is not the declared `content-length`.
    Length {
        /// What `content-length` said.
        declared: String,
        /// What was received.
        received: usize,
    },
    /// There is no object (or no bytes) under the key.
    NotFound,
    /// A part sent for a multipart upload the store does not know (never created, completed or
    /// aborted), or for another key than the upload's.
    NoSuchUpload(String),
}

impl std::fmt::Display for FakeStoreRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable => f.write_str("the fake store is switched off"),
            Self::Method(method) => write!(f, "method {method} is not the one signed for"),
            Self::Url(url) => write!(f, "{url:?} is not a URL of the fake store"),
            Self::MissingChecksum => f.write_str("no valid x-amz-checksum-sha256 declared"),
            Self::BadDigest => f.write_str("the body does not match its x-amz-checksum-sha256"),
            Self::Length { declared, received } => {
                write!(f, "content-length is {declared} but {received} bytes were received")
            }
            Self::NotFound => f.write_str("no such object"),
            Self::NoSuchUpload(upload_id) => write!(f, "no multipart upload {upload_id} for this key"),
        }
    }
}

impl std::error::Error for FakeStoreRefusal {}

/// An object store in a map, with a signer whose URLs name the key (`memory://bucket/key`).
/// Tests put objects with [`FakeObjectStore::put`], as a device's PUT would, or send the signed
/// requests themselves with [`FakeObjectStore::receive_put`] and
/// [`FakeObjectStore::serve_get`], which check them as a real store does.
#[derive(Debug, Default)]
pub struct FakeObjectStore {
    objects: Mutex<HashMap<String, FakeObject>>,
    /// Multipart uploads in progress, by upload id.
    uploads: Mutex<HashMap<String, FakeUpload>>,
    /// Fails inspections, deletions, uploads and downloads while on (signing needs no call and
    /// never fails).
    pub switch: Switch,
}

impl FakeObjectStore {
    /// The bucket of the fake's URLs.
    pub const BUCKET: &'static str = "fake-bucket";

    /// How many multipart uploads are in progress (created, neither completed nor aborted).
    #[must_use]
    pub fn multipart_uploads_in_progress(&self) -> usize {
        self.uploads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Stores an object as the store would after a verified PUT (its description only: a
    /// download of it finds no bytes).
    pub fn put(&self, key: &ObjectKey, info: ObjectInfo) {
        lock(&self.objects).insert(key.to_string(), FakeObject { info, bytes: None });
    }

    /// Whether an object is stored under the key.
    #[must_use]
    pub fn contains(&self, key: &ObjectKey) -> bool {
        lock(&self.objects).contains_key(&key.to_string())
    }

    /// Receives an upload sent to a URL from [`UrlSigner::sign_upload`] with `body`, checking it
    /// as S3 does: the method is `PUT`, the URL is one of this fake's, the body's SHA-256 is the
    /// declared `x-amz-checksum-sha256` and its length the declared `content-length` (when one
    /// is declared). Only then is it stored, replacing any object under the key; a refused
    /// upload changes nothing.
    ///
    /// # Errors
    /// [`FakeStoreRefusal`] naming the first check that failed.
    pub fn receive_put(&self, request: &PresignedRequest, body: &[u8]) -> Result<(), FakeStoreRefusal> {
        self.switch.check().map_err(|_| FakeStoreRefusal::Unavailable)?;
        if request.method != "PUT" {
            return Err(FakeStoreRefusal::Method(request.method.to_owned()));
        }
        let key = Self::key_of(&request.url)?;
        if Self::query_of(&request.url, "uploadId").is_some() {
            // A part URL: see `receive_part`.
            return Err(FakeStoreRefusal::Url(request.url.chars().take(200).collect()));
        }
        let digest = Self::verify_body(request, body)?;
        let info = ObjectInfo {
            size: body.len() as u64,
            sha256: Some(digest),
            sha256_of_parts: None,
        };
        lock(&self.objects).insert(
            key,
            FakeObject {
                info,
                bytes: Some(body.to_vec()),
            },
        );
        Ok(())
    }

    /// The body's SHA-256, when it is the declared `x-amz-checksum-sha256` and its length the
    /// declared `content-length` (when one is declared), as S3 checks a PUT and a part.
    fn verify_body(request: &PresignedRequest, body: &[u8]) -> Result<Sha256, FakeStoreRefusal> {
        let declared = request
            .headers
            .get("x-amz-checksum-sha256")
            .and_then(|value| Sha256::parse(value).ok())
            .ok_or(FakeStoreRefusal::MissingChecksum)?;
        if let Some(length) = request.headers.get("content-length")
            && length.parse::<usize>().ok() != Some(body.len())
        {
            return Err(FakeStoreRefusal::Length {
                declared: length.clone(),
                received: body.len(),
            });
        }
        let digest = crate::sha256_of(body);
        if digest != declared {
            return Err(FakeStoreRefusal::BadDigest);
        }
        Ok(digest)
    }

    /// Receives a part sent to a URL from [`UrlSigner::sign_part`] with `body`, checking it as
    /// S3 does with a part of an upload created with the SHA-256 algorithm: the method is `PUT`,
    /// the URL is one of this fake's naming a known upload of its key, the body's SHA-256 is the
    /// declared `x-amz-checksum-sha256` and its length the declared `content-length`. Only then
    /// is the part kept, replacing one of the same number; a refused part changes nothing.
    ///
    /// # Errors
    /// [`FakeStoreRefusal`] naming the first check that failed
    /// ([`FakeStoreRefusal::NoSuchUpload`] for an unknown upload).
    pub fn receive_part(&self, request: &PresignedRequest, body: &[u8]) -> Result<(), FakeStoreRefusal> {
        self.switch.check().map_err(|_| FakeStoreRefusal::Unavailable)?;
        if request.method != "PUT" {
            return Err(FakeStoreRefusal::Method(request.method.to_owned()));
        }
        let key = Self::key_of(&request.url)?;
        let refused = || FakeStoreRefusal::Url(request.url.chars().take(200).collect());
        let part_number = Self::query_of(&request.url, "partNumber")
            .and_then(|n| n.parse::<u16>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(refused)?;
        let upload_id = Self::query_of(&request.url, "uploadId")
            .and_then(|id| percent_encoding::percent_decode_str(id).decode_utf8().ok())
            .ok_or_else(refused)?;
        let digest = Self::verify_body(request, body)?;
        let mut uploads = lock(&self.uploads);
        let upload = uploads
            .get_mut(upload_id.as_ref())
            .filter(|upload| upload.key == key)
            .ok_or_else(|| FakeStoreRefusal::NoSuchUpload(upload_id.clone().into_owned()))?;
        upload.parts.insert(part_number, (body.to_vec(), digest));
        Ok(())
    }

    /// The value of a query parameter of one of the fake's URLs (its values need no decoding).
    fn query_of<'u>(url: &'u str, name: &str) -> Option<&'u str> {
        let (_, query) = url.split_once('?')?;
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
    }

    /// Serves a download sent to a URL from [`UrlSigner::sign_download`]: the object's bytes.
    ///
    /// # Errors
    /// [`FakeStoreRefusal`] for another method or a foreign URL, and
    /// [`FakeStoreRefusal::NotFound`] when there is no object, or it was planted without bytes.
    pub fn serve_get(&self, request: &PresignedRequest) -> Result<Vec<u8>, FakeStoreRefusal> {
        self.switch.check().map_err(|_| FakeStoreRefusal::Unavailable)?;
        if request.method != "GET" {
            return Err(FakeStoreRefusal::Method(request.method.to_owned()));
        }
        let key = Self::key_of(&request.url)?;
        lock(&self.objects)
            .get(&key)
            .and_then(|object| object.bytes.clone())
            .ok_or(FakeStoreRefusal::NotFound)
    }

    /// The key a URL of this fake names, checked to be one of ours.
    fn key_of(url: &str) -> Result<String, FakeStoreRefusal> {
        let refused = || FakeStoreRefusal::Url(url.chars().take(200).collect());
        let path = url
            .strip_prefix("memory://")
            .and_then(|rest| rest.strip_prefix(Self::BUCKET))
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(refused)?;
        let key = path.split_once('?').map_or(path, |(key, _)| key);
        key.parse::<ObjectKey>().map_err(|_| refused())?;
        Ok(key.to_owned())
    }
}

#[async_trait]
impl ObjectStore for FakeObjectStore {
    async fn inspect(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, PortError> {
        self.switch.check()?;
        Ok(lock(&self.objects)
            .get(&key.to_string())
            .map(|object| object.info.clone()))
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), PortError> {
        self.switch.check()?;
        lock(&self.objects).remove(&key.to_string());
        Ok(())
    }

    async fn create_multipart(&self, key: &ObjectKey) -> Result<String, PortError> {
        self.switch.check()?;
        let upload_id = Uuid::new_v4().simple().to_string();
        lock(&self.uploads).insert(
            upload_id.clone(),
            FakeUpload {
                key: key.to_string(),
                parts: BTreeMap::new(),
            },
        );
        Ok(upload_id)
    }

    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> Result<Vec<StoredPart>, PortError> {
        self.switch.check()?;
        let uploads = lock(&self.uploads);
        let upload = uploads
            .get(upload_id)
            .filter(|upload| upload.key == key.to_string())
            .ok_or_else(|| no_such_upload(upload_id))?;
        Ok(upload
            .parts
            .iter()
            .map(|(number, (bytes, sha256))| StoredPart {
                part_number: *number,
                size: bytes.len() as u64,
                sha256: Some(*sha256),
                etag: part_etag(sha256),
            })
            .collect())
    }

    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<CompletedMultipart, PortError> {
        self.switch.check()?;
        let mut uploads = lock(&self.uploads);
        let upload = uploads
            .get(upload_id)
            .filter(|upload| upload.key == key.to_string())
            .ok_or_else(|| no_such_upload(upload_id))?;
        if parts.is_empty() {
            return Err(PortError::failed("InvalidRequest: no parts to complete with"));
        }
        let mut bytes = Vec::new();
        let mut composite = sha2::Sha256::new();
        let mut previous = 0;
        for (index, part) in parts.iter().enumerate() {
            if part.part_number <= previous {
                return Err(PortError::failed("InvalidPartOrder: parts must ascend"));
            }
            previous = part.part_number;
            let (held, sha256) = upload
                .parts
                .get(&part.part_number)
                .ok_or_else(|| PortError::failed(format!("InvalidPart: no part {}", part.part_number)))?;
            if part.etag != part_etag(sha256) || part.sha256.is_some_and(|given| given != *sha256) {
                return Err(PortError::failed(format!(
                    "InvalidPart: part {} has another ETag or checksum",
                    part.part_number
                )));
            }
            if index + 1 < parts.len() && held.len() < MIN_PART_SIZE {
                return Err(PortError::failed(format!("EntityTooSmall: part {}", part.part_number)));
            }
            composite.update(sha256.as_bytes());
            bytes.extend_from_slice(held);
        }
        uploads.remove(upload_id);
        drop(uploads);
        let composite = format!(
            "{}-{}",
            Sha256::from_bytes(composite.finalize().into()).to_base64(),
            parts.len()
        );
        let size = bytes.len() as u64;
        lock(&self.objects).insert(
            key.to_string(),
            FakeObject {
                // Like S3: a composite checksum is no SHA-256 of the object.
                info: ObjectInfo {
                    size,
                    sha256: None,
                    sha256_of_parts: Some(composite.clone()),
                },
                bytes: Some(bytes),
            },
        );
        Ok(CompletedMultipart {
            composite_sha256: Some(composite),
            size: Some(size),
        })
    }

    async fn abort_multipart(&self, key: &ObjectKey, upload_id: &str) -> Result<(), PortError> {
        self.switch.check()?;
        let mut uploads = lock(&self.uploads);
        if uploads
            .get(upload_id)
            .is_some_and(|upload| upload.key == key.to_string())
        {
            uploads.remove(upload_id);
        }
        Ok(())
    }
}

fn no_such_upload(upload_id: &str) -> PortError {
    PortError::failed(NoSuchUpload {
        upload_id: upload_id.to_owned(),
    })
}

impl UrlSigner for FakeObjectStore {
    fn bucket(&self) -> &str {
        Self::BUCKET
    }

    fn sign_upload(&self, spec: &UploadSpec) -> Result<PresignedRequest, SignError> {
        let mut headers = BTreeMap::new();
        headers.insert("x-amz-checksum-sha256".to_owned(), spec.sha256.to_base64());
        if let Some(size) = spec.size {
            headers.insert("content-length".to_owned(), size.to_string());
        }
        if let Some(content_type) = &spec.content_type {
            headers.insert("content-type".to_owned(), content_type.as_str().to_owned());
        }
        Ok(PresignedRequest {
            method: "PUT",
            url: format!(
                "memory://{}/{}?expires={}",
                Self::BUCKET,
                spec.key,
                spec.expires_in.as_secs()
            ),
            headers,
        })
    }

    fn sign_part(&self, spec: &PartSpec) -> Result<PresignedRequest, SignError> {
        if spec.part_number == 0 || spec.part_number > 10_000 {
            return Err(SignError(format!(
                "part number {} is outside 1..=10000",
                spec.part_number
            )));
        }
        let headers = BTreeMap::from([
            ("content-length".to_owned(), spec.size.to_string()),
            ("x-amz-checksum-sha256".to_owned(), spec.sha256.to_base64()),
        ]);
        let upload_id: String = percent_encoding::utf8_percent_encode(&spec.upload_id, QUERY_VALUE).collect();
        Ok(PresignedRequest {
            method: "PUT",
            url: format!(
                "memory://{}/{}?partNumber={}&uploadId={upload_id}&expires={}",
                Self::BUCKET,
                spec.key,
                spec.part_number,
                spec.expires_in.as_secs()
            ),
            headers,
        })
    }

    fn sign_download(&self, spec: &DownloadSpec) -> Result<PresignedRequest, SignError> {
        let mut url = format!(
            "memory://{}/{}?expires={}",
            Self::BUCKET,
            spec.key,
            spec.expires_in.as_secs()
        );
        if let Some(disposition) = &spec.content_disposition {
            url.push_str("&response-content-disposition=");
            url.extend(percent_encoding::utf8_percent_encode(
                disposition,
                percent_encoding::NON_ALPHANUMERIC,
            ));
        }
        Ok(PresignedRequest {
            method: "GET",
            url,
            headers: BTreeMap::new(),
        })
    }
}
