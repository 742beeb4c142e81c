//! What the store saw: calls per request (Redis MONITOR, MariaDB and Postgres counters),
//! lost increments, the raw Redis floor.

use std::collections::BTreeMap;
use std::process::Command;

use tether_testkit::services::{RedisMonitor, program};

use crate::{Server, curl, output};

/// Statements the SQL server has executed, as it counts them: `Com_stmt_execute`, the
/// prepared statements run (sqlx prepares every statement that has parameters, in both
/// libraries; `Questions` would also count the `SET` of every connection the pool
/// opens).
pub(crate) fn store_calls(store: &str, url: &str) -> Option<u64> {
    match store.split('-').next()? {
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
        "postgres" => {
            psql(url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;
            // Every statement on the sessions' tables; not this query, nor the `SET`s
            // a new pooled connection sends.
            let text = psql(
                url,
                "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements \
                 WHERE query NOT LIKE '%pg_stat_statements%' AND query NOT ILIKE 'SET %'",
            )?;
            text.trim().parse().ok()
        }
        _ => None,
    }
}

/// Runs `sql` with `psql` on the database of `url` (`postgres://user:password@host:port/db`,
/// any query string ignored); its output, or `None` for a URL of another shape.
fn psql(url: &str, sql: &str) -> Option<String> {
    let rest = url.strip_prefix("postgres://")?;
    let (creds, host) = rest.split_once('@')?;
    let (user, password) = creds.split_once(':')?;
    let (host, db) = host.split_once('/')?;
    let db = db.split('?').next()?;
    let (host, port) = host.split_once(':')?;
    Some(output(
        Command::new(postgres_program("psql"))
            .env("PGPASSWORD", password)
            .args(["-XtA", "-h", host, "-p", port, "-U", user, "-d", db, "-c"])
            .arg(sql),
    ))
}

/// `url` on a fresh schema `schema` of its database (dropped and made again): the
/// near-cache rows run there, so that the trigger their near cache installs does not
/// make the plain rows' writes announce themselves too.
pub(crate) fn postgres_schema(url: &str, schema: &str) -> String {
    psql(
        url,
        &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
    )
    .unwrap_or_else(|| {
        crate::fail(&format!(
            "not a postgres://user:password@host:port/db URL: {url}"
        ))
    });
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// A PostgreSQL client program: from `TETHER_POSTGRES_BIN` (set by `scripts/bench`), or
/// `PATH`.
fn postgres_program(name: &str) -> String {
    std::env::var("TETHER_POSTGRES_BIN")
        .map_or_else(|_| name.to_owned(), |dir| format!("{dir}/{name}"))
}

/// Store round trips per request of `path`, over 100 requests: Redis commands sent
/// by clients ([`RedisMonitor`]), or SQL statements executed (calibrated against the
/// counting itself).
#[allow(clippy::cast_precision_loss)]
pub(crate) fn calls_per_request(
    server: &Server,
    store: &str,
    url: &str,
    path: &str,
    cookie: Option<&str>,
    post: bool,
) -> Option<f64> {
    let monitor = if store.starts_with("redis") {
        Some(RedisMonitor::start(url).ok()?)
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
        Some(monitor) => monitor.commands("").ok()?.len() as u64,
        None => store_calls(store, url)? - b - overhead,
    };
    Some(calls as f64 / 100.0)
}

/// 200 concurrent increments of one session's counter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Increments {
    /// Requests that did not answer 2xx.
    pub(crate) failed: u64,
    /// Successful increments missing from the final count; `None` when the final
    /// read failed.
    pub(crate) lost: Option<u64>,
}

pub(crate) fn increments(server: &Server) -> Increments {
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

pub(crate) fn redis_floor(url: &str, connections: u32) -> BTreeMap<String, f64> {
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
