//! Who the client is: `X-Forwarded-For` trusted only from configured proxies.
//!
//! A server takes the client's address from the TCP connection. When that
//! connection comes from a trusted proxy (a balancer, a load generator on this
//! machine), the proxy's `X-Forwarded-For` is believed, read from the right: the
//! client is the rightmost address that is not itself a trusted proxy. A client cannot
//! choose its own address by sending the header, because whatever it wrote stands to
//! the left of the first untrusted hop. This is nginx's `set_real_ip_from` with
//! `real_ip_recursive on`.

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;

/// The name of the header.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// A trusted proxy that is neither a network nor an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trusted proxy {0:?} is not an address or a network (10.0.0.0/8, 127.0.0.1, ::1)")]
pub struct TrustedProxyError(pub String);

/// The addresses whose `X-Forwarded-For` is believed.
///
/// ```
/// use tether_server::TrustedProxies;
/// let trusted = TrustedProxies::parse(["10.0.0.0/8", "127.0.0.1"])?;
/// assert!(trusted.contains("10.1.2.3".parse().unwrap()));
/// assert!(!trusted.contains("192.0.2.1".parse().unwrap()));
/// assert!(TrustedProxies::none().is_empty());
/// # Ok::<(), tether_server::TrustedProxyError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trust nobody: the client is the connection's peer (the default).
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// Trust this machine (`127.0.0.0/8` and `::1`): for load generators and a proxy
    /// on the same host.
    pub fn loopback() -> Self {
        Self(vec![
            "127.0.0.0/8".parse().expect("a valid network"),
            "::1/128".parse().expect("a valid network"),
        ])
    }

    /// Networks (`10.0.0.0/8`) or single addresses (`10.0.0.7`).
    ///
    /// # Errors
    /// [`TrustedProxyError`] naming the first entry that is neither.
    pub fn parse<I, S>(entries: I) -> Result<Self, TrustedProxyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        entries
            .into_iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| TrustedProxyError(entry.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// These and `other`'s networks.
    ///
    /// ```
    /// use tether_server::TrustedProxies;
    /// let both = TrustedProxies::parse(["10.0.0.0/8"])?.and(TrustedProxies::loopback());
    /// assert!(both.contains("127.0.0.1".parse().unwrap()) && both.contains("10.0.0.1".parse().unwrap()));
    /// # Ok::<(), tether_server::TrustedProxyError>(())
    /// ```
    #[must_use]
    pub fn and(mut self, other: Self) -> Self {
        self.0.extend(other.0);
        self
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether nobody is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client's address: `peer` itself unless it is trusted, else the rightmost
    /// untrusted address of its `X-Forwarded-For` (the leftmost when all are trusted).
    ///
    /// ```
    /// use tether_server::TrustedProxies;
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse().unwrap());
    /// let proxy = "127.0.0.1".parse().unwrap();
    /// // Nobody trusted: the header is ignored.
    /// assert_eq!(TrustedProxies::none().client(proxy, &headers), proxy);
    /// // The proxy is trusted: the address it saw, not what the client wrote.
    /// assert_eq!(TrustedProxies::loopback().client(proxy, &headers), "203.0.113.9".parse::<std::net::IpAddr>().unwrap());
    /// ```
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let chain = forwarded_chain(headers);
        let mut client = peer;
        for hop in chain.iter().rev() {
            client = *hop;
            if !self.contains(*hop) {
                break;
            }
        }
        client
    }

    /// The `X-Forwarded-For` to send on: the incoming one with `peer` appended when
    /// `peer` is trusted; just `peer` otherwise (a client's own value is dropped).
    pub fn forward_header(&self, peer: IpAddr, headers: &HeaderMap) -> HeaderValue {
        let peer = canonical(peer);
        let chain = if self.contains(peer) {
            let mut chain = forwarded_chain(headers);
            chain.push(peer);
            chain
        } else {
            vec![peer]
        };
        let text = chain
            .iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        HeaderValue::from_str(&text).expect("IP addresses are valid header text")
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Every `X-Forwarded-For` address in order, across repeated headers. An entry that
/// is not an address ends the chain there (everything left of it is unreliable).
fn forwarded_chain(headers: &HeaderMap) -> Vec<IpAddr> {
    let entries: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .flat_map(|v| {
            v.to_str()
                .map_or_else(|_| vec!["?"], |s| s.split(',').collect())
        })
        .collect();
    let mut chain = Vec::new();
    for entry in entries.iter().rev() {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) => chain.push(canonical(ip)),
            Err(_) => break,
        }
    }
    chain.reverse();
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_str(xff).unwrap());
        h
    }

    #[test]
    fn a_spoofed_leftmost_address_is_never_the_client() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let h = headers("1.1.1.1, 203.0.113.5, 10.0.0.9");
        assert_eq!(
            trusted.client(proxy, &h),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
        // Garbage stops the walk: what lies left of it is not believed.
        let h = headers("1.1.1.1, junk, 10.0.0.9");
        assert_eq!(
            trusted.client(proxy, &h),
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn an_untrusted_peer_cannot_pass_its_own_header_on() {
        let trusted = TrustedProxies::none();
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let sent = trusted.forward_header(peer, &headers("6.6.6.6"));
        assert_eq!(sent, "192.0.2.7");
        let sent = TrustedProxies::loopback()
            .forward_header("127.0.0.1".parse().unwrap(), &headers("6.6.6.6"));
        assert_eq!(sent, "6.6.6.6, 127.0.0.1");
    }

    proptest! {
        // Whatever an untrusted client writes, it is its own connection's address.
        #[test]
        fn arbitrary_headers_never_move_an_untrusted_client(value in ".{0,200}", a in any::<[u8; 4]>()) {
            let peer = IpAddr::from(a);
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(X_FORWARDED_FOR, v);
            }
            let trusted = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
            prop_assume!(!trusted.contains(peer));
            prop_assert_eq!(trusted.client(peer, &h), peer);
            prop_assert_eq!(trusted.forward_header(peer, &h), peer.to_string());
        }

        // Through a trusted proxy, the client is always an address from the chain or
        // the proxy, never a panic.
        #[test]
        fn arbitrary_chains_from_a_trusted_proxy_are_parsed_safely(value in "[0-9a-f.:, ]{0,120}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(X_FORWARDED_FOR, v);
            }
            let proxy: IpAddr = "127.0.0.1".parse().unwrap();
            let client = TrustedProxies::loopback().client(proxy, &h);
            let chain = forwarded_chain(&h);
            prop_assert!(client == proxy || chain.contains(&client));
        }
    }
}
