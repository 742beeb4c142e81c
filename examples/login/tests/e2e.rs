//! End to end, across separate `login` processes behind a real balancer: every store
//! keeps users logged in whichever instance answers; logouts reach every instance; a
//! dead instance costs no session on a shared store, and on the memory store behind a
//! sticky strategy costs exactly the sessions that lived on it.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{
    Instance, Store, User, start_balancer, start_haproxy, start_instances, start_nginx, wait_until,
};

/// The scenario every store that shares sessions between instances passes.
fn shared_store_scenario(store: &Store, base: &str, instances: &mut [Instance]) {
    let users: Vec<User> = (0..5)
        .map(|i| User::new(&format!("user{i}.{}", common::free_port()), i))
        .collect();
    for user in &users {
        user.login(base);
    }
    // Twenty requests each, spread over the instances, all see the user.
    for user in &users {
        let mut seen = HashSet::new();
        for _ in 0..20 {
            let (status, who, instance) = user.me(base);
            assert_eq!(status, 200, "{} lost the session on {instance}", user.name);
            assert_eq!(who.as_deref(), Some(user.name.as_str()));
            seen.insert(instance);
        }
        assert_eq!(
            seen.len(),
            instances.len(),
            "requests did not spread over every instance: {seen:?}"
        );
    }

    // A logout on one instance is seen by all (after the replication lag, if any).
    let leaving = &users[0];
    assert_eq!(leaving.post(base, "/api/logout").status(), 204);
    wait_until("logout seen everywhere", Duration::from_secs(5), || {
        (0..instances.len() * 2).all(|_| leaving.me(base).0 == 401)
    });

    // "Log out everywhere" ends the user's sessions on every instance.
    if store.has_user_index() {
        let owner = &users[1];
        let second = User::new(&owner.name, 99);
        second.login(base);
        wait_until("second session visible", Duration::from_secs(5), || {
            owner
                .http
                .get(format!("{base}/api/sessions"))
                .send()
                .unwrap()
                .json::<serde_json::Value>()
                .unwrap()
                .as_array()
                .is_some_and(|a| a.len() == 2)
        });
        let ended: serde_json::Value = owner.post(base, "/api/logout-everywhere").json().unwrap();
        assert_eq!(ended["ended"], 2);
        wait_until(
            "log-out-everywhere seen everywhere",
            Duration::from_secs(5),
            || {
                (0..instances.len() * 2)
                    .all(|_| second.me(base).0 == 401 && owner.me(base).0 == 401)
            },
        );
    }

    // One instance dies mid-run: every remaining session survives.
    instances[1].kill();
    std::thread::sleep(Duration::from_millis(800));
    for user in &users[2..] {
        for _ in 0..6 {
            let (status, who, instance) = user.me(base);
            assert_eq!(
                status, 200,
                "{} lost the session after an instance died (answered by {instance})",
                user.name
            );
            assert_eq!(who.as_deref(), Some(user.name.as_str()));
        }
    }
}

fn through_builtin_balancer(store: &Store) {
    let mut instances = start_instances(store, 3);
    let (base, _balancer) = start_balancer(&instances, "round-robin");
    shared_store_scenario(store, &base, &mut instances);
}

#[test]
fn file_store_through_the_balancer() {
    through_builtin_balancer(&Store::file());
}

#[test]
fn redis_store_through_the_balancer() {
    through_builtin_balancer(&Store::redis());
}

#[test]
fn redis_over_tls_through_the_balancer() {
    let dir = common::temp_dir("redis-tls");
    let ca = tether_testkit::services::TestCa::create(&dir.join("ca")).unwrap();
    let redis = tether_testkit::services::RedisServer::start_tls(&dir.join("redis"), &ca).unwrap();
    through_builtin_balancer(&Store::RedisTls(redis.url(), ca.ca_cert()));
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mysql_store_through_the_balancer() {
    through_builtin_balancer(&Store::mysql());
}

#[test]
fn postgres_store_through_the_balancer() {
    through_builtin_balancer(&Store::postgres());
}

/// Three processes on one database file, created by whichever starts first.
#[test]
fn sqlite_store_through_the_balancer() {
    through_builtin_balancer(&Store::sqlite());
}

#[test]
fn cookie_store_through_the_balancer() {
    through_builtin_balancer(&Store::cookie());
}

/// The session as a signed JWT: any instance verifies any other's tokens with the
/// shared key ring, and each publishes the public keys for other services.
#[test]
fn jwt_store_through_the_balancer() {
    let store = Store::jwt();
    let mut instances = start_instances(&store, 3);
    let (base, _balancer) = start_balancer(&instances, "round-robin");
    let jwks: serde_json::Value = reqwest::blocking::get(format!("{base}/.well-known/jwks.json"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], "e2e");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "the JWKS leaked a private key"
    );
    shared_store_scenario(&store, &base, &mut instances);
}

