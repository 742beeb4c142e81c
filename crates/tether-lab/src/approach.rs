//! What the lab compares: the approaches (a store behind a routing strategy) and the
//! scenarios they go through.

use serde::Serialize;
use tether::StoreKind;

/// One way to keep a session across instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Approach {
    /// Synchronisation: every instance holds every session (round-robin).
    Replicated,
    /// Client storage: the session sealed in the cookie (round-robin).
    Cookie,
    /// Client storage: the session as a signed JWT in the cookie (round-robin).
    Jwt,
    /// Sticky by client address (L4), sessions in each instance's memory.
    MemoryIpHash,
    /// Sticky by routing cookie on a consistent-hash ring with bounded load (L7).
    MemoryCookieHash,
    /// Sticky by routing cookie modulo the pool size, for contrast.
    MemoryModuloHash,
    /// Central store: a shared directory (round-robin).
    File,
    /// Central store: Redis (round-robin).
    Redis,
    /// Central store: Redis, each instance with a near cache kept fresh by client
    /// tracking (round-robin).
    RedisNearCache,
    /// As `RedisNearCache`, its reads served at once (`near_cache=pushed`).
    RedisNearCachePushed,
    /// Central store: MySQL / MariaDB (round-robin).
    Mysql,
    /// Central store: PostgreSQL (round-robin).
    Postgres,
    /// Central store: PostgreSQL, each instance with a near cache kept fresh by
    /// `LISTEN`/`NOTIFY` (round-robin).
    PostgresNearCache,
    /// As `PostgresNearCache`, its reads served at once (`near_cache=pushed`).
    PostgresNearCachePushed,
    /// Central store: one SQLite file the instances on this machine share (round-robin).
    Sqlite,
}

impl Approach {
    pub(crate) const ALL: [Self; 15] = [
        Self::Replicated,
        Self::Cookie,
        Self::Jwt,
        Self::MemoryIpHash,
        Self::MemoryCookieHash,
        Self::MemoryModuloHash,
        Self::File,
        Self::Redis,
        Self::RedisNearCache,
        Self::RedisNearCachePushed,
        Self::Mysql,
        Self::Postgres,
        Self::PostgresNearCache,
        Self::PostgresNearCachePushed,
        Self::Sqlite,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Replicated => "replicated",
            Self::Cookie => "cookie",
            Self::Jwt => "jwt",
            Self::MemoryIpHash => "memory + ip-hash",
            Self::MemoryCookieHash => "memory + cookie-hash",
            Self::MemoryModuloHash => "memory + modulo-hash",
            Self::File => "file",
            Self::Redis => "redis",
            Self::RedisNearCache => "redis + near cache",
            Self::RedisNearCachePushed => "redis + pushed near cache",
            Self::Mysql => "mysql",
            Self::Postgres => "postgres",
            Self::PostgresNearCache => "postgres + near cache",
            Self::PostgresNearCachePushed => "postgres + pushed near cache",
            Self::Sqlite => "sqlite",
        }
    }

    /// The store (`login serve --store`).
    pub(crate) fn store(self) -> StoreKind {
        match self {
            Self::Replicated => StoreKind::Replicated,
            Self::Cookie => StoreKind::Cookie,
            Self::Jwt => StoreKind::Jwt,
            Self::MemoryIpHash | Self::MemoryCookieHash | Self::MemoryModuloHash => {
                StoreKind::Memory
            }
            Self::File => StoreKind::File,
            Self::Redis | Self::RedisNearCache | Self::RedisNearCachePushed => StoreKind::Redis,
            Self::Mysql => StoreKind::MySql,
            Self::Postgres | Self::PostgresNearCache | Self::PostgresNearCachePushed => {
                StoreKind::Postgres
            }
            Self::Sqlite => StoreKind::Sqlite,
        }
    }

    /// `tether-balancer --strategy`.
    pub(crate) fn strategy(self) -> &'static str {
        match self {
            Self::MemoryIpHash => "ip-hash",
            Self::MemoryCookieHash => "cookie-hash",
            Self::MemoryModuloHash => "modulo-hash",
            _ => "round-robin",
        }
    }

    /// Whether each user sticks to one instance.
    pub(crate) fn sticky(self) -> bool {
        self.strategy() != "round-robin"
    }

    /// Whether sessions live in one instance's memory only.
    pub(crate) fn instance_local(self) -> bool {
        self.store() == StoreKind::Memory
    }

    /// Whether the sessions live in a server the lab can restart.
    pub(crate) fn has_store_server(self) -> bool {
        self.server_approach().is_some()
    }

    /// The approach whose store server this one uses (a near-cache variant shares
    /// its store's).
    pub(crate) fn server_approach(self) -> Option<Self> {
        match self {
            Self::Redis | Self::RedisNearCache | Self::RedisNearCachePushed => Some(Self::Redis),
            Self::Mysql => Some(Self::Mysql),
            Self::Postgres | Self::PostgresNearCache | Self::PostgresNearCachePushed => {
                Some(Self::Postgres)
            }
            _ => None,
        }
    }

    /// The near cache each instance keeps: `near_cache=…` on the store URL.
    pub(crate) fn near_cache_setting(self) -> Option<&'static str> {
        match self {
            Self::RedisNearCache | Self::PostgresNearCache => Some("on"),
            Self::RedisNearCachePushed | Self::PostgresNearCachePushed => Some("pushed"),
            _ => None,
        }
    }

    /// Whether each instance keeps a near cache.
    pub(crate) fn near_cache(self) -> bool {
        self.near_cache_setting().is_some()
    }

    /// The store URL the instances are given, from the server's.
    pub(crate) fn store_url(self, server_url: String) -> String {
        match self.near_cache_setting() {
            Some(setting) => format!("{server_url}?near_cache={setting}"),
            None => server_url,
        }
    }
}

