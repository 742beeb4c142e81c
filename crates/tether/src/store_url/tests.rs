use proptest::prelude::*;

use super::*;
use crate::StoreConfig;

fn target(url: &str) -> Target {
    parse(url).unwrap_or_else(|e| panic!("{url}: {e}")).0
}

fn error(url: &str) -> StoreConfigError {
    match parse(url) {
        Ok(_) => panic!("{url} was accepted"),
        Err(e) => e,
    }
}

#[test]
fn schemes_name_their_stores() {
    assert!(matches!(target("memory:"), Target::Memory));
    assert!(matches!(target("MEMORY://"), Target::Memory));
    assert!(matches!(target("replicated:"), Target::Replicated));
    assert!(matches!(parse("cookie:"), Ok((Target::Cookie, None))));
    match parse("jwt:?key_file=/etc/app/jwt.keys") {
        Ok((Target::Jwt, Some(Keys::File(path)))) => {
            assert_eq!(path, PathBuf::from("/etc/app/jwt.keys"));
        }
        _ => panic!("jwt with a key file"),
    }
    for (url, dir) in [
        ("file:///var/lib/app", "/var/lib/app"),
        ("file://localhost/srv/s", "/srv/s"),
        ("file:sessions", "sessions"),
    ] {
        match target(url) {
            Target::File(path) => assert_eq!(path, PathBuf::from(dir), "{url}"),
            _ => panic!("{url} is not the file store"),
        }
    }
}

#[test]
fn redis_urls_pick_standalone_cluster_or_sentinel() {
    assert!(
        matches!(target("redis://127.0.0.1:6379/0"), Target::Redis(u) if u == "redis://127.0.0.1:6379/0")
    );
    assert!(matches!(
        target("rediss://:pw@cache.internal"),
        Target::Redis(_)
    ));
    let Target::RedisCluster(nodes) = target("redis://a:7000,b:7001,redis://c:7002") else {
        panic!("a comma list is a Cluster");
    };
    assert_eq!(
        nodes,
        ["redis://a:7000", "redis://b:7001", "redis://c:7002"]
    );
    let Target::RedisSentinel {
        sentinels,
        master_name,
        master,
    } = target("redis+sentinel://:pw@s1,s2:26380,[::1]/sessions/2")
    else {
        panic!("redis+sentinel is Sentinel");
    };
    assert_eq!(
        sentinels,
        [
            "redis://s1:26379",
            "redis://s2:26380",
            "redis://[::1]:26379"
        ]
    );
    assert_eq!(master_name, "sessions");
    assert_eq!(master.as_deref(), Some("redis://:pw@master/2"));
    let Target::RedisSentinel { master, .. } = target("redis+sentinel://s1/sessions") else {
        panic!("sentinel");
    };
    assert_eq!(
        master, None,
        "no password, database or TLS: the sentinels' defaults"
    );
}

#[test]
fn sql_schemes_keep_their_urls() {
    assert!(
        matches!(target("mariadb://u:p@db:3306/app"), Target::MySql(u) if u == "mysql://u:p@db:3306/app")
    );
    assert!(matches!(
        target("postgresql:///app?host=/run/postgresql"),
        Target::Postgres(_)
    ));
    assert!(
        matches!(target("sqlite://sessions.db"), Target::Sqlite(u) if u == "sqlite://sessions.db")
    );
}

#[test]
fn mistakes_name_the_part() {
    assert_eq!(error("127.0.0.1:6379"), StoreConfigError::NoScheme);
    assert_eq!(error("/var/lib/sessions"), StoreConfigError::NoScheme);
    assert!(
        matches!(error("mongodb://x"), StoreConfigError::UnknownScheme { scheme } if scheme == "mongodb")
    );
    for (url, part) in [
        ("redis://", "host"),
        ("redis://host:0", "port"),
        ("redis://host:99999", "port"),
        ("redis://ho st", "host"),
        ("redis+sentinel://s1", "master name"),
        ("redis+sentinel://s1/m/x", "path"),
        ("rediss://a:1,redis://b:2", "host"),
        ("file:", "path"),
        ("file://elsewhere/dir", "host"),
        ("sqlite://", "path"),
        ("memory:/x", "path"),
        ("cookie:?keys=abc", "query"),
    ] {
        match error(url) {
            StoreConfigError::Invalid { part: got, .. } => assert_eq!(got, part, "{url}"),
            other => panic!("{url}: {other}"),
        }
    }
}

