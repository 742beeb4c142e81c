//! What stands between the demo's forms and an attacker: a same-origin check for
//! every state-changing request, and a limit on password guessing.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tether_server::TrustedProxies;

/// Refuses a cross-site request that would change state (login CSRF: a page on
/// another origin posting the victim's browser into the attacker's account).
///
/// Browsers say where a request comes from: `Sec-Fetch-Site` (every current browser)
/// must be `same-origin` or `none` (typed, bookmarked); without it, `Origin` must name
/// this host. A request with neither is not from a browser page, which cannot omit
/// both, and passes (API clients, curl, tests).
pub(crate) async fn same_origin_only(req: Request, next: Next) -> Response {
    if matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) || is_same_origin(req.headers())
    {
        return next.run(req).await;
    }
    (
        StatusCode::FORBIDDEN,
        "403 Forbidden: cross-site requests cannot change this site's state\n",
    )
        .into_response()
}

fn is_same_origin(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = text(header::ORIGIN.as_str()) else {
        return true;
    };
    let host = text(header::HOST.as_str()).unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

/// Failed password attempts allowed for one user name from one client address before
/// a pause: 5, then one more every 12 s.
const PER_USER_AT_ADDRESS: (u32, Duration) = (5, Duration::from_secs(12));
/// Failed attempts allowed per client address, whatever the names: 20, then one more
/// every 3 s.
const PER_ADDRESS: (u32, Duration) = (20, Duration::from_secs(3));
/// Failed attempts allowed for one user name from all addresses together: far above
/// what one address can reach (one every 12 s), so only a guessing campaign from many
/// addresses at once pauses a name for everyone.
const PER_USER: (u32, Duration) = (200, Duration::from_secs(1));
/// Entries kept before expired ones are cleared.
const KEEP: usize = 10_000;

/// Limits password guessing. Only failures count, so real users logging in are never
/// slowed. Failures are counted per (user name, client address), per address, and per
/// name from everywhere: a guesser is paused after a few tries at one name, and
/// sooner or later at any names, while the name's owner, from another address, still
/// logs in (a name is paused for everyone only past [`PER_USER`], which no single
/// address can reach). Once a key has used up its failures, every attempt it covers
/// answers `429` (with `Retry-After`) without the password being checked, so a
/// correct guess cannot be told apart.
///
/// Its memory is bounded: user names are kept as 64-bit keyed hashes (a name of a
/// megabyte costs eight bytes), names that are not valid user names count against the
/// address only, and entries that have recovered are dropped every 1,000 failures.
pub(crate) struct LoginLimiter {
    by_user_at: DefaultKeyedRateLimiter<u64>,
    by_user: DefaultKeyedRateLimiter<u64>,
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Mutex<HashMap<Blocked, Instant>>,
    names: std::hash::RandomState,
    failures: std::sync::atomic::AtomicU64,
    trusted: TrustedProxies,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Blocked {
    /// A user name tried from one address.
    UserAt(u64),
    /// A user name, from everywhere.
    User(u64),
    Address(IpAddr),
}

fn quota((burst, every): (u32, Duration)) -> Quota {
    Quota::with_period(every)
        .expect("a non-zero period")
        .allow_burst(NonZeroU32::new(burst).expect("a non-zero burst"))
}

impl LoginLimiter {
    /// A limiter that believes `X-Forwarded-For` from `trusted` proxies.
    pub(crate) fn new(trusted: TrustedProxies) -> Self {
        Self {
            by_user_at: RateLimiter::keyed(quota(PER_USER_AT_ADDRESS)),
            by_user: RateLimiter::keyed(quota(PER_USER)),
            by_address: RateLimiter::keyed(quota(PER_ADDRESS)),
            blocked: Mutex::new(HashMap::new()),
            names: std::hash::RandomState::new(),
            failures: std::sync::atomic::AtomicU64::new(0),
            trusted,
        }
    }

    /// The key of a user name: a hash with this process's random key, so names cannot
    /// be chosen to collide.
    fn user_key(&self, user: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.names, user)
    }

    /// The key of a user name tried from one address.
    fn user_at_key(&self, user: &str, address: Option<IpAddr>) -> u64 {
        std::hash::BuildHasher::hash_one(&self.names, (user, address))
    }

    fn blocked(&self) -> std::sync::MutexGuard<'_, HashMap<Blocked, Instant>> {
        self.blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The client's address, as the connection and trusted proxies tell it.
    pub(crate) fn client(&self, peer: &ConnectInfo<SocketAddr>, headers: &HeaderMap) -> IpAddr {
        self.trusted.client(peer.0.ip(), headers)
    }

    /// `Err(retry after)` while `user` or `address` is paused.
    pub(crate) fn check(&self, user: &str, address: Option<IpAddr>) -> Result<(), Duration> {
        let address = address.map(network);
        let now = Instant::now();
        let blocked = self.blocked();
        let keys = [
            Some(Blocked::UserAt(self.user_at_key(user, address))),
            Some(Blocked::User(self.user_key(user))),
            address.map(Blocked::Address),
        ];
        let wait = keys
            .iter()
            .flatten()
            .filter_map(|k| blocked.get(k))
            .filter(|until| **until > now)
            .map(|until| *until - now)
            .max();
        wait.map_or(Ok(()), Err)
    }

    /// Counts a failed attempt; pauses the name or the address that used up its
    /// allowance. A name that could not be a user (`valid_name` false) counts against
    /// the address only.
    pub(crate) fn failed(&self, user: &str, valid_name: bool, address: Option<IpAddr>) {
        let address = address.map(network);
        let now = Instant::now();
        let clock = DefaultClock::default();
        let mut pause = Vec::new();
        if valid_name {
            let at = self.user_at_key(user, address);
            if let Err(not_until) = self.by_user_at.check_key(&at) {
                pause.push((Blocked::UserAt(at), not_until.wait_time_from(clock.now())));
            }
            let key = self.user_key(user);
            if let Err(not_until) = self.by_user.check_key(&key) {
                pause.push((Blocked::User(key), not_until.wait_time_from(clock.now())));
            }
        }
        if let Some(address) = address
            && let Err(not_until) = self.by_address.check_key(&address)
        {
            pause.push((
                Blocked::Address(address),
                not_until.wait_time_from(clock.now()),
            ));
        }
        let mut blocked = self.blocked();
        let failures = self
            .failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if failures % 1000 == 999 || blocked.len() > KEEP {
            blocked.retain(|_, until| *until > now);
            self.by_user_at.retain_recent();
            self.by_user.retain_recent();
            self.by_address.retain_recent();
        }
        for (key, wait) in pause {
            blocked.insert(key, now + wait.max(Duration::from_secs(1)));
        }
    }
}

/// The network an address counts for: itself for IPv4, its /64 for IPv6 (one host
/// commonly holds a whole /64, and could otherwise take a fresh address per guess).
fn network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::from(segments)
        }
    }
}

