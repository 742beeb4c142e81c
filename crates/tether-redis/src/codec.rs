//! The session hash's encoding: a record as HSET arguments, the load script's packed
//! pairs back to a record, and what the save script answers.

use std::time::Duration;

use redis::Value;
use tether_core::{Error, Record, Result, unix_ms};
use time::OffsetDateTime;

/// The hash fields of a whole record, as HSET arguments.
pub(crate) fn encode(record: &Record) -> Result<Vec<Vec<u8>>> {
    let mut fields: Vec<Vec<u8>> = Vec::with_capacity(12 + record.data.len() * 2);
    let mut put = |k: &[u8], v: Vec<u8>| {
        fields.push(k.to_vec());
        fields.push(v);
    };
    put(b"v", record.version.to_string().into_bytes());
    put(
        b"c",
        unix_ms::to_ms(record.created).to_string().into_bytes(),
    );
    put(
        b"s",
        unix_ms::to_ms(record.last_seen).to_string().into_bytes(),
    );
    put(
        b"i",
        unix_ms::to_ms(record.idle_deadline)
            .to_string()
            .into_bytes(),
    );
    if let Some(abs) = record.absolute_deadline {
        put(b"a", unix_ms::to_ms(abs).to_string().into_bytes());
    }
    if let Some(user) = &record.user {
        put(b"u", user.clone().into_bytes());
    }
    if let Some(lifetime) = record.lifetime {
        put(b"l", lifetime.to_ms().to_string().into_bytes());
    }
    for (key, value) in &record.data {
        let json = serde_json::to_vec(value).map_err(|e| Error::Corrupt(e.to_string()))?;
        put(format!("d:{key}").as_bytes(), json);
    }
    Ok(fields)
}

/// A record from the load script's reply: a MessagePack array of the hash's
/// field/value pairs (`LOAD`), read in place; `None` for no hash.
pub(crate) fn decode_packed(reply: &Value) -> Result<Option<Record>> {
    let packed = match reply {
        Value::Nil => return Ok(None),
        Value::BulkString(bytes) => bytes.as_slice(),
        _ => return Err(corrupt("the load script's reply is not a string")),
    };
    let mut rest = packed;
    let len = rmp::decode::read_array_len(&mut rest)
        .map_err(|_| corrupt("the packed hash is not an array"))?;
    let mut next = || -> Result<&[u8]> {
        let n = rmp::decode::read_str_len(&mut rest)
            .map_err(|_| corrupt("a packed field is not a string"))?;
        let n = usize::try_from(n).map_err(|_| corrupt("a packed field is too long"))?;
        if rest.len() < n {
            return Err(corrupt("the packed hash is truncated"));
        }
        let (item, tail) = rest.split_at(n);
        rest = tail;
        Ok(item)
    };
    let mut pairs = Vec::with_capacity(usize::try_from(len / 2).unwrap_or(0));
    for _ in 0..len / 2 {
        let field = next()?;
        pairs.push((field, next()?));
    }
    decode(pairs)
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt(format!("Redis session hash: {what}"))
}

/// A record from a hash's field/value pairs; `None` for an empty (missing) hash.
pub(crate) fn decode(pairs: Vec<(&[u8], &[u8])>) -> Result<Option<Record>> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let int = |v: &[u8]| -> Result<i64> {
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt("a number field is not a number"))
    };
    let (mut version, mut created, mut seen, mut idle) = (None, None, None, None);
    let mut record = Record::new(
        OffsetDateTime::UNIX_EPOCH,
        &tether_core::Expiry::new(Duration::ZERO),
    );
    for (field, value) in pairs {
        match field {
            b"v" => version = Some(int(value)?),
            b"c" => created = Some(int(value)?),
            b"s" => seen = Some(int(value)?),
            b"i" => idle = Some(int(value)?),
            b"a" => record.absolute_deadline = Some(unix_ms::from_ms(int(value)?)),
            b"l" => record.lifetime = tether_core::Lifetime::from_ms(int(value)?),
            b"u" => {
                let user = std::str::from_utf8(value).map_err(|_| corrupt("user is not UTF-8"))?;
                record.user = Some(user.to_owned());
            }
            f if f.starts_with(b"d:") => {
                let key = std::str::from_utf8(&f[2..]).map_err(|_| corrupt("key is not UTF-8"))?;
                let value = serde_json::from_slice(value).map_err(|e| corrupt(&e.to_string()))?;
                record.data.insert(key.to_owned(), value);
            }
            _ => {}
        }
    }
    let (Some(version), Some(created), Some(seen), Some(idle)) = (version, created, seen, idle)
    else {
        return Err(corrupt("missing version or times"));
    };
    record.version = u64::try_from(version).map_err(|_| corrupt("negative version"))?;
    record.created = unix_ms::from_ms(created);
    record.last_seen = unix_ms::from_ms(seen);
    record.idle_deadline = unix_ms::from_ms(idle);
    Ok(Some(record))
}

/// What the save script answers.
pub(crate) struct ScriptSaved {
    pub(crate) version: u64,
    pub(crate) old_user: Option<String>,
    pub(crate) new_user: Option<String>,
    pub(crate) created: i64,
    pub(crate) absolute: Option<i64>,
    pub(crate) expires_at: i64,
    /// The session's own lifetime, stored form (0: none).
    pub(crate) lifetime: i64,
}

pub(crate) fn parse_saved(value: Value) -> redis::RedisResult<Option<ScriptSaved>> {
    if matches!(value, Value::Nil) {
        return Ok(None);
    }
    let (version, old_flag, old_user, new_flag, new_user, created, absolute, expires_at, lifetime): (
        u64,
        u8,
        String,
        u8,
        String,
        i64,
        i64,
        i64,
        i64,
    ) = redis::FromRedisValue::from_redis_value(value)?;
    Ok(Some(ScriptSaved {
        version,
        old_user: (old_flag == 1).then_some(old_user),
        new_user: (new_flag == 1).then_some(new_user),
        created,
        absolute: (absolute > 0).then_some(absolute),
        expires_at,
        lifetime,
    }))
}
