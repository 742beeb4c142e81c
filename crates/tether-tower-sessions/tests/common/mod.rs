//! The request/response behaviours tower-sessions' own integration tests check (no
//! cookie, unknown and malformed cookies, insert, get, remove, cycle the id, flush,
//! expiry and its type), plus what the adapter promises on top (ids kept, no
//! resurrection, the user bound), for one tower-sessions version: `behaviours!(crate)`
//! defines `run(store)` in the module it is expanded in.

#![allow(dead_code, unreachable_pub)]

/// A `Set-Cookie` header's parts the behaviours look at.
#[derive(Debug)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    pub max_age: Option<i64>,
    pub domain: Option<String>,
    pub path: Option<String>,
    pub http_only: bool,
}

pub fn parse(header: &str) -> SetCookie {
    let cookie = cookie::Cookie::parse(header.to_owned()).expect("a well-formed Set-Cookie");
    SetCookie {
        name: cookie.name().to_owned(),
        value: cookie.value().to_owned(),
        max_age: cookie.max_age().map(time::Duration::whole_seconds),
        domain: cookie.domain().map(str::to_owned),
        path: cookie.path().map(str::to_owned),
        http_only: cookie.http_only() == Some(true),
    }
}

macro_rules! behaviours {
    ($ts:ident) => {
        use axum::Router;
        use axum::extract::{Path, State};
        use axum::routing::get;
        use serde_json::json;
        use tether::{Id, SessionStore};
        use tether_testkit::http::send;
        use tether_tower_sessions::TowerSessions;
        use time::Duration;
        use $ts::{Expiry, Session, SessionManagerLayer};

        use crate::common::parse;

        const USER_KEY: &str = tether_tower_sessions::AXUM_LOGIN_DATA_KEY;

        fn app<S: SessionStore>(
            store: TowerSessions<S>,
            expiry: Option<Expiry>,
            domain: Option<&str>,
        ) -> Router {
            let mut layer = SessionManagerLayer::new(store.clone()).with_secure(true);
            if let Some(expiry) = expiry {
                layer = layer.with_expiry(expiry);
            }
            if let Some(domain) = domain {
                layer = layer.with_domain(domain.to_owned());
            }
            Router::new()
                .route("/", get(|_: Session| async { "untouched" }))
                .route(
                    "/insert",
                    get(|s: Session| async move { s.insert("n", 42).await.unwrap() }),
                )
                .route(
                    "/get",
                    get(|s: Session| async move {
                        format!("{:?}", s.get::<u64>("n").await.unwrap())
                    }),
                )
                .route(
                    "/remove",
                    get(|s: Session| async move {
                        s.remove::<u64>("n").await.unwrap();
                    }),
                )
                .route(
                    "/cycle",
                    get(|s: Session| async move { s.cycle_id().await.unwrap() }),
                )
                .route(
                    "/flush",
                    get(|s: Session| async move { s.flush().await.unwrap() }),
                )
                .route(
                    "/expire-in-a-day",
                    get(|s: Session| async move {
                        s.set_expiry(Some(Expiry::OnInactivity(Duration::days(1))))
                    }),
                )
                .route(
                    "/login/{user}",
                    get(|Path(user): Path<String>, s: Session| async move {
                        // What axum-login's `login` does: a new id, then its data.
                        s.cycle_id().await.unwrap();
                        s.insert(USER_KEY, json!({"user_id": user, "auth_hash": [1, 2]}))
                            .await
                            .unwrap();
                    }),
                )
                .route(
                    "/insert-after-logout-elsewhere",
                    get(
                        |State(store): State<TowerSessions<S>>, s: Session| async move {
                            // Loaded, then ended by another request, then written.
                            let _ = s.get::<u64>("n").await.unwrap();
                            let id = s.id().expect("a stored session");
                            let id = Id::parse(&id.to_string()).expect("a tether id");
                            let key = store.store().capabilities().key(&id);
                            store.store().delete(&key).await.unwrap();
                            s.insert("late", true).await.unwrap();
                        },
                    ),
                )
                .layer(layer)
                .with_state(store)
        }

        fn set_cookie(reply: &tether_testkit::http::Reply) -> crate::common::SetCookie {
            parse(reply.set_cookie.as_deref().expect("a Set-Cookie header"))
        }

        fn hour() -> Option<Expiry> {
            Some(Expiry::OnInactivity(Duration::hours(1)))
        }

        /// Every behaviour, each on a fresh app over `store`.
        pub(crate) async fn run<S: SessionStore>(store: std::sync::Arc<S>) {
            let ts = TowerSessions::from_arc(store.clone());
            let a = app(ts.clone(), hour(), None);

            // No cookie, nothing touched: no cookie set.
            let reply = send(&a, "GET", "/", None).await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.set_cookie, None, "an untouched session set a cookie");

            // A well-formed id the store does not know, and malformed ones (which
            // tower-sessions answers by removing the cookie).
            for bogus in ["id=AAAAAAAAAAAAAAAAAAAAAA", "id=not-an-id", "id=%%%"] {
                let reply = send(&a, "GET", "/", Some(bogus)).await;
                assert_eq!(reply.status, 200, "{bogus}");
                if let Some(set) = &reply.set_cookie {
                    assert_eq!(parse(set).value, "", "{bogus} set a cookie: {set}");
                }
                let reply = send(&a, "GET", "/get", Some(bogus)).await;
                assert_eq!(reply.body, "None", "{bogus} read data");
            }
            let reply = send(&a, "GET", "/insert", Some("id=AAAAAAAAAAAAAAAAAAAAAA")).await;
            assert_ne!(
                set_cookie(&reply).value,
                "AAAAAAAAAAAAAAAAAAAAAA",
                "a session was created under an id the client chose"
            );

            // Insert: the cookie tower-sessions sets, on a session the store holds under
            // the same id text.
            let reply = send(&a, "GET", "/insert", None).await;
            let cookie = set_cookie(&reply);
            assert_eq!(cookie.name, "id");
            assert!(cookie.http_only);
            assert_eq!(cookie.path.as_deref(), Some("/"));
            let max_age = cookie.max_age.expect("OnInactivity sets Max-Age");
            assert!((3590..=3600).contains(&max_age), "Max-Age {max_age}");
            let id = Id::parse(&cookie.value).expect("the cookie's id is a tether id");
            let stored = store.load(&store.capabilities().key(&id)).await.unwrap();
            let stored = stored.expect("stored under the cookie's id");
            assert_eq!(stored.data.get("n"), Some(&json!(42)));
            assert!(
                store.capabilities().in_process || store.load(&id).await.unwrap().is_none(),
                "the store holds the presented id: ids at rest must be hashes"
            );
            let jar = reply.cookie();

            // Get, remove the last value, get again.
            assert_eq!(send(&a, "GET", "/get", Some(&jar)).await.body, "Some(42)");
            let reply = send(&a, "GET", "/get", None).await;
            assert_eq!(reply.body, "None");
            send(&a, "GET", "/remove", Some(&jar)).await;
            assert_eq!(send(&a, "GET", "/get", Some(&jar)).await.body, "None");

            // Cycle the id: the data moves, the old id ends.
            let reply = send(&a, "GET", "/insert", None).await;
            let old = reply.cookie();
            let reply = send(&a, "GET", "/cycle", Some(&old)).await;
            let new = reply.cookie();
            assert_ne!(old, new, "cycle_id kept the id");
            assert_eq!(send(&a, "GET", "/get", Some(&new)).await.body, "Some(42)");
            assert_eq!(send(&a, "GET", "/get", Some(&old)).await.body, "None");

            // Flush: the cookie is removed and the session ends in the store.
            let reply = send(&a, "GET", "/flush", Some(&new)).await;
            let removal = set_cookie(&reply);
            assert_eq!(removal.value, "");
            assert_eq!(removal.max_age, Some(0));
            assert_eq!(removal.path.as_deref(), Some("/"));
            assert_eq!(send(&a, "GET", "/get", Some(&new)).await.body, "None");
            let gone = Id::parse(new.trim_start_matches("id=")).unwrap();
            assert_eq!(store.load(&store.capabilities().key(&gone)).await.unwrap(), None);

            // Flush with a domain: the removal names it.
            let with_domain = app(ts.clone(), hour(), Some("localhost"));
            let reply = send(&with_domain, "GET", "/insert", None).await;
            let reply = send(&with_domain, "GET", "/flush", Some(&reply.cookie())).await;
            let removal = set_cookie(&reply);
            assert_eq!(removal.max_age, Some(0));
            assert_eq!(removal.domain.as_deref(), Some("localhost"));

            // Set the expiry per session, and change its type from the browser
            // session's (no Max-Age) to an idle timeout.
            for expiry in [hour(), None] {
                let a = app(ts.clone(), expiry, None);
                let reply = send(&a, "GET", "/insert", None).await;
                let before = set_cookie(&reply).max_age;
                assert_eq!(before.is_some(), expiry.is_some(), "{expiry:?}: {before:?}");
                let reply = send(&a, "GET", "/expire-in-a-day", Some(&reply.cookie())).await;
                let after = set_cookie(&reply).max_age.expect("a day's Max-Age");
                assert!((86_390..=86_400).contains(&after), "Max-Age {after}");
            }

            // A session ended while a request was using it stays ended.
            let reply = send(&a, "GET", "/insert", None).await;
            let jar = reply.cookie();
            let id = Id::parse(jar.trim_start_matches("id=")).unwrap();
            let reply = send(&a, "GET", "/insert-after-logout-elsewhere", Some(&jar)).await;
            assert_eq!(reply.status, 200);
            assert_eq!(
                store.load(&store.capabilities().key(&id)).await.unwrap(),
                None,
                "a save brought back a deleted session"
            );

            // axum-login's login binds the tether user; the cap ends older sessions.
            let user = format!("alice-{}", Id::generate().unwrap());
            let login = format!("/login/{user}");
            let capped = app(ts.clone().with_user_cap(1), hour(), None);
            for _ in 0..2 {
                send(&capped, "GET", &login, None).await;
            }
            // Every server-side store keeps a user index: no store may skip this part.
            let sessions = store.user_sessions(&user).await.unwrap();
            assert!(!sessions.is_empty(), "login did not bind the user");
            assert!(sessions.len() <= 1, "the cap kept {} sessions", sessions.len());
            let reply = send(&capped, "GET", &login, None).await;
            let ended = store.delete_user_sessions(&user).await.unwrap();
            assert!(ended >= 1);
            assert_eq!(send(&capped, "GET", "/get", Some(&reply.cookie())).await.body, "None");
        }
    };
}
