//! The balancer as an attacker on the same network meets it: no admin API on the
//! proxied listener, no spoofed client address, no hop-by-hop header passed on, no
//! internal URL shown, bounded waits for slow backends and slow clients, and a
//! connection cap that idle sockets cannot use up.

use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use tether_balancer::server::Limits;
use tether_balancer::{Balancer, Config, Strategy};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A backend that answers `/healthz`, and `/headers` with every header it received,
/// one `name: value` per line; every other path is a 404 naming the path.
async fn backend() -> String {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/headers",
            get(|headers: HeaderMap| async move {
                let out = headers
                    .iter()
                    .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join("\n")
                    + "\n";
                (
                    [
                        ("connection", "x-internal"),
                        ("x-internal", "secret"),
                        ("keep-alive", "timeout=5"),
                    ],
                    out,
                )
            }),
        )
        .route("/big", get(|| async { "x".repeat(BIG) }))
        .fallback(|uri: axum::http::Uri| async move {
            (
                axum::http::StatusCode::NOT_FOUND,
                format!("backend got {uri}"),
            )
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// The size of `/big`'s body.
const BIG: usize = 8 << 20;

/// A backend that accepts connections and never answers.
async fn silent() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    url
}

async fn start(config: Config) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(Balancer::new(config.log_requests(false)).serve(listener));
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxied_listener_has_no_admin_api_and_shows_no_internal_url() {
    let a = backend().await;
    let lb = start(Config::new(vec![a.clone()])).await;
    let client = reqwest::Client::new();
    // The attacker's PUT reaches the backend as any path would; the pool stays.
    let put = client
        .put(format!("{lb}/_balancer/backends"))
        .body("http://203.0.113.66:80\n")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 404);
    let listed = client
        .get(format!("{lb}/_balancer/backends"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!listed.contains(&a), "internal URL shown: {listed}");
    let after = client.get(format!("{lb}/headers")).send().await.unwrap();
    assert_eq!(after.status(), 200, "the pool was replaced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replication_paths_are_never_forwarded() {
    let lb = start(Config::new(vec![backend().await])).await;
    let client = reqwest::Client::new();
    for path in [
        "/_tether/stats",
        "/_tether/snapshot",
        "/_tether/events",
        "/_tether",
    ] {
        let answer = client.get(format!("{lb}{path}")).send().await.unwrap();
        assert_eq!(answer.status(), 404, "{path}");
        let body = answer.text().await.unwrap();
        assert!(
            !body.contains("backend got"),
            "{path} was forwarded: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_its_token() {
    let a = backend().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = format!("http://{}", listener.local_addr().unwrap());
    let balancer = Balancer::new(Config::new(vec![a.clone()]).log_requests(false));
    let token = tether_balancer::AdminToken::new("a token of twenty chars").unwrap();
    tokio::spawn(balancer.serve_admin(listener, token));
    let client = reqwest::Client::new();
    let url = format!("{admin}/_balancer/backends");
    for bad in [None, Some("wrong token of twenty chars"), Some("")] {
        let mut req = client.get(&url);
        if let Some(bad) = bad {
            req = req.bearer_auth(bad);
        }
        let answer = req.send().await.unwrap();
        assert_eq!(answer.status(), 401);
        assert!(!answer.text().await.unwrap().contains(&a));
        let mut put = client.put(&url).body("http://203.0.113.66:80\n");
        if let Some(bad) = bad {
            put = put.bearer_auth(bad);
        }
        assert_eq!(put.send().await.unwrap().status(), 401);
    }
    let listed = client
        .get(&url)
        .bearer_auth("a token of twenty chars")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    assert!(listed.text().await.unwrap().contains(&a));
    let bad_url = client
        .put(&url)
        .bearer_auth("a token of twenty chars")
        .body("file:///etc/passwd\n")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_url.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_own_forwarded_for_is_neither_trusted_nor_passed_on() {
    let a = backend().await;
    let b = backend().await;
    // Nobody trusted: the client's header is replaced by its real address, and
    // ip-hash routes by that address whatever the header says.
    let lb = start(Config::new(vec![a.clone(), b.clone()]).strategy(Strategy::IpHash)).await;
    let client = reqwest::Client::new();
    let mut backends = std::collections::HashSet::new();
    for i in 0..20 {
        let seen = client
            .get(format!("{lb}/headers"))
            .header("x-forwarded-for", format!("10.9.{i}.1"))
            .send()
            .await
            .unwrap();
        backends.insert(seen.remote_addr());
        let text = seen.text().await.unwrap();
        assert!(text.contains("x-forwarded-for: 127.0.0.1\n"), "{text}");
        assert!(!text.contains("10.9."), "spoofed address passed on: {text}");
    }

    // A trusted proxy in front: the client is the address that proxy saw, not the
    // leftmost one the client wrote, and the chain is appended to.
    let lb = start(
        Config::new(vec![a, b])
            .strategy(Strategy::IpHash)
            .trust_forwarded_for(true),
    )
    .await;
    let text = client
        .get(format!("{lb}/headers"))
        .header("x-forwarded-for", "6.6.6.6, 203.0.113.7")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("x-forwarded-for: 6.6.6.6, 203.0.113.7, 127.0.0.1\n"),
        "{text}"
    );
    // Routing follows 203.0.113.7 whatever is written to its left.
    let mut routed = std::collections::HashSet::new();
    for spoof in [
        "1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4", "5.5.5.5", "7.7.7.7",
    ] {
        let text = client
            .get(format!("{lb}/healthz"))
            .header("x-forwarded-for", format!("{spoof}, 203.0.113.7"))
            .send()
            .await
            .unwrap();
        routed.insert(text.status());
    }
    assert_eq!(routed.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_do_not_cross_the_balancer() {
    let lb = start(Config::new(vec![backend().await])).await;
    let client = reqwest::Client::new();
    let answer = client
        .get(format!("{lb}/headers"))
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "for the balancer only")
        .header("keep-alive", "timeout=99")
        .header("proxy-authorization", "Basic dXNlcjpwYXNz")
        .header("x-end-to-end", "kept")
        .send()
        .await
        .unwrap();
    // Nor the other way: the backend's hop-by-hop fields stay with the balancer.
    assert!(answer.headers().get("x-internal").is_none());
    assert!(answer.headers().get("keep-alive").is_none());
    let text = answer.text().await.unwrap();
    for gone in ["x-hop", "keep-alive", "proxy-authorization"] {
        assert!(
            !text.contains(&format!("{gone}:")),
            "{gone} forwarded: {text}"
        );
    }
    assert!(text.contains("x-end-to-end: kept"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_answers_is_a_504_without_its_url() {
    let dead = silent().await;
    let lb = start(
        Config::new(vec![dead.clone()])
            .health_interval(Duration::from_hours(1))
            .response_timeout(Duration::from_millis(300)),
    )
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let answer = client.get(format!("{lb}/anything")).send().await.unwrap();
    assert_eq!(answer.status(), 504);
    assert!(!answer.text().await.unwrap().contains(&dead));
}

/// A balancer with these bounds in front of one backend: its URL and its address.
async fn bounded(header_read_timeout: Duration, max_connections: usize) -> (String, String) {
    let lb = start(Config::new(vec![backend().await]).limits(Limits {
        header_read_timeout,
        max_connections,
        ..Limits::default()
    }))
    .await;
    let addr = lb.trim_start_matches("http://").to_owned();
    (lb, addr)
}

/// `n` connections to `addr` that each sent `start` of a request and stopped.
async fn half_sent(addr: &str, n: usize, start: &[u8]) -> Vec<tokio::net::TcpStream> {
    let mut streams = Vec::new();
    for _ in 0..n {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(start).await.unwrap();
        streams.push(s);
    }
    streams
}

/// Reads until the server closes the connection; `true` when it did within `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_are_cut_off() {
    let (_, addr) = bounded(Duration::from_millis(300), 64).await;
    let mut slow = half_sent(&addr, 1, b"GET /headers HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .remove(0);
    assert!(
        closed_within(&mut slow, Duration::from_secs(10)).await,
        "a client that never finished its headers was held open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_lock_out_a_real_request() {
    let (lb, addr) = bounded(Duration::from_mins(1), 8).await;
    let _idle = half_sent(&addr, 40, b"GET /head").await;
    // Every idle socket is still open (the header timeout is a minute away), and a
    // real request gets through: the longest-idle connection made room.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for _ in 0..3 {
        let answer = client.get(format!("{lb}/healthz")).send().await.unwrap();
        assert_eq!(answer.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_still_being_sent_is_not_taken_for_an_idle_connection() {
    let (_, addr) = bounded(Duration::from_mins(1), 2).await;
    let mut download = tokio::net::TcpStream::connect(&addr).await.unwrap();
    download
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = download.read(&mut buf).await.unwrap();
    assert!(got > 0);
    // While the download waits for its reader, new connections arrive at the cap.
    let _others = half_sent(&addr, 6, b"GET /he").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The whole body still arrives.
    let read_all = async {
        loop {
            match download.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .expect("the download stalled");
    assert!(got > BIG, "the download was cut at {got} bytes");
}
