//! `tether-lab consistency`: what another instance answers right after a write.
//!
//! Each user logs in through instance i1 and reads its data through i2 (which a
//! near cache there then holds), sets a value through i1 and, as soon as that
//! answered, reads its data through i2; then logs out through i1 and, as soon as
//! that answered, asks i2 who it is with the cookie it had. A read on i2 that misses
//! the value is a stale read; a `200` on i2 after the logout is a stale accept (the
//! logout is not honoured there yet). Then i2 is asked again until it agrees, and the
//! time from the write's answer to i2's first agreeing answer is recorded: one HTTP
//! round trip when i2 agreed at once, more while an invalidation (or, replicated, a
//! replication message) was still on its way.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Error;
use crate::approach::Approach;
use crate::cluster::{Cluster, Programs};
use crate::report::Check;
use crate::run::Services;

/// How long i2 may take to agree before the user counts as failed.
const AGREE_WITHIN: Duration = Duration::from_secs(5);

/// What one approach measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Consistency {
    pub(crate) approach: Approach,
    pub(crate) users: usize,
    /// Users whose steps could not all be done (a request failed, i2 never agreed).
    pub(crate) failed: usize,
    pub(crate) stale_after_update: usize,
    pub(crate) stale_after_logout: usize,
    /// From the update's answer on i1 to i2's first answer with the value, ms.
    pub(crate) update_p50_ms: f64,
    pub(crate) update_p99_ms: f64,
    /// From the logout's answer on i1 to i2's first `401`, ms.
    pub(crate) logout_p50_ms: f64,
    pub(crate) logout_p99_ms: f64,
    pub(crate) seconds: f64,
}

/// The approaches it measures: every one whose users go round-robin over instances
/// that share the sessions (not the client-side ones: a logout there only drops the
/// cookie, and a copy of it stays valid until it expires, by design).
pub(crate) fn approaches() -> Vec<Approach> {
    Approach::ALL
        .into_iter()
        .filter(|a| !a.sticky() && !a.store().is_client_side())
        .collect()
}

/// One user's outcome: stale update, stale logout, the two delays.
struct Steps {
    stale_update: bool,
    stale_logout: bool,
    update: Duration,
    logout: Duration,
}

