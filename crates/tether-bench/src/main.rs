//! `tether-bench run`: tether and tower-sessions behind the same app under the same
//! load, store by store, and `BENCHMARKS.md` from what it measured. Run it through
//! `scripts/bench`, which installs and starts Redis and MariaDB and builds in release.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use plotters::prelude::*;
use tether_testkit::harness::{free_port, wait_until};
use tether_testkit::services::program;
use tether_tools::chart::Bars;

/// The benchmark driver.
#[derive(Debug, Parser)]
#[command(about)]
enum Cli {
    /// Run every row and write the report.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Rounds; the report takes the median.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// wrk connections (and redis-benchmark clients).
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Where BENCHMARKS.md goes; the chart goes to docs/bench/ beside it.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Only these stores (memory, redis, mysql, file, cookie).
    #[arg(long = "store")]
    stores: Vec<String>,
}

/// Sessions each server is seeded with; wrk's connections cycle through them, so the
/// rows measure many users, not 32 connections fighting over one row or key.
const SESSIONS: usize = 1000;

const ENDPOINTS: [(&str, &str, bool); 4] = [
    ("untouched", "/untouched", false),
    ("read", "/read", false),
    ("write", "/write", true),
    ("login", "/login", true),
];

fn fail(message: &str) -> ! {
    eprintln!("tether-bench: {message}");
    std::process::exit(2);
}

fn output(command: &mut Command) -> String {
    match command.output() {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => fail(&format!("cannot run {command:?}: {e}")),
    }
}

/// A benchmark server pinned to core 0.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(lib: &str, store: &str, url: Option<&str>, lock: bool) -> Self {
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
            command.args(["--url", url]);
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

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `n` sessions with a counter, as `Cookie` header values.
    fn seed(&self, n: usize) -> Vec<String> {
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

/// One wrk run.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn parse_ms(text: &str) -> f64 {
    let t = text.trim();
    let (number, scale) = if let Some(v) = t.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = t.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = t.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (t, 1.0)
    };
    number.parse::<f64>().unwrap_or(0.0) * scale
}

/// curl, silent, with a deadline: a server that hangs fails the measurement instead
/// of the whole run.
fn curl() -> Command {
    let mut command = Command::new("curl");
    command.args(["-s", "-m", "60"]);
    command
}

/// A wrk script: the method, and a `Cookie` header that cycles through `cookies`
/// request by request (requests are formatted once, in `init`).
fn script(path: &Path, post: bool, cookies: &[String]) -> PathBuf {
    let mut lua = String::new();
    if post {
        lua.push_str("wrk.method = \"POST\"\n");
    }
    if !cookies.is_empty() {
        lua.push_str("local cookies = {\n");
        for cookie in cookies {
            let _ = writeln!(lua, "  \"{cookie}\",");
        }
        lua.push_str(
            "}\nlocal requests = {}\nlocal i = 0\n\
             init = function(args)\n  \
               for n, c in ipairs(cookies) do requests[n] = wrk.format(nil, nil, { [\"Cookie\"] = c }) end\n\
             end\n\
             request = function()\n  i = i % #requests + 1\n  return requests[i]\nend\n",
        );
    }
    std::fs::write(path, lua).unwrap_or_else(|e| fail(&format!("writing {}: {e}", path.display())));
    path.to_owned()
}

