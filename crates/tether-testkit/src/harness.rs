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

/// A port free on 127.0.0.1 right now (for a server a test is about to start).
///
/// # Panics
/// When no port can be bound.
pub fn free_port() -> u16 {
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

/// The kibibytes on the `key:` line of a `/proc` file that counts in kB, such as
/// `/proc/meminfo` or `/proc/<pid>/status`; `None` when there is no such file or line.
///
/// ```
/// let total = tether_testkit::harness::proc_kib("/proc/meminfo", "MemTotal");
/// assert!(total.is_some_and(|kib| kib > 0));
/// assert_eq!(tether_testkit::harness::proc_kib("/proc/meminfo", "NoSuchLine"), None);
/// ```
pub fn proc_kib(path: &str, key: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// This machine in one line, from `/proc`: cores and CPU model, memory, kernel (for
/// the reports of the lab and the benchmarks).
pub fn describe_machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let memory_gib = proc_kib("/proc/meminfo", "MemTotal").map_or(0, |kib| kib / (1024 * 1024));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({model}), {memory_gib} GiB RAM, Linux {}",
        kernel.trim()
    )
}
