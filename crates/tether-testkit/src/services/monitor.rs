//! Counting the commands Redis clients send, as `MONITOR` lists them: the measure of
//! round trips. Commands a Lua script runs inside Redis are listed with the source
//! `lua` and are not counted, so a store that sends `GET` and `EVALSHA` is measured the
//! same way as one that sends `GET` and `SET`. (`INFO commandstats` cannot tell them
//! apart: it counts a script's commands too.)

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{failed, program};

/// A `redis-cli monitor` attached to one Redis, writing what it sees to a file.
#[derive(Debug)]
pub struct RedisMonitor {
    child: Child,
    path: PathBuf,
    port: String,
}

/// How long the monitor may take to attach, or to show a command sent.
const WAIT: Duration = Duration::from_secs(10);

impl RedisMonitor {
    /// Attaches to the Redis at `url` (`redis://HOST:PORT`, loopback), returning once
    /// `MONITOR` has answered.
    pub fn start(url: &str) -> io::Result<Self> {
        let port = url
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .ok_or_else(|| failed("redis monitor", format!("no port in {url}")))?
            .to_owned();
        let path = std::env::temp_dir().join(format!(
            "tether-monitor-{}-{}.txt",
            std::process::id(),
            crate::harness::free_port()
        ));
        let file = std::fs::File::create(&path)?;
        let child = Command::new(program("TETHER_REDIS_CLI", "redis-cli"))
            .args(["-p", &port, "monitor"])
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| failed("starting redis-cli monitor", e))?;
        let monitor = Self { child, path, port };
        monitor.wait_for("OK")?;
        Ok(monitor)
    }

    fn wait_for(&self, text: &str) -> io::Result<String> {
        let start = Instant::now();
        loop {
            let seen = std::fs::read_to_string(&self.path)?;
            if seen.contains(text) {
                return Ok(seen);
            }
            if start.elapsed() > WAIT {
                return Err(failed(
                    "redis monitor",
                    format!("{text:?} not seen within {WAIT:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The client commands seen so far that mention `pattern` (a key prefix, say;
    /// empty for all), in order. Sends a marker through a client of its own and waits
    /// for it, so every command sent before the call is in.
    pub fn commands(self, pattern: &str) -> io::Result<Vec<String>> {
        let marker = format!("tether-monitor-marker-{}", crate::harness::free_port());
        let sent = Command::new(program("TETHER_REDIS_CLI", "redis-cli"))
            .args(["-p", &self.port, "ECHO", &marker])
            .stdout(Stdio::null())
            .status()
            .map_err(|e| failed("sending the monitor's marker", e))?;
        if !sent.success() {
            return Err(failed("sending the monitor's marker", sent));
        }
        let seen = self.wait_for(&marker)?;
        Ok(seen
            .lines()
            .take_while(|l| !l.contains(&marker))
            .filter(|l| l.contains("] \"") && !l.contains(" lua]") && l.contains(pattern))
            .map(str::to_owned)
            .collect())
    }
}

impl Drop for RedisMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.path);
    }
}
