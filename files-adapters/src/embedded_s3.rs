//! In-process S3-compatible object store: the blob store of the "embedded default"
//! (development profile).
//!
//! [`EmbeddedS3`] serves real S3 over HTTP/1.1 on a local TCP listener: requests are
//! authenticated with AWS Signature V4 (header auth and presigned URLs) against one
//! access key / secret key pair, and objects are kept in a directory by
//! [`s3s_fs::FileSystem`].
//!
//! `s3s-fs` 0.14 writes an upload to its final place *before* it checks the
//! checksums the client declared, so a PUT whose body does not match its signed
//! `x-amz-checksum-sha256` is answered `BadDigest` but its bytes stay on disk
//! (replacing a good object, or creating a new one), and parts of multipart uploads
//! are not checked at all. This module therefore puts a verifying layer in front of
//! it: the body of every `PutObject` and `UploadPart` is first spooled to an
//! anonymous temporary file while its length and the declared checksums
//! (`x-amz-checksum-*`, from headers or from aws-chunked trailers, and `Content-MD5`)
//! are computed; only a body that matches everything it declares is handed to the
//! file system, so a refused upload changes nothing.
//!
//! Every object stored successfully (PUT or completed multipart upload) is reported
//! as a [`StoredObject`] on the channel given to [`EmbeddedS3::start`].

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::StreamExt as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use s3s::auth::SimpleAuth;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, Checksum, ChecksumAlgorithm, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CreateBucketInput, CreateBucketOutput, CreateMultipartUploadInput,
    CreateMultipartUploadOutput, DeleteObjectInput, DeleteObjectOutput, DeleteObjectsInput, DeleteObjectsOutput, ETag,
    GetBucketLocationInput, GetBucketLocationOutput, GetObjectInput, GetObjectOutput, HeadBucketInput,
    HeadBucketOutput, HeadObjectInput, HeadObjectOutput, ListBucketsInput, ListBucketsOutput,
    ListMultipartUploadsInput, ListMultipartUploadsOutput, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input,
    ListObjectsV2Output, ListPartsInput, ListPartsOutput, PutObjectInput, PutObjectOutput, StreamingBlob,
    UploadPartInput, UploadPartOutput,
};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, StdError, s3_error};
use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::io::ReaderStream;

/// How long [`EmbeddedS3::shutdown`] (or a drop) lets in-flight requests finish
/// before their connections are aborted.
const GRACEFUL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections that do not send a complete request head within this time are closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (e.g. out of file descriptors) to avoid spinning.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// Directory under the root that holds spooled upload bodies. Its name is not a
/// valid bucket name, so it can never be reached through the S3 API.
const SPOOL_DIR_NAME: &str = ".embedded-s3-spool";
/// Size of the chunks read back from a spooled body.
const SPOOL_READ_CHUNK: usize = 64 * 1024;

/// Configuration of an [`EmbeddedS3`] server.
#[derive(Clone)]
pub struct EmbeddedS3Config {
    /// Directory holding the buckets (one sub-directory each) and the store's
    /// bookkeeping files; created if missing.
    pub root: PathBuf,
    /// Address to listen on, e.g. `127.0.0.1:0` for an ephemeral port on loopback.
    pub listen: SocketAddr,
    /// The only access key accepted (SigV4).
    pub access_key: String,
    /// The secret key of [`EmbeddedS3Config::access_key`].
    pub secret_key: String,
    /// Bucket created (as a directory under `root`) at start if missing.
    pub bucket: String,
}

impl fmt::Debug for EmbeddedS3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedS3Config")
            .field("root", &self.root)
            .field("listen", &self.listen)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("bucket", &self.bucket)
            .finish()
    }
}

/// An object that was stored successfully (PUT or completed multipart upload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Bucket the object was stored in.
    pub bucket: String,
    /// Key of the object.
    pub key: String,
    /// Size of the stored object in bytes.
    pub size: u64,
}

