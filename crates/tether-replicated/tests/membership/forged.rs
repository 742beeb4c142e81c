//! Forged membership messages: a member started with another secret never joins, and
//! hand-made `POST /gossip` requests are refused unless signed with the secret, over
//! the body sent, recently, once, and no larger than a membership message.

use tether_testkit::harness::free_port;

use super::{Http, converged, live_members, ready, url_of};
use crate::common::{Node, SECRET, WRONG_SECRET, client};

/// How a hand-made membership message is signed: with `secret`, over `body` (not
/// always the body sent), at `ms` (now when `None`), with `nonce`.
#[derive(Clone, Copy)]
struct Signing<'a> {
    secret: &'a [u8],
    body: &'a [u8],
    ms: Option<i64>,
    nonce: &'a str,
}

fn gossip(http: &Http, node: &Node, body: &[u8], signing: Option<Signing<'_>>) -> u16 {
    use hmac::Mac as _;
    use sha2::Digest as _;
    let mut request = http.post(node.url("/_tether/gossip")).body(body.to_vec());
    if let Some(Signing {
        secret,
        body: signed_body,
        ms,
        nonce,
    }) = signing
    {
        let ms = ms.unwrap_or_else(|| {
            i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                .unwrap()
        });
        let ts = ms.to_string();
        let digest = hex::encode(sha2::Sha256::digest(signed_body));
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        for part in [
            b"gossip".as_slice(),
            ts.as_bytes(),
            nonce.as_bytes(),
            digest.as_bytes(),
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        request = request
            .header("x-tether-digest", digest)
            .header("x-tether-timestamp", ts)
            .header("x-tether-nonce", nonce)
            .header(
                "x-tether-signature",
                hex::encode(mac.finalize().into_bytes()),
            );
    }
    request.send().unwrap().status().as_u16()
}

pub(crate) fn forged_membership_is_refused() {
    let http = client();
    let pa = free_port();
    // X uses another secret. Started while A is down, it is ready on its own and
    // keeps announcing itself to A, its seed.
    let x = Node::spawn(free_port(), &[pa], "mx");
    ready(&http, &[&x]);
    let a = Node::join(pa, &[]);
    ready(&http, &[&a]);
    // Y, with the right secret, starts after X and joins through A: once Y is a
    // member, X has had as many tries, and is still not one.
    let y = Node::join(free_port(), &[pa]);
    ready(&http, &[&y]);
    converged(&http, &[&a, &y]);
    assert!(
        !live_members(&http, &a).contains(&url_of(x.port)),
        "a member joined with another secret"
    );

    hand_made_messages_are_checked(&http, &a);
}

fn hand_made_messages_are_checked(http: &Http, a: &Node) {
    let body: &[u8] = b"any membership message";
    let nonce = "00112233445566778899aabbccddeeff";
    // Signed over `body` with `secret`, at `ms` (now when `None`).
    let signed = |secret, ms| {
        Some(Signing {
            secret,
            body,
            ms,
            nonce,
        })
    };
    assert_eq!(gossip(http, a, body, None), 401, "unsigned");
    assert_eq!(
        gossip(http, a, body, signed(WRONG_SECRET, None)),
        401,
        "signed with another secret"
    );
    assert_eq!(
        gossip(http, a, b"another body", signed(SECRET, None)),
        401,
        "a body other than the one signed"
    );
    let old = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 - 120_000;
    assert_eq!(
        gossip(http, a, body, signed(SECRET, Some(old))),
        401,
        "signed two minutes ago"
    );
    assert_eq!(
        gossip(http, a, body, signed(SECRET, None)),
        204,
        "properly signed (foca then ignores what it cannot decode)"
    );
    assert_eq!(
        gossip(http, a, body, signed(SECRET, None)),
        409,
        "the same message again"
    );
    let big = vec![b'x'; 64 * 1024];
    assert_eq!(
        gossip(
            http,
            a,
            &big,
            Some(Signing {
                secret: SECRET,
                body: &big,
                ms: None,
                nonce: "ffeeddccbbaa99887766554433221100"
            })
        ),
        413,
        "larger than any membership message"
    );
}
