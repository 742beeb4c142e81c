//! `login serve --metrics-listen`: the instance's metrics for Prometheus on their own
//! listener, never on the app's.

mod common;

use std::process::{Command, Stdio};

use common::{Proc, User, free_port, wait_healthy};

#[test]
fn metrics_count_store_calls_and_sessions_on_their_own_listener() {
    let (port, metrics_port) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_login"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--name",
            "metered",
            "--store",
            "memory",
            "--insecure-cookie",
            "--metrics-listen",
            &format!("127.0.0.1:{metrics_port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let _instance = Proc(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy("instance", &base);

    let user = User::new(&format!("metered.{port}"), 1);
    user.login(&base);
    assert_eq!(user.me(&base).1.as_deref(), Some(user.name.as_str()));

    let text = reqwest::blocking::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    for line in [
        r#"tether_store_calls_total{store="memory",op="create",outcome="ok"}"#,
        r#"tether_store_calls_total{store="memory",op="load",outcome="ok"}"#,
        r#"tether_sessions_total{event="user_bound"} 1"#,
        r#"tether_sessions_total{event="created"} 1"#,
        "tether_store_call_seconds",
    ] {
        assert!(text.contains(line), "no {line} in:\n{text}");
    }
    // No id and no user name in any label.
    assert!(!text.contains(&user.name), "{text}");
    // The app's own listener has no /metrics.
    let app = reqwest::blocking::get(format!("{base}/metrics")).unwrap();
    assert_eq!(app.status(), 404);
}
