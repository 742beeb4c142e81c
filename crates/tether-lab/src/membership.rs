//! `tether-lab membership`: replicated instances joining and leaving at run time.
//!
//! Three `login` instances start, each knowing one seed. Users log in; then the
//! cluster grows 3 → 4, goes back to 3, grows 3 → 8 (each new instance knowing only
//! one seed, the others told nothing), shrinks 8 → 5 (stopped) → 3 (two killed), and
//! is replaced instance by
//! instance onto new ports (a rolling deploy). After each step: how long the new
//! instances took to be healthy (caught up and listed by every member), how long
//! until every member's list was exactly the running instances, whether any user
//! was logged out (each asks an instance of the new set who it is), and how long a
//! value written on an old instance took to be read on a new one. At 3 and 8
//! instances, a steady write rate gives the replication lag and the bytes each
//! instance sends per second, and the instances are filled with anonymous sessions
//! for their memory; the rolling restart then runs with those sessions held (each
//! replacement takes a full snapshot from every member).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Error;
use crate::approach::Approach;
use crate::cluster::{Cluster, Programs, REPLICATION_SECRET};
use crate::consistency::{Probe, agree, cookies};
use crate::run::Services;

mod changes;
mod fill;
mod report;
pub(crate) use report::{checks, write};

/// How long an instance may take to join before the run fails.
const JOIN_WITHIN: Duration = Duration::from_mins(3);

/// How long membership may take to converge before the run fails.
const CONVERGE_WITHIN: Duration = Duration::from_secs(30);

/// The documented bounds, with the default probes: an instance that stops on
/// purpose is dropped at once (within two probe periods), one that dies within
/// `changes::down_within` (about 7 s), and a joining one is healthy within its join timeout
/// (2 min).
const LEFT_WITHIN: Duration = Duration::from_secs(2);
const JOINED_WITHIN: Duration = Duration::from_mins(2);

/// One change of the cluster, measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Step {
    pub(crate) what: String,
    pub(crate) instances: usize,
    /// From the new instances' start to the last one healthy, ms.
    pub(crate) join_ms: Option<f64>,
    /// From the change to every member listing exactly the running instances, ms.
    pub(crate) converge_ms: f64,
    /// The documented bound on `converge_ms`, ms.
    pub(crate) documented_ms: f64,
    pub(crate) users: usize,
    pub(crate) logged_out: usize,
    /// A value set on an old instance, read on a new one: p50 / p99 ms.
    pub(crate) propagation_p50_ms: Option<f64>,
    pub(crate) propagation_p99_ms: Option<f64>,
}

/// A steady write rate on `instances` instances.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Traffic {
    pub(crate) instances: usize,
    pub(crate) writes_per_s: f64,
    /// Replication bytes each instance sent per second (batch bodies), on average.
    pub(crate) sent_bytes_per_s: f64,
    /// The replication lag over the instances (the highest p50 and p99 any reports).
    pub(crate) lag_p50_ms: i64,
    pub(crate) lag_p99_ms: i64,
}

/// What the instances hold in memory with many sessions.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Memory {
    pub(crate) instances: usize,
    /// Sessions each instance holds.
    pub(crate) sessions: usize,
    /// Resident memory per instance (the `login` debug build), on average, MiB.
    pub(crate) rss_mib: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Membership {
    pub(crate) steps: Vec<Step>,
    pub(crate) traffic: Vec<Traffic>,
    pub(crate) memory: Vec<Memory>,
}

struct Lab {
    http: reqwest::Client,
    cluster: Cluster,
    /// Every user's cookie.
    users: Vec<String>,
}

impl Lab {
    fn urls(&self, indexes: &[usize]) -> Vec<String> {
        indexes
            .iter()
            .map(|&i| self.cluster.instances[i].url())
            .collect()
    }

    fn running(&self) -> Vec<usize> {
        (0..self.cluster.instances.len())
            .filter(|&i| self.cluster.is_running(i))
            .collect()
    }

    async fn stats(&self, url: &str) -> Option<serde_json::Value> {
        let mut request = self.http.get(format!("{url}/_tether/stats"));
        for (name, value) in tether_replicated::sign_stats_request(REPLICATION_SECRET) {
            request = request.header(name, value);
        }
        request.send().await.ok()?.json().await.ok()
    }

    /// Whether every running instance lists exactly the others, as members and as
    /// replication peers.
    async fn is_converged(&self) -> bool {
        let running = self.urls(&self.running());
        for url in &running {
            let Some(stats) = self.stats(url).await else {
                return false;
            };
            let mut others: Vec<String> = running
                .iter()
                .filter(|u| *u != url)
                .map(|u| format!("{u}/_tether"))
                .collect();
            others.sort();
            let list = |key: &str, live_only: bool| {
                let mut urls: Vec<String> = stats[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|m| !live_only || m["state"] != "down")
                    .filter_map(|m| m["url"].as_str().map(str::to_owned))
                    .collect();
                urls.sort();
                urls
            };
            if list("members", true) != others || list("peers", false) != others {
                return false;
            }
        }
        true
    }

