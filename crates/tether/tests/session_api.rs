//! The Session API through a real axum app: the data accessors, the id without an
//! await, and two independent layers in one app. (A session's own lifetime is checked
//! on every store by the conformance suite's `tether_testkit::lifetime`.)

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use tether::{
    Expiry, Lifetime, LockOptions, MemoryStore, Session, SessionError, SessionEvent, SessionLayer,
};
use tether_testkit::http::send;
use tether_testkit::lifetime::{id_of, layer_expiry, shared_computer};

async fn accessors(session: Session) -> Result<String, SessionError> {
    let empty = session.is_empty().await?;
    session.insert("a", 1).await?;
    session
        .insert_value("raw", serde_json::json!({"x": [1, 2]}))
        .await?;
    let has = session.contains_key("a").await? && !session.contains_key("b").await?;
    let raw = session.get_value("raw").await?.unwrap_or_default();
    let n: u32 = session
        .update("a", |old: Option<u32>| old.unwrap_or(0) + 41)
        .await?;
    let removed: Option<u32> = session.remove("a").await?;
    let gone = session.remove_value("nothing").await?;
    Ok(format!(
        "{empty} {has} {raw} {n} {removed:?} {gone:?} {}",
        session.is_empty().await?
    ))
}

async fn count(session: Session) -> Result<String, SessionError> {
    let n: u64 = session
        .update("n", |old: Option<u64>| old.unwrap_or(0) + 1)
        .await?;
    Ok(n.to_string())
}

async fn id_now(session: Session) -> Result<String, SessionError> {
    let before = session.id().map(|i| i.to_string()).unwrap_or_default();
    session.cycle_id().await?;
    let after = session.id().map(|i| i.to_string()).unwrap_or_default();
    Ok(format!("{before} {after}"))
}

#[tokio::test]
async fn accessors_read_write_and_update() {
    let app = Router::new()
        .route("/accessors", post(accessors))
        .route("/count", post(count))
        .route("/id", post(id_now))
        .layer(SessionLayer::new(MemoryStore::new()).with_lock(LockOptions::default()));
    let reply = send(&app, "POST", "/accessors", None).await;
    assert_eq!(
        reply.body,
        r#"true true {"x":[1,2]} 42 Some(42) None false"#
    );

    // `update` under lock mode: concurrent increments of one session all count.
    let cookie = send(&app, "POST", "/count", None).await.cookie();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (app, cookie) = (app.clone(), cookie.clone());
        tasks.push(tokio::spawn(async move {
            send(&app, "POST", "/count", Some(&cookie)).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().status, 200);
    }
    assert_eq!(send(&app, "POST", "/count", Some(&cookie)).await.body, "22");

    // The id, without an await: the one the cookie names, then the rotated one.
    let id = id_of(&cookie).to_string();
    let reply = send(&app, "POST", "/id", Some(&cookie)).await;
    let (before, after) = reply.body.split_once(' ').unwrap();
    assert_eq!(before, id);
    assert_eq!(after, id_of(&reply.cookie()).to_string());
    assert_ne!(before, after);
}

async fn who(session: Session) -> Result<String, SessionError> {
    Ok(session.user().await?.unwrap_or_else(|| "nobody".into()))
}

async fn sign_in(session: Session, Path(user): Path<String>) -> Result<String, SessionError> {
    session.cycle_id().await?;
    session.set_user(user).await?;
    Ok("ok".into())
}

#[tokio::test]
async fn two_layers_keep_two_independent_sessions() {
    let site = Arc::new(MemoryStore::new());
    let admin = Arc::new(MemoryStore::new());
    let admin_area = Router::new()
        .route("/me", get(who))
        .route("/login/{user}", post(sign_in))
        .layer(
            SessionLayer::from_arc(admin.clone())
                .with_cookie_name("__Secure-admin")
                .with_path("/admin")
                .with_expiry(Expiry::new(Duration::from_mins(15))),
        );
    let app = Router::new()
        .route("/me", get(who))
        .route("/login/{user}", post(sign_in))
        .nest("/admin", admin_area)
        .layer(SessionLayer::from_arc(site.clone()));

    let site_login = send(&app, "POST", "/login/alice", None).await;
    let site_cookie = site_login.cookie();
    assert!(site_cookie.starts_with("__Host-tether="), "{site_cookie}");
    let admin_login = send(&app, "POST", "/admin/login/root", Some(&site_cookie)).await;
    let admin_cookie = admin_login.cookie();
    let set = admin_login.set_cookie.unwrap();
    assert!(
        set.starts_with("__Secure-admin=") && set.contains("Path=/admin"),
        "{set}"
    );
    assert_eq!(
        site.len(),
        1,
        "the admin login wrote nothing to the site's store"
    );
    assert_eq!(admin.len(), 1);

    let both = format!("{site_cookie}; {admin_cookie}");
    assert_eq!(send(&app, "GET", "/me", Some(&both)).await.body, "alice");
    assert_eq!(
        send(&app, "GET", "/admin/me", Some(&both)).await.body,
        "root"
    );
    // The site's cookie opens nothing in the admin area, and the other way round.
    assert_eq!(
        send(&app, "GET", "/admin/me", Some(&site_cookie))
            .await
            .body,
        "nobody"
    );
    let admin_as_site = admin_cookie.replace("__Secure-admin=", "__Host-tether=");
    assert_eq!(
        send(&app, "GET", "/me", Some(&admin_as_site)).await.body,
        "nobody"
    );
}

#[test]
fn the_lifetime_a_layer_and_a_session_use_are_one_type() {
    // `Expiry` configures both; its stored part is the `Lifetime`.
    let expiry = shared_computer();
    assert_eq!(
        expiry.lifetime(),
        Lifetime {
            idle: Duration::from_mins(10),
            browser_session: true
        }
    );
    let layer = SessionLayer::new(MemoryStore::new())
        .with_browser_session_cookie()
        .with_expiry(layer_expiry());
    assert!(
        layer.expiry().browser_session,
        "a later with_expiry keeps the browser-session cookie"
    );
}

/// The README's typed-session pattern: a struct under one key, behind an extractor.
mod typed {
    use axum::extract::FromRequestParts;
    use axum::http::request::Parts;
    use axum::response::{IntoResponse, Response};
    use serde::{Deserialize, Serialize};
    use tether::{Session, SessionError};

    #[derive(Debug, Default, Serialize, Deserialize)]
    pub(crate) struct Cart {
        pub(crate) items: Vec<u32>,
    }

    pub(crate) struct CartSession {
        session: Session,
        pub(crate) cart: Cart,
    }

    impl CartSession {
        pub(crate) async fn save(&self) -> Result<(), SessionError> {
            self.session.insert("cart", &self.cart).await
        }
    }

    impl<S: Send + Sync> FromRequestParts<S> for CartSession {
        type Rejection = Response;

        async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
            let session = Session::from_request_parts(parts, state)
                .await
                .map_err(IntoResponse::into_response)?;
            let cart = session
                .get("cart")
                .await
                .map_err(IntoResponse::into_response)?
                .unwrap_or_default();
            Ok(Self { session, cart })
        }
    }
}

