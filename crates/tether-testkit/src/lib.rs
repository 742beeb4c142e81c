//! What tether's own tests, bench and lab share beside the conformance suite (which
//! this crate re-exports, so `tether_testkit::Suite` is `tether_conformance::Suite`):
//! the services they start (Redis, MariaDB, PostgreSQL, a TLS CA, `MONITOR`), the
//! runner for test binaries that re-execute themselves, and the store-restart fault
//! test. Not published.

pub mod harness;
pub mod outage;
pub mod services;

pub use tether_conformance::*;
