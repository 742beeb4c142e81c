//! Reading a store URL: the scheme names the store, the rest is checked part by part
//! (host, port, path, query) so a mistake is reported by the part it is in. Nothing
//! here echoes what it read: a password can sit where a host was expected.

use std::net::Ipv6Addr;
use std::path::PathBuf;

use crate::StoreKind;

/// What the URL names.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Memory,
    File(PathBuf),
    Redis(String),
    RedisCluster(Vec<String>),
    RedisSentinel {
        sentinels: Vec<String>,
        master_name: String,
        master: Option<String>,
    },
    MySql(String),
    Postgres(String),
    Sqlite(String),
    Cookie,
    Jwt,
    Replicated,
}

/// Key material for the cookie and JWT stores.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Keys {
    Text(String),
    File(PathBuf),
}

/// Why a store URL was refused. It names the part at fault, never a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreConfigError {
    /// The text has no `scheme:` at its start.
    #[error(
        "a store URL starts with its scheme: memory:, file:///DIR, redis://…, redis+sentinel://…, mysql://…, postgres://…, sqlite://PATH, cookie:, jwt: or replicated:"
    )]
    NoScheme,
    /// The scheme is none tether knows.
    #[error(
        "unknown store URL scheme `{scheme}` (known: memory, file, redis, rediss, redis+sentinel, rediss+sentinel, mysql, mariadb, postgres, postgresql, sqlite, cookie, jwt, replicated)"
    )]
    UnknownScheme {
        /// The scheme as written.
        scheme: String,
    },
    /// The scheme's store is not compiled in.
    #[error("`{scheme}:` is the {kind} store: enable tether's `{feature}` cargo feature")]
    FeatureDisabled {
        /// The scheme as written.
        scheme: String,
        /// The store it names.
        kind: StoreKind,
        /// The feature to enable.
        feature: &'static str,
    },
    /// A part of the URL cannot be right.
    #[error("the store URL's {part} is invalid: {reason}")]
    Invalid {
        /// Which part: `host`, `port`, `path`, `master name`, `query`, ….
        part: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The environment variable [`StoreConfig::from_env`](crate::StoreConfig::from_env) reads is not set.
    #[error(
        "the environment variable {var} is not set: give it a store URL, such as redis://127.0.0.1:6379"
    )]
    MissingEnv {
        /// Its name.
        var: String,
    },
}

/// A URL's scheme (lower-cased) and what follows the colon.
fn split_scheme(url: &str) -> Result<(String, &str), StoreConfigError> {
    let (scheme, rest) = url.split_once(':').ok_or(StoreConfigError::NoScheme)?;
    let well_formed = scheme.len() <= 32
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !well_formed {
        return Err(StoreConfigError::NoScheme);
    }
    Ok((scheme.to_ascii_lowercase(), rest))
}

fn invalid(part: &'static str, reason: impl Into<String>) -> StoreConfigError {
    StoreConfigError::Invalid {
        part,
        reason: reason.into(),
    }
}

/// The store a scheme names.
fn kind_of(scheme: &str) -> Option<StoreKind> {
    Some(match scheme {
        "memory" => StoreKind::Memory,
        "file" => StoreKind::File,
        "redis" | "rediss" | "redis+sentinel" | "rediss+sentinel" => StoreKind::Redis,
        "mysql" | "mariadb" => StoreKind::MySql,
        "postgres" | "postgresql" => StoreKind::Postgres,
        "sqlite" => StoreKind::Sqlite,
        "cookie" => StoreKind::Cookie,
        "jwt" => StoreKind::Jwt,
        "replicated" => StoreKind::Replicated,
        _ => return None,
    })
}

/// Parses a store URL into what it names, and the key file a client-side store's
/// URL may give.
pub(crate) fn parse(url: &str) -> Result<(Target, Option<Keys>), StoreConfigError> {
    let (scheme, rest) = split_scheme(url)?;
    let kind = kind_of(&scheme).ok_or_else(|| StoreConfigError::UnknownScheme {
        scheme: scheme.clone(),
    })?;
    if let Some(feature) = kind.feature()
        && !kind.is_enabled()
    {
        return Err(StoreConfigError::FeatureDisabled {
            scheme,
            kind,
            feature,
        });
    }
    let target = match kind {
        StoreKind::Memory => nothing_after(&scheme, rest).map(|()| Target::Memory)?,
        StoreKind::Replicated => nothing_after(&scheme, rest).map(|()| Target::Replicated)?,
        StoreKind::Cookie => return key_query(rest).map(|keys| (Target::Cookie, keys)),
        StoreKind::Jwt => return key_query(rest).map(|keys| (Target::Jwt, keys)),
        StoreKind::File => Target::File(file_path(rest)?),
        StoreKind::Redis => redis(&scheme, rest)?,
        StoreKind::MySql => {
            authority(rest, Host::Optional)?;
            Target::MySql(format!("mysql:{rest}"))
        }
        StoreKind::Postgres => {
            authority(rest, Host::Optional)?;
            Target::Postgres(format!("{scheme}:{rest}"))
        }
        StoreKind::Sqlite => {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(invalid("path", "sqlite:// needs the database file's path"));
            }
            Target::Sqlite(format!("sqlite:{rest}"))
        }
    };
    Ok((target, None))
}

