//! Tools for tether's own reports (the consistency lab and the benchmarks): bar-chart
//! panels and the machine's description. Kept out of the test kit, so store tests do
//! not compile a plotting library.

pub mod chart;
pub mod machine;
