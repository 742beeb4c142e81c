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
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / (1024 * 1024));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({model}), {memory_gib} GiB RAM, Linux {}",
        kernel.trim()
    )
}
