//! Simulated users: each logs in, stores a profile in its session, then browses with
//! think time, from its own client address, keeping its cookies as a browser does.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, SET_COOKIE};

/// The shape of the load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) users: usize,
    /// Mean pause between two actions of one user (each pause is 0.5–1.5× this).
    pub(crate) think: Duration,
    /// Logins are spread over this long.
    pub(crate) ramp: Duration,
    /// Bytes of the profile each user keeps in its session.
    pub(crate) payload: usize,
}

/// Where a run is, as the users see it.
#[derive(Debug, Default)]
pub(crate) struct Phase(AtomicU8);

impl Phase {
    pub(crate) const BEFORE: u8 = 0;
    pub(crate) const DURING: u8 = 1;
    pub(crate) const AFTER: u8 = 2;
    pub(crate) const DONE: u8 = 3;

    pub(crate) fn set(&self, phase: u8) {
        self.0.store(phase, Ordering::SeqCst);
    }

    fn get(&self) -> u8 {
        self.0.load(Ordering::SeqCst)
    }
}

/// What one user saw.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) requests: u64,
    /// 5xx answers and requests that got no answer.
    pub(crate) failed: u64,
    /// Times the user found itself logged out and logged in again.
    pub(crate) relogins: u64,
    /// Latency of every answered request, in microseconds.
    pub(crate) latencies_us: Vec<u32>,
    /// Bytes of the `Cookie` header sent, summed.
    pub(crate) cookie_bytes: u64,
    /// Bytes of `Set-Cookie` headers received, summed.
    pub(crate) set_cookie_bytes: u64,
    /// Answers per instance (`x-instance`).
    pub(crate) served: HashMap<String, u64>,
    /// The instance of the user's last answer before the event.
    pub(crate) home: Option<String>,
    /// The instance of its first answer after the event.
    pub(crate) first_after: Option<String>,
    /// Whether the user had logged in before the event.
    pub(crate) ready_before_event: bool,
    /// The instance of the last answer.
    last: Option<String>,
}

impl Tally {
    pub(crate) fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        self.failed += other.failed;
        self.relogins += other.relogins;
        self.latencies_us.extend(other.latencies_us);
        self.cookie_bytes += other.cookie_bytes;
        self.set_cookie_bytes += other.set_cookie_bytes;
        for (k, v) in other.served {
            *self.served.entry(k).or_default() += v;
        }
    }
}

struct User {
    index: usize,
    client: reqwest::Client,
    base: String,
    forwarded_for: String,
    jar: Vec<(String, String)>,
    tally: Tally,
    phase: Arc<Phase>,
    rng: fastrand::Rng,
    plan: Plan,
}

/// An answer, reduced to what the user acts on.
#[derive(PartialEq, Eq)]
enum Answer {
    Status(u16),
    Failed,
}

