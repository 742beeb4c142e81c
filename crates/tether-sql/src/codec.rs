//! How a session is kept in a row.
//!
//! The merge-patch dialects (MySQL's `JSON_MERGE_PATCH`, SQLite's `json_patch`) keep
//! `data` as `{"key": [value]}`: wrapping each value in a one-element array makes a
//! patch replace a value whole (an object value is never deep-merged) and lets a
//! value be `null` (a bare `null` in a patch removes the key). Postgres merges with
//! `jsonb ||` (see [`Split`] and `escape::postgres_data`).

use serde_json::{Map, Value};
use sha2::Digest as _;
use tether_core::{Changes, Error, Record, Result, unix_ms};

/// The indexed form of a user name: SHA-256, so the index has a fixed width and the
/// name itself is compared only on the rows it finds.
///
/// ```
/// assert_eq!(tether_sql::codec::user_hash("alice").len(), 32);
/// ```
pub fn user_hash(user: &str) -> Vec<u8> {
    sha2::Sha256::digest(user.as_bytes()).to_vec()
}

/// A whole session's data in the wrapped form.
///
/// ```
/// let mut data = serde_json::Map::new();
/// data.insert("cart".into(), serde_json::json!({"n": 1}));
/// assert_eq!(tether_sql::codec::wrap(&data), r#"{"cart":[{"n":1}]}"#);
/// ```
pub fn wrap(data: &Map<String, Value>) -> String {
    let map: Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.clone(), Value::Array(vec![v.clone()])))
        .collect();
    Value::Object(map).to_string()
}

/// One request's changes as a merge patch of the wrapped form: `{"k": [v]}` sets,
/// `{"k": null}` removes.
///
/// ```
/// use tether_core::{Changes, unix_ms};
/// let now = unix_ms::from_ms(0);
/// let mut changes = Changes::new(now, now);
/// changes.set("a", serde_json::Value::Null);
/// changes.remove("b");
/// assert_eq!(tether_sql::codec::patch(&changes), r#"{"a":[null],"b":null}"#);
/// ```
pub fn patch(changes: &Changes) -> String {
    let map: Map<String, Value> = changes
        .updates
        .iter()
        .map(|(k, v)| {
            let v = v
                .as_ref()
                .map_or(Value::Null, |v| Value::Array(vec![v.clone()]));
            (k.clone(), v)
        })
        .collect();
    Value::Object(map).to_string()
}

/// The wrapped form read back.
///
/// # Errors
/// [`Error::Corrupt`] when the text is not an object of one-element arrays.
///
/// ```
/// let data = tether_sql::codec::unwrap_data(r#"{"k":[null]}"#).unwrap();
/// assert_eq!(data["k"], serde_json::Value::Null);
/// assert!(tether_sql::codec::unwrap_data(r#"{"k":1}"#).is_err());
/// ```
pub fn unwrap_data(text: &str) -> Result<Map<String, Value>> {
    let Value::Object(wrapped) = serde_json::from_str(text).map_err(|e| corrupt(&e))? else {
        return Err(corrupt(&"not an object"));
    };
    wrapped
        .into_iter()
        .map(|(k, v)| match v {
            Value::Array(mut a) if a.len() == 1 => Ok((k, a.remove(0))),
            _ => Err(corrupt(&format_args!("value of {k:?} is not wrapped"))),
        })
        .collect()
}

/// One request's changes for a dialect that merges with `jsonb ||`, then `-` the
/// removed keys (Postgres): what to set, as one object, and which keys to remove.
///
/// ```
/// use tether_core::{Changes, unix_ms};
/// let now = unix_ms::from_ms(0);
/// let mut changes = Changes::new(now, now);
/// changes.set("a", serde_json::json!(1));
/// changes.remove("b");
/// let split = tether_sql::codec::Split::of(&changes);
/// assert_eq!(split.set["a"], 1);
/// assert_eq!(split.removed, ["b"]);
/// ```
#[derive(Debug)]
pub struct Split {
    /// The keys set, with their new values.
    pub set: Map<String, Value>,
    /// The keys removed.
    pub removed: Vec<String>,
}

impl Split {
    /// Splits `changes`.
    pub fn of(changes: &Changes) -> Self {
        let mut set = Map::new();
        let mut removed = Vec::new();
        for (k, v) in &changes.updates {
            match v {
                Some(v) => {
                    set.insert(k.clone(), v.clone());
                }
                None => removed.push(k.clone()),
            }
        }
        Self { set, removed }
    }
}

/// A session row's columns, as every SQL store lays them out (times in milliseconds
/// since the Unix epoch; `idle_deadline_ms` never passes `absolute_deadline_ms`).
#[derive(Debug)]
pub struct Columns {
    /// The data, already decoded.
    pub data: Map<String, Value>,
    /// `version`.
    pub version: i64,
    /// `created_ms`.
    pub created_ms: i64,
    /// `last_seen_ms`.
    pub last_seen_ms: i64,
    /// `idle_deadline_ms`.
    pub idle_deadline_ms: i64,
    /// `absolute_deadline_ms`.
    pub absolute_deadline_ms: Option<i64>,
    /// `user_name`.
    pub user_name: Option<String>,
    /// `lifetime_ms`: the session's own lifetime ([`tether_core::Lifetime::to_ms`]).
    pub lifetime_ms: Option<i64>,
}

impl Columns {
    /// The record these columns hold.
    ///
    /// # Errors
    /// [`Error::Corrupt`] on a negative version.
    pub fn into_record(self) -> Result<Record> {
        Ok(Record {
            data: self.data,
            version: u64::try_from(self.version).map_err(|e| corrupt(&e))?,
            created: unix_ms::from_ms(self.created_ms),
            last_seen: unix_ms::from_ms(self.last_seen_ms),
            idle_deadline: unix_ms::from_ms(self.idle_deadline_ms),
            absolute_deadline: self.absolute_deadline_ms.map(unix_ms::from_ms),
            user: self.user_name,
            lifetime: self.lifetime_ms.and_then(tether_core::Lifetime::from_ms),
        })
    }
}

/// A `tether_sessions` row that cannot be read.
pub fn corrupt(why: &dyn std::fmt::Display) -> Error {
    Error::Corrupt(format!("tether_sessions row: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".*", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn wrapped_data_reads_back(data in prop::collection::btree_map(".*", json(), 0..6)) {
            let data: Map<String, Value> = data.into_iter().collect();
            prop_assert_eq!(unwrap_data(&wrap(&data)).unwrap(), data);
        }

        #[test]
        fn any_text_reads_as_data_or_corrupt(text in ".*") {
            match unwrap_data(&text) {
                Ok(_) | Err(Error::Corrupt(_)) => {}
                Err(e) => prop_assert!(false, "{e:?}"),
            }
        }
    }
}
