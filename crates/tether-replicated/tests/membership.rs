//! Membership at run time, between separate processes on loopback: instances that
//! know one seed learn every member, a new one joins a running cluster that was told
//! nothing, a killed one is removed (its queue dropped), one back on a new address
//! rejoins and catches up; a partitioned minority converges after the heal; forged
//! membership messages are refused.
//!
//! This binary runs the tests, and re-executes itself as the nodes.

mod common;
#[path = "membership/forged.rs"]
mod forged;

use std::time::Duration;

use serde_json::Value;
use tether_core::Id;
use tether_testkit::harness::{free_port, wait_until};

use common::{Node, ROLE, client, data, has_keys, is_ready, node, proxy, write_keys};

fn main() {
    if let Ok(spec) = std::env::var(ROLE) {
        node(&spec);
        return;
    }
    let tests: [(&str, fn()); 7] = [
        (
            "a_seed_reached_by_another_name_than_it_advertises_is_joined",
            seed_by_name,
        ),
        (
            "instances_started_together_join_one_another_not_each_alone",
            started_together,
        ),
        (
            "the_first_instance_waits_for_those_started_just_after_it",
            started_just_after_the_first,
        ),
        (
            "a_partitioned_minority_serves_and_converges_after_the_heal",
            partition_and_heal,
        ),
        ("a_member_that_leaves_is_dropped_at_once", leave),
        (
            "members_join_leave_and_rejoin_at_run_time",
            join_leave_rejoin,
        ),
        (
            "membership_messages_need_the_secret",
            forged::forged_membership_is_refused,
        ),
    ];
    tether_testkit::harness::run(&tests);
}

/// How long membership may take to converge in these tests (probes every 200 ms).
const CONVERGE: Duration = Duration::from_secs(30);

type Http = reqwest::blocking::Client;

fn url_of(port: u16) -> String {
    format!("http://127.0.0.1:{port}/_tether")
}

fn stats(http: &Http, node: &Node) -> Value {
    http.get(node.url("/stats"))
        .send()
        .and_then(reqwest::blocking::Response::json)
        .unwrap_or(Value::Null)
}

/// The members `node` holds alive (or suspect: still replicated to).
fn live_members(http: &Http, node: &Node) -> Vec<String> {
    live_in(&stats(http, node))
}