/// Errors of [`EmbeddedS3::start`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbeddedS3Error {
    /// The configured bucket name is not a valid S3 bucket name.
    #[error("invalid bucket name {0:?}")]
    InvalidBucketName(String),
    /// The access key or the secret key is empty.
    #[error("the access key and the secret key of the embedded S3 store must not be empty")]
    MissingCredentials,
    /// A directory of the store could not be created.
    #[error("cannot create directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file-system store could not be opened in the root directory.
    #[error("cannot open the object store in {}: {message}", path.display())]
    OpenStore {
        /// The root directory.
        path: PathBuf,
        /// Description of the failure (`s3s-fs` errors are not `std::error::Error`).
        message: String,
    },
    /// The TCP listener could not be set up.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The configured address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// A running in-process S3 server (see the [module documentation](self)).
///
/// Stop it with [`EmbeddedS3::shutdown`]; dropping it stops it too (the listener
/// is closed and in-flight requests get the same bounded grace period, in the
/// background).
#[derive(Debug)]
pub struct EmbeddedS3 {
    local_addr: SocketAddr,
    /// Sending, or dropping, this stops the server task.
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl EmbeddedS3 {
    /// Binds the listener, creates the bucket (directory) if missing, spawns the server task on the current tokio runtime.
    ///
    /// `on_stored` receives a [`StoredObject`] for every successfully stored object,
    /// sent *before* the HTTP response of the request that stored it is written (so a
    /// client that got a success status can rely on the event being queued). The
    /// channel is unbounded so that the request path never waits for its consumer:
    /// the consumer must keep draining it. Events are dropped silently once the
    /// receiver is gone.
    ///
    /// # Errors
    ///
    /// See [`EmbeddedS3Error`]: invalid configuration, directories that cannot be
    /// created, or an address that cannot be bound.
    ///
    /// # Panics
    ///
    /// Panics when called outside of a tokio runtime.
    pub async fn start(
        config: EmbeddedS3Config,
        on_stored: mpsc::UnboundedSender<StoredObject>,
    ) -> Result<Self, EmbeddedS3Error> {
        let EmbeddedS3Config {
            root,
            listen,
            access_key,
            secret_key,
            bucket,
        } = config;
        if access_key.is_empty() || secret_key.is_empty() {
            return Err(EmbeddedS3Error::MissingCredentials);
        }
        if !s3s::path::check_bucket_name(&bucket) {
            return Err(EmbeddedS3Error::InvalidBucketName(bucket));
        }

        let spool_dir = root.join(SPOOL_DIR_NAME);
        for dir in [root.join(&bucket), spool_dir.clone()] {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|source| EmbeddedS3Error::CreateDir { path: dir, source })?;
        }
        let file_system = s3s_fs::FileSystem::new(&root).map_err(|err| EmbeddedS3Error::OpenStore {
            path: root.clone(),
            message: format!("{err:?}"),
        })?;

        let store = VerifyingStore {
            inner: file_system,
            spool_dir,
            on_stored,
        };
        let mut builder = S3ServiceBuilder::new(store);
        builder.set_auth(SimpleAuth::from_single(access_key, secret_key));
        let service = builder.build();

        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| EmbeddedS3Error::Listen { addr: listen, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| EmbeddedS3Error::Listen { addr: listen, source })?;

        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(listener, service, stopped));
        tracing::info!(%local_addr, root = %root.display(), %bucket, "embedded S3 store listening");
        Ok(Self { local_addr, stop, task })
    }

    /// The address the server actually listens on (with the real port when the
    /// configured one was 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Base URL for S3 clients (path-style), e.g. `http://127.0.0.1:9000`.
    ///
    /// When listening on an unspecified address (`0.0.0.0` / `::`), the matching
    /// loopback address is used.
    #[must_use]
    pub fn endpoint(&self) -> String {
        let mut addr = self.local_addr;
        match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            _ => {}
        }
        format!("http://{addr}")
    }

    /// Stops the server: closes the listener, lets in-flight requests finish for at
    /// most a few seconds, then aborts the remaining connections, and waits for all of
    /// this (bounded).
    pub async fn shutdown(self) {
        let Self {
            local_addr,
            stop,
            mut task,
        } = self;
        if stop.send(()).is_err() {
            tracing::debug!(%local_addr, "embedded S3 server task had already stopped");
        }
        match tokio::time::timeout(GRACEFUL_SHUTDOWN_TIMEOUT + Duration::from_secs(1), &mut task).await {
            Ok(Ok(())) => tracing::info!(%local_addr, "embedded S3 store stopped"),
            Ok(Err(err)) => tracing::error!(%local_addr, %err, "embedded S3 server task failed"),
            Err(_) => {
                task.abort();
                tracing::warn!(%local_addr, "embedded S3 server task did not stop in time; aborted");
            }
        }
    }
}

