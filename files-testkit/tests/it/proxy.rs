//! The TCP proxy that tests use to cut dependencies: bytes flow, a cut closes open connections
//! and refuses new ones, a hang lets nothing through and closes nothing, a restore lets them
//! through again, a drop stops it.

use std::net::SocketAddr;
use std::time::Duration;

use files_testkit::eventually;
use files_testkit::proxy::TcpProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bound on anything that should be immediate: a hang fails the test instead of stalling it.
const HANG: Duration = Duration::from_secs(5);

/// An echo server on a free port; runs until the test's runtime ends.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut reader, mut writer) = stream.split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            });
        }
    });
    addr
}

/// Sends `message` and reads it back.
async fn round_trip(stream: &mut TcpStream, message: &[u8]) {
    stream.write_all(message).await.unwrap();
    let mut echoed = vec![0; message.len()];
    tokio::time::timeout(HANG, stream.read_exact(&mut echoed))
        .await
        .expect("echo timed out")
        .unwrap();
    assert_eq!(echoed, message);
}

/// Whether the peer closed or reset the connection (a read gives end of file or an error).
async fn is_closed(stream: &mut TcpStream) -> bool {
    let mut buffer = [0; 16];
    match tokio::time::timeout(HANG, stream.read(&mut buffer)).await {
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => panic!("connection neither answered nor closed within {HANG:?}"),
    }
}

/// Whether a new connection through `addr` is refused, or closed before it echoes anything.
async fn new_connection_fails(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return true;
    };
    // Writing may already fail if the proxy dropped it; reading shows the close either way.
    let _ = stream.write_all(b"anyone?").await;
    is_closed(&mut stream).await
}

#[tokio::test]
async fn forwards_bytes_both_ways() {
    let proxy = TcpProxy::start(echo_server().await).await.unwrap();
    assert_eq!(proxy.addr().port(), proxy.port());
    let mut first = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut second = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut first, b"hello").await;
    round_trip(&mut second, &[7; 100_000]).await;
    round_trip(&mut first, b"again").await;
}

#[tokio::test]
async fn cut_closes_open_connections_and_refuses_new_ones_until_restored() {
    let proxy = TcpProxy::start(echo_server().await).await.unwrap();
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut open, b"before").await;

    proxy.cut();
    assert!(proxy.is_cut());
    assert!(
        is_closed(&mut open).await,
        "the open connection must be closed by the cut"
    );
    for _ in 0..3 {
        assert!(
            new_connection_fails(proxy.addr()).await,
            "a connection made while cut must fail"
        );
    }
    assert_eq!(proxy.refused(), 3, "each refused connection is counted");

    proxy.restore();
    assert!(!proxy.is_cut());
    let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut after, b"after").await;

    // And again: a proxy can be cut and restored any number of times.
    proxy.cut();
    assert!(is_closed(&mut after).await);
    proxy.restore();
    let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut again, b"again").await;
}

#[tokio::test]
async fn hang_stalls_open_connections_and_holds_new_ones_until_restored() {
    let proxy = TcpProxy::start(echo_server().await).await.unwrap();
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut open, b"before").await;

    proxy.hang();
    assert!(proxy.is_cut());
    // The open connection stays open (no close a client could notice) and carries nothing
    // back; a new one is accepted and held.
    open.write_all(b"anyone?").await.unwrap();
    let mut held = TcpStream::connect(proxy.addr()).await.unwrap();
    held.write_all(b"anyone?").await.unwrap();
    assert!(
        eventually(HANG, async || proxy.held() == 1).await,
        "the new connection is not held"
    );
    for stream in [&mut open, &mut held] {
        let mut buffer = [0; 16];
        let read = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buffer)).await;
        assert!(read.is_err(), "a connection answered or closed while hanging: {read:?}");
    }
    assert_eq!(proxy.connections(), 1, "the stalled connection is still counted");

    // A client that gives up is let go.
    drop(held);
    assert!(
        eventually(HANG, async || proxy.held() == 0).await,
        "a closed client is still held"
    );

    // A restore closes what stalled or was held (bytes were lost there) and forwards again.
    let mut held = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(eventually(HANG, async || proxy.held() == 1).await);
    proxy.restore();
    assert!(
        is_closed(&mut open).await,
        "the restore must close the stalled connection"
    );
    assert!(is_closed(&mut held).await, "the restore must close the held connection");
    assert!(eventually(HANG, async || proxy.held() == 0 && proxy.connections() == 0).await);
    let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut after, b"after").await;

    // From hanging to cut: everything closes and new connections are refused.
    proxy.hang();
    let mut held = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(eventually(HANG, async || proxy.held() == 1).await);
    proxy.cut();
    assert!(is_closed(&mut after).await);
    assert!(is_closed(&mut held).await);
    assert!(new_connection_fails(proxy.addr()).await);
}

#[tokio::test]
async fn a_cut_restored_at_once_still_closes_the_connections_it_found() {
    let proxy = TcpProxy::start(echo_server().await).await.unwrap();
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut open, b"before").await;
    assert_eq!(proxy.connections(), 1);
    proxy.cut();
    proxy.restore();
    assert!(
        is_closed(&mut open).await,
        "a cut must close the connections open at that moment"
    );
    assert!(
        eventually(HANG, async || proxy.connections() == 0).await,
        "the count never went back to 0"
    );
    let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut after, b"after").await;
    assert_eq!(proxy.connections(), 1);
}

#[tokio::test]
async fn dropping_the_proxy_closes_its_connections_and_port() {
    let proxy = TcpProxy::start(echo_server().await).await.unwrap();
    let addr = proxy.addr();
    let mut open = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut open, b"hi").await;
    drop(proxy);
    assert!(is_closed(&mut open).await);
    // The listener goes with the accept task, which ends soon after the drop: poll for it.
    assert!(
        eventually(HANG, async || new_connection_fails(addr).await).await,
        "the dropped proxy still forwards"
    );
}

#[tokio::test]
async fn a_target_that_is_down_closes_the_client_connection() {
    // A port bound without listening: refused, and no one else can take it meanwhile.
    let closed = files_testkit::services::ClosedPort::bind().unwrap();
    let proxy = TcpProxy::start(closed.addr().unwrap()).await.unwrap();
    assert!(new_connection_fails(proxy.addr()).await);
}

#[tokio::test]
async fn for_url_points_the_url_at_the_proxy() {
    let echo = echo_server().await;
    let url = format!("redis://user:secret@127.0.0.1:{}/3", echo.port());
    let (proxy, through) = TcpProxy::for_url(&url).await.unwrap();
    assert_eq!(through, format!("redis://user:secret@127.0.0.1:{}/3", proxy.port()));
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut stream, b"via url").await;
    assert!(TcpProxy::for_url("not a url").await.is_err());
    assert!(TcpProxy::for_url("unknown://127.0.0.1").await.is_err());
}
