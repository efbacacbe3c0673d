//! Verification of upload bodies, which `s3s-fs` does too late (see the module
//! documentation of [`embedded_s3`](super)): [`verify_body`] spools the body of a
//! `PutObject` or `UploadPart` to an anonymous temporary file while computing its
//! length, its `Content-MD5` and the `x-amz-checksum-*` values it declares (in
//! headers or aws-chunked trailers), and refuses the request unless everything
//! matches; the inputs it works on are abstracted by [`UploadInput`].

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::StreamExt as _;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::{Checksum, ChecksumAlgorithm, PutObjectInput, StreamingBlob, UploadPartInput};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Result, StdError, s3_error};
use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};
use tokio_util::io::ReaderStream;

/// Directory under the root that holds spooled upload bodies. Its name is not a
/// valid bucket name, so it can never be reached through the S3 API.
pub(super) const SPOOL_DIR_NAME: &str = ".embedded-s3-spool";
/// Size of the chunks read back from a spooled body.
const SPOOL_READ_CHUNK: usize = 64 * 1024;

/// What [`verify_body`] established about an accepted body.
pub(super) struct VerifiedBody {
    pub(super) size: u64,
    /// The checksums computed (all of them checked against the declared values).
    pub(super) checksums: Checksum,
}

/// Spools the request body and checks it against everything it declares; on
/// success the body is replaced by a stream of the spooled bytes and the
/// declared checksums by their canonical values (so the inner store's own
/// checks pass), otherwise the request is refused before the inner store sees it.
pub(super) async fn verify_body<I: UploadInput>(spool_dir: &Path, req: &mut S3Request<I>) -> S3Result<VerifiedBody> {
    let body = req.input.body_mut().take().ok_or_else(|| s3_error!(IncompleteBody))?;
    let mut declared = req.input.checksums();
    let mut hasher = checksum_hasher(&declared, req.input.checksum_algorithm(), &req.headers)?;
    let mut md5 = req.input.content_md5().map(|_| Md5::new());

    let file = new_spool_file(spool_dir).await?;
    let mut file = tokio::fs::File::from_std(file);
    let mut size: u64 = 0;
    let mut body = body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(body_read_error)?;
        hasher.update(&chunk);
        if let Some(md5) = &mut md5 {
            md5.update(&chunk);
        }
        size += chunk.len() as u64;
        file.write_all(&chunk).await.map_err(S3Error::internal_error)?;
    }
    file.flush().await.map_err(S3Error::internal_error)?;
    file.rewind().await.map_err(S3Error::internal_error)?;

    // Trailers (aws-chunked uploads) are only available once the body is read.
    // Taking them moves their checksums into the input, where the inner store
    // looks first.
    if let Some(trailers) = req.trailing_headers.as_ref().and_then(s3s::TrailingHeaders::take) {
        merge_trailer_checksums(&mut declared, &trailers)?;
    }

    let size_i64 = i64::try_from(size).map_err(|_| s3_error!(EntityTooLarge))?;
    if let Some(declared_size) = *req.input.content_length_mut()
        && declared_size != size_i64
    {
        return Err(s3_error!(
            IncompleteBody,
            "Content-Length is {declared_size} but {size} bytes were received"
        ));
    }
    if let (Some(declared_md5), Some(md5)) = (req.input.content_md5(), md5) {
        let declared_md5 = BASE64
            .decode(declared_md5)
            .map_err(|_| s3_error!(InvalidDigest, "Content-MD5 is not valid base64"))?;
        if declared_md5.as_slice() != md5.finalize().as_slice() {
            return Err(s3_error!(BadDigest, "the body does not match its Content-MD5"));
        }
    }
    let checksums = verify_checksums(&declared, hasher.finalize())?;

    req.input.set_checksums(&checksums);
    *req.input.content_length_mut() = Some(size_i64);
    *req.input.body_mut() = Some(StreamingBlob::wrap(ReaderStream::with_capacity(file, SPOOL_READ_CHUNK)));
    Ok(VerifiedBody { size, checksums })
}

