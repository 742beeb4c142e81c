//! One benchmark server process (tether, tower-sessions or bare axum), pinned to a core.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tether_testkit::harness::{free_port, wait_until};

use crate::{curl, fail, output};

/// A benchmark server pinned to core 0.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) port: u16,
}

impl Server {
    pub(crate) fn start(lib: &str, store: &str, url: Option<&str>, lock: bool) -> Self {
        let port = free_port();
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("bench-server")))
            .unwrap_or_else(|| fail("cannot locate bench-server"));
        let mut command = Command::new("taskset");
        command
            .args(["-c", "0"])
            .arg(exe)
            .args(["--lib", lib, "--store", store, "--listen"])
            .arg(format!("127.0.0.1:{port}"));
        if let Some(url) = url {
            command.args(["--url", &url.replace("{lib}", lib)]);
        }
        if lock {
            command.arg("--lock");
        }
        let child = command
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| fail(&format!("cannot start bench-server: {e}")));
        wait_until(
            &format!("bench-server {lib}/{store} listening"),
            Duration::from_secs(30),
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        Self { child, port }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `n` sessions with a counter, as `Cookie` header values.
    pub(crate) fn seed(&self, n: usize) -> Vec<String> {
        let head = output(
            curl()
                .args(["-D", "-", "-o", "/dev/null", "-X", "POST"])
                .arg(self.url(&format!("/write?[1-{n}]"))),
        );
        let cookies: Vec<String> = head
            .lines()
            .filter_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("set-cookie").then(|| {
                    value
                        .trim()
                        .split(';')
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                })
            })
            .collect();
        if cookies.len() != n {
            fail(&format!(
                "seeding {n} sessions at {} set {} cookies",
                self.url("/write"),
                cookies.len()
            ));
        }
        cookies
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
