//! Helpers shared by the file store's test binaries.

use std::path::{Path, PathBuf};

use tether_core::Id;

/// A fresh directory under the system's temp dir.
pub(crate) fn temp_root(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tether-file-{tag}-{}-{}",
        std::process::id(),
        Id::generate().unwrap()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file below `dir`.
pub(crate) fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}