/// Creates an anonymous temporary file in `dir`: it is unlinked from the start, so
/// it disappears with its last handle, even after a crash.
async fn new_spool_file(dir: &Path) -> S3Result<std::fs::File> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || tempfile::tempfile_in(dir))
        .await
        .map_err(S3Error::internal_error)?
        .map_err(S3Error::internal_error)
}

/// Maps an error of the request body stream (client gone, `x-amz-content-sha256`
/// or chunk signature mismatch detected by `s3s`) to the S3 error to answer.
fn body_read_error(err: StdError) -> S3Error {
    // s3s' body stream errors are private types: classify them by their message.
    let text = err.to_string();
    let code = if text.contains("SignatureMismatch") {
        S3ErrorCode::SignatureDoesNotMatch
    } else if text.contains("Sha256Mismatch") {
        S3ErrorCode::BadDigest
    } else {
        S3ErrorCode::IncompleteBody
    };
    let mut s3_err = S3Error::with_source(code, err);
    s3_err.set_message(format!("cannot read the request body: {text}"));
    s3_err
}

/// Which checksums to compute: those declared in headers, the one named by
/// `x-amz-sdk-checksum-algorithm`, and those announced in `x-amz-trailer`.
pub(super) fn checksum_hasher(
    declared: &Checksum,
    algorithm: Option<&ChecksumAlgorithm>,
    headers: &hyper::HeaderMap,
) -> S3Result<ChecksumHasher> {
    let mut hasher = ChecksumHasher::default();
    let declared_algorithms = [
        (declared.checksum_crc32.is_some(), "CRC32"),
        (declared.checksum_crc32c.is_some(), "CRC32C"),
        (declared.checksum_sha1.is_some(), "SHA1"),
        (declared.checksum_sha256.is_some(), "SHA256"),
        (declared.checksum_crc64nvme.is_some(), "CRC64NVME"),
    ];
    for (is_declared, name) in declared_algorithms {
        if is_declared {
            enable_algorithm(&mut hasher, name)?;
        }
    }
    if let Some(algorithm) = algorithm {
        enable_algorithm(&mut hasher, algorithm.as_str())?;
    }
    for trailer in headers.get_all("x-amz-trailer") {
        let trailer = trailer
            .to_str()
            .map_err(|_| s3_error!(InvalidArgument, "invalid x-amz-trailer header"))?;
        for name in trailer.split(',').map(str::trim) {
            if let Some(algorithm) = name.to_ascii_lowercase().strip_prefix("x-amz-checksum-") {
                enable_algorithm(&mut hasher, algorithm)?;
            }
        }
    }
    Ok(hasher)
}

fn enable_algorithm(hasher: &mut ChecksumHasher, name: &str) -> S3Result<()> {
    if name.eq_ignore_ascii_case("CRC32") {
        hasher.crc32.get_or_insert_with(Default::default);
    } else if name.eq_ignore_ascii_case("CRC32C") {
        hasher.crc32c.get_or_insert_with(Default::default);
    } else if name.eq_ignore_ascii_case("SHA1") {
        hasher.sha1.get_or_insert_with(Default::default);
    } else if name.eq_ignore_ascii_case("SHA256") {
        hasher.sha256.get_or_insert_with(Default::default);
    } else if name.eq_ignore_ascii_case("CRC64NVME") {
        hasher.crc64nvme.get_or_insert_with(Default::default);
    } else {
        return Err(s3_error!(NotImplemented, "unsupported checksum algorithm {name:?}"));
    }
    Ok(())
}

