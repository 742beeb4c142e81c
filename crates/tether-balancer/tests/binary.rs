//! The `tether-balancer` binary as operators run it: the admin API is off unless asked
//! for, and then needs a token on its own listener; idle sockets cannot use up its
//! file descriptors.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use tether_testkit::harness::{Proc, free_port, wait_until};

/// A backend answering every path with 200 and its path.
fn backend() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = std::io::Read::read(&mut stream, &mut buf) {
                    if n == 0 {
                        return;
                    }
                    let body = "backend";
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

fn balancer(shell_prefix: &str, args: &[&str]) -> (String, Proc) {
    let port = free_port();
    let exe = env!("CARGO_BIN_EXE_tether-balancer");
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let command = format!(
        "{shell_prefix} exec '{exe}' --quiet --listen 127.0.0.1:{port} {}",
        quoted.join(" ")
    );
    let child = Command::new("sh")
        .args(["-c", &command])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    (url, Proc(child))
}

fn get(url: &str) -> Option<(u16, String)> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = client.get(url).send().ok()?;
    Some((r.status().as_u16(), r.text().unwrap_or_default()))
}

#[test]
fn the_admin_api_is_off_by_default_and_never_open() {
    let b = backend();
    let (lb, _p) = balancer("", &["--backend", &b]);
    wait_until("balancer up", Duration::from_secs(20), || {
        get(&lb).is_some()
    });
    // The path is proxied like any other: the backend answers it.
    assert_eq!(
        get(&format!("{lb}/_balancer/backends")),
        Some((200, "backend".to_owned()))
    );

    // Asking for the admin API without a token is a configuration error.
    let status = Command::new(env!("CARGO_BIN_EXE_tether-balancer"))
        .args([
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--backend",
            &b,
        ])
        .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
        .env_remove("TETHER_BALANCER_ADMIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));

    let admin_port = free_port();
    let admin = format!("127.0.0.1:{admin_port}");
    let token = "binary test admin token";
    let (lb, _p) = balancer(
        "",
        &[
            "--backend",
            &b,
            "--admin-listen",
            &admin,
            "--admin-token",
            token,
        ],
    );
    wait_until("balancer up", Duration::from_secs(20), || {
        get(&lb).is_some()
    });
    let client = reqwest::blocking::Client::new();
    let url = format!("http://{admin}/_balancer/backends");
    assert_eq!(client.get(&url).send().unwrap().status(), 401);
    let listed = client.get(&url).bearer_auth(token).send().unwrap();
    assert_eq!(listed.status(), 200);
    assert!(listed.text().unwrap().contains(&b));
}

#[test]
fn idle_sockets_cannot_use_up_the_file_descriptors() {
    let b = backend();
    // 64 descriptors for the whole process; a cap of 16 connections stays below.
    let (lb, _p) = balancer(
        "ulimit -n 64 &&",
        &["--backend", &b, "--max-connections", "16"],
    );
    wait_until("balancer up", Duration::from_secs(20), || {
        get(&lb).is_some()
    });
    let addr = lb.trim_start_matches("http://");
    let mut idle = Vec::new();
    for _ in 0..120 {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n");
            idle.push(s);
        }
    }
    wait_until(
        "a request answered beside 120 idle sockets",
        Duration::from_secs(15),
        || get(&format!("{lb}/healthz")).is_some_and(|(status, _)| status == 200),
    );
}
