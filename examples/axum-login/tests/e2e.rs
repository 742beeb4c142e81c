//! Three instances of the axum-login demo, each its own process, behind tether's
//! balancer (round robin) on one shared tether store: a login made through one
//! instance holds on every instance, a second login by the same user is listed, and
//! "log out everywhere" ends every session of that user on every instance, other
//! users' untouched. Run on the file store and on Redis.

use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tether_balancer::{Balancer, Config, Strategy};
use tether_testkit::harness::{Proc, free_port};

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Waits (at most 30 s) until `url`'s `/healthz` answers 200.
async fn wait_healthy(url: &str) {
    for _ in 0..300 {
        let ok = http().get(format!("{url}/healthz")).send().await;
        if ok.is_ok_and(|r| r.status() == StatusCode::OK) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not become healthy within 30 s");
}

/// Three instances `a`, `b`, `c` on `store_args`, and the balancer's URL.
async fn cluster(store_args: &[&str]) -> (Vec<Proc>, String) {
    let mut procs = Vec::new();
    let mut urls = Vec::new();
    for name in ["a", "b", "c"] {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_axum-login-demo"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--instance", name])
            .args(store_args)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        procs.push(Proc(child));
        urls.push(format!("http://127.0.0.1:{port}"));
    }
    for url in &urls {
        wait_healthy(url).await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = format!("http://{}", listener.local_addr().unwrap());
    let balancer = Balancer::new(
        Config::new(urls)
            .strategy(Strategy::RoundRobin)
            .log_requests(false),
    );
    tokio::spawn(balancer.serve(listener));
    wait_healthy(&front).await;
    (procs, front)
}

/// `POST /login`; the session cookie (`name=value`) on success.
async fn login(front: &str, user: &str, password: &str) -> Result<String, StatusCode> {
    let reply = http()
        .post(format!("{front}/login"))
        .form(&[("username", user), ("password", password)])
        .send()
        .await
        .unwrap();
    if reply.status() != StatusCode::OK {
        return Err(reply.status());
    }
    let set = reply.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap();
    assert!(set.contains("HttpOnly") && set.contains("Secure"), "{set}");
    Ok(set.split(';').next().unwrap().to_owned())
}

async fn call(front: &str, method: &str, path: &str, cookie: &str) -> (StatusCode, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let reply = http()
        .request(method, format!("{front}{path}"))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    let status = reply.status();
    let body = reply.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// `GET /me` six times (twice around the three instances): the user each time, and
/// the instances that answered.
async fn me_everywhere(front: &str, cookie: &str) -> (Vec<Option<String>>, Vec<String>) {
    let mut users = Vec::new();
    let mut instances = Vec::new();
    for _ in 0..6 {
        let (status, body) = call(front, "GET", "/me", cookie).await;
        let user = (status == StatusCode::OK).then(|| body["user"].as_str().unwrap().to_owned());
        users.push(user);
        instances.push(body["instance"].as_str().unwrap_or_default().to_owned());
    }
    instances.sort();
    instances.dedup();
    (users, instances)
}

async fn logins_hold_everywhere_and_logout_everywhere_ends_them(store_args: &[&str]) {
    let (_procs, front) = cluster(store_args).await;

    assert_eq!(
        login(&front, "alice", "wrong").await,
        Err(StatusCode::UNAUTHORIZED)
    );
    let laptop = login(&front, "alice", "wonderland").await.unwrap();
    let (users, instances) = me_everywhere(&front, &laptop).await;
    assert!(
        users.iter().all(|u| u.as_deref() == Some("alice")),
        "{users:?}"
    );
    assert_eq!(
        instances,
        ["a", "b", "c"],
        "round robin reached every instance"
    );

    let phone = login(&front, "alice", "wonderland").await.unwrap();
    let bob = login(&front, "bob", "builder").await.unwrap();
    let (status, body) = call(&front, "GET", "/sessions", &phone).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["sessions"], 2, "alice's two logins are listed: {body}");

    let (status, body) = call(&front, "POST", "/logout-everywhere", &phone).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ended"], 2, "{body}");
    for cookie in [&laptop, &phone] {
        let (users, _) = me_everywhere(&front, cookie).await;
        assert!(
            users.iter().all(Option::is_none),
            "a session lived on: {users:?}"
        );
    }
    let (users, _) = me_everywhere(&front, &bob).await;
    assert!(
        users.iter().all(|u| u.as_deref() == Some("bob")),
        "{users:?}"
    );

    let (status, _) = call(&front, "POST", "/logout", &bob).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (users, _) = me_everywhere(&front, &bob).await;
    assert!(users.iter().all(Option::is_none), "{users:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_file_store() {
    let dir = std::env::temp_dir().join(format!("tether-axum-login-{}", std::process::id()));
    let dir_arg = dir.to_str().unwrap().to_owned();
    logins_hold_everywhere_and_logout_everywhere_ends_them(&["--store", "file", "--dir", &dir_arg])
        .await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis() {
    let url = std::env::var("TETHER_TEST_REDIS_URL").expect(
        "TETHER_TEST_REDIS_URL is not set: run the tests through scripts/test, which starts redis-server",
    );
    logins_hold_everywhere_and_logout_everywhere_ends_them(&[
        "--store",
        "redis",
        "--redis-url",
        &url,
    ])
    .await;
}
