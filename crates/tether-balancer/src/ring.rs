//! Choosing a backend: the strategies, with no I/O.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use sha2::Digest as _;

/// How requests are spread over backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Each request to the next healthy backend.
    RoundRobin,
    /// By client address (L4 stickiness): same address, same backend.
    IpHash,
    /// By a cookie, on a consistent-hash ring (L7 stickiness): a pool change moves
    /// about 1/N of the keys; new keys avoid backends over their share of load.
    CookieHash,
    /// By a cookie, modulo the pool size: for contrast, a pool change moves most keys.
    ModuloHash,
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "round-robin" => Ok(Self::RoundRobin),
            "ip-hash" => Ok(Self::IpHash),
            "cookie-hash" => Ok(Self::CookieHash),
            "modulo-hash" => Ok(Self::ModuloHash),
            other => Err(format!(
                "unknown strategy {other:?}: use round-robin, ip-hash, cookie-hash or modulo-hash"
            )),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RoundRobin => "round-robin",
            Self::IpHash => "ip-hash",
            Self::CookieHash => "cookie-hash",
            Self::ModuloHash => "modulo-hash",
        })
    }
}

/// A stable 64-bit hash (the same in every process and version).
pub fn hash(bytes: &[u8]) -> u64 {
    let digest = sha2::Sha256::digest(bytes);
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Virtual nodes per backend on the ring: enough for an even spread.
const VNODES: usize = 160;

/// A consistent-hash ring over backend names.
#[derive(Debug, Clone)]
pub struct Ring {
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// A ring over backends `0..names.len()`, placed by name so the same backend keeps
    /// its points when others join or leave.
    pub fn new(names: &[String]) -> Self {
        let mut points: Vec<(u64, usize)> = names
            .iter()
            .enumerate()
            .flat_map(|(i, name)| {
                (0..VNODES).map(move |v| (hash(format!("{name}#{v}").as_bytes()), i))
            })
            .collect();
        points.sort_unstable();
        Self { points }
    }

    /// Backends in ring order from `key`'s position, each once.
    pub fn walk(&self, key: &[u8]) -> Vec<usize> {
        if self.points.is_empty() {
            return Vec::new();
        }
        let h = hash(key);
        let start = self.points.partition_point(|(p, _)| *p < h);
        let mut order = Vec::new();
        for k in 0..self.points.len() {
            let backend = self.points[(start + k) % self.points.len()].1;
            if !order.contains(&backend) {
                order.push(backend);
            }
        }
        order
    }
}

/// The backend a client address maps to (before skipping unhealthy ones).
pub fn ip_index(ip: IpAddr, n: usize) -> usize {
    let bytes = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    usize::try_from(hash(&bytes) % n as u64).unwrap_or(0)
}

/// The backend a key maps to modulo `n`.
pub fn modulo_index(key: &[u8], n: usize) -> usize {
    usize::try_from(hash(key) % n as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("http://127.0.0.1:{}", 9000 + i))
            .collect()
    }

    #[test]
    fn the_ring_spreads_keys_evenly_and_moves_few_on_scale_out() {
        let keys: Vec<String> = (0..30_000).map(|i| format!("user{i}")).collect();
        let three = Ring::new(&names(3));
        let four = Ring::new(&names(4));
        let mut counts = [0usize; 3];
        let mut moved = 0;
        let mut moved_modulo = 0;
        for key in &keys {
            let a = three.walk(key.as_bytes())[0];
            counts[a] += 1;
            if four.walk(key.as_bytes())[0] != a {
                moved += 1;
            }
            if modulo_index(key.as_bytes(), 3) != modulo_index(key.as_bytes(), 4) {
                moved_modulo += 1;
            }
        }
        for c in counts {
            assert!((8_000..12_000).contains(&c), "uneven ring: {counts:?}");
        }
        // About 1/4 of the keys move to the new backend; modulo moves about 3/4.
        assert!((6_000..9_500).contains(&moved), "ring moved {moved}");
        assert!(moved_modulo > 20_000, "modulo moved {moved_modulo}");
    }
}
