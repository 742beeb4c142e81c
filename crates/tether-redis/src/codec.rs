//! A session's encodings: the packed MessagePack map it is kept as (written here,
//! read here and by the scripts' `cmsgpack`), and what the save script answers.

use std::time::Duration;

use redis::Value;
use rmp::Marker;
use tether_core::{Error, Record, Result, unix_ms};
use time::OffsetDateTime;

/// Digits of the version that starts a packed session, zero-padded: the scripts read
/// and compare it without unpacking the rest.
pub(crate) const VERSION_DIGITS: usize = 16;

/// The version as a packed session starts with it: its last [`VERSION_DIGITS`]
/// decimal digits, zero-padded (a session would need a write a microsecond for three
/// centuries to reach more).
pub(crate) fn version_prefix(version: u64) -> [u8; VERSION_DIGITS] {
    let mut digits = [b'0'; VERSION_DIGITS];
    let mut rest = version;
    for digit in digits.iter_mut().rev() {
        // A remainder by 10 is below 10: the cast keeps it whole.
        #[allow(clippy::cast_possible_truncation)]
        let d = (rest % 10) as u8;
        *digit = b'0' + d;
        rest /= 10;
    }
    digits
}

/// A record packed: its version in [`VERSION_DIGITS`] decimal digits, then the
/// MessagePack map `{c, s, i, a?, u?, l?, d}`; `d` maps each data key to its JSON text.
pub(crate) fn encode(record: &Record) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(80 + record.data.len() * 32);
    out.extend_from_slice(&version_prefix(record.version));
    let fields = 4
        + u32::from(record.absolute_deadline.is_some())
        + u32::from(record.user.is_some())
        + u32::from(record.lifetime.is_some());
    let written = (|| -> std::result::Result<(), Box<dyn std::error::Error>> {
        rmp::encode::write_map_len(&mut out, fields)?;
        let int = |out: &mut Vec<u8>, key: &str, n: i64| {
            rmp::encode::write_str(out, key)?;
            rmp::encode::write_sint(out, n).map(|_| ())
        };
        int(&mut out, "c", unix_ms::to_ms(record.created))?;
        int(&mut out, "s", unix_ms::to_ms(record.last_seen))?;
        int(&mut out, "i", unix_ms::to_ms(record.idle_deadline))?;
        if let Some(abs) = record.absolute_deadline {
            int(&mut out, "a", unix_ms::to_ms(abs))?;
        }
        if let Some(lifetime) = record.lifetime {
            int(&mut out, "l", lifetime.to_ms())?;
        }
        if let Some(user) = &record.user {
            rmp::encode::write_str(&mut out, "u")?;
            rmp::encode::write_str(&mut out, user)?;
        }
        rmp::encode::write_str(&mut out, "d")?;
        rmp::encode::write_map_len(
            &mut out,
            u32::try_from(record.data.len()).unwrap_or(u32::MAX),
        )?;
        // Each value's JSON text goes through one buffer, not a `String` per key.
        let mut json = Vec::new();
        for (key, value) in &record.data {
            rmp::encode::write_str(&mut out, key)?;
            json.clear();
            serde_json::to_writer(&mut json, value)?;
            rmp::encode::write_str_len(&mut out, u32::try_from(json.len())?)?;
            out.extend_from_slice(&json);
        }
        Ok(())
    })();
    written.map_err(|e| Error::Corrupt(format!("packing a session: {e}")))?;
    Ok(out)
}

/// A record from its packed form (as [`encode`] or the scripts' `cmsgpack` wrote it).
pub(crate) fn decode(packed: &[u8]) -> Result<Record> {
    if packed.len() < VERSION_DIGITS {
        return Err(corrupt("truncated"));
    }
    let (digits, mut rest) = packed.split_at(VERSION_DIGITS);
    let version = std::str::from_utf8(digits)
        .ok()
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<u64>().ok())
        .ok_or_else(|| corrupt("the version is not a number"))?;
    let (mut created, mut seen, mut idle) = (None, None, None);
    let mut record = Record::new(
        OffsetDateTime::UNIX_EPOCH,
        &tether_core::Expiry::new(Duration::ZERO),
    );
    let fields = map_len(&mut rest)?;
    for _ in 0..fields {
        match str_of(&mut rest)? {
            "c" => created = Some(int_of(&mut rest)?),
            "s" => seen = Some(int_of(&mut rest)?),
            "i" => idle = Some(int_of(&mut rest)?),
            "a" => record.absolute_deadline = Some(unix_ms::from_ms(int_of(&mut rest)?)),
            "l" => record.lifetime = tether_core::Lifetime::from_ms(int_of(&mut rest)?),
            "u" => record.user = Some(str_of(&mut rest)?.to_owned()),
            "d" => {
                for _ in 0..map_len(&mut rest)? {
                    let key = str_of(&mut rest)?.to_owned();
                    let json = str_of(&mut rest)?;
                    let value = serde_json::from_str(json).map_err(|e| corrupt(&e.to_string()))?;
                    record.data.insert(key, value);
                }
            }
            // A field a newer version added: skipped (its value is a number or text).
            _ if matches!(rest.first(), Some(0xa0..=0xbf | 0xd9..=0xdb)) => {
                str_of(&mut rest)?;
            }
            _ => {
                int_of(&mut rest)?;
            }
        }
    }
    let (Some(created), Some(seen), Some(idle)) = (created, seen, idle) else {
        return Err(corrupt("missing times"));
    };
    record.version = version;
    record.created = unix_ms::from_ms(created);
    record.last_seen = unix_ms::from_ms(seen);
    record.idle_deadline = unix_ms::from_ms(idle);
    Ok(record)
}

