//! The lab's program: a lab that cannot run says why and exits 2 (a setup error)
//! before it starts a server or writes a report, so a missing program is never
//! mistaken for a failed check (exit 1). It also makes `cargo test` build the
//! `tether-lab` binary the test command then runs.

use std::process::Command;

#[test]
fn missing_programs_are_a_setup_error_before_anything_runs() {
    let empty = tempfile::tempdir().expect("a temporary directory");
    let out = empty.path().join("report");
    for command in ["run", "consistency", "membership"] {
        let output = Command::new(env!("CARGO_BIN_EXE_tether-lab"))
            .arg(command)
            .arg("--quick")
            .arg("--bin-dir")
            .arg(empty.path())
            .arg("--out")
            .arg(&out)
            .output()
            .expect("tether-lab runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("login is missing"),
            "{command} does not say what is missing: {stderr}"
        );
        assert!(!out.exists(), "{command} wrote a report");
    }
}
