//! The layer, through a real axum app: laziness, cookies, rotation, bad input, failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::{get, post};
use tether::core::async_trait;
use tether::{
    Changes, Created, Error, Expiry, Id, LockOptions, LockToken, MemoryStore, Record, Saved,
    Session, SessionError, SessionInfo, SessionLayer, SessionStore, Touch,
};
use tether_testkit::http::send;

/// Counts every store call and fails them all while `down` is set.
#[derive(Debug, Default)]
struct Probe {
    inner: MemoryStore,
    calls: AtomicUsize,
    saves: AtomicUsize,
    down: AtomicBool,
}

impl Probe {
    fn check(&self) -> Result<(), Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::unavailable(
                "probe store",
                std::io::Error::other("connection refused"),
            ));
        }
        Ok(())
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl SessionStore for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }
    async fn load(&self, id: &Id) -> tether::core::Result<Option<Record>> {
        self.check()?;
        self.inner.load(id).await
    }
    async fn create(&self, id: &Id, record: &Record) -> tether::core::Result<Created> {
        self.check()?;
        self.saves.fetch_add(1, Ordering::SeqCst);
        self.inner.create(id, record).await
    }
    async fn create_capped(
        &self,
        id: &Id,
        record: &Record,
        cap: Option<u32>,
    ) -> tether::core::Result<Created> {
        self.check()?;
        self.saves.fetch_add(1, Ordering::SeqCst);
        self.inner.create_capped(id, record, cap).await
    }
    async fn save(&self, id: &Id, changes: &Changes) -> tether::core::Result<Saved> {
        self.check()?;
        self.saves.fetch_add(1, Ordering::SeqCst);
        self.inner.save(id, changes).await
    }
    async fn touch(&self, id: &Id, touch: &Touch) -> tether::core::Result<bool> {
        self.check()?;
        self.inner.touch(id, touch).await
    }
    async fn delete(&self, id: &Id) -> tether::core::Result<bool> {
        self.check()?;
        self.inner.delete(id).await
    }
    async fn cycle_id(&self, old: &Id, new: &Id, c: &Changes) -> tether::core::Result<Saved> {
        self.check()?;
        self.saves.fetch_add(1, Ordering::SeqCst);
        self.inner.cycle_id(old, new, c).await
    }
    async fn user_sessions(&self, user: &str) -> tether::core::Result<Vec<SessionInfo>> {
        self.check()?;
        self.inner.user_sessions(user).await
    }
    async fn delete_user_sessions(&self, user: &str) -> tether::core::Result<u64> {
        self.check()?;
        self.inner.delete_user_sessions(user).await
    }
    async fn lock(&self, id: &Id, o: &LockOptions) -> tether::core::Result<LockToken> {
        self.check()?;
        self.inner.lock(id, o).await
    }
    async fn unlock(&self, id: &Id, t: &LockToken) -> tether::core::Result<()> {
        self.inner.unlock(id, t).await
    }
}

async fn swallow(session: Session) -> &'static str {
    let _ = session.get::<String>("x").await;
    "ignored the error"
}

async fn fail_after_write(session: Session) -> Result<StatusCode, SessionError> {
    session.insert("half", true).await?;
    Ok(StatusCode::INTERNAL_SERVER_ERROR)
}

fn app(layer: SessionLayer) -> Router {
    tether_testkit::app::routes()
        .route("/swallow", get(swallow))
        .route("/fail", post(fail_after_write))
        .layer(layer)
}

fn probe_app() -> (Arc<Probe>, Router) {
    let probe = Arc::new(Probe::default());
    let app = app(SessionLayer::from_arc(probe.clone()));
    (probe, app)
}

#[tokio::test]
async fn a_handler_that_ignores_the_session_causes_no_store_call_and_no_cookie() {
    let (probe, app) = probe_app();
    let reply = send(&app, "GET", "/plain", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.set_cookie, None);
    // Even with a valid session cookie, nothing is loaded.
    let cookie = send(&app, "POST", "/incr", None).await.cookie();
    let before = probe.calls();
    let reply = send(&app, "GET", "/plain", Some(&cookie)).await;
    assert_eq!(reply.set_cookie, None);
    assert_eq!(probe.calls(), before);
}

#[tokio::test]
async fn the_cookie_has_secure_defaults_and_is_not_cached() {
    let (_, app) = probe_app();
    let reply = send(&app, "POST", "/incr", None).await;
    let set = reply.set_cookie.clone().unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure", "Max-Age="] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }
    assert!(!set.contains("Domain"), "{set}");
    assert!(set.starts_with("__Host-tether="), "{set}");
    assert_eq!(reply.cache_control.as_deref(), Some("no-store"));
}