fn wrk(url: &str, args: &RunArgs, script: &Path) -> Sample {
    let mut command = Command::new("taskset");
    command
        .args(["-c", "1", "wrk", "-t1", "--latency"])
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{}s", args.seconds))
        .arg("-s")
        .arg(script);
    let text = output(command.arg(url));
    let mut sample = Sample::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => sample.rps = v.parse().unwrap_or(0.0),
            ["50%", v] => sample.p50_ms = parse_ms(v),
            ["99%", v] => sample.p99_ms = parse_ms(v),
            ["Non-2xx", "or", "3xx", "responses:", v] => {
                sample.errors += v.parse::<u64>().unwrap_or(0);
            }
            ["Socket", "errors:", rest @ ..] => {
                sample.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    if sample.rps == 0.0 {
        fail(&format!("wrk measured nothing at {url}:\n{text}"));
    }
    sample
}

/// Statements the SQL server has executed, as it counts them: `Com_stmt_execute`, the
/// prepared statements run (sqlx prepares every statement that has parameters, in both
/// libraries; `Questions` would also count the `SET` of every connection the pool
/// opens).
fn store_calls(store: &str, url: &str) -> Option<u64> {
    match store {
        "mysql" => {
            let rest = url.strip_prefix("mysql://")?;
            let (creds, host) = rest.split_once('@')?;
            let (user, password) = creds.split_once(':')?;
            let host = host.split('/').next()?;
            let (host, port) = host.split_once(':')?;
            let text = output(
                Command::new(program("TETHER_MARIADB", "mariadb"))
                    .args(["-N", "-h", host, "-P", port, "-u", user])
                    .arg(format!("-p{password}"))
                    .args(["-e", "SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'"]),
            );
            text.split_whitespace().nth(1)?.parse().ok()
        }
        _ => None,
    }
}

fn redis_cli() -> String {
    program("TETHER_REDIS_CLI", "redis-cli")
}

/// The commands Redis clients send, as `MONITOR` lists them. Commands a Lua script
/// runs inside Redis are listed with the source `lua` and not counted, so the count is
/// round trips: the same measure for a library that sends GET and SET as for one that
/// sends HGETALL and EVALSHA.
struct RedisMonitor {
    child: Child,
    path: PathBuf,
}

impl RedisMonitor {
    fn start(url: &str) -> Option<Self> {
        let port = url.rsplit(':').next()?;
        let path =
            std::env::temp_dir().join(format!("tether-bench-monitor-{}.txt", std::process::id()));
        let file = std::fs::File::create(&path).ok()?;
        let child = Command::new(redis_cli())
            .args(["-p", port, "monitor"])
            .stdout(file)
            .spawn()
            .ok()?;
        let monitor = Self { child, path };
        // MONITOR answers OK once it is attached.
        let start = Instant::now();
        while !std::fs::read_to_string(&monitor.path).is_ok_and(|t| t.starts_with("OK")) {
            if start.elapsed() > Duration::from_secs(5) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(monitor)
    }

    /// Client commands seen so far (redis-cli flushes every line it prints).
    fn count(mut self) -> Option<u64> {
        std::thread::sleep(Duration::from_millis(300));
        let _ = self.child.kill();
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.path).ok()?;
        Some(
            text.lines()
                .filter(|l| l.contains("] \"") && !l.contains(" lua]"))
                .count() as u64,
        )
    }
}

impl Drop for RedisMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Store round trips per request of `path`, over 100 requests: Redis commands sent
/// by clients ([`RedisMonitor`]), or SQL statements executed (calibrated against the
/// counting itself).
#[allow(clippy::cast_precision_loss)]
fn calls_per_request(
    server: &Server,
    store: &str,
    url: &str,
    path: &str,
    cookie: Option<&str>,
    post: bool,
) -> Option<f64> {
    let monitor = if store == "redis" {
        Some(RedisMonitor::start(url)?)
    } else {
        None
    };
    let (a, b) = if monitor.is_none() {
        (store_calls(store, url)?, store_calls(store, url)?)
    } else {
        (0, 0)
    };
    let overhead = b - a;
    let mut command = curl();
    command.args(["-o", "/dev/null", "-w", "%{http_code}\\n"]);
    if let Some(cookie) = cookie {
        command.arg("-H").arg(format!("Cookie: {cookie}"));
    }
    if post {
        command.args(["-X", "POST"]);
    }
    command.arg(server.url(&format!("{path}?[1-100]")));
    let statuses = output(&mut command);
    let ok = statuses.lines().filter(|s| s.starts_with('2')).count();
    if ok != 100 {
        eprintln!(
            "tether-bench: counting store calls at {}: {ok} of 100 requests succeeded",
            server.url(path)
        );
        return None;
    }
    let calls = match monitor {
        Some(monitor) => monitor.count()?,
        None => store_calls(store, url)? - b - overhead,
    };
    Some(calls as f64 / 100.0)
}

/// 200 concurrent increments of one session's counter.
#[derive(Debug, Clone, Copy)]
struct Increments {
    /// Requests that did not answer 2xx.
    failed: u64,
    /// Successful increments missing from the final count; `None` when the final
    /// read failed.
    lost: Option<u64>,
}

fn increments(server: &Server) -> Increments {
    let cookie = server.seed(1).remove(0);
    let statuses = output(
        curl()
            .args(["-o", "/dev/null", "-w", "%{http_code}\\n"])
            .args(["-Z", "--parallel-max", "200", "-X", "POST", "-H"])
            .arg(format!("Cookie: {cookie}"))
            .arg(server.url("/incr?[1-200]")),
    );
    let ok = statuses.lines().filter(|s| s.starts_with('2')).count() as u64;
    let value: Option<u64> = output(
        curl()
            .arg("-H")
            .arg(format!("Cookie: {cookie}"))
            .arg(server.url("/read")),
    )
    .trim()
    .parse()
    .ok();
    Increments {
        failed: 200 - ok,
        // The seed wrote 1.
        lost: value.map(|v| (ok + 1).saturating_sub(v)),
    }
}

fn redis_floor(url: &str, connections: u32) -> BTreeMap<String, f64> {
    let port = url.rsplit(':').next().unwrap_or("6379");
    let text = output(
        Command::new("taskset")
            .args(["-c", "1", "redis-benchmark", "-p", port, "-c"])
            .arg(connections.to_string())
            .args(["-n", "200000", "-t", "get,set", "-q"]),
    );
    text.split(['\r', '\n'])
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let rps = rest.split_whitespace().next()?.parse::<f64>().ok()?;
            Some((name.trim().to_owned(), rps))
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

type Key = (String, String, String); // (store, lib, endpoint)

#[allow(clippy::too_many_lines)]
fn run(args: &RunArgs) {
    let wanted = |store: &str| args.stores.is_empty() || args.stores.iter().any(|s| s == store);
    // A server's URL is needed only when its store is measured.
    let url_for = |store: &str, var: &str| {
        if !wanted(store) {
            return String::new();
        }
        std::env::var(var).unwrap_or_else(|_| fail(&format!("{var} is not set: run scripts/bench")))
    };
    let redis_url = url_for("redis", "TETHER_TEST_REDIS_URL");
    let mysql_url = url_for("mysql", "TETHER_TEST_MYSQL_URL");
    let file_dir = std::env::temp_dir().join(format!("tether-bench-{}", std::process::id()));
    let file_url = file_dir.display().to_string();
    let script_path = std::env::temp_dir().join(format!("tether-bench-{}.lua", std::process::id()));
    // The bare server ignores cookies; it gets the same number of distinct ones.
    let fake_cookies: Vec<String> = (0..SESSIONS).map(|i| format!("bare={i:022}")).collect();
    let stores: Vec<(&str, Option<&str>, Vec<&str>)> = vec![
        ("memory", None, vec!["tether", "tower-sessions"]),
        (
            "redis",
            Some(redis_url.as_str()),
            vec!["tether", "tower-sessions"],
        ),
        (
            "mysql",
            Some(mysql_url.as_str()),
            vec!["tether", "tower-sessions"],
        ),
        ("file", Some(file_url.as_str()), vec!["tether"]),
        ("cookie", None, vec!["tether"]),
    ]
    .into_iter()
    .filter(|(s, _, _)| wanted(s))
    .collect();

    let mut samples: BTreeMap<Key, Vec<Sample>> = BTreeMap::new();
    let mut bare: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut calls: BTreeMap<Key, f64> = BTreeMap::new();
    let started = Instant::now();
    for round in 0..args.rounds {
        for (store, url, libs) in &stores {
            let mut bare_runs = Vec::new();
            let bare_server = Server::start("bare", "memory", None, false);
            let bare_script = script(&script_path, false, &fake_cookies);
            bare_runs.push(wrk(&bare_server.url("/read"), args, &bare_script).rps);
            drop(bare_server);
            let mut order = libs.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            for lib in order {
                let server = Server::start(lib, store, *url, false);
                let cookies = server.seed(SESSIONS);
                for (name, path, post) in ENDPOINTS {
                    // Login starts from no session.
                    let pool = if name == "login" {
                        &[][..]
                    } else {
                        &cookies[..]
                    };
                    let run_script = script(&script_path, post, pool);
                    let sample = wrk(&server.url(path), args, &run_script);
                    eprintln!(
                        "round {} {store:<6} {lib:<14} {name:<9} {:>9.0} req/s p50 {:.2} ms p99 {:.2} ms errors {}",
                        round + 1,
                        sample.rps,
                        sample.p50_ms,
                        sample.p99_ms,
                        sample.errors
                    );
                    samples
                        .entry(((*store).to_owned(), lib.to_owned(), name.to_owned()))
                        .or_default()
                        .push(sample);
                    if round == 0
                        && let Some(url) = url
                        && let Some(per) = calls_per_request(
                            &server,
                            store,
                            url,
                            path,
                            pool.first().map(String::as_str),
                            post,
                        )
                    {
                        calls.insert(((*store).to_owned(), lib.to_owned(), name.to_owned()), per);
                    }
                }
            }
            let bare_server = Server::start("bare", "memory", None, false);
            let bare_script = script(&script_path, false, &fake_cookies);
            bare_runs.push(wrk(&bare_server.url("/read"), args, &bare_script).rps);
            drop(bare_server);
            bare.entry((*store).to_owned())
                .or_default()
                .push(bare_runs.iter().sum::<f64>() / 2.0);
        }
    }
    let floor = if wanted("redis") {
        redis_floor(&redis_url, args.connections)
    } else {
        BTreeMap::new()
    };
    let mut increments = Vec::new();
    for (store, url) in [
        ("memory", None),
        ("redis", Some(redis_url.as_str())),
        ("mysql", Some(mysql_url.as_str())),
    ]
    .into_iter()
    .filter(|(store, _)| wanted(store))
    {
        for (lib, lock) in [("tether", true), ("tower-sessions", false)] {
            let server = Server::start(lib, store, url, lock);
            increments.push((store, lib, lock, self::increments(&server)));
        }
    }
    let _ = std::fs::remove_dir_all(&file_dir);
    let _ = std::fs::remove_file(&script_path);
    let report = Report {
        args,
        samples,
        bare,
        calls,
        floor,
        increments,
        seconds: started.elapsed().as_secs_f64(),
    };
    let chart = args.out.join("docs/bench/ratios.svg");
    report.chart(&chart);
    let path = args.out.join("BENCHMARKS.md");
    std::fs::write(&path, report.markdown()).unwrap_or_else(|e| fail(&e.to_string()));
    println!("{}", report.headline());
    println!("wrote {} and {}", path.display(), chart.display());
}

struct Report<'a> {
    args: &'a RunArgs,
    samples: BTreeMap<Key, Vec<Sample>>,
    bare: BTreeMap<String, Vec<f64>>,
    calls: BTreeMap<Key, f64>,
    floor: BTreeMap<String, f64>,
    increments: Vec<(&'static str, &'static str, bool, Increments)>,
    seconds: f64,
}

impl Report<'_> {
    fn get(&self, store: &str, lib: &str, endpoint: &str) -> Option<Sample> {
        let runs = self
            .samples
            .get(&(store.to_owned(), lib.to_owned(), endpoint.to_owned()))?;
        Some(Sample {
            rps: median(runs.iter().map(|s| s.rps).collect()),
            p50_ms: median(runs.iter().map(|s| s.p50_ms).collect()),
            p99_ms: median(runs.iter().map(|s| s.p99_ms).collect()),
            errors: runs.iter().map(|s| s.errors).sum(),
        })
    }

    fn bare(&self, store: &str) -> f64 {
        median(self.bare.get(store).cloned().unwrap_or_default())
    }

    fn stores(&self) -> Vec<String> {
        let mut stores: Vec<String> = Vec::new();
        for (s, _, _) in self.samples.keys() {
            if !stores.contains(s) {
                stores.push(s.clone());
            }
        }
        let order = ["memory", "redis", "mysql", "file", "cookie"];
        stores.sort_by_key(|s| order.iter().position(|o| o == s));
        stores
    }

    /// tether / tower-sessions per (store, endpoint), where both ran.
    fn ratios(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for store in self.stores() {
            for (endpoint, _, _) in ENDPOINTS {
                if let (Some(t), Some(p)) = (
                    self.get(&store, "tether", endpoint),
                    self.get(&store, "tower-sessions", endpoint),
                ) {
                    out.push((format!("{store} {endpoint}"), t.rps / p.rps));
                }
            }
        }
        out
    }

    fn headline(&self) -> String {
        let mut out = String::from(
            "| store | endpoint | tether req/s | tower-sessions req/s | tether ÷ tower-sessions | tether ÷ bare axum |\n|---|---|---|---|---|---|\n",
        );
        for store in self.stores() {
            let bare = self.bare(&store);
            for (endpoint, _, _) in ENDPOINTS {
                let Some(t) = self.get(&store, "tether", endpoint) else {
                    continue;
                };
                let peer = self.get(&store, "tower-sessions", endpoint);
                let _ = writeln!(
                    out,
                    "| {store} | {endpoint} | {:.0} | {} | {} | {:.2}× |",
                    t.rps,
                    peer.map_or("–".into(), |p| format!("{:.0}", p.rps)),
                    peer.map_or("–".into(), |p| format!("**{:.2}×**", t.rps / p.rps)),
                    t.rps / bare
                );
            }
        }
        out
    }

    fn markdown(&self) -> String {
        let a = self.args;
        let mut out = String::from("# Benchmarks: tether and tower-sessions\n\n");
        let _ = writeln!(
            out,
            "Produced by `scripts/bench` (release build) on {}. Each server runs on one \
             tokio worker thread pinned to core 0 (`taskset -c 0`); `wrk -t1 -c{} -d{}s` runs \
             pinned to core 1. Every store's group of runs sits between two bare-axum runs \
             on the same machine, and the libraries alternate order round by round. \
             Figures are the median of {} rounds; the whole run took {:.0} s.\n",
            tether_tools::machine::describe_machine(),
            a.connections,
            a.seconds,
            a.rounds,
            self.seconds
        );
        out.push_str(
            "Versions: tower-sessions 0.15 with its memory store; tower-sessions 0.14 with \
             tower-sessions-redis-store 0.16 (fred) and tower-sessions-sqlx-store 0.15 (sqlx \
             0.8), the newest set that builds together. Redis and MariaDB are the Debian \
             packages, on loopback, started by `scripts/services.sh`.\n\n\
             Endpoints: `untouched` (the handler ignores the session), `read` (reads a \
             counter), `write` (increments it), `login` (rotates the id and binds a user, \
             from no session). Store round trips per request are counted over 100 requests \
             at the server: for Redis, the commands clients send as `MONITOR` lists them \
             (commands a Lua script runs inside Redis are not round trips and are not \
             counted); for MariaDB, `Com_stmt_execute`. Each server is first seeded with 1,000 sessions, and wrk's \
             requests to `untouched`, `read` and `write` cycle through their cookies: many \
             users, as in production, rather than 32 connections contending for one row or \
             key (the increments test below is the contention case).\n\n\
             ![tether ÷ tower-sessions](docs/bench/ratios.svg)\n\n## Summary\n\n",
        );
        out.push_str(&self.headline());
        for store in self.stores() {
            let bare = self.bare(&store);
            let _ = writeln!(out, "\n## {store}\n\nbare axum: {bare:.0} req/s\n");
            out.push_str("| endpoint | library | req/s | × bare | p50 ms | p99 ms | failed | store round trips / request |\n|---|---|---|---|---|---|---|---|\n");
            for (endpoint, _, _) in ENDPOINTS {
                for lib in ["tether", "tower-sessions"] {
                    let Some(s) = self.get(&store, lib, endpoint) else {
                        continue;
                    };
                    let calls = self
                        .calls
                        .get(&(store.clone(), lib.to_owned(), endpoint.to_owned()))
                        .map_or("–".into(), |c| format!("{c:.2}"));
                    let _ = writeln!(
                        out,
                        "| {endpoint} | {lib} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {calls} |",
                        s.rps,
                        s.rps / bare,
                        s.p50_ms,
                        s.p99_ms,
                        s.errors
                    );
                }
            }
            if store == "redis" {
                let _ = writeln!(
                    out,
                    "\nRaw `redis-benchmark -c {}` on the same server, the floor: {}.",
                    a.connections,
                    self.floor
                        .iter()
                        .map(|(k, v)| format!("{k} {v:.0} ops/s"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if let (Some(t), Some(get)) =
                    (self.get("redis", "tether", "read"), self.floor.get("GET"))
                {
                    let _ = writeln!(out, "tether's Redis read is {:.2}× raw GET.", t.rps / get);
                }
            }
        }
        out.push_str(
            "\n## Lost increments\n\n200 concurrent `POST /incr` on one session's counter \
             (curl, 200 parallel connections); lost = increments answered 2xx but missing \
             from the final count. tether runs in lock mode (`with_lock`), tower-sessions has \
             no lock mode.\n\n| store | library | lock mode | failed | lost of 200 |\n|---|---|---|---|---|\n",
        );
        for (store, lib, lock, result) in &self.increments {
            let lost = result
                .lost
                .map_or_else(|| "the final read failed".to_owned(), |l| l.to_string());
            let _ = writeln!(
                out,
                "| {store} | {lib} | {} | {} | {lost} |",
                if *lock { "yes" } else { "–" },
                result.failed
            );
        }
        out
    }

    fn chart(&self, path: &Path) {
        let bars = self.ratios();
        if bars.is_empty() {
            return;
        }
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let drawn = (|| -> Result<(), Box<dyn std::error::Error>> {
            let k = u32::try_from(bars.len())?;
            let root = SVGBackend::new(path, (900, 60 + 34 * k)).into_drawing_area();
            root.fill(&WHITE)?;
            let panel = Bars {
                title: "tether ÷ tower-sessions, req/s (1.0 = equal)",
                bars: &bars,
                label: |v| format!("{v:.2}×"),
                colour: |v| {
                    if v >= 1.0 {
                        RGBColor(46, 140, 80)
                    } else {
                        RGBColor(200, 70, 60)
                    }
                },
                reference: Some(1.0),
            };
            tether_tools::chart::draw(&root, &panel)?;
            root.present()?;
            Ok(())
        })();
        if let Err(e) = drawn {
            eprintln!("tether-bench: could not draw {}: {e}", path.display());
        }
    }
}

fn main() {
    let Cli::Run(args) = Cli::parse();
    run(&args);
}
