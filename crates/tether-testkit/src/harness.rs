//! For test binaries with their own `main` (they re-execute themselves as separate
//! processes): runs the tests and prints libtest's kind of summary.

/// Runs each test, prints `test NAME ... ok|FAILED` and `N passed, N failed`, and exits
/// non-zero when one failed.
pub fn run(tests: &[(&str, fn())]) {
    let mut failed = 0;
    for (name, test) in tests {
        if std::panic::catch_unwind(*test).is_ok() {
            println!("test {name} ... ok");
        } else {
            println!("test {name} ... FAILED");
            failed += 1;
        }
    }
    println!("{} passed, {failed} failed", tests.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}

/// A child process a test started, killed (and reaped) when the test drops it, so a
/// failing assertion never leaves a server running.
#[derive(Debug)]
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free on 127.0.0.1 right now (for a server a test is about to start).
///
/// Taken below the kernel's ephemeral range when there is room (10000 up to it), so
/// no outgoing connection takes it as its local port between this choice and the
/// server's bind: a port from the ephemeral range could be, while instances start
/// and talk to each other.
///
/// # Panics
/// When no port can be bound.
pub fn free_port() -> u16 {
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if ephemeral_from > 11_000 {
        let span = u64::from(ephemeral_from - 10_000);
        let mut seed = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            h.finish()
        };
        for _ in 0..200 {
            // xorshift: a fresh candidate each try, spread over the range.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let port = 10_000 + u16::try_from(seed % span).unwrap_or(0);
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Retries `ok` every 50 ms until it holds.
///
/// # Panics
/// When it still does not hold after `limit`, naming `what`.
pub fn wait_until(what: &str, limit: std::time::Duration, mut ok: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs `migrate` from `n` tasks at once, then once more: every run must succeed (a
/// store's migrations are idempotent and safe when instances start together).
///
/// # Panics
/// When a run fails.
pub async fn migrate_concurrently<F, Fut>(n: usize, migrate: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = tether_core::Result<()>> + Send + 'static,
{
    let runs: Vec<_> = (0..n).map(|_| tokio::spawn(migrate())).collect();
    for run in runs {
        if let Err(e) = run.await.expect("the migration task ran") {
            panic!("a concurrent migration failed: {e:?}");
        }
    }
    if let Err(e) = migrate().await {
        panic!("migrating again failed: {e:?}");
    }
}

/// A new directory of its own for a test's session data: `tether-TAG-PID-RANDOM` under
/// the temporary directory, created `0700` and exclusively (never one that existed).
///
/// # Panics
/// When it cannot be created.
pub fn private_dir(tag: &str) -> std::path::PathBuf {
    use std::os::unix::fs::DirBuilderExt as _;
    let dir = std::env::temp_dir().join(format!(
        "tether-{tag}-{}-{}",
        std::process::id(),
        tether_core::Id::generate().expect("randomness")
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// What a server sent on `stream` until it closed the connection, reading for at
/// most `wait` between bytes: the text, and whether it closed (an end of stream or a
/// reset, not a read that timed out).
///
/// # Panics
/// When the read timeout cannot be set.
pub fn read_until_closed(
    stream: &mut std::net::TcpStream,
    wait: std::time::Duration,
) -> (String, bool) {
    use std::io::Read as _;
    stream.set_read_timeout(Some(wait)).expect("a read timeout");
    let mut text = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Err(e) => break e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(n) => text.extend_from_slice(&buf[..n]),
        }
    };
    (String::from_utf8_lossy(&text).into_owned(), closed)
}