#[tokio::test]
async fn a_read_only_request_does_not_save_and_sets_no_cookie() {
    let (probe, app) = probe_app();
    let cookie = send(&app, "POST", "/incr", None).await.cookie();
    let saves = probe.saves.load(Ordering::SeqCst);
    let calls = probe.calls();
    let reply = send(&app, "GET", "/me", Some(&cookie)).await;
    assert_eq!(reply.body, "nobody");
    assert_eq!(reply.set_cookie, None);
    assert_eq!(probe.saves.load(Ordering::SeqCst), saves);
    assert_eq!(probe.calls(), calls + 1, "exactly one load");
}

#[tokio::test]
async fn the_idle_deadline_is_refreshed_only_past_the_threshold() {
    let probe = Arc::new(Probe::default());
    let refreshing = app(SessionLayer::from_arc(probe.clone())
        .with_expiry(Expiry::new(Duration::from_secs(2)))
        .with_refresh_share(0.9));
    let cookie = send(&refreshing, "POST", "/incr", None).await.cookie();
    // Right after the write, 100 % of the idle time is left: no refresh.
    let reply = send(&refreshing, "GET", "/me", Some(&cookie)).await;
    assert_eq!(reply.set_cookie, None);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Less than 90 % left now: one touch, and the cookie's Max-Age is renewed.
    let calls = probe.calls();
    let reply = send(&refreshing, "GET", "/me", Some(&cookie)).await;
    assert_eq!(probe.calls(), calls + 2, "one load and one touch");
    assert_eq!(reply.cookie(), cookie);
    assert_eq!(
        probe.saves.load(Ordering::SeqCst),
        1,
        "a touch is not a save"
    );
}

#[tokio::test]
async fn counting_works_across_requests() {
    let (_, app) = probe_app();
    let cookie = send(&app, "POST", "/incr", None).await.cookie();
    for expected in 2..=5 {
        let reply = send(&app, "POST", "/incr", Some(&cookie)).await;
        assert_eq!(reply.body, expected.to_string());
    }
}

#[tokio::test]
async fn login_rotates_the_id_and_the_old_cookie_no_longer_authenticates() {
    let (_, app) = probe_app();
    let before = send(&app, "POST", "/incr", None).await.cookie();
    let reply = send(&app, "POST", "/login", Some(&before)).await;
    let after = reply.cookie();
    assert_ne!(before, after, "login must issue a new id");
    assert_eq!(send(&app, "GET", "/me", Some(&after)).await.body, "alice");
    assert_eq!(send(&app, "GET", "/me", Some(&before)).await.body, "nobody");
    // The data moved with the session.
    assert_eq!(send(&app, "POST", "/incr", Some(&after)).await.body, "2");
}

#[tokio::test]
async fn bad_cookies_read_as_no_session_without_store_io() {
    let (probe, app) = probe_app();
    let valid = Id::generate().unwrap().to_string();
    let bad = [
        "__Host-tether=".to_owned(),
        "__Host-tether=garbage".to_owned(),
        format!("__Host-tether={}", &valid[..21]),
        format!("__Host-tether={valid}x"),
        "__Host-tether=../../../../etc/passwd".to_owned(),
        "__Host-tether=%00%00%00%00%00%00%00%00%00%00%00".to_owned(),
        format!("__Host-tether={}", "A".repeat(5 * 1024)),
        "__Host-tether=\"quoted\"".to_owned(),
        "__Host-tether".to_owned(),
        ";;;=;".to_owned(),
    ];
    for cookie in &bad {
        let calls = probe.calls();
        let reply = send(&app, "GET", "/me", Some(cookie)).await;
        assert_eq!(reply.status, StatusCode::OK, "{cookie:.40}");
        assert_eq!(reply.body, "nobody");
        assert_eq!(probe.calls(), calls, "{cookie:.40} reached the store");
    }
    // A well-formed but unknown id costs one load, and a write never adopts it.
    let planted = format!("__Host-tether={valid}");
    assert_eq!(
        send(&app, "GET", "/me", Some(&planted)).await.body,
        "nobody"
    );
    let reply = send(&app, "POST", "/incr", Some(&planted)).await;
    assert_eq!(reply.body, "1");
    assert_ne!(reply.cookie(), planted, "an unknown id was adopted");
}

#[tokio::test]
async fn non_utf8_and_oversized_cookies_over_real_http_are_not_500s() {
    let app = app(SessionLayer::new(MemoryStore::new()).with_insecure_cookie());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let cookies: Vec<Vec<u8>> = vec![
        b"tether=\xff\xfe\xfd".to_vec(),
        [b"tether=".as_slice(), &[b'x'; 5 * 1024]].concat(),
        [b"tether=".as_slice(), &[0xC3; 64]].concat(),
    ];
    for cookie in cookies {
        let response = client
            .get(format!("http://{addr}/me"))
            .header(
                header::COOKIE,
                header::HeaderValue::from_bytes(&cookie).unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "nobody");
    }
}