async fn add_item(
    mut cart: typed::CartSession,
    Path(item): Path<u32>,
) -> Result<String, SessionError> {
    cart.cart.items.push(item);
    cart.save().await?;
    Ok(format!("{:?}", cart.cart.items))
}

#[tokio::test]
async fn a_typed_session_behind_an_extractor() {
    let app = Router::new()
        .route("/cart/{item}", post(add_item))
        .layer(SessionLayer::new(MemoryStore::new()));
    let first = send(&app, "POST", "/cart/3", None).await;
    assert_eq!(first.body, "[3]");
    let cookie = first.cookie();
    assert_eq!(
        send(&app, "POST", "/cart/5", Some(&cookie)).await.body,
        "[3, 5]"
    );
    // Without the layer the extractor answers the layer's missing-layer error.
    let bare = Router::new().route("/cart/{item}", post(add_item));
    assert_eq!(send(&bare, "POST", "/cart/1", None).await.status, 500);
}

#[tokio::test]
async fn lifecycle_events_reach_the_hook_in_order() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook = {
        let seen = seen.clone();
        move |event: &SessionEvent| {
            let line = match event {
                SessionEvent::UserBound { user, .. } => format!("user_bound {user}"),
                SessionEvent::LoggedOutEverywhere { user, ended } => {
                    format!("logged_out_everywhere {user} {ended}")
                }
                other => other.name().to_owned(),
            };
            seen.lock().unwrap().push(line);
        }
    };
    let app = tether_testkit::app::routes()
        .layer(SessionLayer::new(MemoryStore::new()).with_events(hook));
    let take = || std::mem::take(&mut *seen.lock().unwrap());

    let anonymous = send(&app, "POST", "/write", None).await.cookie();
    assert_eq!(take(), ["created"]);
    let alice = send(&app, "POST", "/login", Some(&anonymous))
        .await
        .cookie();
    assert_eq!(take(), ["rotated", "user_bound alice"]);
    send(&app, "POST", "/logout", Some(&alice)).await;
    assert_eq!(take(), ["logged_out"]);

    let phone = send(&app, "POST", "/login", None).await.cookie();
    assert_eq!(take(), ["created", "user_bound alice"]);
    let laptop = send(&app, "POST", "/login", None).await.cookie();
    take();
    let ended = send(&app, "POST", "/logout-everywhere", Some(&laptop)).await;
    assert_eq!(ended.body, "2");
    // This session ended with the others: no separate logout.
    assert_eq!(take(), ["logged_out_everywhere alice 2"]);
    assert_eq!(send(&app, "GET", "/me", Some(&phone)).await.body, "nobody");
    // A request that does not touch the session reports nothing.
    send(&app, "GET", "/plain", None).await;
    assert!(take().is_empty());
}

/// `Option<Session>`: `None` on a route without the layer, the session on one with it.
#[tokio::test]
async fn an_optional_session_is_none_without_the_layer() {
    async fn maybe(session: Option<Session>) -> Result<String, SessionError> {
        Ok(match session {
            Some(session) => {
                session.insert("seen", true).await?;
                "with".to_owned()
            }
            None => "without".to_owned(),
        })
    }
    let app = Router::new().route("/bare", get(maybe)).merge(
        Router::new()
            .route("/sessions", get(maybe))
            .layer(SessionLayer::new(MemoryStore::new())),
    );
    assert_eq!(send(&app, "GET", "/bare", None).await.body, "without");
    let with = send(&app, "GET", "/sessions", None).await;
    assert_eq!(with.body, "with");
    assert!(with.set_cookie.is_some());
}
