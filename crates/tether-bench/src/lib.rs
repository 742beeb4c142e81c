//! The benchmark apps, shared by the `bench-server` and `bench-allocs` binaries.

pub mod apps;
