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
//! proxy.hang(); // nothing passes any more: open connections stall, new ones get no answer
//! proxy.restore(); // new connections are forwarded again
//! # Ok(()) }
//! ```

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::watch;

/// Whether connections pass, what happens to them when not, and how many cuts there have
/// been: a connection forwarded (or held) before a cut ends at that cut even when
/// [`TcpProxy::restore`] follows before its task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    open: bool,
    /// When not open: stall the open connections and hold new ones without answering,
    /// instead of closing them.
    hanging: bool,
    cuts: u64,
}

/// Forwards every connection accepted on a local port to a target, until cut. Its tasks stop
/// and its connections close when it is dropped.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    state: watch::Sender<State>,
    forwarding: Arc<AtomicUsize>,
    held: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
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
        let (state, watching) = watch::channel(State {
            open: true,
            hanging: false,
            cuts: 0,
        });
        let forwarding = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let counts = Counts {
            forwarding: Arc::clone(&forwarding),
            held: Arc::clone(&held),
            refused: Arc::clone(&refused),
        };
        tokio::spawn(accept_loop(listener, targets, watching, counts));
        Ok(Self {
            addr,
            state,
            forwarding,
            held,
            refused,
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
            state.hanging = false;
            state.cuts += 1;
        });
    }

    /// [`TcpProxy::cut`], then waits (polling, up to `within`) until every connection it was
    /// forwarding is closed, so what a test asks next meets a dependency that is already gone.
    /// Whether they all closed in time.
    pub async fn cut_and_wait(&self, within: std::time::Duration) -> bool {
        self.cut();
        crate::eventually(within, async || self.connections() == 0).await
    }

    /// Lets nothing through any more, and closes nothing: open connections stay open but pass
    /// no byte either way, and new connections are accepted and never answered (what they send
    /// is read and dropped), until [`TcpProxy::restore`] or [`TcpProxy::cut`] closes them all.
    /// To clients the target hangs, as behind a network partition: no connection is seen to
    /// close. [`TcpProxy::held`] counts the new ones; the stalled ones stay in
    /// [`TcpProxy::connections`].
    pub fn hang(&self) {
        self.state.send_modify(|state| {
            state.open = false;
            state.hanging = true;
        });
    }

    /// Forwards new connections again (and closes those [`TcpProxy::hang`] stalled or held:
    /// bytes were lost on them).
    pub fn restore(&self) {
        self.state.send_modify(|state| {
            if state.hanging {
                state.cuts += 1;
            }
            state.open = true;
            state.hanging = false;
        });
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

    /// How many connections are held unanswered now ([`TcpProxy::hang`]), until their client
    /// gives up or the proxy stops hanging.
    #[must_use]
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// How many connections were closed as soon as accepted because the proxy was cut, since
    /// it started: a client's attempts to reconnect, which a test can wait for.
    #[must_use]
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

/// The proxy's live connections (forwarded, and held by [`TcpProxy::hang`]) and the count of
/// those it closed at once.
#[derive(Debug)]
struct Counts {
    forwarding: Arc<AtomicUsize>,
    held: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
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
    counts: Counts,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                // A failed accept (the peer gave up, too many files) only loses that connection.
                let Ok((inbound, _)) = accepted else { continue };
                let now = *state.borrow();
                if now.open {
                    let count = Counted::new(Arc::clone(&counts.forwarding));
                    tokio::spawn(forward(inbound, Arc::clone(&targets), state.clone(), now.cuts, count));
                } else if now.hanging {
                    let count = Counted::new(Arc::clone(&counts.held));
                    tokio::spawn(hold(inbound, state.clone(), now.cuts, count));
                } else {
                    // Cut: `inbound` is dropped here, so the client sees the connection closed.
                    counts.refused.fetch_add(1, Ordering::SeqCst);
                }
            }
            changed = state.changed() => if changed.is_err() { break },
        }
    }
}

/// Copies both ways until either side closes, the proxy is cut (after cut number `cuts`), or
/// the proxy is dropped; when it hangs meanwhile, stops copying and keeps the client's side
/// open until one of those.
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
    let stalled = tokio::select! {
        // The state first: once `hang` or `cut` has returned, not one more byte passes. It is
        // checked before waiting, so a cut between accept and here is not missed; an error
        // means the proxy was dropped.
        biased;
        now = state.wait_for(|state| state.cuts != cuts || state.hanging) => {
            now.is_ok_and(|now| now.cuts == cuts)
        }
        _ = relay => false,
    };
    if stalled {
        // Hanging: the target's side is gone (the relay with it), the client's stays open.
        hold_open(&mut inbound, &mut state, cuts).await;
    }
    // Both streams are closed before the count goes down: each side sees its connection closed.
    drop(inbound);
}

/// Reads and drops what the client sends until it closes, the proxy is cut or restored (after
/// cut number `cuts`), or the proxy is dropped.
async fn hold_open(inbound: &mut TcpStream, state: &mut watch::Receiver<State>, cuts: u64) {
    let drain = async {
        let mut buffer = [0_u8; 4096];
        while matches!(inbound.read(&mut buffer).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        () = drain => {}
        _ = state.wait_for(|state| state.cuts != cuts) => {}
    }
}

/// Reads and drops what the client sends, answering nothing, until it closes, the proxy stops
/// hanging (after cut number `cuts`), or the proxy is dropped.
async fn hold(mut inbound: TcpStream, mut state: watch::Receiver<State>, cuts: u64, _count: Counted) {
    hold_open(&mut inbound, &mut state, cuts).await;
}

/// One forwarded (or held) connection in the proxy's count, for as long as it lives.
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
