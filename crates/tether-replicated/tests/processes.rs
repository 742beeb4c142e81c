//! Three separate processes replicate to each other over loopback: writes on A reach
//! B and C (lag reported); C killed and restarted catches up before it serves; a peer
//! stopped and resumed converges; unsigned, wrongly signed and replayed messages are
//! refused.
//!
//! This binary runs the tests, and re-executes itself as the nodes.

mod common;

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tether_core::Id;
use tether_testkit::harness::{free_port, wait_until};

use common::{Node, ROLE, SECRET, client, data, has_keys, is_ready, node, sign, write_keys};

fn main() {
    if let Ok(spec) = std::env::var(ROLE) {
        node(&spec);
        return;
    }
    let tests: [(&str, fn()); 1] = [(
        "three_processes_replicate_catch_up_and_converge",
        three_processes,
    )];
    tether_testkit::harness::run(&tests);
}

fn three_processes() {
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let a = Node::start(pa, &[pb, pc]);
    let b = Node::start(pb, &[pa, pc]);
    let mut c = Node::start(pc, &[pa, pb]);
    let http = client();
    for node in [&a, &b, &c] {
        wait_until("node ready", Duration::from_secs(20), || {
            is_ready(&http, node)
        });
    }

    // 1,000 writes on A reach B and C.
    let id = Id::generate().unwrap();
    assert_eq!(
        http.post(a.url(&format!("/s/{id}")))
            .send()
            .unwrap()
            .status(),
        201
    );
    write_keys(&http, &a, &id, 0..1000);
    for node in [&b, &c] {
        wait_until(
            "replication of 1,000 writes",
            Duration::from_secs(30),
            || has_keys(data(&http, node, &id).as_ref(), 1000),
        );
        let mut request = http.get(node.url("/_tether/stats"));
        for (name, value) in tether_replicated::sign_stats_request(SECRET) {
            request = request.header(name, value);
        }
        let stats: Value = request.send().unwrap().json().unwrap();
        eprintln!(
            "replication lag at :{}: p50 {} ms, p99 {} ms over {} events",
            node.port, stats["lag_ms_p50"], stats["lag_ms_p99"], stats["lag_samples"]
        );
    }

    // C dies; A keeps writing; C restarts and has everything before it reports ready.
    c.child.kill().unwrap();
    c.child.wait().unwrap();
    write_keys(&http, &a, &id, 1000..1200);
    drop(c);
    let c = Node::start(pc, &[pa, pb]);
    wait_until("restarted node ready", Duration::from_secs(20), || {
        is_ready(&http, &c)
    });
    assert!(
        has_keys(data(&http, &c, &id).as_ref(), 1200),
        "the restarted node served before it had caught up"
    );

    // B stops answering (SIGSTOP), A writes, B resumes and converges.
    let stop = |sig: &str| {
        Command::new("kill")
            .args([sig, &b.child.id().to_string()])
            .status()
            .unwrap();
    };
    stop("-STOP");
    write_keys(&http, &a, &id, 1200..1300);
    std::thread::sleep(Duration::from_millis(1500));
    stop("-CONT");
    wait_until(
        "convergence after the peer came back",
        Duration::from_secs(30),
        || has_keys(data(&http, &b, &id).as_ref(), 1300),
    );
    assert!(has_keys(data(&http, &c, &id).as_ref(), 1300));

    // A create and a delete on C are on A and B by the time C answers (settled
    // writes: the next request after a login or logout may land anywhere), and a late
    // write cannot bring the session back.
    let doomed = Id::generate().unwrap();
    http.post(c.url(&format!("/s/{doomed}"))).send().unwrap();
    assert!(
        data(&http, &a, &doomed).is_some() && data(&http, &b, &doomed).is_some(),
        "a create was answered before the peers had it"
    );
    http.delete(c.url(&format!("/s/{doomed}"))).send().unwrap();
    assert!(
        data(&http, &a, &doomed).is_none() && data(&http, &b, &doomed).is_none(),
        "a delete was answered before the peers had it"
    );
    // A write after the delete (the session is gone everywhere) does not bring it back.
    http.put(a.url(&format!("/s/{doomed}/late")))
        .json(&json!(1))
        .send()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    for node in [&a, &b, &c] {
        assert!(
            data(&http, node, &doomed).is_none(),
            "a deleted session came back"
        );
    }

    refuses_forged_messages(&http, &a, &b);
}

/// How a hand-made batch is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signing {
    None,
    Wrong,
    Good,
}

