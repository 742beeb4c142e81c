//! The demo as an attacker on the same network, or an operator hitting a fault, meets
//! it: separate `login serve` processes, real sockets.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    Instance, Proc, Store, client, free_port, log_in, replicated, start_balancer, start_instances,
    status, wait_until,
};
use serde_json::json;

#[test]
fn the_replicated_store_never_runs_with_a_known_secret() {
    let status = Command::new(env!("CARGO_BIN_EXE_login"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--name",
            "a",
        ])
        .args(["--store", "replicated"])
        .env_remove("TETHER_REPLICATION_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2), "started without a secret");
}

#[test]
fn replication_routes_need_the_secret_and_are_never_proxied() {
    let instances = start_instances(&Store::Replicated, 2);
    let (base, _balancer) = start_balancer(&instances, "round-robin");
    let http = client();
    for path in ["/_tether/stats", "/_tether/snapshot", "/_tether/hello"] {
        assert_eq!(
            status(&http, &format!("{}{path}", instances[0].url())),
            Some(401),
            "{path}"
        );
        assert_eq!(
            status(&http, &format!("{base}{path}")),
            Some(404),
            "{path} proxied"
        );
    }
}

#[test]
fn cross_site_posts_are_refused_and_password_guessing_is_paused() {
    let instances = start_instances(&Store::file(), 1);
    let url = instances[0].url();
    let http = client();
    for (name, value) in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.example"),
    ] {
        let r = http
            .post(format!("{url}/login"))
            .header(name, value)
            .form(&[("username", "mallory"), ("password", "demo")])
            .send()
            .unwrap();
        assert_eq!(r.status(), 403, "a cross-site login form post ({name})");
        assert!(r.headers().get("set-cookie").is_none());
    }
    let same = http
        .post(format!("{url}/login"))
        .header("sec-fetch-site", "same-origin")
        .form(&[("username", "alice"), ("password", "demo")])
        .send()
        .unwrap();
    assert_eq!(
        same.status(),
        200,
        "a same-origin login (redirected to the profile)"
    );

    let attempt = |password: &str| {
        http.post(format!("{url}/api/login"))
            .json(&json!({"username": "victim", "password": password}))
            .send()
            .unwrap()
    };
    let mut paused = None;
    for _ in 0..50 {
        let r = attempt("guess");
        if r.status() == 429 {
            paused = Some(r);
            break;
        }
        assert_eq!(r.status(), 401);
    }
    let paused = paused.expect("50 wrong passwords in a row were never paused");
    assert!(paused.headers().contains_key("retry-after"));
    // While paused, even the right password is not checked: a guess cannot be confirmed.
    assert_eq!(attempt("demo").status(), 429);
}

/// Starts one file-store instance with `extra` flags under `shell` (say, a ulimit).
fn file_instance(shell: &str, extra: &str) -> (Instance, String) {
    let port = free_port();
    let dir = common::temp_dir("limits");
    let exe = env!("CARGO_BIN_EXE_login");
    let command = format!(
        "{shell} exec '{exe}' serve --listen 127.0.0.1:{port} --name a --store file --store-url '{}' --insecure-cookie {extra}",
        dir.display()
    );
    let child = Command::new("sh")
        .args(["-c", &command])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    common::wait_healthy("instance", &url);
    (
        Instance {
            name: "a".into(),
            port,
            proc: Proc(child),
        },
        url,
    )
}

#[test]
fn slow_and_idle_clients_cannot_take_the_instance_down() {
    let (_i, url) = file_instance(
        "ulimit -n 64 &&",
        "--max-connections 16 --header-timeout-ms 500",
    );
    let addr = url.trim_start_matches("http://").to_owned();
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 256];
    let closed = matches!(std::io::Read::read(&mut slow, &mut buf), Ok(0) | Err(_));
    assert!(closed, "half-sent headers were held open");

    let mut idle = Vec::new();
    for _ in 0..120 {
        if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
            let _ = s.write_all(b"GET / HTTP/1.1\r\n");
            idle.push(s);
        }
    }
    let http = client();
    wait_until(
        "/healthz beside 120 idle sockets",
        Duration::from_secs(15),
        || status(&http, &format!("{url}/healthz")) == Some(200),
    );
}