pub(super) fn merge_trailer_checksums(declared: &mut Checksum, trailers: &hyper::HeaderMap) -> S3Result<()> {
    let fields = [
        ("x-amz-checksum-crc32", &mut declared.checksum_crc32),
        ("x-amz-checksum-crc32c", &mut declared.checksum_crc32c),
        ("x-amz-checksum-sha1", &mut declared.checksum_sha1),
        ("x-amz-checksum-sha256", &mut declared.checksum_sha256),
        ("x-amz-checksum-crc64nvme", &mut declared.checksum_crc64nvme),
    ];
    for (name, field) in fields {
        if let Some(value) = trailers.get(name) {
            let value = value
                .to_str()
                .map_err(|_| s3_error!(InvalidArgument, "invalid trailer {name}"))?;
            *field = Some(value.to_owned());
        }
    }
    Ok(())
}

/// Checks every declared checksum against the computed one (comparing the decoded
/// bytes) and returns the computed checksums.
pub(super) fn verify_checksums(declared: &Checksum, computed: Checksum) -> S3Result<Checksum> {
    let pairs = [
        ("crc32", &declared.checksum_crc32, &computed.checksum_crc32),
        ("crc32c", &declared.checksum_crc32c, &computed.checksum_crc32c),
        ("sha1", &declared.checksum_sha1, &computed.checksum_sha1),
        ("sha256", &declared.checksum_sha256, &computed.checksum_sha256),
        ("crc64nvme", &declared.checksum_crc64nvme, &computed.checksum_crc64nvme),
    ];
    for (name, declared, computed) in pairs {
        let Some(declared) = declared else { continue };
        let Some(computed) = computed else {
            return Err(s3_error!(InvalidRequest, "x-amz-checksum-{name} was not announced"));
        };
        let declared = BASE64
            .decode(declared)
            .map_err(|_| s3_error!(InvalidRequest, "value for x-amz-checksum-{name} is invalid"))?;
        let computed = BASE64.decode(computed).map_err(S3Error::internal_error)?;
        if declared != computed {
            return Err(s3_error!(
                BadDigest,
                "the body does not match its x-amz-checksum-{name}"
            ));
        }
    }
    Ok(computed)
}

/// The parts of `PutObjectInput` and `UploadPartInput` that body verification needs.
pub(super) trait UploadInput {
    fn body_mut(&mut self) -> &mut Option<StreamingBlob>;
    fn checksums(&self) -> Checksum;
    fn set_checksums(&mut self, checksums: &Checksum);
    fn checksum_algorithm(&self) -> Option<&ChecksumAlgorithm>;
    fn content_length_mut(&mut self) -> &mut Option<i64>;
    fn content_md5(&self) -> Option<&str>;
}

macro_rules! impl_upload_input {
    ($ty:ty) => {
        impl UploadInput for $ty {
            fn body_mut(&mut self) -> &mut Option<StreamingBlob> {
                &mut self.body
            }

            fn checksums(&self) -> Checksum {
                Checksum {
                    checksum_crc32: self.checksum_crc32.clone(),
                    checksum_crc32c: self.checksum_crc32c.clone(),
                    checksum_sha1: self.checksum_sha1.clone(),
                    checksum_sha256: self.checksum_sha256.clone(),
                    checksum_crc64nvme: self.checksum_crc64nvme.clone(),
                    ..Checksum::default()
                }
            }

            fn set_checksums(&mut self, checksums: &Checksum) {
                self.checksum_crc32.clone_from(&checksums.checksum_crc32);
                self.checksum_crc32c.clone_from(&checksums.checksum_crc32c);
                self.checksum_sha1.clone_from(&checksums.checksum_sha1);
                self.checksum_sha256.clone_from(&checksums.checksum_sha256);
                self.checksum_crc64nvme.clone_from(&checksums.checksum_crc64nvme);
            }

            fn checksum_algorithm(&self) -> Option<&ChecksumAlgorithm> {
                self.checksum_algorithm.as_ref()
            }

            fn content_length_mut(&mut self) -> &mut Option<i64> {
                &mut self.content_length
            }

            fn content_md5(&self) -> Option<&str> {
                self.content_md5.as_deref()
            }
        }
    };
}

impl_upload_input!(PutObjectInput);
impl_upload_input!(UploadPartInput);