#[test]
fn replicated_store_through_the_balancer() {
    through_builtin_balancer(&Store::Replicated);
}

#[test]
fn file_store_through_nginx_round_robin() {
    let store = Store::file();
    let mut instances = start_instances(&store, 3);
    let (base, _nginx) = start_nginx("round-robin.conf", &instances);
    shared_store_scenario(&store, &base, &mut instances);
}

#[test]
fn redis_store_through_haproxy_round_robin() {
    let store = Store::redis();
    let mut instances = start_instances(&store, 3);
    let (base, _haproxy) = start_haproxy("round-robin.cfg", &instances);
    shared_store_scenario(&store, &base, &mut instances);
}

/// Memory store behind a sticky strategy: log 30 users in, note where each lives,
/// kill one instance, and check that exactly its users must log in again.
fn sticky_memory_scenario(base: &str, instances: &mut [Instance]) {
    let users: Vec<User> = (0..30)
        .map(|i| User::new(&format!("sticky{i}.{}", common::free_port()), i + 1))
        .collect();
    let mut home = HashMap::new();
    for user in &users {
        user.login(base);
        let mut seen = HashSet::new();
        for _ in 0..5 {
            let (status, _, instance) = user.me(base);
            assert_eq!(
                status, 200,
                "{} lost the session on {instance} (routing is not sticky)",
                user.name
            );
            seen.insert(instance);
        }
        assert_eq!(
            seen.len(),
            1,
            "{} moved between instances: {seen:?}",
            user.name
        );
        home.insert(user.name.clone(), seen.into_iter().next().unwrap());
    }
    // Kill the instance holding the most users, so the test always loses sessions.
    let mut population: HashMap<&String, usize> = HashMap::new();
    for instance in home.values() {
        *population.entry(instance).or_default() += 1;
    }
    let victim = population
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(name, _)| name.clone())
        .unwrap();
    let index = instances.iter().position(|i| i.name == victim).unwrap();
    instances[index].kill();
    std::thread::sleep(Duration::from_millis(800));
    let mut lost = Vec::new();
    for user in &users {
        if user.me(base).0 == 401 {
            lost.push(user.name.clone());
        }
    }
    let expected: Vec<String> = users
        .iter()
        .filter(|u| home[&u.name] == victim)
        .map(|u| u.name.clone())
        .collect();
    eprintln!(
        "{} of {} users lived on the killed {victim}; {} had to log in again",
        expected.len(),
        users.len(),
        lost.len()
    );
    assert!(!expected.is_empty());
    assert_eq!(
        lost, expected,
        "exactly the users of the dead instance lose their session"
    );
}

#[test]
fn memory_store_behind_cookie_hash() {
    let mut instances = start_instances(&Store::Memory, 3);
    let (base, _balancer) = start_balancer(&instances, "cookie-hash");
    sticky_memory_scenario(&base, &mut instances);
}

#[test]
fn memory_store_behind_ip_hash() {
    let mut instances = start_instances(&Store::Memory, 3);
    let (base, _balancer) = start_balancer(&instances, "ip-hash");
    sticky_memory_scenario(&base, &mut instances);
}

#[test]
fn memory_store_behind_nginx_consistent_hash() {
    let mut instances = start_instances(&Store::Memory, 3);
    let (base, _nginx) = start_nginx("cookie-hash.conf", &instances);
    sticky_memory_scenario(&base, &mut instances);
}

#[test]
fn memory_store_behind_nginx_ip_hash() {
    let mut instances = start_instances(&Store::Memory, 3);
    let (base, _nginx) = start_nginx("ip-hash.conf", &instances);
    sticky_memory_scenario(&base, &mut instances);
}

#[test]
fn memory_store_behind_haproxy_consistent_cookie_hash() {
    let mut instances = start_instances(&Store::Memory, 3);
    let (base, _haproxy) = start_haproxy("cookie-hash.cfg", &instances);
    sticky_memory_scenario(&base, &mut instances);
}

#[test]
fn memory_store_behind_haproxy_source() {
    let mut instances = start_instances(&Store::Memory, 3);
    let (base, _haproxy) = start_haproxy("source.cfg", &instances);
    sticky_memory_scenario(&base, &mut instances);
}
