//! One run: an approach through a scenario, and what it measured.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tether_testkit::services::{MariaDb, Postgres, RedisServer};
use tokio::sync::Mutex;

use crate::Error;
use crate::approach::{Approach, Scenario};
use crate::cluster::{self, Cluster, Programs, StoreSetup};
use crate::users::{self, Phase, Plan, Tally};

/// A store server the lab points instances at and restarts.
pub(crate) trait StoreServer: Send + std::fmt::Debug {
    fn url(&self) -> String;
    fn restart(&mut self) -> std::io::Result<()>;
}

impl StoreServer for RedisServer {
    fn url(&self) -> String {
        RedisServer::url(self)
    }
    fn restart(&mut self) -> std::io::Result<()> {
        RedisServer::restart(self)
    }
}

impl StoreServer for MariaDb {
    fn url(&self) -> String {
        MariaDb::url(self)
    }
    fn restart(&mut self) -> std::io::Result<()> {
        MariaDb::restart(self)
    }
}

impl StoreServer for Postgres {
    fn url(&self) -> String {
        Postgres::url(self)
    }
    fn restart(&mut self) -> std::io::Result<()> {
        Postgres::restart(self)
    }
}

/// A started store server, shared by the runs.
pub(crate) type SharedServer = Arc<Mutex<dyn StoreServer>>;

/// The store servers the lab started, by the approach that uses each.
#[derive(Debug, Default)]
pub(crate) struct Services {
    pub(crate) servers: Vec<(Approach, SharedServer)>,
}

impl Services {
    /// The server `approach` keeps its sessions in.
    pub(crate) fn server(&self, approach: Approach) -> Result<SharedServer, Error> {
        let wanted = approach.server_approach();
        self.servers
            .iter()
            .find(|(a, _)| Some(*a) == wanted)
            .map(|(_, server)| server.clone())
            .ok_or_else(|| Error::Setup(format!("no store server for {}", approach.name())))
    }
}

/// Timing and size of every run.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Settings {
    pub(crate) instances: usize,
    pub(crate) users: usize,
    #[serde(serialize_with = "millis")]
    pub(crate) think: Duration,
    #[serde(serialize_with = "millis")]
    pub(crate) ramp: Duration,
    /// Browsing after the ramp and before the event.
    #[serde(serialize_with = "millis")]
    pub(crate) before: Duration,
    /// Browsing after the event.
    #[serde(serialize_with = "millis")]
    pub(crate) after: Duration,
    /// How long a killed instance stays down.
    #[serde(serialize_with = "millis")]
    pub(crate) down: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Outcome {
    pub(crate) approach: Approach,
    pub(crate) scenario: Scenario,
    pub(crate) users: usize,
    pub(crate) requests: u64,
    pub(crate) failed: u64,
    /// Users who found themselves logged out at least once.
    pub(crate) relogin_users: usize,
    pub(crate) relogin_share: f64,
    /// Logouts noticed, counting a user once per time.
    pub(crate) relogins: u64,
    /// Share of users whose instance was the one killed (kill only).
    pub(crate) on_killed_share: Option<f64>,
    /// Share of users answered by another instance after the event than before it
    /// (sticky strategies only).
    pub(crate) moved_share: Option<f64>,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// Mean bytes of the `Cookie` header per request.
    pub(crate) cookie_bytes_per_request: f64,
    /// Mean bytes of `Set-Cookie` headers per answer.
    pub(crate) set_cookie_bytes_per_response: f64,
    /// Bytes the instances sent each other, per request (replicated only).
    pub(crate) replication_bytes_per_request: Option<f64>,
    /// Mean resident memory of an instance at the end, MiB.
    pub(crate) rss_mib: f64,
    /// Mean growth of an instance's resident memory over the run, per 1,000 users, MiB.
    pub(crate) rss_growth_mib_per_1000: f64,
    /// Busiest instance's answers over the mean (1.0 is perfectly even).
    pub(crate) spread: f64,
    pub(crate) served: std::collections::BTreeMap<String, u64>,
    pub(crate) seconds: f64,
}

