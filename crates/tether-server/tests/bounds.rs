//! What a slow or hostile client meets: a deadline for headers and for a body.

use std::io::Write as _;
use std::net::TcpStream;
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use tether_server::{Limits, serve};
use tether_testkit::harness::read_until_closed;

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
        let (text, closed) = read_until_closed(&mut slow, Duration::from_secs(10));
        assert!(text.starts_with("HTTP/1.1 400"), "{text:?}");
        assert!(closed, "the connection stayed open after the deadline");

        let mut quick = TcpStream::connect(&addr).unwrap();
        quick
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            .unwrap();
        let (text, _) = read_until_closed(&mut quick, Duration::from_secs(10));
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
        let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(10));
        assert!(closed, "half-sent headers were held open");
    })
    .await
    .unwrap();
}
