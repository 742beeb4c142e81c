//! tower-sessions' ids and data in tether's terms, and back.

use std::collections::HashMap;

use serde_json::{Map, Value};
use tether_core::Id;

/// tower-sessions keeps an id as an `i128` and writes it as its 16 little-endian bytes
/// in URL-safe base64; tether keeps the 16 bytes and writes them the same way.
pub(crate) fn to_tether(id: i128) -> Id {
    Id::from_bytes(id.to_le_bytes())
}

/// The inverse of [`to_tether`].
pub(crate) fn from_tether(id: &Id) -> i128 {
    i128::from_le_bytes(*id.as_bytes())
}

/// tower-sessions' data map as tether's.
pub(crate) fn to_map(data: &HashMap<String, Value>) -> Map<String, Value> {
    data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// tether's data map as tower-sessions'.
pub(crate) fn from_map(data: Map<String, Value>) -> HashMap<String, Value> {
    data.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for id in [0, 1, -1, i128::MAX, i128::MIN, 0x0123_4567_89ab_cdef] {
            assert_eq!(from_tether(&to_tether(id)), id);
        }
    }
}
