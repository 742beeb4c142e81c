//! Seeds: the URLs an instance announces itself to, a DNS name standing for every
//! address it has.
//!
//! A task of its own resolves them (every refresh, and every probe period while no
//! member is known) and asks each, in a signed hello, for the URL it advertises:
//! SWIM takes an announcement only when it is addressed to that exact URL, and a
//! seed given as a name, or as `localhost` for `127.0.0.1`, is not spelled so. None
//! of this blocks the protocol task: names resolve and seeds answer here, and only
//! the advertised URLs of the seeds that answered reach it.

use std::net::IpAddr;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::Url;
use tokio::sync::mpsc;

use crate::request::hello;
use crate::{Inner, lock};

/// How long one seed's name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Every seed with an IP address as its host, as given; a seed whose host is a name,
/// once per address the name resolves to now (a name that does not resolve stays as
/// given, for the HTTP client to try). Without duplicates, trailing `/` removed.
pub(super) async fn resolve(given: &[String]) -> Vec<String> {
    let mut seeds = Vec::new();
    for seed in given {
        match named(seed) {
            Some((url, host, port)) => {
                let lookup = tokio::net::lookup_host((host.as_str(), port));
                match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                    Ok(Ok(addrs)) => seeds.extend(addrs.map(|a| with_ip(&url, a.ip()))),
                    Ok(Err(e)) => {
                        tracing::warn!(seed, error = %e, "a seed's name does not resolve");
                        seeds.push(seed.clone());
                    }
                    Err(_) => {
                        tracing::warn!(seed, "a seed's name did not resolve in time");
                        seeds.push(seed.clone());
                    }
                }
            }
            None => seeds.push(seed.trim_end_matches('/').to_owned()),
        }
    }
    seeds.sort();
    seeds.dedup();
    seeds
}

/// Resolves the seeds and asks them who they are, every refresh (every probe period
/// while no member is known); once the store is ready, sends the protocol task the
/// advertised URLs of the seeds that answered, to announce itself to.
pub(super) async fn watch(inner: Weak<Inner>, answered: mpsc::Sender<Vec<String>>) {
    let Some(settings) = inner
        .upgrade()
        .and_then(|i| i.membership.as_ref().map(|m| m.settings.clone()))
    else {
        return;
    };
    let mut last: Option<tokio::time::Instant> = None;
    loop {
        let Some(alone) = inner
            .upgrade()
            .and_then(|i| i.membership.as_ref().map(|m| m.live().is_empty()))
        else {
            return;
        };
        if alone || last.is_none_or(|at| at.elapsed() >= settings.refresh) {
            last = Some(tokio::time::Instant::now());
            let resolved = resolve(&settings.seeds).await;
            let Some(store) = inner.upgrade() else { return };
            let (known, up) = ask(&store, &resolved, &settings.me).await;
            if let Some(membership) = &store.membership {
                *lock(&membership.resolved) = known;
            }
            let ready = store.ready.load(Ordering::SeqCst);
            drop(store);
            if ready && !up.is_empty() && answered.send(up).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(settings.probe_period.min(settings.refresh)).await;
    }
}

/// Each seed's advertised URL (the seed as resolved when it did not answer, or has
/// no membership), without `me`; and the advertised URLs of those that answered.
async fn ask(store: &Inner, resolved: &[String], me: &str) -> (Vec<String>, Vec<String>) {
    let mut known = Vec::new();
    let mut up = Vec::new();
    for seed in resolved.iter().filter(|s| *s != me) {
        match hello(store, seed, None).await {
            Ok(hello) => {
                let url = hello.url.unwrap_or_else(|| seed.clone());
                if url != me {
                    known.push(url.clone());
                    up.push(url);
                }
            }
            Err(_) => known.push(seed.clone()),
        }
    }
    known.sort();
    known.dedup();
    up.sort();
    up.dedup();
    (known, up)
}

/// The URL, host name and port of a seed whose host is a DNS name.
fn named(seed: &str) -> Option<(Url, String, u16)> {
    let url = Url::parse(seed).ok()?;
    let Some(url::Host::Domain(host)) = url.host() else {
        return None;
    };
    let host = host.to_owned();
    let port = url.port_or_known_default()?;
    Some((url, host, port))
}

/// `url` with `ip` as its host, without a trailing `/`.
fn with_ip(url: &Url, ip: IpAddr) -> String {
    let mut url = url.clone();
    // Only fails for URLs that cannot have a host, which `named` does not return.
    let _ = url.set_ip_host(ip);
    url.as_str().trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[tokio::test]
    async fn a_name_stands_for_each_of_its_addresses() {
        let seeds = resolve(&["http://localhost:9001/_tether/".to_owned()]).await;
        assert!(
            seeds.contains(&"http://127.0.0.1:9001/_tether".to_owned()),
            "{seeds:?}"
        );
        assert!(seeds.iter().all(|s| !s.contains("localhost")), "{seeds:?}");
    }

    #[tokio::test]
    async fn addresses_stay_as_given_and_repeats_go() {
        let given = [
            "http://127.0.0.1:9001/_tether/".to_owned(),
            "http://127.0.0.1:9001/_tether".to_owned(),
            "http://[::1]:9002/_tether".to_owned(),
        ];
        assert_eq!(
            resolve(&given).await,
            ["http://127.0.0.1:9001/_tether", "http://[::1]:9002/_tether"]
        );
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_stays_as_given() {
        let seed = "http://tether-no-such-host.invalid:9001/_tether".to_owned();
        assert_eq!(resolve(std::slice::from_ref(&seed)).await, [seed]);
    }

    proptest! {
        // Seeds come from flags and environment variables: any text is handled.
        #[test]
        fn any_seed_text_is_handled(seed in ".{0,80}") {
            let _ = named(&seed);
        }

        #[test]
        fn an_address_seed_is_never_looked_up(a in any::<[u8; 4]>(), port in 1u16.., path in "[a-z_/]{0,12}") {
            let ip = std::net::Ipv4Addr::from(a);
            let seed = format!("http://{ip}:{port}/{path}");
            prop_assert!(named(&seed).is_none());
        }
    }
}
