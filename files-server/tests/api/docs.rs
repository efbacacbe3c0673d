//! The docs name files that exist: every repository path written in `README.md` and `docs/`
//! (in backticks, from the repository's root, or as a relative Markdown link), so a file that
//! is moved or renamed cannot leave a doc pointing at nothing.

use std::path::{Path, PathBuf};

/// The entries at the repository's root that a path in the docs starts from.
const ROOTS: &[&str] = &[
    "files-core/",
    "files-adapters/",
    "files-server/",
    "files-testkit/",
    "files-bench/",
    "scripts/",
    "docs/",
    "deploy/",
    "compose/",
    ".ci/",
    ".config/",
];

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// The paths a Markdown text names: backticked words that start at one of [`ROOTS`] (a glob,
/// a brace list or a placeholder is not a path), and the targets of relative links.
fn named_paths(text: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for (n, part) in text.split('`').enumerate() {
        // Odd parts are inside backticks.
        if n % 2 == 1 && ROOTS.iter().any(|root| part.starts_with(root)) {
            let path = part.split_whitespace().next().unwrap_or(part);
            if !path.contains(['*', '{', '<', '…']) && !path.contains("...") {
                paths.push(path.trim_end_matches([',', '.', ':', ')']).to_owned());
            }
        }
    }
    paths
}

/// Relative link targets of `[text](target)`, without their `#anchor`.
fn links(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|target| !target.contains("://") && !target.starts_with('#') && !target.starts_with("mailto:"))
        .map(|target| target.split('#').next().unwrap_or(target).to_owned())
        .filter(|target| !target.is_empty())
        .collect()
}

#[test]
fn every_path_the_docs_name_exists() {
    let root = repository();
    let mut documents = vec![root.join("README.md")];
    let entries = std::fs::read_dir(root.join("docs")).unwrap();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            documents.push(path);
        }
    }
    let mut missing = Vec::new();
    let mut checked = 0;
    for document in &documents {
        let text = std::fs::read_to_string(document).unwrap();
        for path in named_paths(&text) {
            checked += 1;
            if !root.join(&path).exists() {
                missing.push(format!("{}: `{path}`", document.display()));
            }
        }
        let base = document.parent().unwrap_or(&root);
        for target in links(&text) {
            checked += 1;
            if !base.join(&target).exists() {
                missing.push(format!("{}: link ({target})", document.display()));
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} paths found in the docs: is the reading broken?"
    );
    assert!(
        missing.is_empty(),
        "the docs name paths that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_reading_of_paths_catches_what_it_claims() {
    let text = "see `files-core/src/nope.rs` and `files-server/tests/api/*.rs`, \
                [ops](operations.md#fuzzing) and [web](https://example.com)";
    assert_eq!(named_paths(text), vec!["files-core/src/nope.rs"]);
    assert_eq!(links(text), vec!["operations.md"]);
}