/// Accept loop of the server task; returns once `stop` fires (or its sender is
/// dropped) and the connections are drained or aborted.
async fn serve(listener: TcpListener, service: S3Service, mut stop: oneshot::Receiver<()>) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();

    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let connection = graceful.watch(http.serve_connection(TokioIo::new(socket), service.clone()));
                    connections.spawn(async move {
                        if let Err(err) = connection.await {
                            tracing::debug!(%peer, %err, "embedded S3 connection ended with an error");
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!(%err, "embedded S3 store cannot accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }

    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(GRACEFUL_SHUTDOWN_TIMEOUT) => {
            tracing::warn!("embedded S3 connections still busy after the grace period; aborting them");
        }
    }
    connections.shutdown().await;
}

/// The `S3` implementation served: [`s3s_fs::FileSystem`] behind body verification.
///
/// Operations not forwarded here (copies, bucket deletion, ACLs, ...) keep the
/// trait's default `NotImplemented` answer.
#[derive(Debug)]
struct VerifyingStore {
    inner: s3s_fs::FileSystem,
    spool_dir: PathBuf,
    on_stored: mpsc::UnboundedSender<StoredObject>,
}

/// What [`VerifyingStore::verify_body`] established about an accepted body.
struct VerifiedBody {
    size: u64,
    /// The checksums computed (all of them checked against the declared values).
    checksums: Checksum,
}

impl VerifyingStore {
    fn notify(&self, object: StoredObject) {
        tracing::debug!(bucket = %object.bucket, key = %object.key, size = object.size, "object stored");
        if self.on_stored.send(object).is_err() {
            tracing::debug!("nobody listens for stored objects any more");
        }
    }

    /// Spools the request body and checks it against everything it declares; on
    /// success the body is replaced by a stream of the spooled bytes and the
    /// declared checksums by their canonical values (so the inner store's own
    /// checks pass), otherwise the request is refused before the inner store sees it.
    async fn verify_body<I: UploadInput>(&self, req: &mut S3Request<I>) -> S3Result<VerifiedBody> {
        let body = req.input.body_mut().take().ok_or_else(|| s3_error!(IncompleteBody))?;
        let mut declared = req.input.checksums();
        let mut hasher = checksum_hasher(&declared, req.input.checksum_algorithm(), &req.headers)?;
        let mut md5 = req.input.content_md5().map(|_| Md5::new());

        let file = new_spool_file(&self.spool_dir).await?;
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
fn checksum_hasher(
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

fn merge_trailer_checksums(declared: &mut Checksum, trailers: &hyper::HeaderMap) -> S3Result<()> {
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
fn verify_checksums(declared: &Checksum, computed: Checksum) -> S3Result<Checksum> {
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

/// `s3s-fs` never computes checksums for multipart uploads, but keeps the internal
/// info (checksums included) of an object a multipart upload replaced, or of a
/// deleted one. Checksums reported alongside a multipart ETag (`<md5>-<parts>`)
/// are therefore stale, and are dropped.
fn is_multipart_etag(e_tag: Option<&ETag>) -> bool {
    e_tag.is_some_and(|e_tag| e_tag.value().contains('-'))
}

macro_rules! clear_checksums {
    ($output:expr) => {{
        let output = $output;
        output.checksum_crc32 = None;
        output.checksum_crc32c = None;
        output.checksum_sha1 = None;
        output.checksum_sha256 = None;
        output.checksum_crc64nvme = None;
    }};
}

/// The parts of `PutObjectInput` and `UploadPartInput` that body verification needs.
trait UploadInput {
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

#[async_trait::async_trait]
impl S3 for VerifyingStore {
    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        self.inner.create_bucket(req).await
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.inner.head_bucket(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.inner.get_bucket_location(req).await
    }

    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        self.inner.list_buckets(req).await
    }

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        self.inner.list_objects(req).await
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.inner.list_objects_v2(req).await
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let mut resp = self.inner.head_object(req).await?;
        if is_multipart_etag(resp.output.e_tag.as_ref()) {
            clear_checksums!(&mut resp.output);
        }
        Ok(resp)
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let mut resp = self.inner.get_object(req).await?;
        if is_multipart_etag(resp.output.e_tag.as_ref()) {
            clear_checksums!(&mut resp.output);
        }
        Ok(resp)
    }

    async fn put_object(&self, mut req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let bucket = req.input.bucket.clone();
        let key = req.input.key.clone();
        let verified = self.verify_body(&mut req).await?;
        let resp = self.inner.put_object(req).await?;
        // A key ending in '/' makes s3s-fs create a directory, not an object.
        if !key.ends_with('/') {
            self.notify(StoredObject {
                bucket,
                key,
                size: verified.size,
            });
        }
        Ok(resp)
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.inner.delete_object(req).await
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.inner.delete_objects(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.inner.create_multipart_upload(req).await
    }

    async fn upload_part(&self, mut req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let verified = self.verify_body(&mut req).await?;
        let mut resp = self.inner.upload_part(req).await?;
        // s3s-fs does not echo the part's checksums; AWS does.
        let output = &mut resp.output;
        output.checksum_crc32 = verified.checksums.checksum_crc32;
        output.checksum_crc32c = verified.checksums.checksum_crc32c;
        output.checksum_sha1 = verified.checksums.checksum_sha1;
        output.checksum_sha256 = verified.checksums.checksum_sha256;
        output.checksum_crc64nvme = verified.checksums.checksum_crc64nvme;
        Ok(resp)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let bucket = req.input.bucket.clone();
        let key = req.input.key.clone();
        let head = S3Request {
            input: HeadObjectInput {
                bucket: bucket.clone(),
                key: key.clone(),
                ..HeadObjectInput::default()
            },
            method: hyper::Method::HEAD,
            uri: req.uri.clone(),
            headers: hyper::HeaderMap::new(),
            extensions: hyper::http::Extensions::new(),
            credentials: req.credentials.clone(),
            region: req.region.clone(),
            service: req.service.clone(),
            trailing_headers: None,
        };
        let resp = self.inner.complete_multipart_upload(req).await?;
        // The object is in place once the inner call returns (its output future only
        // produces the response document).
        match self.inner.head_object(head).await {
            Ok(head) => match head.output.content_length.map(u64::try_from) {
                Some(Ok(size)) => self.notify(StoredObject { bucket, key, size }),
                _ => tracing::error!(%bucket, %key, "completed multipart upload has no valid size; not reported"),
            },
            Err(err) => {
                tracing::error!(%bucket, %key, %err, "cannot read back a completed multipart upload; not reported");
            }
        }
        Ok(resp)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.inner.abort_multipart_upload(req).await
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        self.inner.list_parts(req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.inner.list_multipart_uploads(req).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    use rusty_s3::actions::{CreateMultipartUpload, S3Action as _};
    use rusty_s3::{Bucket, Credentials, UrlStyle};
    use sha2::Digest as _;
    use tokio::sync::mpsc::error::TryRecvError;

    const BUCKET: &str = "files";
    const ACCESS_KEY: &str = "embedded-access";
    const SECRET_KEY: &str = "embedded-secret";
    const TTL: Duration = Duration::from_secs(300);

    struct Harness {
        root: tempfile::TempDir,
        server: EmbeddedS3,
        stored: mpsc::UnboundedReceiver<StoredObject>,
        bucket: Bucket,
        credentials: Credentials,
        http: reqwest::Client,
    }

    fn sha256_b64(data: &[u8]) -> String {
        BASE64.encode(sha2::Sha256::digest(data))
    }

    async fn harness() -> Harness {
        let root = tempfile::tempdir().unwrap();
        let (tx, stored) = mpsc::unbounded_channel();
        let config = EmbeddedS3Config {
            root: root.path().join("store"),
            listen: "127.0.0.1:0".parse().unwrap(),
            access_key: ACCESS_KEY.to_owned(),
            secret_key: SECRET_KEY.to_owned(),
            bucket: BUCKET.to_owned(),
        };
        let server = EmbeddedS3::start(config, tx).await.unwrap();
        let bucket = Bucket::new(server.endpoint().parse().unwrap(), UrlStyle::Path, BUCKET, "us-east-1").unwrap();
        Harness {
            root,
            server,
            stored,
            bucket,
            credentials: Credentials::new(ACCESS_KEY, SECRET_KEY),
            http: reqwest::Client::builder().build().unwrap(),
        }
    }

    impl Harness {
        fn store_dir(&self) -> PathBuf {
            self.root.path().join("store")
        }

        fn put_url(&self, key: &str, checksum: &str) -> String {
            let mut action = self.bucket.put_object(Some(&self.credentials), key);
            action
                .headers_mut()
                .insert("x-amz-checksum-sha256", checksum.to_owned());
            action.sign(TTL).to_string()
        }

        async fn put(&self, url: &str, checksum: &str, body: &[u8]) -> reqwest::Response {
            self.http
                .put(url)
                .header("x-amz-checksum-sha256", checksum)
                .body(body.to_vec())
                .send()
                .await
                .unwrap()
        }

        async fn get(&self, key: &str) -> reqwest::Response {
            let url = self.bucket.get_object(Some(&self.credentials), key).sign(TTL);
            self.http.get(url.as_str()).send().await.unwrap()
        }

        async fn head_with_checksum(&self, key: &str) -> reqwest::Response {
            let mut action = self.bucket.head_object(Some(&self.credentials), key);
            action.headers_mut().insert("x-amz-checksum-mode", "ENABLED");
            let url = action.sign(TTL);
            self.http
                .head(url.as_str())
                .header("x-amz-checksum-mode", "ENABLED")
                .send()
                .await
                .unwrap()
        }

        async fn create_multipart_upload(&self, key: &str) -> String {
            let url = self
                .bucket
                .create_multipart_upload(Some(&self.credentials), key)
                .sign(TTL);
            let resp = self.http.post(url.as_str()).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let text = resp.text().await.unwrap();
            CreateMultipartUpload::parse_response(&text)
                .unwrap()
                .upload_id()
                .to_owned()
        }

        async fn upload_part(&self, key: &str, upload_id: &str, checksum: &str, body: &[u8]) -> reqwest::Response {
            let mut action = self.bucket.upload_part(Some(&self.credentials), key, 1, upload_id);
            action
                .headers_mut()
                .insert("x-amz-checksum-sha256", checksum.to_owned());
            let url = action.sign(TTL);
            self.put(url.as_str(), checksum, body).await
        }

        async fn complete_multipart_upload(&self, key: &str, upload_id: &str, etags: &[String]) -> reqwest::Response {
            let action = self.bucket.complete_multipart_upload(
                Some(&self.credentials),
                key,
                upload_id,
                etags.iter().map(String::as_str),
            );
            let url = action.sign(TTL);
            self.http.post(url.as_str()).body(action.body()).send().await.unwrap()
        }

        fn upload_part_files(&self) -> Vec<String> {
            std::fs::read_dir(self.store_dir())
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(".upload_id-"))
                .collect()
        }
    }

    fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
        resp.headers().get(name).map(|value| value.to_str().unwrap())
    }

    #[tokio::test]
    async fn put_with_matching_checksum_is_stored_readable_and_reported() {
        let mut h = harness().await;
        let body = b"hello embedded s3";
        let checksum = sha256_b64(body);

        let resp = h.put(&h.put_url("docs/a.txt", &checksum), &checksum, body).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);

        // Reported before the response was written.
        let stored = h.stored.try_recv().unwrap();
        assert_eq!(
            stored,
            StoredObject {
                bucket: BUCKET.to_owned(),
                key: "docs/a.txt".to_owned(),
                size: body.len() as u64,
            }
        );

        let resp = h.get("docs/a.txt").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "x-amz-checksum-sha256"), Some(checksum.as_str()));
        assert_eq!(resp.bytes().await.unwrap().as_ref(), body);

        let resp = h.head_with_checksum("docs/a.txt").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "x-amz-checksum-sha256"), Some(checksum.as_str()));
        assert_eq!(header(&resp, "content-length"), Some(body.len().to_string().as_str()));

        assert_eq!(h.stored.try_recv(), Err(TryRecvError::Empty));
        h.server.shutdown().await;
    }

    #[tokio::test]
    async fn put_with_mismatching_checksum_creates_nothing() {
        let mut h = harness().await;
        let good = b"the bytes that were signed";
        let bad = b"THE BYTES THAT WERE SIGNED";
        let checksum = sha256_b64(good);

        let resp = h.put(&h.put_url("new.bin", &checksum), &checksum, bad).await;
        assert_eq!(resp.status(), 400);
        let text = resp.text().await.unwrap();
        assert!(text.contains("<Code>BadDigest</Code>"), "{text}");

        assert_eq!(h.get("new.bin").await.status(), 404);
        assert_eq!(h.head_with_checksum("new.bin").await.status(), 404);
        assert!(!h.store_dir().join(BUCKET).join("new.bin").exists());
        assert_eq!(h.stored.try_recv(), Err(TryRecvError::Empty));

        // Other lengths are refused as well.
        let resp = h.put(&h.put_url("new.bin", &checksum), &checksum, b"short").await;
        assert_eq!(resp.status(), 400);
        assert_eq!(h.get("new.bin").await.status(), 404);
        assert_eq!(h.stored.try_recv(), Err(TryRecvError::Empty));
        h.server.shutdown().await;
    }

    #[tokio::test]
    async fn put_with_mismatching_checksum_keeps_the_existing_object() {
        let mut h = harness().await;
        let good = b"good content";
        let bad = b"evil content";
        let checksum = sha256_b64(good);
        let url = h.put_url("kept.txt", &checksum);

        assert_eq!(h.put(&url, &checksum, good).await.status(), 200);
        assert_eq!(h.stored.try_recv().unwrap().size, good.len() as u64);

        // Same URL, same signed header, other bytes.
        let resp = h.put(&url, &checksum, bad).await;
        assert_eq!(resp.status(), 400);
        assert!(resp.text().await.unwrap().contains("<Code>BadDigest</Code>"));
        assert_eq!(h.stored.try_recv(), Err(TryRecvError::Empty));

        let resp = h.get("kept.txt").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.bytes().await.unwrap().as_ref(), good);
        let resp = h.head_with_checksum("kept.txt").await;
        assert_eq!(header(&resp, "x-amz-checksum-sha256"), Some(checksum.as_str()));
        h.server.shutdown().await;
    }

    #[tokio::test]
    async fn tampered_or_foreign_signatures_are_refused() {
        let mut h = harness().await;
        let body = b"payload";
        let checksum = sha256_b64(body);
        let url: reqwest::Url = h.put_url("t.txt", &checksum).parse().unwrap();

        let with_param = |name: &str, change: &dyn Fn(&str) -> String| {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == name { change(&v) } else { v.into_owned() };
                    (k.into_owned(), v)
                })
                .collect();
            let mut tampered = url.clone();
            tampered.query_pairs_mut().clear().extend_pairs(pairs);
            tampered.to_string()
        };
        let flip_last = |v: &str| {
            let mut v = v.to_owned();
            let last = if v.ends_with('0') { '1' } else { '0' };
            v.pop();
            v.push(last);
            v
        };

        // Signature altered.
        let resp = h.put(&with_param("X-Amz-Signature", &flip_last), &checksum, body).await;
        assert_eq!(resp.status(), 403);
        // A signed parameter altered (longer validity).
        let resp = h
            .put(&with_param("X-Amz-Expires", &|_| "604800".to_owned()), &checksum, body)
            .await;
        assert_eq!(resp.status(), 403);
        // The key altered.
        let other_key = url.as_str().replace("/t.txt?", "/u.txt?");
        assert_eq!(h.put(&other_key, &checksum, body).await.status(), 403);
        // The signed checksum header sent with another value (the body matches it).
        let other = b"other payload";
        assert_eq!(h.put(url.as_str(), &sha256_b64(other), other).await.status(), 403);
        // The signed header left out.
        let resp = h.http.put(url.as_str()).body(body.to_vec()).send().await.unwrap();
        assert_eq!(resp.status(), 403);
        // Signed with another secret key.
        let foreign = Credentials::new(ACCESS_KEY, "not-the-secret");
        let mut action = h.bucket.put_object(Some(&foreign), "t.txt");
        action.headers_mut().insert("x-amz-checksum-sha256", checksum.clone());
        assert_eq!(h.put(action.sign(TTL).as_str(), &checksum, body).await.status(), 403);
        // Not signed at all.
        let anonymous = h.bucket.object_url("t.txt");
        assert_eq!(h.put(anonymous.as_str(), &checksum, body).await.status(), 403);

        assert_eq!(h.get("t.txt").await.status(), 404);
        assert_eq!(h.get("u.txt").await.status(), 404);
        assert_eq!(h.stored.try_recv(), Err(TryRecvError::Empty));

        // The untampered URL works.
        assert_eq!(h.put(url.as_str(), &checksum, body).await.status(), 200);
        assert_eq!(h.stored.try_recv().unwrap().key, "t.txt");
        h.server.shutdown().await;
    }

    #[tokio::test]
    async fn multipart_part_with_mismatching_checksum_is_refused() {
        let mut h = harness().await;
        let good = b"part one, and the only part";
        let bad = b"PART ONE, AND THE ONLY PART";
        let checksum = sha256_b64(good);
        let upload_id = h.create_multipart_upload("big.bin").await;

        let resp = h.upload_part("big.bin", &upload_id, &checksum, bad).await;
        assert_eq!(resp.status(), 400);
        assert!(resp.text().await.unwrap().contains("<Code>BadDigest</Code>"));
        assert!(h.upload_part_files().is_empty(), "{:?}", h.upload_part_files());

        let resp = h.upload_part("big.bin", &upload_id, &checksum, good).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "x-amz-checksum-sha256"), Some(checksum.as_str()));
        let etag = header(&resp, "etag").unwrap().to_owned();
        assert_eq!(h.upload_part_files().len(), 1);

        // A bad re-upload of the same part leaves the good one in place.
        let resp = h.upload_part("big.bin", &upload_id, &checksum, bad).await;
        assert_eq!(resp.status(), 400);
        assert_eq!(h.stored.try_recv(), Err(TryRecvError::Empty));

        let resp = h.complete_multipart_upload("big.bin", &upload_id, &[etag]).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
        let _ = resp.bytes().await.unwrap();
        assert_eq!(
            h.stored.try_recv().unwrap(),
            StoredObject {
                bucket: BUCKET.to_owned(),
                key: "big.bin".to_owned(),
                size: good.len() as u64,
            }
        );
        let resp = h.get("big.bin").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.bytes().await.unwrap().as_ref(), good);
        h.server.shutdown().await;
    }

    #[tokio::test]
    async fn multipart_overwrite_does_not_report_a_stale_checksum() {
        let mut h = harness().await;
        let first = b"first version, put with a checksum";
        let first_checksum = sha256_b64(first);
        let url = h.put_url("o.bin", &first_checksum);
        assert_eq!(h.put(&url, &first_checksum, first).await.status(), 200);
        assert!(h.stored.try_recv().is_ok());

        let second = b"second version, multipart";
        let upload_id = h.create_multipart_upload("o.bin").await;
        let resp = h.upload_part("o.bin", &upload_id, &sha256_b64(second), second).await;
        assert_eq!(resp.status(), 200);
        let etag = header(&resp, "etag").unwrap().to_owned();
        let resp = h.complete_multipart_upload("o.bin", &upload_id, &[etag]).await;
        assert_eq!(resp.status(), 200);
        let _ = resp.bytes().await.unwrap();
        assert_eq!(h.stored.try_recv().unwrap().size, second.len() as u64);

        let resp = h.head_with_checksum("o.bin").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "x-amz-checksum-sha256"), None);
        let resp = h.get("o.bin").await;
        assert_eq!(header(&resp, "x-amz-checksum-sha256"), None);
        assert_eq!(resp.bytes().await.unwrap().as_ref(), second);
        h.server.shutdown().await;
    }

    #[tokio::test]
    async fn shutdown_and_drop_stop_listening() {
        let h = harness().await;
        let addr = h.server.local_addr();
        assert!(h.server.endpoint().starts_with("http://127.0.0.1:"));
        h.server.shutdown().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());

        let h = harness().await;
        let addr = h.server.local_addr();
        drop(h.server);
        let refused = async {
            while tokio::net::TcpStream::connect(addr).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), refused).await.unwrap();
    }

    #[test]
    fn trailer_checksums_are_computed_and_verified() {
        let body = b"chunked body";
        let mut headers = hyper::HeaderMap::new();
        headers.insert("x-amz-trailer", "x-amz-checksum-sha256".parse().unwrap());
        let mut declared = Checksum::default();
        let mut hasher = checksum_hasher(&declared, None, &headers).unwrap();
        hasher.update(body);
        let computed = hasher.finalize();
        assert_eq!(computed.checksum_sha256.as_deref(), Some(sha256_b64(body).as_str()));
        assert!(computed.checksum_crc32.is_none());

        // Announced but not sent: the computed value is kept (and stored).
        assert_eq!(verify_checksums(&declared, computed.clone()).unwrap(), computed);

        let mut trailers = hyper::HeaderMap::new();
        trailers.insert("x-amz-checksum-sha256", sha256_b64(b"other").parse().unwrap());
        merge_trailer_checksums(&mut declared, &trailers).unwrap();
        let err = verify_checksums(&declared, computed.clone()).unwrap_err();
        assert_eq!(*err.code(), S3ErrorCode::BadDigest);

        // A checksum that was not announced cannot have been computed.
        let unannounced = Checksum {
            checksum_crc32: Some("AAAAAA==".to_owned()),
            ..Checksum::default()
        };
        let err = verify_checksums(&unannounced, computed.clone()).unwrap_err();
        assert_eq!(*err.code(), S3ErrorCode::InvalidRequest);

        let invalid = Checksum {
            checksum_sha256: Some("not base64!".to_owned()),
            ..Checksum::default()
        };
        let err = verify_checksums(&invalid, computed).unwrap_err();
        assert_eq!(*err.code(), S3ErrorCode::InvalidRequest);

        let err = checksum_hasher(
            &Checksum::default(),
            Some(&ChecksumAlgorithm::from_static("MD6")),
            &headers,
        );
        assert!(err.is_err());
    }

    #[tokio::test]
    async fn invalid_configuration_is_rejected() {
        let root = tempfile::tempdir().unwrap();
        let config = |bucket: &str, secret: &str| EmbeddedS3Config {
            root: root.path().to_owned(),
            listen: "127.0.0.1:0".parse().unwrap(),
            access_key: ACCESS_KEY.to_owned(),
            secret_key: secret.to_owned(),
            bucket: bucket.to_owned(),
        };
        let (tx, _rx) = mpsc::unbounded_channel();
        let err = EmbeddedS3::start(config("Not_A_Bucket", SECRET_KEY), tx.clone())
            .await
            .unwrap_err();
        assert!(matches!(err, EmbeddedS3Error::InvalidBucketName(_)), "{err}");
        let err = EmbeddedS3::start(config(BUCKET, ""), tx).await.unwrap_err();
        assert!(matches!(err, EmbeddedS3Error::MissingCredentials), "{err}");
        assert!(!format!("{:?}", config(BUCKET, SECRET_KEY)).contains(SECRET_KEY));
    }
}
