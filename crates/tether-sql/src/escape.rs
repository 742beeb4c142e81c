//! Text that Postgres can hold: it refuses the NUL character in `TEXT` and in `jsonb`
//! strings (`\u0000`), and a session may hold any string.
//!
//! A string with neither a backslash nor a NUL is kept as it is; any other string is
//! kept as the inside of its JSON string literal (`a\u0000b`, `back\\slash`). A kept
//! string has a backslash exactly when it was escaped, so the mapping is one-to-one
//! and ordinary keys and user names read naturally in SQL. Values are kept as their
//! JSON text ([`postgres_data`]).

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

/// A session's data as Postgres keeps it: a `jsonb` object whose keys are [`escape`]d
/// and whose values are each value's JSON text, as a string. `jsonb` keeps strings
/// exactly, but not numbers (it prints `1e16` as `10000000000000000`, a float that
/// became an integer), and refuses NUL in a string, which a value's JSON text never
/// holds (it writes `\u0000`).
///
/// ```
/// use serde_json::json;
/// use tether_sql::escape::{postgres_data, read_postgres_data};
/// let data = json!({"n": 1e16, "a\u{0}b": "x"});
/// let kept = postgres_data(data.as_object().unwrap()).unwrap();
/// assert!(!kept.contains(r#""n":1"#)); // the number's text, kept as a string
/// assert!(kept.contains(r#""a\\u0000b":"\"x\"""#)); // no NUL in the key
/// assert_eq!(read_postgres_data(&kept).unwrap(), *data.as_object().unwrap());
/// ```
///
/// # Errors
/// Never for a map of JSON values; serde_json's `Result` is passed on as
/// [`tether_core::Error::Corrupt`].
pub fn postgres_data(map: &Map<String, Value>) -> Result<String> {
    let kept = map
        .iter()
        .map(|(k, v)| {
            Ok((
                escape(k).into_owned(),
                Value::String(serde_json::to_string(v)?),
            ))
        })
        .collect::<std::result::Result<Map<String, Value>, serde_json::Error>>()
        .map_err(|e| corrupt(&e))?;
    serde_json::to_string(&kept).map_err(|e| corrupt(&e))
}

/// The data [`postgres_data`] kept, read back from `data::text`.
///
/// # Errors
/// [`tether_core::Error::Corrupt`] when the text is not an object of JSON texts.
pub fn read_postgres_data(text: &str) -> Result<Map<String, Value>> {
    let kept: std::collections::BTreeMap<String, String> =
        serde_json::from_str(text).map_err(|e| corrupt(&e))?;
    kept.into_iter()
        .map(|(k, v)| {
            let value = serde_json::from_str(&v).map_err(|e| corrupt(&e))?;
            Ok((unescape(&k)?, value))
        })
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
