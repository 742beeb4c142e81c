//! This machine, as the reports of the lab and the benchmarks describe it, from
//! `/proc`.

/// The kibibytes on the `key:` line of a `/proc` file that counts in kB, such as
/// `/proc/meminfo` or `/proc/<pid>/status`; `None` when there is no such file or line.
///
/// ```
/// let total = tether_tools::machine::proc_kib("/proc/meminfo", "MemTotal");
/// assert!(total.is_some_and(|kib| kib > 0));
/// assert_eq!(tether_tools::machine::proc_kib("/proc/meminfo", "NoSuchLine"), None);
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
