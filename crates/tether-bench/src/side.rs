//! The reads the targets compare across stores, measured side by side. Two stores'
//! groups run minutes apart and this machine's speed moves in between (bare axum
//! differs by a fifth from one group to the next within a run), so a ratio of their
//! medians says as much about the minute as about the stores. Here every round reads
//! from each server once, one straight after another (the order reversed every other
//! round), and a target is the median of its round-by-round ratios.

use std::collections::BTreeMap;

use crate::group::{Bench, Store};
use crate::load::{script, wrk};
use crate::server::Server;
use crate::spread::Spread;
use crate::{SESSIONS, median};

/// A server read from: its store and library.
pub(crate) type Reader = (&'static str, &'static str);

/// The targets that compare two reads: what, the goal, the read over the other.
pub(crate) const TARGETS: [(&str, f64, Reader, Reader); 9] = [
    (
        "redis-cached read ÷ memory read (tether, fenced near cache)",
        0.85,
        ("redis-cached", "tether"),
        ("memory", "tether"),
    ),
    (
        "redis-pushed read ÷ memory read (tether, pushed near cache)",
        0.85,
        ("redis-pushed", "tether"),
        ("memory", "tether"),
    ),
    (
        "redis-cached read (tether) ÷ redis read (tower-sessions)",
        1.5,
        ("redis-cached", "tether"),
        ("redis", "tower-sessions"),
    ),
    (
        "redis-pushed read (tether) ÷ redis read (tower-sessions)",
        1.5,
        ("redis-pushed", "tether"),
        ("redis", "tower-sessions"),
    ),
    (
        "postgres-cached read (tether) ÷ postgres read (tower-sessions)",
        5.0,
        ("postgres-cached", "tether"),
        ("postgres", "tower-sessions"),
    ),
    (
        "postgres-pushed read (tether) ÷ postgres read (tower-sessions)",
        5.0,
        ("postgres-pushed", "tether"),
        ("postgres", "tower-sessions"),
    ),
    (
        "redis-pool read ÷ redis read (tether)",
        0.8,
        ("redis-pool", "tether"),
        ("redis", "tether"),
    ),
    (
        "jwt read ÷ cookie read (tether)",
        0.8,
        ("jwt", "tether"),
        ("cookie", "tether"),
    ),
    (
        "cookie read ÷ memory read (tether)",
        0.85,
        ("cookie", "tether"),
        ("memory", "tether"),
    ),
];

/// Each reader's req/s, round by round.
pub(crate) type Side = BTreeMap<Reader, Vec<f64>>;

/// The readers the targets name, each once, in the order a round runs them: each
/// near to those it is compared with. With them, tether's uncached PostgreSQL read,
/// so the near-cache guide's table of reads comes from one set of rounds.
pub(crate) fn readers() -> Vec<Reader> {
    vec![
        ("cookie", "tether"),
        ("jwt", "tether"),
        ("memory", "tether"),
        ("redis-pushed", "tether"),
        ("redis-cached", "tether"),
        ("redis", "tower-sessions"),
        ("redis", "tether"),
        ("redis-pool", "tether"),
        ("postgres", "tower-sessions"),
        ("postgres", "tether"),
        ("postgres-cached", "tether"),
        ("postgres-pushed", "tether"),
    ]
}

impl Bench<'_> {
    /// Every round, a read run on each reader whose store the run measures (`stores`
    /// holds their URLs), one after another.
    pub(crate) fn side_by_side(&self, stores: &[Store]) -> Side {
        let mut order: Vec<(Reader, Option<&str>)> = readers()
            .into_iter()
            .filter_map(|reader| {
                let (_, url, _) = stores.iter().find(|(s, _, _)| *s == reader.0)?;
                Some((reader, *url))
            })
            .collect();
        let mut side = Side::new();
        for round in 0..self.args.rounds {
            for ((store, lib), url) in &order {
                let server = Server::start(lib, store, *url, false);
                let cookies = server.seed(SESSIONS);
                let run_script = script(self.script_path, false, &cookies);
                let sample = wrk(&server.url("/read"), self.args, &run_script);
                eprintln!(
                    "round {} side by side {store:<15} {lib:<14} read {:>9.0} req/s",
                    round + 1,
                    sample.rps
                );
                side.entry((*store, *lib)).or_default().push(sample.rps);
            }
            order.reverse();
        }
        side
    }
}

/// `a`'s read over `b`'s, round by round: the median, the lowest and the highest;
/// `None` unless both ran in every round.
pub(crate) fn paired(side: &Side, a: Reader, b: Reader) -> Option<(f64, f64, f64)> {
    let (a, b) = (side.get(&a)?, side.get(&b)?);
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
    let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let high = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((median(ratios), low, high))
}

/// The readers whose rounds spread more than `max` (fastest ÷ slowest).
pub(crate) fn too_wide(side: &Side, max: f64) -> Vec<Spread> {
    side.iter()
        .map(|((store, lib), rps)| (store, lib, crate::spread::ratio(rps)))
        .filter(|(_, _, ratio)| *ratio > max)
        .map(|(store, lib, ratio)| Spread {
            store: "side by side".into(),
            row: format!("side by side {store} {lib} read"),
            ratio,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_compared_round_by_round() {
        // The machine halves its speed in round 2: both reads drop, their ratio holds.
        let side = Side::from([
            (("redis-pushed", "tether"), vec![90.0, 45.0, 92.0]),
            (("memory", "tether"), vec![100.0, 50.0, 100.0]),
        ]);
        let (mid, low, high) =
            paired(&side, ("redis-pushed", "tether"), ("memory", "tether")).expect("both ran");
        assert!((mid - 0.9).abs() < 1e-9, "{mid}");
        assert!((low - 0.9).abs() < 1e-9 && (high - 0.92).abs() < 1e-9);
        // A ratio of the medians would read 0.9 here too, but a reader that missed a
        // round gives no figure rather than one of unpaired runs.
        let short = Side::from([
            (("redis-pushed", "tether"), vec![90.0]),
            (("memory", "tether"), vec![100.0, 50.0]),
        ]);
        assert_eq!(
            paired(&short, ("redis-pushed", "tether"), ("memory", "tether")),
            None
        );
    }

    #[test]
    fn every_reader_a_target_names_runs_once_per_round() {
        let readers = readers();
        for (_, _, a, b) in TARGETS {
            assert!(readers.contains(&a) && readers.contains(&b), "{a:?} {b:?}");
        }
        for reader in &readers {
            assert!(
                TARGETS
                    .iter()
                    .any(|(_, _, a, b)| a == reader || b == reader)
                    || *reader == ("postgres", "tether"),
                "{reader:?} runs for no target"
            );
        }
        let mut unique = readers.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), readers.len());
    }

    #[test]
    fn a_reader_whose_rounds_spread_is_named() {
        let side = Side::from([
            (("memory", "tether"), vec![100.0, 40.0]),
            (("jwt", "tether"), vec![100.0, 90.0]),
        ]);
        let wide = too_wide(&side, 2.0);
        assert_eq!(wide.len(), 1);
        assert_eq!(wide[0].row, "side by side memory tether read");
    }
}