/// The `name=value` pairs of every `Set-Cookie`, as a `Cookie` header.
pub(crate) fn cookies(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn user(http: &reqwest::Client, i1: &str, i2: &str, n: usize) -> Result<Steps, String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    let login = http
        .post(format!("{i1}/api/login"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"username":"c{n}","password":"demo"}}"#))
        .send()
        .await
        .map_err(|e| fail("login", &e))?;
    if login.status() != 200 {
        return Err(format!("login: {}", login.status()));
    }
    let cookie = cookies(&login);
    // i2 reads the session first, so a near cache there holds it when it changes.
    agrees(http, i2, &cookie, Probe::Value("null")).await?;
    let value = format!("\"v{n}\"");
    let put = http
        .put(format!("{i1}/api/data/color"))
        .header("cookie", &cookie)
        .header("content-type", "application/json")
        .body(value.clone())
        .send()
        .await
        .map_err(|e| fail("update", &e))?;
    if put.status() != 204 {
        return Err(format!("update: {}", put.status()));
    }
    let (stale_update, update) = agree(http, i2, &cookie, Probe::Value(&value)).await?;
    let logout = http
        .post(format!("{i1}/api/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .map_err(|e| fail("logout", &e))?;
    if !logout.status().is_success() {
        return Err(format!("logout: {}", logout.status()));
    }
    let (stale_logout, logout) = agree(http, i2, &cookie, Probe::LoggedOut).await?;
    Ok(Steps {
        stale_update,
        stale_logout,
        update,
        logout,
    })
}

/// What i2 is asked.
#[derive(Clone, Copy)]
pub(crate) enum Probe<'a> {
    /// Its data holds this value (as JSON).
    Value(&'a str),
    /// It refuses the cookie (`401`).
    LoggedOut,
}

/// Whether i2 agrees now.
async fn agrees(
    http: &reqwest::Client,
    i2: &str,
    cookie: &str,
    probe: Probe<'_>,
) -> Result<bool, String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    match probe {
        Probe::Value(value) => {
            let data: serde_json::Value = http
                .get(format!("{i2}/api/data"))
                .header("cookie", cookie)
                .send()
                .await
                .map_err(|e| fail("read", &e))?
                .json()
                .await
                .map_err(|e| fail("read", &e))?;
            let color = data
                .get("color")
                .map_or_else(|| "null".to_owned(), ToString::to_string);
            Ok(color == value)
        }
        Probe::LoggedOut => {
            let me = http
                .get(format!("{i2}/api/me"))
                .header("cookie", cookie)
                .send()
                .await
                .map_err(|e| fail("who am I", &e))?;
            Ok(me.status() == 401)
        }
    }
}

/// Asks i2 until it agrees: whether the first answer did not, and how long until
/// one did.
pub(crate) async fn agree(
    http: &reqwest::Client,
    i2: &str,
    cookie: &str,
    probe: Probe<'_>,
) -> Result<(bool, Duration), String> {
    let started = Instant::now();
    if agrees(http, i2, cookie, probe).await? {
        return Ok((false, started.elapsed()));
    }
    while started.elapsed() < AGREE_WITHIN {
        if agrees(http, i2, cookie, probe).await? {
            return Ok((true, started.elapsed()));
        }
    }
    Err(format!("i2 did not agree within {AGREE_WITHIN:?}"))
}

fn percentile_ms(sorted: &[Duration], p: usize) -> f64 {
    sorted
        .get((sorted.len().max(1) - 1) * p / 100)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Measures `approach` with `users` users, `concurrency` at a time, on two instances.
pub(crate) async fn measure(
    programs: &Programs,
    services: &Services,
    approach: Approach,
    users: usize,
    concurrency: usize,
    work: &Path,
) -> Result<Consistency, Error> {
    let started = Instant::now();
    let dir = work.join(format!("consistency-{}", approach.store()));
    std::fs::create_dir_all(&dir)?;
    let store = crate::run::store_setup(services, approach, &dir).await?;
    let cluster = Cluster::start(programs.clone(), approach, store, 2).await?;
    let (i1, i2) = (cluster.instances[0].url(), cluster.instances[1].url());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Error::Setup(e.to_string()))?;
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, i1, i2, next) = (http.clone(), i1.clone(), i2.clone(), next.clone());
            tokio::spawn(async move {
                let mut results = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= users {
                        return results;
                    }
                    results.push(user(&http, &i1, &i2, n).await);
                }
            })
        })
        .collect();
    let mut steps = Vec::new();
    let mut failed = 0;
    for worker in workers {
        let results = worker
            .await
            .map_err(|e| Error::Setup(format!("a consistency worker failed: {e}")))?;
        for result in results {
            match result {
                Ok(s) => steps.push(s),
                Err(e) => {
                    failed += 1;
                    if failed <= 3 {
                        eprintln!("tether-lab: {}: a user failed: {e}", approach.name());
                    }
                }
            }
        }
    }
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
    let mut update: Vec<Duration> = steps.iter().map(|s| s.update).collect();
    let mut logout: Vec<Duration> = steps.iter().map(|s| s.logout).collect();
    update.sort_unstable();
    logout.sort_unstable();
    Ok(Consistency {
        approach,
        users,
        failed,
        stale_after_update: steps.iter().filter(|s| s.stale_update).count(),
        stale_after_logout: steps.iter().filter(|s| s.stale_logout).count(),
        update_p50_ms: percentile_ms(&update, 50),
        update_p99_ms: percentile_ms(&update, 99),
        logout_p50_ms: percentile_ms(&logout, 50),
        logout_p99_ms: percentile_ms(&logout, 99),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What the measurements must show: no user failed anywhere, and a central store,
/// uncached or with a fenced near cache, or a pushed one on Redis (which writes an
/// invalidation to every instance before it answers the write, and whose pushed reads
/// check the channel is quiet), shows no stale read or accept. The replicated store
/// propagates asynchronously and a pushed near cache on PostgreSQL serves what it
/// holds at once: reported, not checked.
pub(crate) fn checks(results: &[Consistency]) -> Vec<Check> {
    let mut checks = Vec::new();
    for r in results {
        let name = r.approach.name();
        checks.push(Check {
            what: format!("{name}: every user's steps done"),
            passed: r.failed == 0,
            measured: format!("{} of {} failed", r.failed, r.users),
        });
        let asynchronous = r.approach.store() == tether::StoreKind::Replicated
            || (r.approach.near_cache_setting() == Some("pushed")
                && r.approach.store() == tether::StoreKind::Postgres);
        if !asynchronous {
            checks.push(Check {
                what: format!("{name}: another instance honours a logout at once"),
                passed: r.stale_after_logout == 0,
                measured: format!("{} stale accepts of {}", r.stale_after_logout, r.users),
            });
            checks.push(Check {
                what: format!("{name}: another instance reads an update at once"),
                passed: r.stale_after_update == 0,
                measured: format!("{} stale reads of {}", r.stale_after_update, r.users),
            });
        }
    }
    checks
}

/// `consistency.md` and `consistency.json` in `dir`.
pub(crate) fn write(
    dir: &Path,
    machine: &str,
    command: &str,
    results: &[Consistency],
    delays: &[crate::delay::Delay],
    checks: &[Check],
) -> Result<(), Error> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::json!({
        "machine": machine,
        "command": command,
        "results": results,
        "invalidation_delay": delays,
        "checks": checks,
    });
    std::fs::write(
        dir.join("consistency.json"),
        serde_json::to_vec_pretty(&json)?,
    )?;
    let mut out = String::new();
    let _ = writeln!(out, "# What another instance answers right after a write\n");
    let _ = writeln!(out, "Generated by `{command}` on {machine}.\n");
    let _ = writeln!(
        out,
        "Each user logs in through instance i1 and reads its data through i2 (so a near \
         cache there holds it), sets a value through i1 and, as soon as that answered, \
         reads it through i2; then logs out through i1 and, as soon as \
         that answered, asks i2 who it is with the cookie it had. **Stale** counts the \
         users for whom i2's first answer was the old one. The times run from i1's \
         answer to i2's first agreeing answer: one HTTP round trip on loopback when i2 \
         agreed at once.\n"
    );
    let _ = writeln!(
        out,
        "| approach | users | stale after update | update → i2, p50 / p99 ms | stale after logout | logout → i2, p50 / p99 ms | failed |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for r in results {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} / {:.2} | {} | {:.2} / {:.2} | {} |",
            r.approach.name(),
            r.users,
            r.stale_after_update,
            r.update_p50_ms,
            r.update_p99_ms,
            r.stale_after_logout,
            r.logout_p50_ms,
            r.logout_p99_ms,
            r.failed
        );
    }
    if !delays.is_empty() {
        let _ = writeln!(
            out,
            "\n## Invalidation delay\n\nIn process, without HTTP: two stores with a pushed \
             near cache on the same server, each with its own connections and channel; one \
             writes a session the other holds, and the other's cache is watched until the \
             copy is gone (no echo wait). **Before the answer** counts the writes whose \
             invalidation had reached the other store by the time the write answered.\n\n\
             | server | writes | p50 µs | p99 µs | max µs | before the answer |\n|---|---:|---:|---:|---:|---:|"
        );
        for d in delays {
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.0} | {:.0} | {} |",
                d.store, d.writes, d.p50_us, d.p99_us, d.max_us, d.before_the_answer
            );
        }
    }
    let _ = writeln!(out, "\n## Checks\n");
    for c in checks {
        let _ = writeln!(
            out,
            "- {} {} ({})",
            if c.passed { "✅" } else { "❌" },
            c.what,
            c.measured
        );
    }
    std::fs::write(dir.join("consistency.md"), out)?;
    Ok(())
}