/// A map's length; an empty array counts as an empty map (Lua's `cmsgpack` packs an
/// empty table as one).
fn map_len(rest: &mut &[u8]) -> Result<u32> {
    let marker = rmp::decode::read_marker(rest).map_err(|_| corrupt("truncated"))?;
    let mut wide = |n: usize| -> Result<u32> {
        if rest.len() < n {
            return Err(corrupt("truncated"));
        }
        let (len, tail) = rest.split_at(n);
        *rest = tail;
        Ok(len.iter().fold(0, |acc, b| (acc << 8) | u32::from(*b)))
    };
    match marker {
        Marker::FixMap(n) => Ok(u32::from(n)),
        Marker::Map16 => wide(2),
        Marker::Map32 => wide(4),
        Marker::FixArray(0) => Ok(0),
        _ => Err(corrupt("a map was expected")),
    }
}

fn str_of<'a>(rest: &mut &'a [u8]) -> Result<&'a str> {
    let n = rmp::decode::read_str_len(rest).map_err(|_| corrupt("a string was expected"))?;
    let n = usize::try_from(n).map_err(|_| corrupt("a string is too long"))?;
    if rest.len() < n {
        return Err(corrupt("truncated"));
    }
    let (text, tail) = rest.split_at(n);
    *rest = tail;
    std::str::from_utf8(text).map_err(|_| corrupt("a string is not UTF-8"))
}

/// An integer; Lua keeps numbers as doubles, and `cmsgpack` packs one that is not
/// integral as a float, so a whole float is accepted too.
fn int_of(rest: &mut &[u8]) -> Result<i64> {
    if rest.first() == Some(&0xcb) {
        let n = rmp::decode::read_f64(rest).map_err(|_| corrupt("truncated"))?;
        #[allow(clippy::cast_possible_truncation)]
        return (n.fract() == 0.0 && n.abs() < 9.0e15)
            .then_some(n as i64)
            .ok_or_else(|| corrupt("a number is not whole"));
    }
    rmp::decode::read_int(rest).map_err(|_| corrupt("a number was expected"))
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt(format!("Redis session: {what}"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tether_core::{Expiry, Lifetime};

    fn record(user: Option<String>, data: Vec<(String, i64)>, lifetime: Option<i64>) -> Record {
        let now = unix_ms::from_ms(unix_ms::to_ms(OffsetDateTime::now_utc()));
        let mut record = Record::new(now, &Expiry::default());
        record.user = user;
        record.lifetime = lifetime.and_then(Lifetime::from_ms);
        record.version = 3;
        for (k, v) in data {
            record
                .data
                .insert(k, serde_json::json!({ "n": v, "s": [v.to_string()] }));
        }
        record
    }

    proptest! {
        #[test]
        fn packed_records_read_back_as_written(
            user in proptest::option::of(".{0,40}"),
            data in proptest::collection::vec((".{0,20}", any::<i64>()), 0..20),
            lifetime in proptest::option::of(-1_000_000_000i64..1_000_000_000),
        ) {
            let record = record(user, data, lifetime);
            let back = decode(&encode(&record).unwrap()).unwrap();
            prop_assert_eq!(back, record);
        }

        #[test]
        fn a_version_leads_as_sixteen_decimal_digits(version in 0..10_000_000_000_000_000_u64) {
            let digits = version_prefix(version);
            let expected = format!("{version:016}");
            prop_assert_eq!(&digits[..], expected.as_bytes());
            let mut record = record(None, vec![], None);
            record.version = version;
            prop_assert_eq!(decode(&encode(&record).unwrap()).unwrap().version, version);
        }

        #[test]
        fn arbitrary_bytes_are_an_error_or_a_record_never_a_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let _ = decode(&bytes);
        }

        #[test]
        fn a_truncated_record_is_an_error(cut in 0usize..60) {
            let packed = encode(&record(Some("alice".into()), vec![("n".into(), 1)], None)).unwrap();
            let cut = cut.min(packed.len() - 1);
            prop_assert!(decode(&packed[..cut]).is_err());
        }
    }

    #[test]
    fn an_empty_array_is_an_empty_data_map() {
        // Lua's cmsgpack packs an empty table as an empty array.
        let mut packed = encode(&record(None, vec![], None)).unwrap();
        assert!(packed.starts_with(b"0000000000000003"), "the version leads");
        assert_eq!(packed.pop(), Some(0x80), "an empty map ends the record");
        packed.push(0x90);
        assert!(decode(&packed).unwrap().data.is_empty());
    }
}