#[test]
fn a_password_never_reaches_an_error_or_debug() {
    for url in [
        "redis://user:pa/ss@host:6379",
        "redis://user:hunter2@host:notaport",
        "rediss://:hunter2@",
        "mysql://u:hunter2@db:x/app",
        "redis+sentinel://:hunter2@s1:1/",
    ] {
        let message = error(url).to_string();
        assert!(
            !message.contains("hunter2") && !message.contains("pa/ss"),
            "{url}: {message}"
        );
    }
    let config = StoreConfig::parse("redis://user:hunter2@host:6379/0").unwrap();
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains("user:***@host"),
        "{shown}"
    );
    assert_eq!(
        redact("postgres://app:pw@db/app"),
        "postgres://app:***@db/app"
    );
    assert_eq!(redact("redis://host/0"), "redis://host/0");
}

#[test]
fn near_cache_is_taken_out_of_the_query_and_the_rest_kept() {
    use tether_core::Freshness::{Fenced, Pushed};
    let take = |url: &str| take_near_cache(url).unwrap();
    assert_eq!(take("redis://h:6379"), ("redis://h:6379".into(), None));
    assert_eq!(
        take("redis://h:6379?near_cache=on"),
        ("redis://h:6379".into(), Some(Fenced))
    );
    assert_eq!(
        take("redis://h?near_cache"),
        ("redis://h".into(), Some(Fenced))
    );
    assert_eq!(
        take("redis://h?near_cache=pushed"),
        ("redis://h".into(), Some(Pushed))
    );
    assert_eq!(
        take("postgres://u:p@h/db?sslmode=require&near_cache=true&application_name=x"),
        (
            "postgres://u:p@h/db?sslmode=require&application_name=x".into(),
            Some(Fenced)
        )
    );
    assert_eq!(take("redis://h?near_cache=off"), ("redis://h".into(), None));
    assert!(matches!(
        take_near_cache("redis://h?near_cache=maybe"),
        Err(StoreConfigError::Invalid { part: "query", .. })
    ));
}

proptest! {
    #[test]
    fn any_query_keeps_every_pair_but_near_cache(
        pairs in proptest::collection::vec("[a-z_]{1,12}=[a-z0-9]{0,8}", 0..6),
    ) {
        let url = format!("redis://h:6379?{}", pairs.join("&"));
        if let Ok((rest, _)) = take_near_cache(&url) {
            for pair in pairs.iter().filter(|p| !p.starts_with("near_cache=")) {
                prop_assert!(rest.contains(pair.as_str()), "{rest} lost {pair}");
            }
            prop_assert!(!rest.contains("near_cache"));
        }
    }

    #[test]
    fn any_text_is_parsed_or_refused_without_panicking(text in "\\PC{0,80}") {
        let _ = parse(&text);
        let _ = redact(&text);
        let _ = take_near_cache(&text);
    }

    #[test]
    fn any_url_like_text_is_parsed_or_refused_without_panicking(
        scheme in "(memory|file|redis|rediss|redis\\+sentinel|mysql|postgres|sqlite|cookie|jwt|replicated)",
        rest in "[/:@,\\[\\]?=a-z0-9.%#]{0,40}",
    ) {
        let _ = parse(&format!("{scheme}:{rest}"));
    }

    #[test]
    fn a_password_is_never_echoed(
        password in "[A-Za-z0-9/:@,]{6,16}",
        host in "[a-z0-9:/\\[\\]]{0,12}",
    ) {
        let url = format!("redis://user:{password}@{host}");
        if let Err(e) = parse(&url) {
            prop_assert!(!e.to_string().contains(&password), "{}", e);
        }
    }
}
