//! The guard against a run too noisy to report: when one row's rounds differ by
//! more than a factor (the fastest round over the slowest), the medians say more
//! about the machine than about the libraries, and the run does not replace
//! `BENCHMARKS.md`.

use std::collections::BTreeMap;

use crate::Key;
use crate::load::Sample;

/// A row whose rounds spread too far: its store, its name and fastest ÷ slowest.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spread {
    pub(crate) store: String,
    pub(crate) row: String,
    pub(crate) ratio: f64,
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:.2}×)", self.row, self.ratio)
    }
}

/// Fastest ÷ slowest of `values` (infinite when the slowest is zero; 1 for fewer
/// than two values).
pub(crate) fn ratio(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let min = values.iter().copied().fold(f64::MAX, f64::min);
    if values.len() < 2 {
        1.0
    } else if min <= 0.0 {
        f64::INFINITY
    } else {
        max / min
    }
}

/// The rows (libraries' and bare axum's) whose rounds spread more than `max`,
/// widest first.
pub(crate) fn too_wide(
    samples: &BTreeMap<Key, Vec<Sample>>,
    bare: &BTreeMap<String, Vec<f64>>,
    max: f64,
) -> Vec<Spread> {
    let rows = samples.iter().map(|((store, lib, endpoint), runs)| {
        let rps: Vec<f64> = runs.iter().map(|s| s.rps).collect();
        (store, format!("{store} {lib} {endpoint}"), ratio(&rps))
    });
    let bare = bare
        .iter()
        .map(|(store, runs)| (store, format!("bare axum beside {store}"), ratio(runs)));
    let mut wide: Vec<Spread> = rows
        .chain(bare)
        .filter(|(_, _, r)| *r > max)
        .map(|(store, row, ratio)| Spread {
            store: store.clone(),
            row,
            ratio,
        })
        .collect();
    wide.sort_by(|a, b| b.ratio.total_cmp(&a.ratio));
    wide
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rps: f64) -> Sample {
        Sample {
            rps,
            p50_ms: 0.0,
            p99_ms: 0.0,
            errors: 0,
        }
    }

    fn key(store: &str, lib: &str, endpoint: &str) -> Key {
        (store.to_owned(), lib.to_owned(), endpoint.to_owned())
    }

    #[test]
    fn rows_whose_rounds_spread_past_the_limit_are_named_widest_first() {
        let mut samples = BTreeMap::new();
        samples.insert(
            key("memory", "tether", "read"),
            vec![sample(100.0), sample(130.0), sample(120.0)],
        );
        samples.insert(
            key("memory", "tower-sessions", "read"),
            vec![sample(33.0), sample(109.0), sample(90.0)],
        );
        samples.insert(
            key("redis", "tether", "write"),
            vec![sample(50.0), sample(0.0)],
        );
        let mut bare = BTreeMap::new();
        bare.insert("memory".to_owned(), vec![150.0, 160.0]);
        bare.insert("redis".to_owned(), vec![60.0, 150.0]);
        let wide = too_wide(&samples, &bare, 2.0);
        let rows: Vec<&str> = wide.iter().map(|s| s.row.as_str()).collect();
        assert_eq!(
            rows,
            [
                "redis tether write",
                "memory tower-sessions read",
                "bare axum beside redis"
            ]
        );
        let stores: Vec<&str> = wide.iter().map(|s| s.store.as_str()).collect();
        assert_eq!(stores, ["redis", "memory", "redis"]);
        assert!((wide[1].ratio - 109.0 / 33.0).abs() < 1e-9);
        assert_eq!(wide[1].to_string(), "memory tower-sessions read (3.30×)");
    }

    #[test]
    fn a_single_round_or_a_steady_run_passes() {
        let mut samples = BTreeMap::new();
        samples.insert(key("memory", "tether", "read"), vec![sample(100.0)]);
        samples.insert(
            key("memory", "tether", "write"),
            vec![sample(100.0), sample(199.0)],
        );
        assert!(too_wide(&samples, &BTreeMap::new(), 2.0).is_empty());
    }
}
