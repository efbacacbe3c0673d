//! A TCP proxy that tests put between the service and a real dependency (Redis, Postgres,
//! RabbitMQ), to cut it mid-run and bring it back.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use files_testkit::proxy::TcpProxy;
//! let proxy = TcpProxy::start("127.0.0.1:6379").await?;
//! let url = format!("redis://127.0.0.1:{}", proxy.port());
//! // ... connect through `url`, then:
//! proxy.cut(); // every open connection closes, new ones are closed at once
//! proxy.restore(); // new connections are forwarded again
//! # Ok(()) }
//! ```

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::watch;

/// Whether connections pass, and how many cuts there have been: a connection forwarded
/// before a cut ends at that cut even when [`TcpProxy::restore`] follows before its task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    open: bool,
    cuts: u64,
}

/// Forwards every connection accepted on a local port to a target, until cut. Its tasks stop
/// and its connections close when it is dropped.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    state: watch::Sender<State>,
    forwarding: Arc<AtomicUsize>,
}

impl TcpProxy {
    /// Listens on `127.0.0.1:0` and forwards to `target` (resolved once, now; every address it
    /// resolves to is tried in order on each connection).
    ///
    /// # Errors
    /// When `target` does not resolve to any address or the local port cannot be bound.
    pub async fn start(target: impl ToSocketAddrs) -> io::Result<Self> {
        let targets: Arc<[SocketAddr]> = tokio::net::lookup_host(target).await?.collect();
        if targets.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the proxy target resolves to no address",
            ));
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (state, watching) = watch::channel(State { open: true, cuts: 0 });
        let forwarding = Arc::new(AtomicUsize::new(0));
        tokio::spawn(accept_loop(listener, targets, watching, Arc::clone(&forwarding)));
        Ok(Self {
            addr,
            state,
            forwarding,
        })
    }

    /// A proxy in front of the host and port of `url` (a `redis://`, `postgres://`, `amqp://`
    /// or any URL with a host), and the same URL pointing at the proxy instead.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] when the URL has no host or no port (and no default
    /// port known for its scheme); else as [`TcpProxy::start`].
    pub async fn for_url(url: &str) -> io::Result<(Self, String)> {
        let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{why}: {url}"));
        let mut parsed = reqwest::Url::parse(url).map_err(|_| invalid("not a URL"))?;
        let host = parsed.host_str().ok_or_else(|| invalid("no host in URL"))?.to_owned();
        let port = parsed
            .port_or_known_default()
            .or_else(|| default_port(parsed.scheme()))
            .ok_or_else(|| invalid("no port in URL"))?;
        // `host_str` keeps the brackets of an IPv6 literal; the resolver wants them off.
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let proxy = Self::start((host, port)).await?;
        if parsed.set_host(Some("127.0.0.1")).is_err() || parsed.set_port(Some(proxy.port())).is_err() {
            return Err(invalid("cannot point URL at the proxy"));
        }
        Ok((proxy, parsed.into()))
    }

    /// The local address to connect to.
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The local port to connect to.
    #[must_use]
    pub const fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Closes every open connection at once, and closes each new one as soon as it is accepted,
    /// until [`TcpProxy::restore`]: to clients, the target is down. The closing happens in the
    /// proxy's tasks, right after this returns; [`TcpProxy::connections`] reaches 0 when done.
    pub fn cut(&self) {
        self.state.send_modify(|state| {
            state.open = false;
            state.cuts += 1;
        });
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.state.send_modify(|state| state.open = true);
    }

    /// Whether the proxy is cut.
    #[must_use]
    pub fn is_cut(&self) -> bool {
        !self.state.borrow().open
    }

    /// How many connections are being forwarded now.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.forwarding.load(Ordering::SeqCst)
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "redis" | "rediss" => Some(6379),
        "postgres" | "postgresql" => Some(5432),
        "amqp" => Some(5672),
        "amqps" => Some(5671),
        _ => None,
    }
}

/// Accepts until the proxy is dropped (its sender goes, `changed` fails).
async fn accept_loop(
    listener: TcpListener,
    targets: Arc<[SocketAddr]>,
    mut state: watch::Receiver<State>,
    forwarding: Arc<AtomicUsize>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                // A failed accept (the peer gave up, too many files) only loses that connection.
                let Ok((inbound, _)) = accepted else { continue };
                let now = *state.borrow();
                if now.open {
                    let count = Counted::new(Arc::clone(&forwarding));
                    tokio::spawn(forward(inbound, Arc::clone(&targets), state.clone(), now.cuts, count));
                }
                // Cut: `inbound` is dropped here, so the client sees the connection closed.
            }
            changed = state.changed() => if changed.is_err() { break },
        }
    }
}

/// Copies both ways until either side closes, the proxy is cut (after cut number `cuts`), or
/// the proxy is dropped.
async fn forward(
    mut inbound: TcpStream,
    targets: Arc<[SocketAddr]>,
    mut state: watch::Receiver<State>,
    cuts: u64,
    _count: Counted,
) {
    let relay = async {
        let mut outbound = TcpStream::connect(&targets[..]).await?;
        // Both ends are small request/response protocols: do not delay small writes.
        let _ = inbound.set_nodelay(true);
        let _ = outbound.set_nodelay(true);
        tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await
    };
    tokio::select! {
        _ = relay => {}
        // Checks the current state first, so a cut between accept and here is not missed; an
        // error means the proxy was dropped.
        _ = state.wait_for(|state| state.cuts != cuts) => {}
    }
    // Both streams are closed before the count goes down: each side sees its connection closed.
    drop(inbound);
}

/// One forwarded connection in the proxy's count, for as long as it lives.
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
