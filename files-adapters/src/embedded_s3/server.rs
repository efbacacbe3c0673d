//! The server and its lifecycle: [`EmbeddedS3::start`] validates the
//! configuration, prepares the directories, builds the s3s service (SigV4 auth over
//! the verifying store) and spawns the hyper accept loop; [`EmbeddedS3::shutdown`]
//! (or a drop) stops it with a bounded grace period. The errors of `start` are
//! [`EmbeddedS3Error`].

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use secrecy::ExposeSecret as _;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use super::config::EmbeddedS3Config;
use super::store::{StoredObject, VerifyingStore};
use super::verify::SPOOL_DIR_NAME;

/// How long [`EmbeddedS3::shutdown`] (or a drop) lets in-flight requests finish
/// before their connections are aborted.
const GRACEFUL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections that do not send a complete request head within this time are closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (e.g. out of file descriptors) to avoid spinning.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

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

/// A running in-process S3 server (see the [module documentation](super)).
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
        if access_key.is_empty() || secret_key.expose_secret().is_empty() {
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
            root: root.clone(),
            spool_dir,
            on_stored,
            parts: std::sync::Mutex::default(),
            composites: std::sync::Mutex::default(),
        };
        let mut builder = S3ServiceBuilder::new(store);
        builder.set_auth(SimpleAuth::from_single(access_key, secret_key.expose_secret()));
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
