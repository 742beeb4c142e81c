//! How a record is kept in a row: `data` as `{"key": [value]}` (so a merge patch
//! replaces a value whole and can store `null`), and what a save reports.

use serde_json::{Map, Value};
use sha2::Digest as _;
use sqlx::Row as _;
use tether_core::{Changes, Error, Record, Result, Saved, unix_ms};

/// The version and expiry a save or rotation reported (see `merge!`).
pub(crate) fn reported(packed: u64) -> Saved {
    Saved::Version {
        version: packed & 0xFFFF_FFFF,
        expires_at: unix_ms::from_ms(i64::try_from(packed >> 32).unwrap_or(i64::MAX) * 1000),
    }
}

pub(crate) fn user_hash(user: &str) -> Vec<u8> {
    sha2::Sha256::digest(user.as_bytes()).to_vec()
}

/// The merge patch for one request's changes: `{"k": [v]}` sets, `{"k": null}` removes.
pub(crate) fn patch(changes: &Changes) -> String {
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

pub(crate) fn wrap(data: &Map<String, Value>) -> String {
    let map: Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.clone(), Value::Array(vec![v.clone()])))
        .collect();
    Value::Object(map).to_string()
}

pub(crate) fn unwrap_data(text: &str) -> Result<Map<String, Value>> {
    let corrupt = |why: String| Error::Corrupt(format!("tether_sessions.data: {why}"));
    let Value::Object(wrapped) = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?
    else {
        return Err(corrupt("not an object".into()));
    };
    wrapped
        .into_iter()
        .map(|(k, v)| match v {
            Value::Array(mut a) if a.len() == 1 => Ok((k, a.remove(0))),
            _ => Err(corrupt(format!("value of {k:?} is not wrapped"))),
        })
        .collect()
}

pub(crate) fn decode(row: &sqlx::mysql::MySqlRow) -> Result<Record> {
    let get = |e: sqlx::Error| Error::Corrupt(format!("tether_sessions row: {e}"));
    let data: String = row.try_get("data").map_err(get)?;
    Ok(Record {
        data: unwrap_data(&data)?,
        version: row.try_get("version").map_err(get)?,
        created: unix_ms::from_ms(row.try_get("created_ms").map_err(get)?),
        last_seen: unix_ms::from_ms(row.try_get("last_seen_ms").map_err(get)?),
        idle_deadline: unix_ms::from_ms(row.try_get("idle_deadline_ms").map_err(get)?),
        absolute_deadline: row
            .try_get::<Option<i64>, _>("absolute_deadline_ms")
            .map_err(get)?
            .map(unix_ms::from_ms),
        user: row.try_get("user_name").map_err(get)?,
    })
}
