//! The lab behind the proxies people run: nginx or HAProxy in place of tether's
//! balancer, configured for the approach's routing, reloaded when the pool changes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::Error;

/// What routes the lab's users to the instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Proxy {
    /// tether's own balancer.
    Tether,
    /// nginx (open source): passive health checks, reload by SIGHUP.
    Nginx,
    /// HAProxy: active health checks, reload by SIGUSR2 (master-worker mode).
    Haproxy,
}

impl Proxy {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Tether => "tether-balancer",
            Self::Nginx => "nginx",
            Self::Haproxy => "HAProxy",
        }
    }

    /// The program: `TETHER_NGINX` / `TETHER_HAPROXY` (the test command sets them),
    /// else the Debian package's path.
    pub(crate) fn program(self) -> Option<PathBuf> {
        let (var, default) = match self {
            Self::Tether => return None,
            Self::Nginx => ("TETHER_NGINX", "/usr/sbin/nginx"),
            Self::Haproxy => ("TETHER_HAPROXY", "/usr/sbin/haproxy"),
        };
        Some(std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from))
    }
}

/// The example configuration (`examples/nginx`, `examples/haproxy`) for a strategy,
/// as people copy it; `None` for a strategy no example covers.
///
/// The L4 approaches are not among them: `ip_hash` and `balance source` hash the TCP
/// client's address, which every simulated user shares on loopback; they are measured
/// behind tether's balancer, which the lab tells to trust `X-Forwarded-For`.
pub(crate) fn example(proxy: Proxy, strategy: &str) -> Option<&'static str> {
    Some(match (proxy, strategy) {
        (Proxy::Nginx, "round-robin") => include_str!("../../../examples/nginx/round-robin.conf"),
        (Proxy::Nginx, "cookie-hash") => include_str!("../../../examples/nginx/cookie-hash.conf"),
        (Proxy::Haproxy, "round-robin") => {
            include_str!("../../../examples/haproxy/round-robin.cfg")
        }
        (Proxy::Haproxy, "cookie-hash") => {
            include_str!("../../../examples/haproxy/cookie-hash.cfg")
        }
        _ => return None,
    })
}

/// The example for `strategy` listening on `listen`, with one server line per backend
/// (the example's first server line, its port replaced; HAProxy's names `i1`, `i2`, …).
fn config(proxy: Proxy, strategy: &str, listen: u16, backends: &[u16]) -> Option<String> {
    let example = example(proxy, strategy)?;
    let keyword = if proxy == Proxy::Nginx {
        "listen"
    } else {
        "bind"
    };
    let mut out = String::new();
    let mut servers_written = false;
    for line in example.lines() {
        if line.contains("127.0.0.1:900") {
            if !servers_written {
                for (i, port) in backends.iter().enumerate() {
                    let mut server = line.replace("127.0.0.1:9001", &format!("127.0.0.1:{port}"));
                    if proxy == Proxy::Haproxy {
                        server = server.replacen(" a ", &format!(" i{} ", i + 1), 1);
                    }
                    out.push_str(&server);
                    out.push('\n');
                }
                servers_written = true;
            }
            continue;
        }
        out.push_str(&line.replace(
            &format!("{keyword} 127.0.0.1:8080"),
            &format!("{keyword} 127.0.0.1:{listen}"),
        ));
        out.push('\n');
    }
    Some(out)
}

/// A running nginx or HAProxy (its master process).
#[derive(Debug)]
pub(crate) struct Running {
    proxy: Proxy,
    strategy: &'static str,
    listen: u16,
    dir: PathBuf,
    child: Child,
}

impl Running {
    /// Starts `proxy` on `listen` in front of the instances on `backends`.
    pub(crate) fn start(
        proxy: Proxy,
        strategy: &'static str,
        listen: u16,
        backends: &[u16],
        dir: &Path,
    ) -> Result<Self, Error> {
        std::fs::create_dir_all(dir)?;
        let conf = dir.join("proxy.conf");
        let text = config(proxy, strategy, listen, backends)
            .ok_or_else(|| Error::Setup(format!("no {} example for {strategy}", proxy.name())))?;
        std::fs::write(&conf, text)?;
        let program = proxy
            .program()
            .ok_or_else(|| Error::Setup("tether's balancer is not a proxy process".into()))?;
        let mut command = Command::new(&program);
        match proxy {
            // The master process stays (it reloads on SIGHUP); the example has no pid
            // or log paths of its own.
            Proxy::Nginx => command
                .arg("-c")
                .arg(&conf)
                .arg("-p")
                .arg(dir)
                .arg("-g")
                .arg(format!(
                    "daemon off; pid {}/nginx.pid; error_log {}/error.log;",
                    dir.display(),
                    dir.display()
                )),
            _ => command.args(["-W", "-db", "-f"]).arg(&conf),
        };
        let child = command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::Setup(format!("cannot start {}: {e}", program.display())))?;
        Ok(Self {
            proxy,
            strategy,
            listen,
            dir: dir.to_owned(),
            child,
        })
    }

    /// Routes to `backends` from now on: a new configuration and a graceful reload
    /// (nginx SIGHUP, HAProxy SIGUSR2), then a moment for the new workers to take over.
    pub(crate) async fn set_pool(&self, backends: &[u16]) -> Result<(), Error> {
        let conf = self.dir.join("proxy.conf");
        let text = config(self.proxy, self.strategy, self.listen, backends)
            .ok_or_else(|| Error::Setup(format!("no {} example", self.proxy.name())))?;
        std::fs::write(&conf, text)?;
        let signal = match self.proxy {
            Proxy::Nginx => "-HUP",
            _ => "-USR2",
        };
        self.signal(signal).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(())
    }

    async fn signal(&self, signal: &str) -> Result<(), Error> {
        let pid = self
            .child
            .id()
            .ok_or_else(|| Error::Setup(format!("{} has exited", self.proxy.name())))?;
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .await?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Setup(format!(
                "cannot signal {} ({signal})",
                self.proxy.name()
            )))
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // The master stops its workers on SIGTERM (SIGKILL, on drop, would orphan them).
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
            for _ in 0..100 {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_examples_get_the_lab_ports_and_one_server_per_backend() {
        for proxy in [Proxy::Nginx, Proxy::Haproxy] {
            for strategy in ["round-robin", "cookie-hash"] {
                let text = config(proxy, strategy, 7000, &[7001, 7002, 7003, 7004]).unwrap();
                assert!(!text.contains("900"), "{text}");
                assert!(!text.contains(":8080"), "{text}");
                assert!(text.contains("127.0.0.1:7000"), "{text}");
                for port in 7001..=7004 {
                    assert_eq!(
                        text.matches(&format!("127.0.0.1:{port}")).count(),
                        1,
                        "{text}"
                    );
                }
                if proxy == Proxy::Haproxy {
                    assert!(text.contains(" i4 127.0.0.1:7004"), "{text}");
                }
            }
            assert!(config(proxy, "ip-hash", 7000, &[7001]).is_none());
            assert!(config(proxy, "modulo-hash", 7000, &[7001]).is_none());
        }
    }
}