fn percentile(sorted: &[u32], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    f64::from(sorted[(sorted.len() - 1) * p / 100]) / 1000.0
}

#[allow(clippy::cast_precision_loss)]
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// A fresh key file for the client-side store of `approach` (cookie or JWT), in `dir`.
fn key_file(dir: &std::path::Path, approach: Approach) -> Result<PathBuf, Error> {
    let key = match approach {
        Approach::Jwt => tether_jwt::JwtKeys::generate_ed25519("lab").map_err(|e| e.to_string()),
        _ => tether_cookie::KeyRing::generate_key().map_err(|e| e.to_string()),
    }
    .map_err(|e| Error::Setup(format!("no {} key: {e}", approach.store())))?;
    let path = dir.join(format!("{}.keys", approach.store()));
    tether_core::private_file::create(&path, format!("{key}\n").as_bytes())
        .map_err(|e| Error::Setup(e.to_string()))?;
    Ok(path)
}

/// How the instances of `approach` reach their store, its files in `dir`.
pub(crate) async fn store_setup(
    services: &Services,
    approach: Approach,
    dir: &std::path::Path,
) -> Result<StoreSetup, Error> {
    let url = match approach {
        Approach::File => Some(dir.join("sessions").display().to_string()),
        Approach::Sqlite => Some(format!("sqlite://{}", dir.join("sessions.db").display())),
        a if a.has_store_server() => Some(a.store_url(services.server(a)?.lock().await.url())),
        _ => None,
    };
    Ok(StoreSetup {
        url,
        key_file: key_file(dir, approach)?,
    })
}

/// One simulated user's path through a run.
struct Journey {
    /// It found itself logged out at least once.
    logged_out: bool,
    /// The instance of its last answer before the event.
    home: Option<String>,
    /// The instance of its first answer after the event.
    first_after: Option<String>,
    /// It had logged in before the event.
    ready: bool,
}

