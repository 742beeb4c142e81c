//! The balancer in front of real HTTP backends: each strategy's routing, health, and
//! forwarded headers.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use tether_balancer::{Balancer, Config, Strategy};

async fn backend(name: &'static str) -> (String, tokio::task::JoinHandle<()>) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/who",
            get(move |headers: HeaderMap| async move {
                let xff = headers
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                ([("x-instance", name)], format!("{name} {xff}"))
            }),
        )
        .route(
            "/echo",
            post(move |body: String| async move { format!("{name} {body}") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, handle)
}

/// A backend that reads a request and closes the connection without answering.
async fn hang_up() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let mut buf = [0; 4096];
            if stream.readable().await.is_ok() {
                let _ = stream.try_read(&mut buf);
            }
        }
    });
    url
}

async fn balancer(strategy: Strategy, backends: Vec<String>) -> String {
    start(
        Config::new(backends)
            .strategy(strategy)
            .health_interval(Duration::from_millis(100))
            .trust_forwarded_for(true),
    )
    .await
}

/// The admin token of the test balancers.
const TOKEN: &str = "routing test admin token";

/// Starts a balancer and its admin API (found again by [`admin_url`]).
async fn start(config: Config) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let admin_url = format!("http://{}", admin.local_addr().unwrap());
    ADMIN.lock().unwrap().insert(url.clone(), admin_url);
    let balancer = Balancer::new(config.log_requests(false));
    let token = tether_balancer::AdminToken::new(TOKEN).unwrap();
    tokio::spawn(balancer.clone().serve_admin(admin, token));
    tokio::spawn(balancer.serve(listener));
    url
}

static ADMIN: std::sync::LazyLock<std::sync::Mutex<HashMap<String, String>>> =
    std::sync::LazyLock::new(Default::default);

/// The admin API's base URL of the balancer at `lb`.
fn admin_url(lb: &str) -> String {
    ADMIN.lock().unwrap()[lb].clone()
}