    async fn converge(&self, since: Instant) -> Result<f64, Error> {
        while !self.is_converged().await {
            if since.elapsed() > CONVERGE_WITHIN {
                return Err(Error::Setup(format!(
                    "the members did not converge within {CONVERGE_WITHIN:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(since.elapsed().as_secs_f64() * 1000.0)
    }

    /// Users asked who they are, each at one of `urls`: how many are logged out.
    async fn logged_out(&self, urls: &[String]) -> usize {
        let mut out = 0;
        for (n, cookie) in self.users.iter().enumerate() {
            let me = self
                .http
                .get(format!("{}/api/me", urls[n % urls.len()]))
                .header("cookie", cookie)
                .send()
                .await;
            if !me.is_ok_and(|r| r.status() == 200) {
                out += 1;
            }
        }
        out
    }

    /// Values set on `from`, read on `to`: the delays, sorted.
    async fn propagation(&self, from: &[String], to: &[String], round: usize) -> Vec<Duration> {
        let mut delays = Vec::new();
        for (n, cookie) in self.users.iter().enumerate().take(200) {
            let value = format!("\"r{round}u{n}\"");
            let put = self
                .http
                .put(format!("{}/api/data/color", from[n % from.len()]))
                .header("cookie", cookie)
                .header("content-type", "application/json")
                .body(value.clone())
                .send()
                .await;
            if !put.is_ok_and(|r| r.status() == 204) {
                continue;
            }
            if let Ok((_, delay)) =
                agree(&self.http, &to[n % to.len()], cookie, Probe::Value(&value)).await
            {
                delays.push(delay);
            }
        }
        delays.sort_unstable();
        delays
    }

    /// Starts `count` instances and waits until each is healthy (caught up, and
    /// listed by every member): their indexes and how long the last one took.
    async fn add(&mut self, count: usize) -> Result<(Vec<usize>, f64), Error> {
        let started = Instant::now();
        let mut added = Vec::new();
        for _ in 0..count {
            added.push(self.cluster.add()?);
        }
        for &i in &added {
            // A join with many sessions takes a full snapshot from every member.
            self.cluster.wait_healthy_within(i, JOIN_WITHIN).await?;
        }
        Ok((added, started.elapsed().as_secs_f64() * 1000.0))
    }

    async fn step(
        &self,
        what: &str,
        since: Instant,
        (join_ms, documented): (Option<f64>, Duration),
        old: &[usize],
        new: &[usize],
    ) -> Result<Step, Error> {
        let converge_ms = self.converge(since).await?;
        let new_urls = self.urls(new);
        let logged_out = self.logged_out(&new_urls).await;
        let delays = if old.is_empty() {
            Vec::new()
        } else {
            self.propagation(&self.urls(old), &new_urls, new[0]).await
        };
        let pct = |p: usize| {
            (!delays.is_empty())
                .then(|| delays[(delays.len() - 1) * p / 100].as_secs_f64() * 1000.0)
        };
        let step = Step {
            what: what.to_owned(),
            instances: self.running().len(),
            join_ms,
            converge_ms,
            documented_ms: documented.as_secs_f64() * 1000.0,
            users: self.users.len(),
            logged_out,
            propagation_p50_ms: pct(50),
            propagation_p99_ms: pct(99),
        };
        eprintln!(
            "tether-lab: membership {:<34} {} instances  joined in {:>7}  converged in {:>7.0} ms  logged out {} of {}  propagation p99 {}",
            step.what,
            step.instances,
            step.join_ms.map_or("-".into(), |ms| format!("{ms:.0} ms")),
            step.converge_ms,
            step.logged_out,
            step.users,
            step.propagation_p99_ms
                .map_or("-".into(), |ms| format!("{ms:.1} ms")),
        );
        Ok(step)
    }

    /// Writes at a steady rate for `seconds`: the bytes each instance sent meanwhile.
    async fn traffic(&self, seconds: u64, per_s: u32) -> Result<Traffic, Error> {
        let urls = self.urls(&self.running());
        let sent = |stats: &[Option<serde_json::Value>]| -> u64 {
            stats
                .iter()
                .flatten()
                .flat_map(|s| s["peers"].as_array().cloned().unwrap_or_default())
                .filter_map(|p| p["sent_bytes"].as_u64())
                .sum()
        };
        let mut before = Vec::new();
        for url in &urls {
            before.push(self.stats(url).await);
        }
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1) / per_s);
        let mut writes = 0usize;
        while started.elapsed() < Duration::from_secs(seconds) {
            tick.tick().await;
            let cookie = &self.users[writes % self.users.len()];
            let _ = self
                .http
                .put(format!("{}/api/data/n", urls[writes % urls.len()]))
                .header("cookie", cookie)
                .header("content-type", "application/json")
                .body(writes.to_string())
                .send()
                .await;
            writes += 1;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let mut after = Vec::new();
        for url in &urls {
            after.push(self.stats(url).await);
        }
        let lag = |key: &str| {
            after
                .iter()
                .flatten()
                .filter_map(|s| s[key].as_i64())
                .max()
                .unwrap_or(0)
        };
        #[allow(clippy::cast_precision_loss)] // byte and write counts, far below 2^52
        let traffic = Traffic {
            instances: urls.len(),
            writes_per_s: writes as f64 / elapsed,
            sent_bytes_per_s: sent(&after).saturating_sub(sent(&before)) as f64
                / elapsed
                / urls.len() as f64,
            lag_p50_ms: lag("lag_ms_p50"),
            lag_p99_ms: lag("lag_ms_p99"),
        };
        eprintln!(
            "tether-lab: membership traffic at {} instances: {:.0} writes/s, {:.0} B/s sent per instance, lag p50 {} ms p99 {} ms",
            traffic.instances,
            traffic.writes_per_s,
            traffic.sent_bytes_per_s,
            traffic.lag_p50_ms,
            traffic.lag_p99_ms
        );
        Ok(traffic)
    }
}

/// Logs `count` users in, round-robin over `urls`: their cookies.
async fn log_in(
    http: &reqwest::Client,
    urls: &[String],
    count: usize,
) -> Result<Vec<String>, Error> {
    let mut users = Vec::new();
    for n in 0..count {
        let response = http
            .post(format!("{}/api/login", urls[n % urls.len()]))
            .header("content-type", "application/json")
            .body(format!(r#"{{"username":"m{n}","password":"demo"}}"#))
            .send()
            .await
            .map_err(|e| Error::Setup(format!("logging in: {e}")))?;
        if response.status() != 200 {
            return Err(Error::Setup(format!("logging in: {}", response.status())));
        }
        users.push(cookies(&response));
    }
    Ok(users)
}

/// Runs the whole sequence with `users` users, the instances holding `sessions`
/// sessions in all.
pub(crate) async fn measure(
    programs: &Programs,
    services: &Services,
    users: usize,
    sessions: usize,
    work: &Path,
) -> Result<Membership, Error> {
    let dir = work.join("membership");
    std::fs::create_dir_all(&dir)?;
    let store = crate::run::store_setup(services, Approach::Replicated, &dir).await?;
    // Room for every session, the anonymous ones included (half of the cap).
    let cap = (
        "TETHER_MAX_SESSIONS".to_owned(),
        (sessions * 5 / 2).to_string(),
    );
    let cluster =
        Cluster::start_with(programs.clone(), Approach::Replicated, store, 3, vec![cap]).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Error::Setup(e.to_string()))?;
    let mut lab = Lab {
        http,
        cluster,
        users: Vec::new(),
    };
    let first = lab.running();
    lab.converge(Instant::now()).await?;
    lab.users = log_in(&lab.http, &lab.urls(&first), users).await?;
    let mut steps = Vec::new();
    let mut traffic = vec![lab.traffic(5, 100).await?];

    let since = Instant::now();
    let (four, join) = lab.add(1).await?;
    steps.push(
        lab.step(
            "scale-out 3 → 4",
            since,
            (Some(join), JOINED_WITHIN),
            &first,
            &four,
        )
        .await?,
    );
    let since = Instant::now();
    lab.cluster.stop(four[0]).await;
    steps.push(
        lab.step(
            "scale-in 4 → 3 (1 stopped)",
            since,
            (None, LEFT_WITHIN),
            &[],
            &first,
        )
        .await?,
    );
    let since = Instant::now();
    let (more, join) = lab.add(5).await?;
    steps.push(
        lab.step(
            "scale-out 3 → 8",
            since,
            (Some(join), JOINED_WITHIN),
            &first,
            &more,
        )
        .await?,
    );
    traffic.push(lab.traffic(5, 100).await?);
    let mut memory = vec![lab.fill(sessions).await?];

    steps.extend(lab.scale_in(&more[2..], &first[..2]).await?);
    let three = lab.running();
    memory.insert(0, lab.fill(sessions).await?);

    steps.push(lab.rolling(&three).await?);
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Membership {
        steps,
        traffic,
        memory,
    })
}