/// A node's id, from a hello signed by hand.
fn node_id(http: &reqwest::blocking::Client, node: &Node) -> u64 {
    let ts = (time::OffsetDateTime::now_utc().unix_timestamp() * 1000).to_string();
    let nonce = "0123456789abcdef";
    let hello: Value = http
        .get(node.url("/_tether/hello"))
        .header("x-tether-timestamp", &ts)
        .header("x-tether-nonce", nonce)
        .header(
            "x-tether-signature",
            sign(&[b"hello", ts.as_bytes(), nonce.as_bytes(), b""]),
        )
        .send()
        .unwrap()
        .json()
        .unwrap();
    hello["node"].as_u64().unwrap()
}

/// Unsigned, wrongly signed, misdirected, replayed and stale messages are refused,
/// and so are unsigned snapshot and stats requests.
fn refuses_forged_messages(http: &reqwest::blocking::Client, a: &Node, b: &Node) {
    // A batch's headers: its receiver, its body's digest, a time and a nonce, and
    // their signature; `signed_for` is the body the headers describe.
    let post = |node: &Node, to: u64, body: &[u8], signing: Signing, signed_for: &[u8]| {
        let mut req = http
            .post(node.url("/_tether/events"))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if signing != Signing::None {
            use sha2::Digest as _;
            let ts = (time::OffsetDateTime::now_utc().unix_timestamp() * 1000).to_string();
            let nonce = "00112233445566778899aabbccddeeff";
            let digest = hex::encode(sha2::Sha256::digest(signed_for));
            let batch: Value = serde_json::from_slice(signed_for).unwrap();
            let (origin, seq) = (batch["origin"].clone(), batch["seq"].clone());
            let binding = format!("{to}:{origin}:{seq}:{digest}");
            let signature = match signing {
                Signing::Good => sign(&[
                    b"events",
                    ts.as_bytes(),
                    nonce.as_bytes(),
                    binding.as_bytes(),
                ]),
                _ => sign(&[b"events", b"something else"]),
            };
            req = req
                .header("x-tether-to", to.to_string())
                .header("x-tether-origin", origin.to_string())
                .header("x-tether-seq", seq.to_string())
                .header("x-tether-digest", digest)
                .header("x-tether-timestamp", ts)
                .header("x-tether-nonce", nonce)
                .header("x-tether-signature", signature);
        }
        req.send().unwrap().status()
    };
    let to_a = node_id(http, a);
    let body = format!(r#"{{"origin":4242,"to":{to_a},"seq":1,"events":[]}}"#).into_bytes();
    assert_eq!(post(a, to_a, &body, Signing::None, &body), 401, "unsigned");
    assert_eq!(
        post(a, to_a, &body, Signing::Wrong, &body),
        401,
        "wrongly signed"
    );
    let other = format!(r#"{{"origin":4242,"to":{to_a},"seq":9,"events":[]}}"#).into_bytes();
    assert_eq!(
        post(a, to_a, &other, Signing::Good, &body),
        401,
        "a body other than the one its headers sign"
    );
    assert_eq!(
        post(a, to_a, &body, Signing::Good, &body),
        200,
        "a properly signed message"
    );
    assert_eq!(
        post(a, to_a, &body, Signing::Good, &body),
        409,
        "the same message replayed"
    );
    assert_eq!(
        post(b, to_a, &body, Signing::Good, &body),
        421,
        "the same message replayed to another peer"
    );

    // An event older than the tombstone window could bring a deleted session back.
    let old = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 - 3_600_000;
    let id = Id::generate().unwrap();
    let stale = format!(
        r#"{{"origin":4242,"to":{to_a},"seq":2,"events":[{{"stamp":{{"ms":{old},"n":0,"node":4242}},"op":{{"Delete":{{"id":"{id}"}}}}}}]}}"#
    )
    .into_bytes();
    assert_eq!(
        post(a, to_a, &stale, Signing::Good, &stale),
        410,
        "a stale event"
    );

    for path in ["/_tether/snapshot", "/_tether/stats", "/_tether/hello"] {
        let status = http.get(a.url(path)).send().unwrap().status();
        assert_eq!(status, 401, "an unsigned request of {path}");
    }
    let old = (time::OffsetDateTime::now_utc().unix_timestamp() * 1000 - 120_000).to_string();
    let nonce = "0123456789abcdef";
    let stale = http
        .get(a.url("/_tether/snapshot"))
        .header("x-tether-timestamp", &old)
        .header("x-tether-nonce", nonce)
        .header(
            "x-tether-signature",
            sign(&[b"snapshot", old.as_bytes(), nonce.as_bytes(), b""]),
        )
        .send()
        .unwrap();
    assert_eq!(stale.status(), 401, "a replayed (stale) snapshot request");
    assert!(stale.headers().contains_key("x-tether-time"));
}
