//! Which tether user a tower-sessions record belongs to.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

/// The session-data key under which axum-login keeps its data (`user_id`,
/// `auth_hash`), unless the app chose another with `with_data_key`.
pub const AXUM_LOGIN_DATA_KEY: &str = "axum-login.data";

type Extract = dyn Fn(&Map<String, Value>) -> Option<String> + Send + Sync;

/// Reads the user a session belongs to from its data, so that the tether store can
/// index it: `user_sessions`, `delete_user_sessions` and the per-user cap need it.
///
/// The default, [`UserOf::axum_login`], reads axum-login's `user_id`. A user id that
/// is a JSON string is taken as it is; a number by its decimal text; anything else by
/// its compact JSON text.
///
/// ```
/// use serde_json::{Map, Value, json};
/// use tether_tower_sessions::UserOf;
///
/// let data: Map<String, Value> = json!({"axum-login.data": {"user_id": 42, "auth_hash": [1, 2]}})
///     .as_object()
///     .cloned()
///     .unwrap();
/// assert_eq!(UserOf::axum_login().of(&data).as_deref(), Some("42"));
///
/// let by_email = UserOf::from_fn(|data| data.get("email")?.as_str().map(str::to_owned));
/// assert_eq!(by_email.of(&data), None);
/// ```
#[derive(Clone)]
pub struct UserOf(Arc<Extract>);

impl UserOf {
    /// axum-login's user, under its default data key.
    pub fn axum_login() -> Self {
        Self::axum_login_key(AXUM_LOGIN_DATA_KEY)
    }

    /// axum-login's user, for an app that set `AuthManagerLayerBuilder::with_data_key`.
    pub fn axum_login_key(data_key: &'static str) -> Self {
        Self::from_fn(move |data| {
            data.get(data_key)
                .and_then(|login| login.get("user_id"))
                .and_then(user_text)
        })
    }

    /// Sessions are never bound to a user.
    pub fn nobody() -> Self {
        Self::from_fn(|_| None)
    }

    /// The app's own rule.
    pub fn from_fn(
        extract: impl Fn(&Map<String, Value>) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(extract))
    }

    /// The user `data` belongs to, if any.
    pub fn of(&self, data: &Map<String, Value>) -> Option<String> {
        (self.0)(data)
    }
}

impl Default for UserOf {
    fn default() -> Self {
        Self::axum_login()
    }
}

impl fmt::Debug for UserOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserOf(..)")
    }
}

/// A user id's text: strings as they are, numbers in decimal, others as JSON.
fn user_text(id: &Value) -> Option<String> {
    match id {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn reads_axum_logins_user_id_in_every_json_form() {
        let user = UserOf::axum_login();
        let of = |id: Value| user.of(&data(json!({AXUM_LOGIN_DATA_KEY: {"user_id": id}})));
        assert_eq!(of(json!("alice")).as_deref(), Some("alice"));
        assert_eq!(of(json!(7)).as_deref(), Some("7"));
        assert_eq!(
            of(json!({"org": 1, "n": 2})).as_deref(),
            Some(r#"{"n":2,"org":1}"#)
        );
        assert_eq!(of(Value::Null), None);
        assert_eq!(user.of(&data(json!({"other": 1}))), None);
        assert_eq!(
            user.of(&data(json!({AXUM_LOGIN_DATA_KEY: "not an object"}))),
            None
        );
    }

    #[test]
    fn a_custom_data_key_is_read_and_the_default_one_ignored() {
        let user = UserOf::axum_login_key("auth");
        let record =
            data(json!({"auth": {"user_id": "bob"}, AXUM_LOGIN_DATA_KEY: {"user_id": "eve"}}));
        assert_eq!(user.of(&record).as_deref(), Some("bob"));
        assert_eq!(UserOf::nobody().of(&record), None);
    }
}
