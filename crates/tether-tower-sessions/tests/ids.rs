//! A cookie set by tower-sessions names the same session under tether: both write an
//! id as its 16 bytes in URL-safe base64, and the adapter maps one to the other.

use proptest::prelude::*;
use tower_sessions_014::session::Id as Id14;
use tower_sessions_015::session::Id as Id15;

proptest! {
    #[test]
    fn tower_sessions_ids_read_as_the_same_tether_ids(raw in any::<i128>()) {
        let text = Id15(raw).to_string();
        prop_assert_eq!(&Id14(raw).to_string(), &text);
        let id = tether::Id::parse(&text).expect("a tower-sessions id parses as a tether id");
        prop_assert_eq!(id.to_string(), text);
        prop_assert_eq!(i128::from_le_bytes(*id.as_bytes()), raw);
    }

    #[test]
    fn tether_ids_read_as_the_same_tower_sessions_ids(bytes in any::<[u8; 16]>()) {
        let id = tether::Id::from_bytes(bytes);
        let parsed: Id15 = id.to_string().parse().expect("a tether id parses in tower-sessions");
        prop_assert_eq!(parsed.0, i128::from_le_bytes(bytes));
    }
}