/// Runs `approach` through `scenario`.
#[allow(clippy::too_many_lines, clippy::cast_precision_loss)]
pub(crate) async fn run(
    programs: &Programs,
    services: &Services,
    approach: Approach,
    scenario: Scenario,
    settings: Settings,
    work: &std::path::Path,
) -> Result<Outcome, Error> {
    let started = Instant::now();
    let dir = work.join(format!(
        "{}-{}",
        approach.store(),
        fastrand::u64(..) % 1_000_000
    ));
    std::fs::create_dir_all(&dir)?;
    let store = store_setup(services, approach, &dir).await?;
    let n = settings.instances;
    let mut cluster = Cluster::start(programs.clone(), approach, store, n).await?;
    if scenario == Scenario::ScaleOut {
        // The new instance warms up (and, replicated, catches up) before it joins.
        cluster.launch(n)?;
        cluster.wait_healthy(n).await?;
    }
    let rss_base: Vec<u64> = cluster.instances[..n]
        .iter()
        .map(|i| i.rss_bytes().unwrap_or(0))
        .collect();

    let plan = Plan {
        users: settings.users,
        think: settings.think,
        ramp: settings.ramp,
        payload: if scenario == Scenario::LargeSession {
            2048
        } else {
            64
        },
    };
    let phase = Arc::new(Phase::default());
    let handles = users::start(plan, &cluster.balancer_url(), &phase);
    tokio::time::sleep(settings.ramp + settings.before).await;

    phase.set(Phase::DURING);
    let mut killed = None;
    match scenario {
        Scenario::Steady | Scenario::LargeSession => {}
        Scenario::Kill => {
            cluster.kill(0).await;
            killed = Some(cluster.instances[0].name.clone());
            tokio::time::sleep(settings.down).await;
            cluster.launch(0)?;
            cluster.wait_healthy(0).await?;
        }
        Scenario::ScaleOut => cluster.set_pool(n + 1).await?,
        Scenario::StoreRestart => restart_store(services, approach).await?,
        Scenario::Rolling => {
            for i in 0..n {
                cluster.stop(i).await;
                cluster.launch(i)?;
                cluster.wait_healthy(i).await?;
                // Two of the balancer's health checks: it has seen the instance back.
                tokio::time::sleep(2 * cluster::HEALTH_CHECK_EVERY).await;
            }
        }
    }
    phase.set(Phase::AFTER);
    tokio::time::sleep(settings.after).await;
    phase.set(Phase::DONE);

    let mut total = Tally::default();
    let mut journeys = Vec::new();
    for handle in handles {
        let mut tally = handle
            .await
            .map_err(|e| Error::Setup(format!("a simulated user failed: {e}")))?;
        journeys.push(Journey {
            logged_out: tally.relogins > 0,
            home: tally.home.take(),
            first_after: tally.first_after.take(),
            ready: tally.ready_before_event,
        });
        total.merge(tally);
    }
    let running: Vec<_> = cluster.running().collect();
    let rss_end: Vec<u64> = running.iter().map(|i| i.rss_bytes().unwrap_or(0)).collect();
    let replication = cluster.replication_bytes().await;

    let users = journeys.len();
    let ready: Vec<_> = journeys.iter().filter(|j| j.ready).collect();
    let relogin_users = journeys.iter().filter(|j| j.logged_out).count();
    let on_killed_share = killed.map(|name| {
        ratio(
            ready
                .iter()
                .filter(|j| j.home.as_deref() == Some(&name))
                .count() as u64,
            ready.len() as u64,
        )
    });
    let moved_share = (approach.sticky() && scenario == Scenario::ScaleOut).then(|| {
        let seen: Vec<_> = ready
            .iter()
            .filter(|j| j.home.is_some() && j.first_after.is_some())
            .collect();
        ratio(
            seen.iter().filter(|j| j.home != j.first_after).count() as u64,
            seen.len() as u64,
        )
    });
    total.latencies_us.sort_unstable();
    let mib = |b: f64| b / (1024.0 * 1024.0);
    let growth: f64 = rss_end
        .iter()
        .zip(&rss_base)
        .map(|(end, base)| end.saturating_sub(*base) as f64)
        .sum::<f64>()
        / n as f64;
    let counts: Vec<u64> = total.served.values().copied().collect();
    let max = counts.iter().copied().max().unwrap_or(0);
    let mean = counts.iter().sum::<u64>() as f64 / counts.len().max(1) as f64;
    let answered = total.latencies_us.len() as u64;
    let outcome = Outcome {
        approach,
        scenario,
        users,
        requests: total.requests,
        failed: total.failed,
        relogin_users,
        relogin_share: ratio(relogin_users as u64, users as u64),
        relogins: total.relogins,
        on_killed_share,
        moved_share,
        p50_ms: percentile(&total.latencies_us, 50),
        p99_ms: percentile(&total.latencies_us, 99),
        cookie_bytes_per_request: ratio(total.cookie_bytes, total.requests),
        set_cookie_bytes_per_response: ratio(total.set_cookie_bytes, answered),
        replication_bytes_per_request: replication.map(|b| ratio(b, total.requests)),
        rss_mib: mib(rss_end.iter().sum::<u64>() as f64 / rss_end.len().max(1) as f64),
        rss_growth_mib_per_1000: mib(growth) * 1000.0 / users.max(1) as f64,
        spread: if mean > 0.0 { max as f64 / mean } else { 0.0 },
        served: total.served.into_iter().collect(),
        seconds: started.elapsed().as_secs_f64(),
    };
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(outcome)
}

async fn restart_store(services: &Services, approach: Approach) -> Result<(), Error> {
    let server = services.server(approach)?;
    tokio::task::spawn_blocking(move || server.blocking_lock().restart())
        .await
        .map_err(|e| Error::Setup(format!("restarting the store: {e}")))?
        .map_err(|e| Error::Setup(format!("restarting the store: {e}")))
}
