//! What a local user or a client on the network can reach of a running demo: its key
//! files, its listeners, its capacity and its login limiter.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Proc, client, free_port, log_in, replicated, status, wait_healthy, wait_until};
use serde_json::json;
use tether_testkit::harness::read_until_closed;

/// `login serve` on `port` named `a`, with `store_args` (`--store …` and its options).
fn serve(port: u16, store_args: &[&std::ffi::OsStr]) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_login"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--name", "a", "--insecure-cookie"])
            .args(store_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `login` (the demo) on the JWT store keeps its signing key where no other local
/// user can read it, in a directory of a random name it created itself.
#[test]
fn the_demo_keeps_its_signing_key_private() {
    let tmp = common::temp_dir("demo-tmp");
    let port = free_port();
    let mut demo = Proc(
        Command::new(env!("CARGO_BIN_EXE_login"))
            .args(["--store", "jwt", "--instances", "1"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("TMPDIR", &tmp)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_healthy("the demo", &format!("http://127.0.0.1:{port}"));
    let dirs: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("tether-demo-"))
        })
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let dir = &dirs[0];
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    let suffix = dir.file_name().unwrap().to_string_lossy()["tether-demo-".len()..].to_owned();
    assert!(
        suffix.parse::<u32>().is_err(),
        "the directory is named after the process id, which another user can guess: {suffix}"
    );
    let key = dir.join("jwt-keys");
    assert_eq!(mode(&key), 0o600, "{}", key.display());

    // Stopped as an operator stops it: its instances and its directory go with it.
    // The shell's own `kill`: no procps needed on a fresh machine.
    let status = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", demo.0.id())])
        .status()
        .unwrap();
    assert!(status.success());
    wait_until("the demo to stop", Duration::from_secs(30), || {
        demo.0.try_wait().unwrap().is_some()
    });
    assert!(!dir.exists(), "the demo left {} behind", dir.display());
}

/// `login serve` refuses a key file other users can read, naming the fix.
#[test]
fn an_instance_refuses_a_key_file_others_can_read() {
    let dir = common::temp_dir("open-key");
    let key = dir.join("keys");
    // Made private, then opened to others on purpose: the mistake under test.
    let text = format!("{}\n", tether::cookie::KeyRing::generate_key().unwrap());
    tether::core::private_file::create(&key, text.as_bytes()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut instance = Proc(
        Command::new(env!("CARGO_BIN_EXE_login"))
            .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--name", "a", "--store", "cookie", "--insecure-cookie"])
            .arg("--key-file")
            .arg(&key)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut exit = None;
    wait_until("the instance to refuse", Duration::from_secs(30), || {
        exit = instance.0.try_wait().unwrap();
        exit.is_some()
    });
    assert!(!exit.unwrap().success());
    let mut stderr = String::new();
    instance
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("chmod 600"), "{stderr}");
}

/// The metrics listener has the app listener's header deadline and a cap of its own:
/// idle and half-sent connections to it cannot hold the descriptors the app needs.
#[test]
fn the_metrics_listener_is_bounded_like_the_app() {
    let (port, metrics_port) = (free_port(), free_port());
    let dir = common::temp_dir("metrics-bounds");
    let exe = env!("CARGO_BIN_EXE_login");
    let command = format!(
        "ulimit -n 64 && exec '{exe}' serve --listen 127.0.0.1:{port} --name a --store file \
         --store-url '{}' --insecure-cookie --max-connections 16 --header-timeout-ms 500 \
         --metrics-listen 127.0.0.1:{metrics_port}",
        dir.display()
    );
    let _instance = Proc(
        Command::new("sh")
            .args(["-c", &command])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy("instance", &base);
    let metrics = format!("127.0.0.1:{metrics_port}");

    let mut slow = TcpStream::connect(&metrics).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(10));
    assert!(
        closed,
        "half-sent headers to the metrics listener were held open"
    );

    let mut idle = Vec::new();
    for _ in 0..120 {
        if let Ok(mut s) = TcpStream::connect(&metrics) {
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n");
            idle.push(s);
        }
    }
    let http = client();
    wait_until(
        "/healthz beside 120 idle metrics connections",
        Duration::from_secs(15),
        || status(&http, &format!("{base}/healthz")) == Some(200),
    );
    wait_until("/metrics still answers", Duration::from_secs(15), || {
        status(&http, &format!("http://{metrics}/metrics")) == Some(200)
    });
}

/// One account logging in again and again keeps at most its own share: the other
/// users still log in on a store with `--max-sessions`.
#[test]
fn one_account_cannot_fill_a_bounded_store() {
    let port = free_port();
    let _memory = serve(
        port,
        &["--store", "memory", "--max-sessions", "200"].map(std::ffi::OsStr::new),
    );
    let secret = "capacity test replication secret";
    let replicated_port = free_port();
    let _replicated = replicated(replicated_port, secret, &[], &["--max-sessions", "200"]);
    for base in [
        format!("http://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{replicated_port}"),
    ] {
        wait_healthy("instance", &base);
        let http = client();
        for i in 0..260 {
            let r = http
                .post(format!("{base}/api/login"))
                .json(&json!({"username": "mallory", "password": "demo"}))
                .send()
                .unwrap();
            assert_eq!(r.status(), 200, "mallory's login {i} at {base}");
        }
        let (user, _) = log_in(&base, "grace");
        let me = user.get(format!("{base}/api/me")).send().unwrap();
        assert_eq!(me.status(), 200, "{base}");
    }
}

/// An unsigned replication request is refused from its headers: its body, announced
/// large and never sent, is not waited for.
#[test]
fn an_unsigned_replication_body_is_refused_before_it_is_read() {
    let port = free_port();
    let _node = replicated(port, "slow body test replication secret", &[], &[]);
    wait_healthy("instance", &format!("http://127.0.0.1:{port}"));
    let mut attacker = TcpStream::connect(("127.0.0.1", port)).unwrap();
    attacker
        .write_all(
            b"POST /_tether/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 8000000\r\n\r\n{\"origin\":",
        )
        .unwrap();
    let (text, _) = read_until_closed(&mut attacker, Duration::from_secs(10));
    assert!(text.starts_with("HTTP/1.1 401"), "{text:?}");
}

/// Guesses at a user's password from one address pause that address, not the user:
/// the owner, from another address, still logs in.
#[test]
fn guessing_at_a_name_does_not_lock_its_owner_out() {
    let port = free_port();
    let dir = common::temp_dir("limiter");
    let store = [
        std::ffi::OsStr::new("--store"),
        "file".as_ref(),
        "--store-url".as_ref(),
    ];
    let _instance = serve(port, &[&store[..], &[dir.as_os_str()]].concat());
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy("instance", &base);
    // The demo believes X-Forwarded-For from this machine (its balancer's).
    let http = client();
    let attempt = |from: &str, password: &str| {
        http.post(format!("{base}/api/login"))
            .header("x-forwarded-for", from)
            .json(&json!({"username": "victim", "password": password}))
            .send()
            .unwrap()
            .status()
    };
    let mut paused = false;
    for _ in 0..7 {
        paused |= attempt("192.0.2.66", "guess") == 429;
    }
    assert!(
        paused,
        "seven wrong passwords from one address were never paused"
    );
    assert_eq!(
        attempt("192.0.2.66", "demo"),
        429,
        "the guesser stays paused"
    );
    assert_eq!(
        attempt("198.51.100.7", "demo"),
        200,
        "the owner, from another address, was locked out"
    );
}
