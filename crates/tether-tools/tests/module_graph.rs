//! No crate of the workspace has an import circle between its top-level modules: a
//! module that uses another never gets used by it back, directly or around a loop.
//! Circles make a crate readable only whole; this test names the circle it finds.
//!
//! A module's uses are the `crate::NAME` paths in its code (doc comments and
//! `#[cfg(test)]` code aside), NAME being a sibling module or an item the crate root
//! re-exports from one. The root (`lib.rs`, `main.rs`) is everyone's and not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn identifiers(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
}

/// Where each name the root re-exports (`pub use module::{A, B}`) comes from.
fn re_exports(root: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for statement in root.split(';') {
        let Some(rest) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.trim_start_matches("crate::");
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        if modules.contains(module) {
            for item in identifiers(items) {
                out.insert(item.to_owned(), module.to_owned());
            }
        }
    }
    out
}

/// The code of a module file without comments and test modules.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn graph(src: &Path) -> Graph {
    let files: Vec<PathBuf> = std::fs::read_dir(src)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .collect();
    let name = |path: &Path| path.file_stem().unwrap().to_string_lossy().into_owned();
    let roots = ["lib", "main"];
    let modules: BTreeSet<String> = files
        .iter()
        .map(|p| name(p))
        .filter(|m| !roots.contains(&m.as_str()))
        .collect();
    let root_text: String = roots
        .iter()
        .filter_map(|r| std::fs::read_to_string(src.join(format!("{r}.rs"))).ok())
        .collect();
    let exported = re_exports(&root_text, &modules);
    let resolve = |word: &str| {
        if modules.contains(word) {
            Some(word.to_owned())
        } else {
            exported.get(word).cloned()
        }
    };
    let mut graph = Graph::new();
    for module in &modules {
        let text = code(&std::fs::read_to_string(src.join(format!("{module}.rs"))).unwrap());
        let mut uses = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let after = &text[i + "crate::".len()..];
            // `crate::name` or `crate::{a, b::c}`.
            let taken = if let Some(group) = after.strip_prefix('{') {
                group.split('}').next().unwrap_or_default()
            } else {
                identifiers(after).next().unwrap_or_default()
            };
            for word in identifiers(taken) {
                if let Some(target) = resolve(word).filter(|t| t != module) {
                    uses.insert(target);
                }
            }
        }
        graph.insert(module.clone(), uses);
    }
    graph
}

/// A circle through `start`, if there is one.
fn circle(graph: &Graph, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &Graph,
        at: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    walk(graph, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_crate_has_an_import_circle() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut found = Vec::new();
    for group in ["crates", "examples"] {
        for entry in std::fs::read_dir(workspace.join(group)).unwrap() {
            let entry = entry.unwrap();
            let src = entry.path().join("src");
            if !src.is_dir() {
                continue;
            }
            let graph = graph(&src);
            if let Some(path) = graph.keys().find_map(|m| circle(&graph, m)) {
                let name = entry.file_name().to_string_lossy().into_owned();
                found.push(format!("{group}/{name}/src: {}", path.join(" → ")));
            }
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn a_circle_is_found() {
    let mut graph = Graph::new();
    graph.insert("a".into(), ["b".to_owned()].into());
    graph.insert("b".into(), ["c".to_owned()].into());
    graph.insert("c".into(), ["a".to_owned()].into());
    assert_eq!(
        circle(&graph, "a"),
        Some(vec!["a".into(), "b".into(), "c".into()])
    );
    graph.insert("c".into(), BTreeSet::new());
    assert_eq!(circle(&graph, "a"), None);
}
