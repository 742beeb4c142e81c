//! The workspace's `rust-version` is true: the newest of every locked dependency's
//! declared `rust-version` and of what the code itself uses (let chains: 1.88), no
//! older (a promise the build would break) and no newer (a needless demand).

use std::process::Command;

/// What the workspace's own code needs: let chains in `if` and `while` (Rust 1.88).
const LANGUAGE_FLOOR: &str = "1.88";

fn version(text: &str) -> Vec<u64> {
    let mut parts: Vec<u64> = text.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    parts.resize(3, 0);
    parts
}

#[test]
fn rust_version_is_the_newest_that_dependencies_and_code_need() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let packages = metadata["packages"].as_array().expect("packages");
    let declared = |p: &serde_json::Value| p["rust_version"].as_str().map(str::to_owned);
    let (mut ours, mut needed) = (
        Vec::new(),
        (
            LANGUAGE_FLOOR.to_owned(),
            "the code's let chains".to_owned(),
        ),
    );
    for package in packages {
        let id = package["id"].as_str().unwrap_or_default();
        let name = package["name"].as_str().unwrap_or_default();
        if members.contains(&id) {
            ours.push((name.to_owned(), declared(package)));
        } else if let Some(v) = declared(package)
            && version(&v) > version(&needed.0)
        {
            needed = (v, name.to_owned());
        }
    }
    for (name, declared) in ours {
        let declared = declared.unwrap_or_else(|| panic!("{name} declares no rust-version"));
        assert_eq!(
            version(&declared),
            version(&needed.0),
            "{name} declares rust-version {declared}; what it needs is {} ({})",
            needed.0,
            needed.1
        );
    }
}