/// Takes `near_cache=on|fenced|pushed|off` (`on`, `true` and `1` are `fenced`;
/// `false` and `0` are `off`) out of a URL's query, giving the URL without it (the
/// rest of the query is the driver's) and the near cache it asked for.
pub(crate) fn take_near_cache(
    url: &str,
) -> Result<(String, Option<tether_core::Freshness>), StoreConfigError> {
    use tether_core::Freshness;
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let mut near = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("near_cache", value)) => {
                near = match value {
                    "on" | "true" | "1" | "fenced" => Some(Freshness::Fenced),
                    "pushed" => Some(Freshness::Pushed),
                    "off" | "false" | "0" => None,
                    _ => {
                        return Err(invalid(
                            "query",
                            "near_cache takes on (fenced), pushed or off",
                        ));
                    }
                };
            }
            _ if pair == "near_cache" => near = Some(Freshness::Fenced),
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, near))
}

/// `memory:` and `replicated:` take nothing (an empty `//` is allowed).
fn nothing_after(scheme: &str, rest: &str) -> Result<(), StoreConfigError> {
    if rest.is_empty() || rest == "//" {
        Ok(())
    } else {
        Err(invalid(
            "path",
            format!("{scheme}: takes nothing after the scheme; its settings are the builder's"),
        ))
    }
}

/// `cookie:` / `jwt:`, optionally `?key_file=PATH`.
fn key_query(rest: &str) -> Result<Option<Keys>, StoreConfigError> {
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    if rest.is_empty() {
        return Ok(None);
    }
    let Some(query) = rest.strip_prefix('?') else {
        return Err(invalid(
            "path",
            "a client-side store takes only `?key_file=PATH`",
        ));
    };
    match query.split_once('=') {
        Some(("key_file", path)) if !path.is_empty() && !path.contains('&') => {
            Ok(Some(Keys::File(PathBuf::from(path))))
        }
        _ => Err(invalid("query", "the only setting is key_file=PATH")),
    }
}

/// `file:///DIR` (or `file://localhost/DIR`), or `file:DIR` for a relative one.
fn file_path(rest: &str) -> Result<PathBuf, StoreConfigError> {
    let path = match rest.strip_prefix("//") {
        Some(after) => {
            let slash = after.find('/').unwrap_or(after.len());
            if !matches!(&after[..slash], "" | "localhost") {
                return Err(invalid(
                    "host",
                    "a file URL names a directory of this machine: file:///DIR",
                ));
            }
            &after[slash..]
        }
        None => rest,
    };
    if path.is_empty() {
        return Err(invalid(
            "path",
            "file: needs the directory, as file:///var/lib/app/sessions",
        ));
    }
    Ok(PathBuf::from(path))
}

/// Whether a URL must name a host.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Host {
    Required,
    Optional,
}

/// The parts of `//[USERINFO@]HOSTS[/PATH][?QUERY]`, the hosts checked.
struct Authority<'u> {
    userinfo: Option<&'u str>,
    hosts: Vec<&'u str>,
    /// From the first `/`, `?` or `#` after the hosts.
    tail: &'u str,
}

fn authority(rest: &str, host: Host) -> Result<Authority<'_>, StoreConfigError> {
    let Some(after) = rest.strip_prefix("//") else {
        return Err(invalid(
            "host",
            "the URL needs `//` and a host after the scheme",
        ));
    };
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, tail) = after.split_at(end);
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let hosts: Vec<&str> = if hosts.is_empty() {
        Vec::new()
    } else {
        hosts.split(',').collect()
    };
    if hosts.is_empty() && host == Host::Required {
        return Err(invalid("host", "missing"));
    }
    for one in &hosts {
        check_host(one)?;
    }
    Ok(Authority {
        userinfo,
        hosts,
        tail,
    })
}

