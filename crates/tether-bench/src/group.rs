//! One store's group of runs in one round: bare axum, then every library's server on
//! every endpoint (the order alternating round by round), then bare axum again.

use std::collections::BTreeMap;
use std::path::Path;

use crate::counts::calls_per_request;
use crate::load::{Sample, script, wrk};
use crate::server::Server;
use crate::{ENDPOINTS, Key, RunArgs, SESSIONS};

/// A store measured: its name, its server's URL and the libraries it runs.
pub(crate) type Store<'a> = (&'a str, Option<&'a str>, Vec<&'a str>);

/// What the groups measured, run by run.
#[derive(Default)]
pub(crate) struct Tables {
    pub(crate) samples: BTreeMap<Key, Vec<Sample>>,
    /// Per store, each round's mean of the two bare-axum runs around its group.
    pub(crate) bare: BTreeMap<String, Vec<f64>>,
    /// Store round trips per request (first round).
    pub(crate) calls: BTreeMap<Key, f64>,
    /// The mean `Cookie` header a seeded session's request carries, per store.
    pub(crate) cookie_bytes: BTreeMap<String, f64>,
}

impl Tables {
    /// Drops a store's runs, to measure it again.
    pub(crate) fn forget(&mut self, store: &str) {
        self.samples.retain(|(s, _, _), _| s != store);
        self.bare.remove(store);
    }
}

/// What every group needs: the arguments, where the wrk script goes, and the cookies
/// bare axum is sent (it ignores them; it gets as many distinct ones).
pub(crate) struct Bench<'a> {
    pub(crate) args: &'a RunArgs,
    pub(crate) script_path: &'a Path,
    pub(crate) fake_cookies: &'a [String],
}

impl Bench<'_> {
    fn bare(&self) -> f64 {
        let server = Server::start("bare", "memory", None, false);
        let script = script(self.script_path, false, self.fake_cookies);
        wrk(&server.url("/read"), self.args, &script).rps
    }

    /// Measures `store`'s group once, as round `round` (0-based), into `tables`.
    pub(crate) fn group(&self, tables: &mut Tables, round: usize, (store, url, libs): &Store) {
        let before = self.bare();
        let mut order = libs.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for lib in order {
            let server = Server::start(lib, store, *url, false);
            let cookies = server.seed(SESSIONS);
            if lib == "tether" && !cookies.is_empty() {
                #[allow(clippy::cast_precision_loss)]
                let mean =
                    cookies.iter().map(String::len).sum::<usize>() as f64 / cookies.len() as f64;
                tables.cookie_bytes.insert((*store).to_owned(), mean);
            }
            for (name, path, post) in ENDPOINTS {
                // Login starts from no session.
                let pool = if name == "login" {
                    &[][..]
                } else {
                    &cookies[..]
                };
                let run_script = script(self.script_path, post, pool);
                let sample = wrk(&server.url(path), self.args, &run_script);
                eprintln!(
                    "round {} {store:<6} {lib:<14} {name:<9} {:>9.0} req/s p50 {:.2} ms p99 {:.2} ms errors {}",
                    round + 1,
                    sample.rps,
                    sample.p50_ms,
                    sample.p99_ms,
                    sample.errors
                );
                let key: Key = ((*store).to_owned(), lib.to_owned(), name.to_owned());
                tables.samples.entry(key.clone()).or_default().push(sample);
                if round == 0
                    && let Some(url) = url
                    && let Some(per) = calls_per_request(
                        &server,
                        store,
                        url,
                        path,
                        pool.first().map(String::as_str),
                        post,
                    )
                {
                    tables.calls.insert(key, per);
                }
            }
        }
        let after = self.bare();
        tables
            .bare
            .entry((*store).to_owned())
            .or_default()
            .push(f64::midpoint(before, after));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgetting_a_store_drops_its_runs_and_keeps_the_others() {
        let mut tables = Tables::default();
        for store in ["file", "sqlite"] {
            let key: Key = (store.into(), "tether".into(), "read".into());
            tables.samples.insert(key.clone(), vec![Sample::default()]);
            tables.calls.insert(key, 1.0);
            tables.bare.insert(store.into(), vec![1.0, 2.0]);
        }
        tables.forget("file");
        let stores: Vec<&str> = tables.samples.keys().map(|k| k.0.as_str()).collect();
        assert_eq!(stores, ["sqlite"]);
        assert_eq!(tables.bare.keys().collect::<Vec<_>>(), ["sqlite"]);
        // Round trips are counted again by the first round of the new attempt.
        assert_eq!(tables.calls.len(), 2);
    }
}
