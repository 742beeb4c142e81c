//! Filling the instances with anonymous sessions, for their memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{JOINED_WITHIN, Lab, Memory};
use crate::Error;

/// Requests in flight at once.
const WORKERS: usize = 32;

impl Lab {
    /// Anonymous sessions (a value set without a cookie), spread over the running
    /// instances, until they hold `total` sessions each; then their memory.
    pub(super) async fn fill(&self, total: usize) -> Result<Memory, Error> {
        let urls = self.urls(&self.running());
        let now = usize::try_from(held(self.stats(&urls[0]).await.as_ref())).unwrap_or(0);
        let again = create_sessions(&self.http, &urls, now, total).await?;
        // Each create waited for the reachable peers; one that fell behind catches up
        // by a full snapshot, within the bound of a join's.
        let since = Instant::now();
        for url in &urls {
            while held(self.stats(url).await.as_ref()) < total as u64 {
                if since.elapsed() > JOINED_WITHIN {
                    return Err(Error::Setup(format!(
                        "{url} did not hold {total} sessions within {JOINED_WITHIN:?}; held: {}",
                        self.holdings(&urls).await
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let rss: Vec<u64> = self
            .running()
            .iter()
            .filter_map(|&i| self.cluster.instances[i].rss_bytes())
            .collect();
        #[allow(clippy::cast_precision_loss)] // bytes, far below 2^52
        let memory = Memory {
            instances: urls.len(),
            sessions: total,
            rss_mib: rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64 / (1024.0 * 1024.0),
        };
        eprintln!(
            "tether-lab: membership memory at {} instances: {} sessions, {:.0} MiB per instance ({again} requests sent again)",
            memory.instances, memory.sessions, memory.rss_mib
        );
        Ok(memory)
    }

    /// Each instance's sessions and the events it still has queued for its peers.
    async fn holdings(&self, urls: &[String]) -> String {
        let mut each = Vec::new();
        for url in urls {
            let stats = self.stats(url).await;
            let queued: u64 = stats
                .as_ref()
                .and_then(|s| s["peers"].as_array())
                .into_iter()
                .flatten()
                .filter_map(|p| p["queued"].as_u64())
                .sum();
            each.push(format!("{url} {} ({queued} queued)", held(stats.as_ref())));
        }
        each.join(", ")
    }
}

/// The sessions an instance's stats say it holds (0 without an answer).
fn held(stats: Option<&serde_json::Value>) -> u64 {
    stats.and_then(|s| s["sessions"].as_u64()).unwrap_or(0)
}

/// Creates the sessions numbered `from..total`, round-robin over `urls`, each an
/// anonymous session (a value set without a cookie). A request that fails or is
/// turned down is sent again (one that timed out after the instance created its
/// session leaves one session more, never one missing); after [`ATTEMPTS`] tries
/// for one session the fill stops with its last answer. Returns how many requests
/// were sent again.
async fn create_sessions(
    http: &reqwest::Client,
    urls: &[String],
    from: usize,
    total: usize,
) -> Result<u32, Error> {
    let next = Arc::new(AtomicUsize::new(from));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (http, urls, next) = (http.clone(), urls.to_vec(), next.clone());
            tokio::spawn(async move {
                let mut again = 0;
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= total {
                        return Ok::<u32, Error>(again);
                    }
                    again += create_one(&http, &urls[n % urls.len()]).await?;
                }
            })
        })
        .collect();
    let mut again = 0;
    for worker in workers {
        again += worker
            .await
            .map_err(|e| Error::Setup(format!("a fill worker: {e}")))??;
    }
    Ok(again)
}

/// Tries for one session before the fill gives up.
const ATTEMPTS: u32 = 5;

/// One anonymous session on `url`, tried up to [`ATTEMPTS`] times: how many times
/// it was sent again.
async fn create_one(http: &reqwest::Client, url: &str) -> Result<u32, Error> {
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match http
            .put(format!("{url}/api/data/x"))
            .header("content-type", "application/json")
            .body("1")
            .send()
            .await
        {
            Ok(answer) if answer.status().is_success() => return Ok(attempt - 1),
            Ok(answer) => last = format!("answered {}", answer.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50) * attempt).await;
    }
    Err(Error::Setup(format!(
        "{url} created no session in {ATTEMPTS} tries: {last}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that creates a session for each `PUT /api/data/x` it answers 200, and
    /// turns down every fifth request (503, nothing created), as an instance busy
    /// replicating or closing a kept-alive connection may.
    async fn flaky_server() -> (String, Arc<AtomicUsize>) {
        let created = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/api/data/x",
            axum::routing::put({
                let created = created.clone();
                move || {
                    let (created, seen) = (created.clone(), seen.clone());
                    async move {
                        if seen.fetch_add(1, Ordering::SeqCst) % 5 == 4 {
                            axum::http::StatusCode::SERVICE_UNAVAILABLE
                        } else {
                            created.fetch_add(1, Ordering::SeqCst);
                            axum::http::StatusCode::OK
                        }
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, created)
    }

    #[tokio::test]
    async fn every_session_is_created_though_some_requests_are_turned_down() {
        let (url, created) = flaky_server().await;
        let http = reqwest::Client::new();
        let again = create_sessions(&http, &[url], 10, 210)
            .await
            .expect("the sessions are created");
        assert_eq!(created.load(Ordering::SeqCst), 200);
        // 249 requests: the 5th, 10th, … 245th turned down and sent again.
        assert_eq!(again, 49);
    }

    #[tokio::test]
    async fn an_instance_that_never_creates_one_stops_the_fill_and_is_named() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let app = axum::Router::new().route(
            "/api/data/x",
            axum::routing::put(|| async { axum::http::StatusCode::SERVICE_UNAVAILABLE }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let error = create_sessions(&reqwest::Client::new(), std::slice::from_ref(&url), 0, 3)
            .await
            .expect_err("nothing is created");
        assert!(
            error.to_string().contains(&url) && error.to_string().contains("503"),
            "{error}"
        );
    }
}
