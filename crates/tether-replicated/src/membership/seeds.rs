//! Seeds: the URLs an instance announces itself to, a DNS name standing for every
//! address it has.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::Url;

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
