//! Adding a store touches more than code: every store tether ships
//! ([`tether::StoreKind::ALL`]) has its example here, its row in the README's table,
//! its place in the `tether` crate's introduction and a documented cargo feature.
//! This test names the place that was missed.

use std::path::Path;

use tether::StoreKind;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

#[test]
fn every_store_has_its_example_row_introduction_and_feature_docs() {
    let readme = read("README.md");
    let intro = read("crates/tether/src/lib.rs");
    let manifest = read("crates/tether/Cargo.toml");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for &kind in StoreKind::ALL {
        let example = examples.join(format!("{}.rs", kind.name()));
        assert!(
            example.is_file(),
            "no example for the {kind} store: add examples/stores/examples/{}.rs",
            kind.name()
        );
        let Some(feature) = kind.feature() else {
            continue;
        };
        assert!(
            readme.contains(&format!("feature `{feature}`")),
            "README.md's table of approaches has no row for the {kind} store (feature `{feature}`)"
        );
        assert!(
            intro.contains(&format!("(`{feature}`")),
            "the tether crate's introduction (crates/tether/src/lib.rs) does not name the {kind} store's feature (`{feature}`)"
        );
        let documented = manifest.lines().collect::<Vec<_>>().windows(2).any(|pair| {
            pair[0].starts_with("## ") && pair[1].starts_with(&format!("{feature} = "))
        });
        assert!(
            documented,
            "crates/tether/Cargo.toml: the `{feature}` feature has no `## ` doc line"
        );
    }
}
