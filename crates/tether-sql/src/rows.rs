//! A `tether_sessions` row read back, the same on every engine: each store selects the
//! same column names (`data` as text), so one reader serves all three.

use serde_json::{Map, Value};
use sqlx::{ColumnIndex, Decode, Row, Type};
use tether_core::{Error, Id, Record, Result, Saved, SessionInfo, unix_ms};

use crate::codec::{Columns, corrupt, unwrap_data};

/// How a dialect keeps its text: the `data` column and the user's name.
#[derive(Debug, Clone, Copy)]
pub struct Text {
    /// The `data` column's text read back.
    pub data: fn(&str) -> Result<Map<String, Value>>,
    /// The `user_name` column read back.
    pub name: fn(String) -> Result<String>,
}

/// MySQL's and SQLite's: data in the wrapped form, names as they are.
pub const WRAPPED: Text = Text {
    data: unwrap_data,
    name: Ok,
};

fn get<'r, R, T>(row: &'r R, column: &str) -> Result<T>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(column).map_err(|e| corrupt(&e))
}

/// The record in a row of `data, version, created_ms, last_seen_ms,
/// idle_deadline_ms, absolute_deadline_ms, lifetime_ms, user_name`, its text read as
/// `text` says.
///
/// # Errors
/// [`Error::Corrupt`] when a column is missing or holds what it should not.
pub fn record<R>(row: &R, text: Text) -> Result<Record>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    i64: Type<R::Database> + for<'r> Decode<'r, R::Database>,
    String: Type<R::Database> + for<'r> Decode<'r, R::Database>,
{
    let data: String = get(row, "data")?;
    let user_name: Option<String> = get(row, "user_name")?;
    Columns {
        data: (text.data)(&data)?,
        version: get(row, "version")?,
        created_ms: get(row, "created_ms")?,
        last_seen_ms: get(row, "last_seen_ms")?,
        idle_deadline_ms: get(row, "idle_deadline_ms")?,
        absolute_deadline_ms: get(row, "absolute_deadline_ms")?,
        user_name: user_name.map(text.name).transpose()?,
        lifetime_ms: get(row, "lifetime_ms")?,
    }
    .into_record()
}

/// The sessions of `user` among rows of `id, created_ms, last_seen_ms, user_name`
/// found by the user's hash (the name compared too, should two names ever share a
/// hash).
///
/// # Errors
/// [`Error::Corrupt`] when a column is missing or an id is not 16 bytes.
pub fn sessions_of<R>(user: &str, rows: &[R], text: Text) -> Result<Vec<SessionInfo>>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    i64: Type<R::Database> + for<'r> Decode<'r, R::Database>,
    String: Type<R::Database> + for<'r> Decode<'r, R::Database>,
    Vec<u8>: Type<R::Database> + for<'r> Decode<'r, R::Database>,
{
    let mut sessions = Vec::with_capacity(rows.len());
    for row in rows {
        let name: Option<String> = get(row, "user_name")?;
        if name.map(text.name).transpose()?.as_deref() != Some(user) {
            continue;
        }
        let bytes: Vec<u8> = get(row, "id")?;
        let bytes: [u8; tether_core::ID_BYTES] = bytes
            .try_into()
            .map_err(|_| Error::Corrupt("tether_sessions.id is not 16 bytes".into()))?;
        sessions.push(SessionInfo::new(
            Id::from_bytes(bytes),
            unix_ms::from_ms(get(row, "created_ms")?),
            unix_ms::from_ms(get(row, "last_seen_ms")?),
        ));
    }
    Ok(sessions)
}

/// What a save's `RETURNING version, idle_deadline_ms, lifetime_ms` reported.
///
/// # Errors
/// [`Error::Corrupt`] when a column is missing or the version is negative.
pub fn saved<R>(row: &R) -> Result<Saved>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    i64: Type<R::Database> + for<'r> Decode<'r, R::Database>,
{
    let version: i64 = get(row, "version")?;
    Ok(Saved::Version {
        version: u64::try_from(version).map_err(|e| corrupt(&e))?,
        expires_at: unix_ms::from_ms(get(row, "idle_deadline_ms")?),
        browser_session: get::<_, Option<i64>>(row, "lifetime_ms")?
            .and_then(tether_core::Lifetime::from_ms)
            .map(|l| l.browser_session),
    })
}

/// A record's version as the signed `BIGINT` the column holds.
///
/// # Errors
/// [`Error::Corrupt`] above `i64::MAX` (never reached by counting saves).
pub fn signed_version(record: &Record) -> Result<i64> {
    i64::try_from(record.version).map_err(|e| corrupt(&e))
}
