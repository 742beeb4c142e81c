//! For test binaries with their own `main` (they re-execute themselves as separate
//! processes): runs the tests and prints libtest's kind of summary.

/// Runs each test, prints `test NAME ... ok|FAILED` and `N passed, N failed`, and exits
/// non-zero when one failed.
pub fn run(tests: &[(&str, fn())]) {
    let mut failed = 0;
    for (name, test) in tests {
        if std::panic::catch_unwind(*test).is_ok() {
            println!("test {name} ... ok");
        } else {
            println!("test {name} ... FAILED");
            failed += 1;
        }
    }
    println!("{} passed, {failed} failed", tests.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