#[tokio::test]
async fn a_failing_store_gives_503_with_a_clear_body_and_recovers() {
    let (probe, app) = probe_app();
    let cookie = send(&app, "POST", "/incr", None).await.cookie();
    probe.down.store(true, Ordering::SeqCst);
    for path in ["/incr", "/me"] {
        let method = if path == "/me" { "GET" } else { "POST" };
        let reply = send(&app, method, path, Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            reply.body.contains("session store is unavailable"),
            "{}",
            reply.body
        );
        assert_eq!(reply.set_cookie, None, "no fresh session during an outage");
    }
    // A handler that swallows the error still answers 503: it saw no real session.
    let reply = send(&app, "GET", "/swallow", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    probe.down.store(false, Ordering::SeqCst);
    let reply = send(&app, "POST", "/incr", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body, "2",
        "the session from before the outage is intact"
    );
}

#[tokio::test]
async fn the_error_response_is_configurable() {
    let probe = Arc::new(Probe::default());
    probe.down.store(true, Ordering::SeqCst);
    let app = app(
        SessionLayer::from_arc(probe.clone()).with_error_handler(|_| {
            let mut r = http::Response::new(r#"{"error":"sessions down"}"#.to_owned());
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            r
        }),
    );
    let cookie = format!("__Host-tether={}", Id::generate().unwrap());
    let reply = send(&app, "GET", "/me", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.body, r#"{"error":"sessions down"}"#);
}

#[tokio::test]
async fn a_server_error_response_saves_nothing() {
    let (probe, app) = probe_app();
    let reply = send(&app, "POST", "/fail", None).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.set_cookie, None);
    assert_eq!(probe.saves.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn logout_deletes_the_session_and_clears_the_cookie() {
    let (probe, app) = probe_app();
    let cookie = send(&app, "POST", "/login", None).await.cookie();
    let reply = send(&app, "POST", "/logout", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let cleared = reply.set_cookie.unwrap();
    assert!(cleared.starts_with("__Host-tether=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert!(probe.inner.is_empty(), "the record is deleted at the store");
    assert_eq!(send(&app, "GET", "/me", Some(&cookie)).await.body, "nobody");
}

#[tokio::test]
async fn browser_session_cookies_and_host_prefix() {
    let app = app(SessionLayer::new(MemoryStore::new())
        .with_browser_session_cookie()
        .with_host_prefix());
    let reply = send(&app, "POST", "/incr", None).await;
    let set = reply.set_cookie.clone().unwrap();
    assert!(set.starts_with("__Host-tether="), "{set}");
    assert!(
        !set.contains("Max-Age") && !set.contains("Expires"),
        "{set}"
    );
    assert!(set.contains("Secure") && set.contains("Path=/"), "{set}");
    let cookie = reply.cookie();
    assert_eq!(send(&app, "POST", "/incr", Some(&cookie)).await.body, "2");
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn hammer(base: &str, cookie: &str, n: usize) {
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let request = client
                .post(format!("{base}/incr"))
                .header(header::COOKIE, cookie)
                .send();
            tokio::spawn(async move { request.await.unwrap().status() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_mode_makes_concurrent_increments_exact() {
    let layer = SessionLayer::new(MemoryStore::new())
        .with_insecure_cookie()
        .with_lock(LockOptions {
            wait: Duration::from_secs(30),
            ttl: Duration::from_secs(30),
        });
    let base = serve(app(layer)).await;
    let client = reqwest::Client::new();
    let first = client.post(format!("{base}/incr")).send().await.unwrap();
    let cookie = tether_testkit::http::cookie_of(first.headers());
    hammer(&base, &cookie, 100).await;
    let last = client
        .post(format!("{base}/incr"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(last.text().await.unwrap(), "102");
}

#[tokio::test]
async fn a_login_that_starts_a_session_is_one_store_call_cap_included() {
    let probe = Arc::new(Probe::default());
    let app = app(SessionLayer::from_arc(probe.clone()).with_max_sessions_per_user(2));
    let mut cookies = Vec::new();
    for _ in 0..3 {
        let before = probe.calls();
        let reply = send(&app, "POST", "/login", None).await;
        assert_eq!(
            probe.calls() - before,
            1,
            "a fresh login cost more than one call"
        );
        cookies.push(reply.cookie());
    }
    // The cap held: the first login's session ended with the third.
    assert_eq!(
        send(&app, "GET", "/me", Some(&cookies[0])).await.body,
        "nobody"
    );
    assert_eq!(
        send(&app, "GET", "/me", Some(&cookies[2])).await.body,
        "alice"
    );
}