/// The members a node's `stats` list as alive or suspect, sorted.
fn live_in(stats: &Value) -> Vec<String> {
    let mut live: Vec<String> = stats["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["state"] != "down")
        .filter_map(|m| m["url"].as_str().map(str::to_owned))
        .collect();
    live.sort();
    live
}

/// The peers `node` queues replication events for.
fn peers(http: &Http, node: &Node) -> Vec<String> {
    let stats = stats(http, node);
    let mut peers: Vec<String> = stats["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["url"].as_str().map(str::to_owned))
        .collect();
    peers.sort();
    peers
}

/// Waits until every node of `cluster` has exactly the others as live members and
/// as replication peers.
fn converged(http: &Http, cluster: &[&Node]) {
    for node in cluster {
        let mut others: Vec<String> = cluster
            .iter()
            .filter(|n| n.port != node.port)
            .map(|n| url_of(n.port))
            .collect();
        others.sort();
        wait_until(
            &format!(":{} to know exactly {others:?}", node.port),
            CONVERGE,
            || live_members(http, node) == others && peers(http, node) == others,
        );
    }
}

fn ready(http: &Http, nodes: &[&Node]) {
    for node in nodes {
        wait_until("node ready", CONVERGE, || is_ready(http, node));
    }
}

fn new_session(http: &Http, node: &Node) -> Id {
    let id = Id::generate().unwrap();
    let status = http
        .post(node.url(&format!("/s/{id}")))
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 201);
    id
}

/// A advertises `http://localhost:PORT/_tether` and B is given it as its seed: B's
/// seeds resolve to addresses, yet it must announce itself to the URL A advertises
/// (SWIM takes an announcement only when addressed to that).
fn seed_by_name() {
    let http = client();
    let a = Node::spawn(free_port(), &[], "mn");
    ready(&http, &[&a]);
    let b = Node::spawn(free_port(), &[a.port], "mn");
    ready(&http, &[&b]);
    let (a_url, b_url) = (
        format!("http://localhost:{}/_tether", a.port),
        format!("http://localhost:{}/_tether", b.port),
    );
    wait_until("B joined", CONVERGE, || stats(&http, &b)["joined"] == true);
    assert!(
        live_members(&http, &b).contains(&a_url),
        "{}",
        stats(&http, &b)
    );
    assert!(
        live_members(&http, &a).contains(&b_url),
        "{}",
        stats(&http, &a)
    );
}

/// A, B and C start at the same moment (B and C know A only): each finds no one up
/// when it catches up, and none may call itself joined alone, or each would be a
/// cluster of one and a login on one would never reach the others. A member may be
/// joined knowing only one of the others when the third announces itself later (a
/// busy machine starts the three processes apart): the third is then not joined
/// until both list it and have sent it their state, so nothing is missed. Then all
/// three know one another.
fn started_together() {
    join_around(Duration::ZERO);
}

/// A starts alone; B and C (knowing A) start three probe periods later, within A's
/// wait for members (at least 2 s): A must not have called itself the first, alone,
/// meanwhile.
fn started_just_after_the_first() {
    join_around(Duration::from_millis(600));
}

/// A starts; B and C, which know only A, start `later`. No instance's first answer
/// that says joined lists no other member, and then all three know one another.
fn join_around(later: Duration) {
    let http = client();
    // Three distinct ports, picked before any node binds one.
    let mut ports: Vec<u16> = Vec::new();
    while ports.len() < 3 {
        let port = free_port();
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    let a_port = ports[0];
    let a = Node::join(a_port, &[]);
    std::thread::sleep(later);
    let mut nodes = [
        a,
        Node::join(ports[1], &[a_port]),
        Node::join(ports[2], &[a_port]),
    ];
    let urls: Vec<String> = nodes.iter().map(|n| url_of(n.port)).collect();
    // Each node's first answer that says joined, all polled together.
    let mut first: Vec<Option<Value>> = vec![None; nodes.len()];
    wait_until("all three joined", CONVERGE, || {
        for (node, first) in nodes.iter().zip(first.iter_mut()) {
            if first.is_none() {
                let stats = stats(&http, node);
                if stats["joined"] == true {
                    *first = Some(stats);
                }
            }
        }
        first.iter().all(Option::is_some)
    });
    let others_of = |node: &Node| -> Vec<String> {
        urls.iter()
            .filter(|u| **u != url_of(node.port))
            .cloned()
            .collect()
    };
    for (node, first) in nodes.iter().zip(&first) {
        let first = first.as_ref().expect("polled above");
        let live = live_in(first);
        let known = others_of(node).iter().filter(|u| live.contains(u)).count();
        assert!(known > 0, ":{} joined alone: {first}", node.port);
    }
    wait_until("all three know one another", CONVERGE, || {
        nodes.iter().all(|node| {
            let live = live_members(&http, node);
            others_of(node).iter().all(|url| live.contains(url))
        })
    });
    // Every answer came from the node polled: none of the three failed to start.
    for node in &mut nodes {
        let exited = node.child.try_wait().unwrap();
        assert!(exited.is_none(), ":{} exited: {exited:?}", node.port);
    }
}

fn join_leave_rejoin() {
    let http = client();
    let a = Node::join(free_port(), &[]);
    ready(&http, &[&a]);
    // B and C are told only of A; A is told nothing.
    let b = Node::join(free_port(), &[a.port]);
    let c = Node::join(free_port(), &[a.port]);
    ready(&http, &[&b, &c]);
    converged(&http, &[&a, &b, &c]);
    let id = new_session(&http, &a);
    write_keys(&http, &a, &id, 0..10);

    // D joins through B alone; A and C are told nothing, yet learn of it, and a value
    // written on C after D joined is read on D.
    let d = Node::join(free_port(), &[b.port]);
    ready(&http, &[&d]);
    assert!(
        has_keys(data(&http, &d, &id).as_ref(), 10),
        "D served before it had caught up"
    );
    // Once D calls itself joined (what a balancer waits for), every member lists it
    // and replicates to it.
    wait_until("D joined", CONVERGE, || stats(&http, &d)["joined"] == true);
    let mut others = vec![url_of(a.port), url_of(b.port), url_of(c.port)];
    others.sort();
    assert_eq!(
        (live_members(&http, &d), peers(&http, &d)),
        (others.clone(), others),
        "D said it joined before it knew every member"
    );
    for node in [&a, &b, &c] {
        assert!(
            live_members(&http, node).contains(&url_of(d.port))
                && peers(&http, node).contains(&url_of(d.port)),
            "D said it joined before :{} knew of it",
            node.port
        );
    }
    converged(&http, &[&a, &b, &c, &d]);
    write_keys(&http, &c, &id, 10..20);
    wait_until("C's write on D", CONVERGE, || {
        has_keys(data(&http, &d, &id).as_ref(), 20)
    });

    // B dies: the others declare it down and drop its queue.
    let b_url = url_of(b.port);
    drop(b);
    converged(&http, &[&a, &c, &d]);
    for node in [&a, &c, &d] {
        let members = stats(&http, node)["members"].clone();
        assert!(
            members
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["url"] == b_url.as_str() && m["state"] == "down"),
            ":{} shows the member that died as down: {members}",
            node.port
        );
    }
    write_keys(&http, &a, &id, 20..30);

    // B comes back on a new address, knowing only D: it catches up, every member
    // learns of it, and it receives what is written after.
    let b2 = Node::join(free_port(), &[d.port]);
    ready(&http, &[&b2]);
    assert!(has_keys(data(&http, &b2, &id).as_ref(), 30));
    converged(&http, &[&a, &b2, &c, &d]);
    write_keys(&http, &a, &id, 30..40);
    wait_until("A's write on the rejoined member", CONVERGE, || {
        has_keys(data(&http, &b2, &id).as_ref(), 40)
    });
    let lags: Vec<String> = [&a, &c, &d]
        .iter()
        .map(|n| format!(":{} {}", n.port, stats(&http, n)["lag_ms_p99"]))
        .collect();
    eprintln!("replication lag p99 (ms) after the membership changes: {lags:?}");
}

/// Whether `node` holds `member` as down (or has forgotten it).
fn sees_down(http: &Http, node: &Node, member: &Node) -> bool {
    !live_members(http, node).contains(&url_of(member.port))
}

fn partition_and_heal() {
    let http = client();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let proxies: Vec<_> = (0..3).map(|_| proxy::start(&runtime)).collect();
    let start = |i: usize, seeds: &[u16]| {
        Node::spawn_with(
            ports[i],
            seeds,
            "m",
            &[("HTTP_PROXY", format!("http://127.0.0.1:{}", proxies[i].0))],
        )
    };
    let a = start(0, &[]);
    ready(&http, &[&a]);
    let b = start(1, &[a.port]);
    let c = start(2, &[a.port]);
    ready(&http, &[&b, &c]);
    converged(&http, &[&a, &b, &c]);
    let id = new_session(&http, &a);
    write_keys(&http, &a, &id, 0..10);
    let doomed = new_session(&http, &a);
    wait_until("every session everywhere", CONVERGE, || {
        has_keys(data(&http, &c, &id).as_ref(), 10) && data(&http, &c, &doomed).is_some()
    });

    // C is cut off: nothing passes between it and A or B, either way.
    let cut = std::time::Instant::now();
    proxies[2].1.block(&[a.port, b.port]);
    proxies[0].1.block(&[c.port]);
    proxies[1].1.block(&[c.port]);
    wait_until("each side declares the other down", CONVERGE, || {
        sees_down(&http, &a, &c)
            && sees_down(&http, &b, &c)
            && sees_down(&http, &c, &a)
            && sees_down(&http, &c, &b)
    });
    eprintln!("partition: detected on both sides in {:?}", cut.elapsed());
    // Both sides keep serving what they have, and take writes.
    write_keys(&http, &a, &id, 10..20);
    assert!(
        has_keys(data(&http, &c, &id).as_ref(), 10),
        "the minority stopped serving the sessions it holds"
    );
    let on_c = http
        .put(c.url(&format!("/s/{id}/minority")))
        .json(&serde_json::json!("written on C"))
        .send()
        .unwrap()
        .status();
    assert_eq!(on_c, 204);
    let deleted = http
        .delete(c.url(&format!("/s/{doomed}")))
        .send()
        .unwrap()
        .status();
    assert_eq!(deleted, 204);
    // Meanwhile the majority's write to the doomed session cannot revive it later.
    assert!(data(&http, &a, &doomed).is_some(), "the cut leaked");

    // The heal: every write of both sides everywhere, the delete (a tombstone) winning.
    let healed = std::time::Instant::now();
    for (_, gate) in &proxies {
        gate.open();
    }
    converged(&http, &[&a, &b, &c]);
    let converged_in = healed.elapsed();
    for node in [&a, &b, &c] {
        wait_until(
            &format!("both sides' writes on :{}", node.port),
            CONVERGE,
            || {
                let data = data(&http, node, &id);
                has_keys(data.as_ref(), 20)
                    && data.as_ref().and_then(|d| d.get("minority")).is_some()
            },
        );
        wait_until(
            &format!("the minority's delete on :{}", node.port),
            CONVERGE,
            || data(&http, node, &doomed).is_none(),
        );
    }
    eprintln!(
        "partition: members converged {converged_in:?} after the heal, data {:?}",
        healed.elapsed()
    );
}

fn leave() {
    let http = client();
    // Probes every 5 s: a member that stopped answering would be declared down
    // about 30 s later, after the bound below.
    let a = Node::spawn(free_port(), &[], "ms");
    ready(&http, &[&a]);
    let b = Node::spawn(free_port(), &[a.port], "ms");
    let mut c = Node::spawn(free_port(), &[a.port], "ms");
    ready(&http, &[&b, &c]);
    converged(&http, &[&a, &b, &c]);
    let asked = std::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &c.child.id().to_string()])
        .status()
        .unwrap();
    c.child.wait().unwrap();
    wait_until(
        "the others drop the member that left",
        Duration::from_secs(10),
        || sees_down(&http, &a, &c) && sees_down(&http, &b, &c),
    );
    converged(&http, &[&a, &b]);
    eprintln!(
        "leave: dropped by the others {:?} after SIGTERM",
        asked.elapsed()
    );
}
