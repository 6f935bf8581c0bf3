//! The Rust listings of docs/architecture.md are code that compiles: each is preceded by
//! `<!-- listing: <path> -->`, and its lines appear in that file, in order and together.
//! Blank lines and comment-only lines are left out on both sides, so a listing may drop
//! doc comments; indentation does not count, so a listing may sit inside a list item.

use std::path::{Path, PathBuf};

/// The workspace root, where the listed paths start.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the server crate sits in the workspace")
        .to_path_buf()
}

/// The lines that carry code, trimmed.
fn code_lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .collect()
}

/// Every ```` ```rust ```` block of `page`: the line it starts on, the path its marker
/// names (if any) and its text.
fn listings(page: &str) -> Vec<(usize, Option<String>, String)> {
    let lines: Vec<&str> = page.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != "```rust" {
            i += 1;
            continue;
        }
        let marker = lines[..i]
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
            .and_then(|l| l.strip_prefix("<!-- listing: "))
            .and_then(|l| l.strip_suffix(" -->"))
            .map(str::to_owned);
        let start = i + 1;
        let mut end = start;
        while end < lines.len() && lines[end].trim() != "```" {
            end += 1;
        }
        found.push((start, marker, lines[start..end].join("\n")));
        i = end + 1;
    }
    found
}

#[test]
fn every_rust_listing_of_the_architecture_page_is_in_the_file_it_names() {
    let page = std::fs::read_to_string(root().join("docs/architecture.md"))
        .expect("docs/architecture.md is readable");
    let listings = listings(&page);
    assert!(
        listings.len() >= 10,
        "the page has {} listings",
        listings.len()
    );
    let wrong = drifted(&listings, true);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_rust_listing_of_the_plugins_page_is_the_example_s_or_a_test_s_code() {
    let page = std::fs::read_to_string(root().join("docs/plugins.md"))
        .expect("docs/plugins.md is readable");
    let listings = listings(&page);
    let from_the_example = listings
        .iter()
        .filter(|(_, path, _)| {
            path.as_deref()
                .is_some_and(|p| p.starts_with("examples/audit/"))
        })
        .count();
    assert!(
        from_the_example >= 12,
        "the walk-through shows the example's code ({from_the_example} listings)"
    );
    let wrong = drifted(&listings, true);
    assert!(wrong.is_empty(), "docs/plugins.md: {}", wrong.join("\n"));
}

/// What is wrong with `listings`: each with a marker must be in the file it names, and
/// with `marked`, each must have one.
fn drifted(listings: &[(usize, Option<String>, String)], marked: bool) -> Vec<String> {
    let mut wrong = Vec::new();
    for (line, path, text) in listings {
        let Some(path) = path else {
            if marked {
                wrong.push(format!(
                    "line {line}: no `<!-- listing: <path> -->` before it"
                ));
            }
            continue;
        };
        let source = match std::fs::read_to_string(root().join(path)) {
            Ok(source) => source,
            Err(e) => {
                wrong.push(format!("line {line}: {path}: {e}"));
                continue;
            }
        };
        let (listing, source) = (code_lines(text), code_lines(&source));
        assert!(!listing.is_empty(), "line {line}: an empty listing");
        if !source.windows(listing.len()).any(|w| w == listing) {
            let first_miss = listing
                .iter()
                .find(|l| !source.contains(l))
                .map_or("its lines are there, but not together".to_owned(), |l| {
                    format!("`{l}` is not there")
                });
            wrong.push(format!("line {line}: not in {path}: {first_miss}"));
        }
    }
    wrong
}

#[test]
fn a_listing_that_drifts_from_its_file_is_caught() {
    let page = "x\n<!-- listing: a.rs -->\n```rust\nfn a() {}\n```\n\n```rust\nfn b() {}\n```\n";
    let found = listings(page);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].1.as_deref(), Some("a.rs"));
    assert_eq!(found[1].1, None);
    let source = code_lines("/// Doc.\nfn a() {}\n\n// note\nfn c() {}\n");
    let listing = code_lines(&found[0].2);
    assert!(source.windows(listing.len()).any(|w| w == listing));
    let drifted = code_lines("fn a(x: u8) {}");
    assert!(!source.windows(drifted.len()).any(|w| w == drifted));
}
