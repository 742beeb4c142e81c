//! Three instances of the axum-login demo, each its own process, behind tether's
//! balancer (round robin) on one shared tether store: a login made through one
//! instance holds on every instance, a second login by the same user is listed, and
//! "log out everywhere" ends every session of that user on every instance, other
//! users' untouched. The instances share the cookie-signing key (from a file, as in
//! production); an instance with a key of its own recognises nobody. A flash message
//! (axum-messages) set at login is shown once, by whichever instance answers next,
//! and `login_required!` guards a route on every instance. Run on the file store and
//! on Redis.

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

/// A fresh cookie-signing key in a private file: 64 random bytes, base64.
fn key_file(tag: &str) -> std::path::PathBuf {
    use base64::Engine as _;
    let path = std::env::temp_dir().join(format!(
        "tether-axum-login-{tag}-{}-{}.key",
        std::process::id(),
        free_port()
    ));
    let mut key = [0u8; 64];
    tether::core::fill_random(&mut key).unwrap();
    let text = base64::engine::general_purpose::STANDARD.encode(key);
    tether::core::private_file::create(&path, text.as_bytes()).unwrap();
    path
}

/// One instance named `name` with `key`, on `store_args`: its process and URL.
fn instance(name: &str, key: &std::path::Path, store_args: &[&str]) -> (Proc, String) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_axum-login-demo"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--instance", name])
        .arg("--session-key-file")
        .arg(key)
        .args(store_args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    (Proc(child), format!("http://127.0.0.1:{port}"))
}

/// Three instances `a`, `b`, `c` on `store_args` sharing `key`, and the balancer's URL.
async fn cluster(store_args: &[&str], key: &std::path::Path) -> (Vec<Proc>, String) {
    let mut procs = Vec::new();
    let mut urls = Vec::new();
    for name in ["a", "b", "c"] {
        let (proc, url) = instance(name, key, store_args);
        procs.push(proc);
        urls.push(url);
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

/// What six `GET /me` (twice around the three instances) saw: the user each time,
/// the instances that answered, and the flash messages shown.
struct Seen {
    users: Vec<Option<String>>,
    instances: Vec<String>,
    messages: Vec<String>,
}

async fn me_everywhere(front: &str, cookie: &str) -> Seen {
    let mut seen = Seen {
        users: Vec::new(),
        instances: Vec::new(),
        messages: Vec::new(),
    };
    for _ in 0..6 {
        let (status, body) = call(front, "GET", "/me", cookie).await;
        let user = (status == StatusCode::OK).then(|| body["user"].as_str().unwrap().to_owned());
        seen.users.push(user);
        seen.instances
            .push(body["instance"].as_str().unwrap_or_default().to_owned());
        if let Some(list) = body["messages"].as_array() {
            seen.messages
                .extend(list.iter().map(|m| m.as_str().unwrap().to_owned()));
        }
    }
    seen.instances.sort();
    seen.instances.dedup();
    seen
}

async fn logins_hold_everywhere_and_logout_everywhere_ends_them(store_args: &[&str]) {
    let key = key_file("shared");
    let (_procs, front) = cluster(store_args, &key).await;

    assert_eq!(
        login(&front, "alice", "wrong").await,
        Err(StatusCode::UNAUTHORIZED)
    );
    let (status, _) = call(&front, "GET", "/protected", "").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "login_required! let a stranger in"
    );
    let laptop = login(&front, "alice", "wonderland").await.unwrap();
    let seen = me_everywhere(&front, &laptop).await;
    assert!(
        seen.users.iter().all(|u| u.as_deref() == Some("alice")),
        "{:?}",
        seen.users
    );
    assert_eq!(
        seen.instances,
        ["a", "b", "c"],
        "round robin reached every instance"
    );
    assert_eq!(
        seen.messages,
        ["Welcome, alice"],
        "the login's flash message, shown once by whichever instance answered next"
    );
    for _ in 0..3 {
        let (status, body) = call(&front, "GET", "/protected", &laptop).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["user"], "alice");
    }

    // An instance with a signing key of its own (Key::generate() at start-up) sees
    // the same store and still recognises nobody: the key must be shared.
    let own_key = key_file("own");
    let (_stranger, stranger) = instance("d", &own_key, store_args);
    wait_healthy(&stranger).await;
    let (status, _) = call(&stranger, "GET", "/me", &laptop).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let phone = login(&front, "alice", "wonderland").await.unwrap();
    let bob = login(&front, "bob", "builder").await.unwrap();
    let (status, body) = call(&front, "GET", "/sessions", &phone).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["sessions"], 2, "alice's two logins are listed: {body}");

    let (status, body) = call(&front, "POST", "/logout-everywhere", &phone).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ended"], 2, "{body}");
    for cookie in [&laptop, &phone] {
        let seen = me_everywhere(&front, cookie).await;
        assert!(
            seen.users.iter().all(Option::is_none),
            "a session lived on: {:?}",
            seen.users
        );
        let (status, _) = call(&front, "GET", "/protected", cookie).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let seen = me_everywhere(&front, &bob).await;
    assert!(
        seen.users.iter().all(|u| u.as_deref() == Some("bob")),
        "{:?}",
        seen.users
    );

    let (status, _) = call(&front, "POST", "/logout", &bob).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let seen = me_everywhere(&front, &bob).await;
    assert!(seen.users.iter().all(Option::is_none), "{:?}", seen.users);
    for key in [key, own_key] {
        std::fs::remove_file(key).unwrap();
    }
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