/// The `429` for a paused login.
pub(crate) fn too_many(retry_after: Duration, json: bool) -> Response {
    let seconds = retry_after.as_secs() + 1;
    let body = "too many failed logins; try again later";
    let mut response = if json {
        (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(serde_json::json!({ "error": body })),
        )
            .into_response()
    } else {
        (
            StatusCode::TOO_MANY_REQUESTS,
            format!("429 Too Many Requests: {body}.\n"),
        )
            .into_response()
    };
    if let Ok(value) = seconds.to_string().parse() {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn cross_site_posts_are_told_apart() {
        assert!(is_same_origin(&headers(&[(
            "sec-fetch-site",
            "same-origin"
        )])));
        assert!(is_same_origin(&headers(&[("sec-fetch-site", "none")])));
        assert!(!is_same_origin(&headers(&[(
            "sec-fetch-site",
            "cross-site"
        )])));
        assert!(!is_same_origin(&headers(&[(
            "sec-fetch-site",
            "same-site"
        )])));
        assert!(is_same_origin(&headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(!is_same_origin(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(!is_same_origin(&headers(&[
            ("origin", "null"),
            ("host", "a")
        ])));
        assert!(is_same_origin(&headers(&[])), "not a browser");
    }

    #[test]
    fn failures_pause_the_guesser_and_not_the_owner() {
        let limiter = LoginLimiter::new(TrustedProxies::none());
        let guesser: IpAddr = "192.0.2.1".parse().unwrap();
        let owner: IpAddr = "198.51.100.7".parse().unwrap();
        for _ in 0..PER_USER_AT_ADDRESS.0 {
            assert!(limiter.check("ada", Some(guesser)).is_ok());
            limiter.failed("ada", true, Some(guesser));
        }
        limiter.failed("ada", true, Some(guesser));
        assert!(limiter.check("ada", Some(guesser)).is_err());
        assert!(
            limiter.check("ada", Some(owner)).is_ok(),
            "the name's owner, elsewhere, still logs in"
        );
        assert!(
            limiter.check("bob", Some(guesser)).is_ok(),
            "the address has more"
        );
        for i in 0..PER_ADDRESS.0 {
            limiter.failed(&format!("user{i}"), true, Some(guesser));
        }
        assert!(
            limiter.check("carol", Some(guesser)).is_err(),
            "an address guessing at many names is paused"
        );
    }

    #[test]
    fn an_ipv6_host_counts_as_its_64() {
        let limiter = LoginLimiter::new(TrustedProxies::none());
        for i in 0..=PER_USER_AT_ADDRESS.0 {
            let address: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            limiter.failed("ada", true, Some(address));
        }
        let same_64: IpAddr = "2001:db8:1:2::ffff".parse().unwrap();
        assert!(limiter.check("ada", Some(same_64)).is_err());
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limiter.check("ada", Some(other_64)).is_ok());
    }

    #[test]
    fn a_campaign_from_many_addresses_pauses_the_name() {
        let limiter = LoginLimiter::new(TrustedProxies::none());
        for i in 0..=PER_USER.0 {
            let address = IpAddr::from([10, 0, 0, u8::try_from(i).unwrap()]);
            limiter.failed("ada", true, Some(address));
        }
        assert!(
            limiter
                .check("ada", Some("192.0.2.9".parse().unwrap()))
                .is_err()
        );
    }
}