/// `NAME[:PORT]` or `[IPV6][:PORT]`. The reasons never quote the text.
fn check_host(host: &str) -> Result<(), StoreConfigError> {
    let (name, port) = if let Some(v6) = host.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| invalid("host", "an IPv6 address misses its closing `]`"))?;
        addr.parse::<Ipv6Addr>()
            .map_err(|_| invalid("host", "not an IPv6 address inside `[…]`"))?;
        match after {
            "" => (None, None),
            _ => (
                None,
                Some(after.strip_prefix(':').ok_or_else(|| {
                    invalid("host", "an IPv6 address is followed by `:PORT` or nothing")
                })?),
            ),
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (Some(name), Some(port)),
            None => (Some(host), None),
        }
    };
    if let Some(name) = name {
        let fine = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !fine {
            return Err(invalid(
                "host",
                "a host is a name or an address (a password with `/`, `@`, `:` or `,` must be percent-encoded)",
            ));
        }
    }
    if let Some(port) = port
        && !matches!(port.parse::<u16>(), Ok(1..))
    {
        return Err(invalid("port", "a port is a number from 1 to 65535"));
    }
    Ok(())
}

/// `redis[s]://…` (one node, or several for Cluster) or `redis[s]+sentinel://…`.
fn redis(scheme: &str, rest: &str) -> Result<Target, StoreConfigError> {
    if let Some(base) = scheme.strip_suffix("+sentinel") {
        return sentinel(base, rest);
    }
    if !rest.contains(',') {
        authority(rest, Host::Required)?;
        return Ok(Target::Redis(format!("{scheme}:{rest}")));
    }
    // A Cluster's nodes: `redis://a:1,b:2` or `redis://a:1,redis://b:2`.
    let mut nodes = Vec::new();
    for (i, part) in rest.split(',').enumerate() {
        let node = if i == 0 {
            format!("{scheme}:{part}")
        } else if let Ok((other, tail)) = split_scheme(part).map(|(s, t)| (s, t.to_owned()))
            && tail.starts_with("//")
        {
            if other != scheme {
                return Err(invalid(
                    "host",
                    "a Cluster's nodes all use redis:// or all rediss://",
                ));
            }
            format!("{scheme}:{tail}")
        } else {
            format!("{scheme}://{part}")
        };
        let (_, node_rest) = split_scheme(&node)?;
        authority(node_rest, Host::Required)?;
        nodes.push(node);
    }
    Ok(Target::RedisCluster(nodes))
}

/// `redis[s]+sentinel://[USERINFO@]S1[:PORT],S2…/MASTER[/DB]`: the sentinels, the
/// master's name, and the master's URL when it needs a password, a database or TLS.
fn sentinel(base: &str, rest: &str) -> Result<Target, StoreConfigError> {
    let parsed = authority(rest, Host::Required)?;
    let path = parsed.tail.split(['?', '#']).next().unwrap_or_default();
    let mut segments = path.trim_start_matches('/').split('/');
    let master_name = segments.next().unwrap_or_default();
    if master_name.is_empty()
        || !master_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(invalid(
            "master name",
            "give the master's name as the path: redis+sentinel://HOST:26379/NAME",
        ));
    }
    let db = match segments.next() {
        None | Some("") => None,
        Some(db) if db.parse::<u32>().is_ok() => Some(db),
        Some(_) => {
            return Err(invalid(
                "path",
                "after the master's name comes a database number",
            ));
        }
    };
    if segments.next().is_some() {
        return Err(invalid("path", "the path is /MASTER or /MASTER/DB"));
    }
    let sentinels = parsed
        .hosts
        .iter()
        .map(|host| {
            let port = if host.ends_with(']') || !host.contains(':') {
                ":26379"
            } else {
                ""
            };
            format!("{base}://{host}{port}")
        })
        .collect();
    let master = (parsed.userinfo.is_some() || db.is_some() || base == "rediss").then(|| {
        let userinfo = parsed.userinfo.map(|u| format!("{u}@")).unwrap_or_default();
        format!("{base}://{userinfo}master/{}", db.unwrap_or("0"))
    });
    Ok(Target::RedisSentinel {
        sentinels,
        master_name: master_name.to_owned(),
        master,
    })
}

/// `url` with any password replaced by `***`, for `Debug` and logs.
pub(crate) fn redact(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let after = &url[start..];
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let Some(at) = after[..end].rfind('@') else {
        return url.to_owned();
    };
    let user = after[..at].split(':').next().unwrap_or_default();
    format!("{}{user}:***{}", &url[..start], &after[at..])
}

// The URL tests open every kind of store: they need every store's feature
// (`cargo test --workspace` or `cargo test -p tether-sessions --all-features`).
#[cfg(all(
    test,
    feature = "file",
    feature = "redis",
    feature = "mysql",
    feature = "postgres",
    feature = "sqlite",
    feature = "cookie",
    feature = "jwt",
    feature = "replicated"
))]
mod tests;

#[cfg(all(
    test,
    not(all(
        feature = "file",
        feature = "redis",
        feature = "mysql",
        feature = "postgres",
        feature = "sqlite",
        feature = "cookie",
        feature = "jwt",
        feature = "replicated"
    ))
))]
#[test]
fn the_store_url_tests_need_every_store_feature() {
    panic!(
        "the store URL tests were left out: run them with `cargo test -p tether-sessions --all-features`"
    );
}