impl User {
    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, set_cookie: &str) {
        let pair = set_cookie.split(';').next().unwrap_or_default();
        let Some((name, value)) = pair.split_once('=') else {
            return;
        };
        let (name, value) = (name.trim(), value.trim());
        let removed = value.is_empty()
            || set_cookie
                .split(';')
                .any(|attr| attr.trim().eq_ignore_ascii_case("max-age=0"));
        self.jar.retain(|(k, _)| k != name);
        if !removed {
            self.jar.push((name.to_owned(), value.to_owned()));
        }
    }

    async fn send(&mut self, method: reqwest::Method, path: &str, body: Option<String>) -> Answer {
        let cookie = self.cookie_header();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("x-forwarded-for", &self.forwarded_for);
        if !cookie.is_empty() {
            self.tally.cookie_bytes += cookie.len() as u64;
            request = request.header(COOKIE, cookie);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        self.tally.requests += 1;
        let start = Instant::now();
        let Ok(response) = request.send().await else {
            self.tally.failed += 1;
            return Answer::Failed;
        };
        let status = response.status().as_u16();
        let set_cookies: Vec<String> = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let instance = response
            .headers()
            .get("x-instance")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // The body is read so the latency covers the whole answer.
        let complete = response.bytes().await.is_ok();
        let micros = u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX);
        if !complete {
            self.tally.failed += 1;
            return Answer::Failed;
        }
        self.tally.latencies_us.push(micros);
        for c in &set_cookies {
            self.tally.set_cookie_bytes += c.len() as u64;
            self.keep(c);
        }
        if status >= 500 {
            self.tally.failed += 1;
        }
        if let Some(instance) = instance
            && status < 500
        {
            match self.phase.get() {
                Phase::BEFORE => self.tally.home = Some(instance.clone()),
                Phase::AFTER if self.tally.first_after.is_none() => {
                    self.tally.first_after = Some(instance.clone());
                }
                _ => {}
            }
            *self.tally.served.entry(instance.clone()).or_default() += 1;
            self.tally.last = Some(instance);
        }
        Answer::Status(status)
    }

    async fn think(&mut self) {
        let ms = u64::try_from(self.plan.think.as_millis())
            .unwrap_or(1000)
            .max(1);
        let pause = ms / 2 + self.rng.u64(0..=ms);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }

    fn done(&self) -> bool {
        self.phase.get() == Phase::DONE
    }

    /// Logs in and stores the profile, retrying failed requests until done.
    async fn log_in(&mut self) {
        let credentials = format!(r#"{{"username":"user{}","password":"demo"}}"#, self.index);
        self.send_until(reqwest::Method::POST, "/api/login", &credentials, 200)
            .await;
        let profile = serde_json::Value::String("p".repeat(self.plan.payload)).to_string();
        self.send_until(reqwest::Method::PUT, "/api/data/profile", &profile, 204)
            .await;
    }

    /// Sends the request, with think time between tries, until it is answered `status`
    /// or the run is over.
    async fn send_until(&mut self, method: reqwest::Method, path: &str, body: &str, status: u16) {
        while !self.done() {
            if self.send(method.clone(), path, Some(body.to_owned())).await
                == Answer::Status(status)
            {
                break;
            }
            self.think().await;
        }
    }

    async fn browse(mut self, start_at: Instant) -> Tally {
        tokio::time::sleep_until(start_at.into()).await;
        self.log_in().await;
        self.tally.ready_before_event = self.phase.get() == Phase::BEFORE;
        let mut action = 0u64;
        while !self.done() {
            self.think().await;
            if self.done() {
                break;
            }
            action += 1;
            if action.is_multiple_of(5) {
                self.send(reqwest::Method::POST, "/api/counter", None).await;
                continue;
            }
            if let Answer::Status(401) = self.send(reqwest::Method::GET, "/api/me", None).await {
                // The instance that answered does not know this session any more.
                self.tally.relogins += 1;
                if std::env::var_os("TETHER_LAB_LOGS").is_some() {
                    eprintln!(
                        "tether-lab: user{} logged out by {} in phase {} with {}",
                        self.index,
                        self.tally.last.as_deref().unwrap_or("?"),
                        self.phase.get(),
                        self.cookie_header()
                    );
                }
                self.log_in().await;
            }
        }
        self.tally
    }
}

/// Starts `plan.users` users against `base`; they run until `phase` is
/// [`Phase::DONE`]. Returns one tally per user.
pub(crate) fn start(
    plan: Plan,
    base: &str,
    phase: &Arc<Phase>,
) -> Vec<tokio::task::JoinHandle<Tally>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default();
    let t0 = Instant::now();
    let users = u32::try_from(plan.users).unwrap_or(u32::MAX).max(1);
    (0..plan.users)
        .map(|index| {
            let n = u32::try_from(index).unwrap_or(u32::MAX);
            let user = User {
                index,
                client: client.clone(),
                base: base.to_owned(),
                // A distinct client address per user, for ip-hash.
                forwarded_for: format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255),
                jar: Vec::new(),
                tally: Tally::default(),
                phase: phase.clone(),
                rng: fastrand::Rng::with_seed(u64::from(n)),
                plan,
            };
            let start_at = t0 + plan.ramp * n / users;
            tokio::spawn(user.browse(start_at))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            index: 0,
            client: reqwest::Client::new(),
            base: String::new(),
            forwarded_for: String::new(),
            jar: Vec::new(),
            tally: Tally::default(),
            phase: Arc::default(),
            rng: fastrand::Rng::with_seed(1),
            plan: Plan {
                users: 1,
                think: Duration::from_millis(1),
                ramp: Duration::ZERO,
                payload: 0,
            },
        }
    }

    #[test]
    fn the_jar_keeps_replaces_and_removes_cookies_like_a_browser() {
        let mut u = user();
        u.keep("tether=abc; Path=/; HttpOnly");
        u.keep("tether_route=r1; Path=/");
        assert_eq!(u.cookie_header(), "tether=abc; tether_route=r1");
        u.keep("tether=def; Path=/");
        assert_eq!(u.cookie_header(), "tether_route=r1; tether=def");
        u.keep("tether=; Path=/; Max-Age=0");
        assert_eq!(u.cookie_header(), "tether_route=r1");
    }
}