async fn who(client: &reqwest::Client, url: &str) -> String {
    let body = client
        .get(format!("{url}/who"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.split(' ').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_and_skips_a_dead_backend() {
    let (a, _ha) = backend("a").await;
    let (b, hb) = backend("b").await;
    let lb = balancer(Strategy::RoundRobin, vec![a, b]).await;
    let client = reqwest::Client::new();
    let mut counts = HashMap::new();
    for _ in 0..10 {
        *counts.entry(who(&client, &lb).await).or_insert(0) += 1;
    }
    assert_eq!(counts.get("a"), Some(&5));
    assert_eq!(counts.get("b"), Some(&5));
    hb.abort();
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..6 {
        assert_eq!(
            who(&client, &lb).await,
            "a",
            "a dead backend still got requests"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_hash_sets_a_route_cookie_and_sticks_to_it() {
    let mut urls = Vec::new();
    let mut handles = Vec::new();
    for name in ["a", "b", "c"] {
        let (url, h) = backend(name).await;
        urls.push(url);
        handles.push(h);
    }
    let lb = balancer(Strategy::CookieHash, urls).await;
    let mut seen = HashMap::new();
    for _ in 0..30 {
        // A new client each time: its first response carries the routing cookie.
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap();
        let first = who(&client, &lb).await;
        for _ in 0..5 {
            assert_eq!(
                who(&client, &lb).await,
                first,
                "a client moved between backends"
            );
        }
        *seen.entry(first).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 3, "new clients all went to {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_hash_sticks_by_client_address_and_forwards_it() {
    let (a, _ha) = backend("a").await;
    let (b, _hb) = backend("b").await;
    let lb = balancer(Strategy::IpHash, vec![a, b]).await;
    let client = reqwest::Client::new();
    let mut spread = HashMap::new();
    for i in 0..40 {
        let ip = format!("10.0.{}.{}", i / 200, i % 200 + 1);
        let body = |client: &reqwest::Client| {
            client
                .get(format!("{lb}/who"))
                .header("x-forwarded-for", ip.clone())
                .send()
        };
        let first = body(&client).await.unwrap().text().await.unwrap();
        let second = body(&client).await.unwrap().text().await.unwrap();
        assert_eq!(first, second, "same address, different backend");
        assert!(
            first.contains(&format!("{ip}, 127.0.0.1")),
            "X-Forwarded-For not appended: {first}"
        );
        *spread
            .entry(first.split(' ').next().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(
        spread.len(),
        2,
        "all addresses went to one backend: {spread:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_can_be_replaced_live() {
    let (a, _ha) = backend("a").await;
    let (b, _hb) = backend("b").await;
    let lb = balancer(Strategy::RoundRobin, vec![a.clone()]).await;
    let client = reqwest::Client::new();
    assert_eq!(who(&client, &lb).await, "a");
    set_pool(&client, &lb, &[&a, &b]).await;
    let mut names = std::collections::HashSet::new();
    for _ in 0..4 {
        names.insert(who(&client, &lb).await);
    }
    assert_eq!(names.len(), 2);
}

/// A balancer on `first` whose one health check runs at start, so that backends added
/// later stay up until a request to them fails.
async fn without_health_checks(first: &str) -> String {
    start(Config::new(vec![first.to_owned()]).health_interval(Duration::from_hours(1))).await
}

async fn set_pool(client: &reqwest::Client, lb: &str, urls: &[&str]) {
    let put = client
        .put(format!("{}/_balancer/backends", admin_url(lb)))
        .bearer_auth(TOKEN)
        .body(urls.join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
}

/// The balancer's `GET /_balancer/backends`: a line per backend, `URL up|down …`.
async fn backends(client: &reqwest::Client, lb: &str) -> String {
    let answer = client
        .get(format!("{}/_balancer/backends", admin_url(lb)))
        .bearer_auth(TOKEN)
        .send();
    answer.await.unwrap().text().await.unwrap()
}

/// `POST /echo` with `body`.
async fn echo(client: &reqwest::Client, lb: &str, body: String) -> reqwest::Response {
    client
        .post(format!("{lb}/echo"))
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_goes_to_the_next_backend_with_its_body() {
    let (a, _ha) = backend("a").await;
    // A port nobody listens on: connections to it are refused.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    // No health check runs during the test, so only the refused request itself can
    // show the balancer that `dead` is down.
    let lb = without_health_checks(&a).await;
    let client = reqwest::Client::new();
    set_pool(&client, &lb, &[&dead, &a]).await;
    let listed = backends(&client, &lb).await;
    assert!(
        listed.contains(&format!("{dead} up")),
        "the new backend should start as up: {listed}"
    );
    // Round-robin sends one of the first two requests to `dead`.
    for i in 0..4 {
        let answer = echo(&client, &lb, format!("payload {i}")).await;
        assert_eq!(answer.status(), 200, "request {i} failed");
        assert_eq!(answer.text().await.unwrap(), format!("a payload {i}"));
    }
    let listed = backends(&client, &lb).await;
    assert!(
        listed.contains(&format!("{dead} down")),
        "a refused connection should mark the backend down: {listed}"
    );

    let too_big = echo(
        &client,
        &lb,
        "x".repeat(tether_balancer::MAX_REQUEST_BODY + 1),
    )
    .await;
    assert_eq!(too_big.status(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_hangs_up_gets_a_get_sent_on_but_not_a_post() {
    let (a, _ha) = backend("a").await;
    let lb = without_health_checks(&a).await;
    let client = reqwest::Client::new();

    // Round-robin sends one of two consecutive requests to the backend that hangs up.
    // It may have acted on a POST, so that one is answered 502, not sent to `a`.
    set_pool(&client, &lb, &[&hang_up().await, &a]).await;
    let mut statuses = Vec::new();
    for i in 0..2 {
        let answer = echo(&client, &lb, format!("payload {i}")).await;
        statuses.push(answer.status().as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 502]);

    // A GET is idempotent: it goes on to `a`.
    set_pool(&client, &lb, &[&hang_up().await, &a]).await;
    for _ in 0..2 {
        assert_eq!(who(&client, &lb).await, "a");
    }
}

/// A backend whose health checks can be made slow: `/healthz` sleeps while `slow`
/// holds a count, counting it down, and tells `checks` each time it is asked.
async fn slow_health(
    name: &'static str,
    slow: std::sync::Arc<std::sync::atomic::AtomicU32>,
    checks: tokio::sync::mpsc::UnboundedSender<()>,
) -> String {
    use std::sync::atomic::Ordering;
    let app = Router::new()
        .route(
            "/healthz",
            get(move || {
                let slow = slow.clone();
                let checks = checks.clone();
                async move {
                    let _ = checks.send(());
                    let left = slow.load(Ordering::SeqCst);
                    if left > 0 {
                        slow.store(left - 1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    "ok"
                }
            }),
        )
        .route("/who", get(move || async move { format!("{name} -") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slow_health_check_does_not_move_sticky_clients() {
    let slow = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (checks_tx, mut checks) = tokio::sync::mpsc::unbounded_channel();
    let a = slow_health("a", slow.clone(), checks_tx).await;
    let (b, _hb) = backend("b").await;
    let lb = balancer(Strategy::ModuloHash, vec![a.clone(), b]).await;
    // A client whose routing cookie maps to `a`.
    let mut sticky = None;
    for _ in 0..64 {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap();
        if who(&client, &lb).await == "a" {
            sticky = Some(client);
            break;
        }
    }
    let client = sticky.expect("no new client was routed to a in 64 tries");
    // The next two checks of `a` take longer than the check's timeout (500 ms).
    slow.store(2, std::sync::atomic::Ordering::SeqCst);
    while checks.try_recv().is_ok() {}
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(10), checks.recv())
            .await
            .expect("the balancer stopped checking a");
    }
    // The first slow check has timed out, the second is running: `a` still answers
    // its sticky clients, as a balancer needs more than one missed check to drop a
    // backend (and with it every session that lives only there).
    assert_eq!(
        who(&client, &lb).await,
        "a",
        "one slow health check moved a sticky client off its backend"
    );
    let listed = backends(&client, &lb).await;
    assert!(listed.contains(&format!("{a} up")), "{listed}");
}
