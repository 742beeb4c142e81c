//! What a slow or hostile client meets: a deadline for headers and for a body.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use tether_server::{Limits, serve};

async fn start(limits: Limits) -> String {
    let app = axum::Router::new().route(
        "/echo",
        post(|body: Bytes| async move { body.len().to_string() }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(listener, app, limits, std::future::pending()));
    addr
}

/// What the server sent, and whether it closed the connection, reading for at most
/// `wait` between bytes.
fn answer(stream: &mut TcpStream, wait: Duration) -> (String, bool) {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Err(e) => break e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(n) => text.extend_from_slice(&buf[..n]),
        }
    };
    (String::from_utf8_lossy(&text).into_owned(), closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_cut_off_at_its_deadline() {
    let addr = start(Limits {
        body_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    tokio::task::spawn_blocking(move || {
        let mut slow = TcpStream::connect(&addr).unwrap();
        slow.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123456789")
            .unwrap();
        // Before the deadline, this waited for the rest of the body for ever.
        let (text, closed) = answer(&mut slow, Duration::from_secs(10));
        assert!(text.starts_with("HTTP/1.1 400"), "{text:?}");
        assert!(closed, "the connection stayed open after the deadline");

        let mut quick = TcpStream::connect(&addr).unwrap();
        quick
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            .unwrap();
        let (text, _) = answer(&mut quick, Duration::from_secs(10));
        assert!(text.starts_with("HTTP/1.1 200") && text.ends_with('5'), "{text:?}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_are_closed_at_the_header_deadline() {
    let addr = start(Limits {
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    tokio::task::spawn_blocking(move || {
        let mut slow = TcpStream::connect(&addr).unwrap();
        slow.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        let (_, closed) = answer(&mut slow, Duration::from_secs(10));
        assert!(closed, "half-sent headers were held open");
    })
    .await
    .unwrap();
}