/// What happens during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Scenario {
    /// Users browse; nothing happens.
    Steady,
    /// As steady, with 2 KiB more in every session.
    LargeSession,
    /// One instance is SIGKILLed and started again.
    Kill,
    /// One more instance joins; the balancer is reconfigured live.
    ScaleOut,
    /// Redis, MariaDB or PostgreSQL stops and starts again.
    StoreRestart,
    /// Every instance in turn is stopped gracefully and started again.
    Rolling,
}

impl Scenario {
    pub(crate) const ALL: [Self; 6] = [
        Self::Steady,
        Self::LargeSession,
        Self::Kill,
        Self::ScaleOut,
        Self::StoreRestart,
        Self::Rolling,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Steady => "steady",
            Self::LargeSession => "large session",
            Self::Kill => "instance killed",
            Self::ScaleOut => "scale-out",
            Self::StoreRestart => "store restart",
            Self::Rolling => "rolling restart",
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Steady => {
                "Users log in, then browse with think time (`GET /api/me`, and every fifth \
                 action `POST /api/counter`). Each session holds a 64-byte profile."
            }
            Self::LargeSession => {
                "As steady, but each session holds a 2 KiB profile: what a bigger session \
                 costs on the wire and in memory."
            }
            Self::Kill => {
                "Once every user is logged in, instance i1 is killed with SIGKILL and \
                 started again shortly after."
            }
            Self::ScaleOut => {
                "Once every user is logged in, instance i4 starts and the balancer's pool \
                 goes from 3 to 4 backends live (`PUT /_balancer/backends`)."
            }
            Self::StoreRestart => {
                "Once every user is logged in, the store server (Redis with an fsync'd \
                 append-only file, MariaDB or PostgreSQL) is stopped cleanly and started \
                 again."
            }
            Self::Rolling => {
                "Once every user is logged in, each instance in turn is stopped gracefully \
                 (SIGTERM), started again and waited for, as a deploy does."
            }
        }
    }

    /// The scenarios `--quick` runs for `approach`: the ones the shape checks need.
    /// The rolling restart runs for the replicated store only: it is the one approach
    /// whose outcome there depends on more than where the sessions live (a restarted
    /// instance must catch up before it answers).
    pub(crate) fn in_quick(self, approach: Approach) -> bool {
        if approach.near_cache() {
            // Where a near cache differs from its store: a restart of the server,
            // which drops the invalidation channel (`tether-lab consistency` measures
            // the rest); the fenced one, which is the default.
            return self == Self::StoreRestart && approach.near_cache_setting() == Some("on");
        }
        match self {
            Self::Kill | Self::ScaleOut => true,
            Self::Steady | Self::LargeSession => {
                matches!(approach, Approach::Cookie | Approach::Jwt)
            }
            Self::StoreRestart => approach.has_store_server(),
            Self::Rolling => approach == Approach::Replicated,
        }
    }

    /// Whether the scenario means anything for `approach`.
    pub(crate) fn applies_to(self, approach: Approach) -> bool {
        self != Self::StoreRestart || approach.has_store_server()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_tether_ships_has_an_approach() {
        for kind in StoreKind::ALL {
            assert!(
                Approach::ALL.iter().any(|a| a.store() == *kind),
                "the lab has no approach for the {kind} store: add one to Approach"
            );
        }
    }
}