#[test]
fn a_peer_that_refuses_keeps_a_replicated_instance_not_ready() {
    let (pa, pb) = (free_port(), free_port());
    let _a = replicated(pa, "the first cluster's secret", &[pb], &[]);
    let http = client();
    let a = format!("http://127.0.0.1:{pa}");
    wait_until("a ready", Duration::from_secs(30), || {
        status(&http, &format!("{a}/healthz")) == Some(200)
    });
    let (_user, cookie) = log_in(&a, "ada");

    // B has another secret: A answers its snapshot request with 401.
    let _b = replicated(pb, "a mistyped other secret!", &[pa], &[]);
    let b = format!("http://127.0.0.1:{pb}");
    wait_until("b listening", Duration::from_secs(30), || {
        status(&http, &format!("{b}/healthz")).is_some()
    });
    assert_eq!(
        status(&http, &format!("{b}/healthz")),
        Some(503),
        "B reported ready"
    );
    let me = http
        .get(format!("{b}/api/me"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(me.status(), 503, "B answered as if the user had no session");
}

#[test]
fn anonymous_floods_and_oversized_sessions_do_not_break_replication() {
    let (pa, pb) = (free_port(), free_port());
    let secret = "flood test replication secret";
    let _a = replicated(pa, secret, &[pb], &["--max-sessions", "50"]);
    let _b = replicated(pb, secret, &[pa], &["--max-sessions", "50"]);
    let http = client();
    let (a, b) = (
        format!("http://127.0.0.1:{pa}"),
        format!("http://127.0.0.1:{pb}"),
    );
    for base in [&a, &b] {
        wait_until("ready", Duration::from_secs(30), || {
            status(&http, &format!("{base}/healthz")) == Some(200)
        });
    }
    for i in 0..200 {
        let r = http
            .put(format!("{a}/api/data/x"))
            .json(&json!(i))
            .send()
            .unwrap();
        assert_eq!(r.status(), 204, "anonymous session {i}");
    }
    // A session of about 1 MB is refused to the request that tried it.
    let big = http
        .put(format!("{a}/api/data/x"))
        .json(&json!("y".repeat(1_000_000)))
        .send()
        .unwrap();
    assert_eq!(big.status(), 413);

    // Logins still get in, and a logout on A still reaches B.
    let (user, cookie) = log_in(&a, "ada");
    let on_b = |c: &str| {
        http.get(format!("{b}/api/me"))
            .header("cookie", c)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(on_b(&cookie), 200, "the login is on B");
    assert_eq!(
        user.post(format!("{a}/api/logout"))
            .send()
            .unwrap()
            .status(),
        204
    );
    wait_until("the logout on B", Duration::from_secs(10), || {
        on_b(&cookie) == 401
    });
}

/// DESIGN's `--max-sessions` for the memory store: a flood of cookie-less requests fills
/// at most half, so a login still gets in.
#[test]
fn a_memory_instance_takes_max_sessions_and_floods_cannot_lock_out_logins() {
    let port = free_port();
    let _instance = Proc(
        Command::new(env!("CARGO_BIN_EXE_login"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--name", "m", "--store", "memory", "--insecure-cookie"])
            .args(["--max-sessions", "20"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = client();
    wait_until("ready", Duration::from_secs(30), || {
        status(&http, &format!("{base}/healthz")) == Some(200)
    });
    for i in 0..100 {
        let r = http
            .put(format!("{base}/api/data/x"))
            .json(&json!(i))
            .send()
            .unwrap();
        assert_eq!(r.status(), 204, "anonymous session {i}");
    }
    let (user, _) = log_in(&base, "grace");
    let me = user.get(format!("{base}/api/me")).send().unwrap();
    assert_eq!(me.status(), 200);
}
