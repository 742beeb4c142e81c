//! The stores tether ships, as one list: what configuration names them, the cargo
//! feature each needs, and whether it is compiled in.
//!
//! Adding a store starts here: a new variant makes the compiler point at every match
//! that must learn of it ([`StoreKind::name`], [`StoreKind::feature`], the URL
//! parser, the opener), and the lists built from [`StoreKind::ALL`] (the demo's
//! `--store`, the bench's and the lab's stores) pick it up.

use std::fmt;
use std::str::FromStr;

/// One of the stores tether ships.
///
/// ```
/// use tether::StoreKind;
/// assert_eq!("redis".parse::<StoreKind>(), Ok(StoreKind::Redis));
/// assert_eq!(StoreKind::Redis.feature(), Some("redis"));
/// assert!(StoreKind::ALL.iter().any(|kind| kind.name() == "jwt"));
/// assert!(StoreKind::Memory.is_enabled(), "the memory store needs no feature");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum StoreKind {
    /// In this process ([`MemoryStore`](crate::MemoryStore)); only behind sticky routing.
    Memory,
    /// A shared directory (`tether::file`).
    File,
    /// Redis: standalone, Cluster or behind Sentinel (`tether::redis`).
    Redis,
    /// MySQL or MariaDB (`tether::mysql`).
    MySql,
    /// PostgreSQL (`tether::postgres`).
    Postgres,
    /// One SQLite database file for the processes of one machine (`tether::sqlite`).
    Sqlite,
    /// Encrypted in the client's cookie (`tether::cookie`).
    Cookie,
    /// A signed JWT in the client's cookie (`tether::jwt`).
    Jwt,
    /// Replicated between the instances (`tether::replicated`).
    Replicated,
}

impl StoreKind {
    /// Every store, in this order.
    pub const ALL: &'static [Self] = &[
        Self::Memory,
        Self::File,
        Self::Redis,
        Self::MySql,
        Self::Postgres,
        Self::Sqlite,
        Self::Cookie,
        Self::Jwt,
        Self::Replicated,
    ];

    /// Its place in [`StoreKind::ALL`]: a new variant must be given one here, and a
    /// unit test checks the list holds it there.
    #[cfg(test)]
    const fn position(self) -> usize {
        match self {
            Self::Memory => 0,
            Self::File => 1,
            Self::Redis => 2,
            Self::MySql => 3,
            Self::Postgres => 4,
            Self::Sqlite => 5,
            Self::Cookie => 6,
            Self::Jwt => 7,
            Self::Replicated => 8,
        }
    }

    /// The name configuration uses for it (`--store NAME`, and the URL scheme of
    /// most): `memory`, `file`, `redis`, `mysql`, `postgres`, `sqlite`, `cookie`,
    /// `jwt`, `replicated`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::File => "file",
            Self::Redis => "redis",
            Self::MySql => "mysql",
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
            Self::Cookie => "cookie",
            Self::Jwt => "jwt",
            Self::Replicated => "replicated",
        }
    }

    /// The cargo feature of the `tether` crate that compiles it in (`None`: always
    /// there).
    pub const fn feature(self) -> Option<&'static str> {
        match self {
            Self::Memory => None,
            Self::File => Some("file"),
            Self::Redis => Some("redis"),
            Self::MySql => Some("mysql"),
            Self::Postgres => Some("postgres"),
            Self::Sqlite => Some("sqlite"),
            Self::Cookie => Some("cookie"),
            Self::Jwt => Some("jwt"),
            Self::Replicated => Some("replicated"),
        }
    }

    /// Whether this build of tether has it (its feature is on).
    pub const fn is_enabled(self) -> bool {
        match self {
            Self::Memory => true,
            Self::File => cfg!(feature = "file"),
            Self::Redis => cfg!(feature = "redis"),
            Self::MySql => cfg!(feature = "mysql"),
            Self::Postgres => cfg!(feature = "postgres"),
            Self::Sqlite => cfg!(feature = "sqlite"),
            Self::Cookie => cfg!(feature = "cookie"),
            Self::Jwt => cfg!(feature = "jwt"),
            Self::Replicated => cfg!(feature = "replicated"),
        }
    }

    /// Whether the session lives in the client (the cookie and JWT stores), so
    /// nothing is kept on the server.
    pub const fn is_client_side(self) -> bool {
        match self {
            Self::Cookie | Self::Jwt => true,
            Self::Memory
            | Self::File
            | Self::Redis
            | Self::MySql
            | Self::Postgres
            | Self::Sqlite
            | Self::Replicated => false,
        }
    }

    /// Whether the store can keep a near cache ([`StoreConfig::with_near_cache`]):
    /// its server announces every change (Redis client tracking, PostgreSQL
    /// `NOTIFY`). MySQL/MariaDB, SQLite and the file store have no such channel; the
    /// memory and replicated stores read from memory already; the client-side stores
    /// keep nothing on a server.
    ///
    /// ```
    /// assert!(tether::StoreKind::Redis.has_near_cache());
    /// assert!(!tether::StoreKind::MySql.has_near_cache());
    /// ```
    ///
    /// [`StoreConfig::with_near_cache`]: crate::StoreConfig::with_near_cache
    pub const fn has_near_cache(self) -> bool {
        match self {
            Self::Redis | Self::Postgres => true,
            Self::Memory
            | Self::File
            | Self::MySql
            | Self::Sqlite
            | Self::Cookie
            | Self::Jwt
            | Self::Replicated => false,
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of [`StoreKind::ALL`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown store `{0}` (known: memory, file, redis, mysql, postgres, sqlite, cookie, jwt, replicated)"
)]
pub struct UnknownStoreKind(String);

impl FromStr for StoreKind {
    type Err = UnknownStoreKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| UnknownStoreKind(s.chars().take(40).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_holds_every_kind_once_in_place() {
        for (i, kind) in StoreKind::ALL.iter().enumerate() {
            assert_eq!(
                kind.position(),
                i,
                "{kind} is out of place in StoreKind::ALL"
            );
            assert_eq!(kind.name().parse::<StoreKind>(), Ok(*kind));
        }
        let highest = StoreKind::ALL.iter().map(|k| k.position()).max();
        assert_eq!(highest, Some(StoreKind::ALL.len() - 1));
    }

    #[test]
    fn the_unknown_name_error_lists_every_kind() {
        let message = "nope".parse::<StoreKind>().unwrap_err().to_string();
        for kind in StoreKind::ALL {
            assert!(message.contains(kind.name()), "{message} omits {kind}");
        }
    }
}
