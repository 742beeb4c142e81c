//! Text that Postgres can hold: it refuses the NUL character in `TEXT` and in `jsonb`
//! strings (`\u0000`), and a session may hold any string.
//!
//! A string with neither a backslash nor a NUL is kept as it is; any other string is
//! kept as the inside of its JSON string literal (`a\u0000b`, `back\\slash`). A kept
//! string has a backslash exactly when it was escaped, so the mapping is one-to-one
//! and ordinary keys, values and user names read naturally in SQL.

use std::borrow::Cow;

use serde_json::{Map, Value};
use tether_core::Result;

use crate::codec::corrupt;

/// `s` as Postgres keeps it.
///
/// ```
/// use tether_sql::escape::{escape, unescape};
/// assert_eq!(escape("cart"), "cart");
/// assert_eq!(escape("a\0b"), r"a\u0000b");
/// assert_eq!(unescape(&escape("a\\u0000b")).unwrap(), "a\\u0000b");
/// ```
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['\\', '\0']) {
        return Cow::Borrowed(s);
    }
    let quoted = Value::String(s.to_owned()).to_string();
    Cow::Owned(quoted[1..quoted.len() - 1].to_owned())
}

/// A kept string read back.
///
/// # Errors
/// [`tether_core::Error::Corrupt`] when an escaped string is not a valid JSON string's
/// inside.
pub fn unescape(s: &str) -> Result<String> {
    if !s.contains('\\') {
        return Ok(s.to_owned());
    }
    serde_json::from_str(&format!("\"{s}\"")).map_err(|e| corrupt(&e))
}

/// `value` with every string in it, keys included, as Postgres keeps it.
pub fn escape_value(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(escape(s).into_owned()),
        Value::Array(items) => Value::Array(items.iter().map(escape_value).collect()),
        Value::Object(map) => Value::Object(escape_map(map)),
        other => other.clone(),
    }
}

/// A map's keys and values as Postgres keeps them.
pub fn escape_map(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .map(|(k, v)| (escape(k).into_owned(), escape_value(v)))
        .collect()
}

/// `map` as JSON text Postgres can hold. When its plain JSON text has no backslash, no
/// string in it holds a NUL or a backslash (JSON escapes both, with a backslash), so
/// that text is kept as it is, with no copy of the map.
///
/// ```
/// use serde_json::json;
/// use tether_sql::escape::postgres_json;
/// let plain = json!({"k": "v"});
/// assert_eq!(postgres_json(plain.as_object().unwrap()).unwrap(), r#"{"k":"v"}"#);
/// let nul = json!({"k": "a\u{0}b"});
/// assert_eq!(postgres_json(nul.as_object().unwrap()).unwrap(), r#"{"k":"a\\u0000b"}"#);
/// ```
///
/// # Errors
/// Never for a map of JSON values; serde_json's `Result` is passed on as
/// [`tether_core::Error::Corrupt`].
pub fn postgres_json(map: &Map<String, Value>) -> Result<String> {
    let text = serde_json::to_string(map).map_err(|e| corrupt(&e))?;
    if text.contains('\\') {
        serde_json::to_string(&escape_map(map)).map_err(|e| corrupt(&e))
    } else {
        Ok(text)
    }
}

/// A map read back from the JSON text Postgres kept (see [`postgres_json`]): a text
/// with no backslash holds no escaped string and is taken as it is.
///
/// # Errors
/// As [`unescape`].
pub fn read_postgres_map(text: &str, map: Map<String, Value>) -> Result<Map<String, Value>> {
    if text.contains('\\') {
        unescape_map(map)
    } else {
        Ok(map)
    }
}

/// A kept value read back.
///
/// # Errors
/// As [`unescape`].
pub fn unescape_value(value: Value) -> Result<Value> {
    Ok(match value {
        Value::String(s) => Value::String(unescape(&s)?),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(unescape_value)
                .collect::<Result<_>>()?,
        ),
        Value::Object(map) => Value::Object(unescape_map(map)?),
        other => other,
    })
}

/// A kept map read back.
///
/// # Errors
/// As [`unescape`].
pub fn unescape_map(map: Map<String, Value>) -> Result<Map<String, Value>> {
    map.into_iter()
        .map(|(k, v)| Ok((unescape(&k)?, unescape_value(v)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn escaping_reads_back_and_never_holds_nul(s in "(\\PC|\\\\|\u{0}|\"|u|0)*") {
            let kept = escape(&s);
            prop_assert!(!kept.contains('\0'));
            prop_assert_eq!(unescape(&kept).unwrap(), s);
        }

        #[test]
        fn escaping_is_one_to_one(a in "(a|\\\\|\u{0}|u|0)*", b in "(a|\\\\|\u{0}|u|0)*") {
            prop_assume!(a != b);
            prop_assert_ne!(escape(&a), escape(&b));
        }
    }
}
