//! The top-level modules form layers in the direction a call flows: a
//! module may use only modules of lower layers. This reads every `crate::`
//! path in `src/` and fails on any use that goes sideways or up, which
//! rules out import cycles too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Lowest first. Modules in one layer may not use each other.
const LAYERS: &[&[&str]] = &[
    // Histograms and counters anything may record into.
    &["telemetry"],
    // Address blocks, bans and rate limits: what the transports and the
    // registrar consult about a source.
    &["security"],
    // Protocol and domain cores: no knowledge of each other.
    &["sip", "media", "phone", "routing", "store"],
    // Typed configuration, parsed once.
    &["config"],
    &["registrar"],
    // Bytes to transactions; defines the transaction-user interface.
    &["endpoint"],
    // Call tasks: sessions, inbound and outbound calls.
    &["call"],
    // What runs on a call: flows, diagnostic services.
    &["flow", "services"],
    // The callback lifecycle and dialling customers.
    &["dialer"],
    // The contact centre at run time.
    &["centre"],
    &["app"],
    &["http"],
    // The async edge: sockets, timers, start-up.
    &["runtime"],
    // The operator's command line: talks to a running gateway over HTTP.
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Every top-level module named after `crate::` in `text`, including
/// grouped imports (`use crate::{a::X, b}`).
fn crate_uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        // `$crate::` in macros, or an identifier ending in "crate".
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for item in split_top_level(&group[..end]) {
                if let Some(m) = first_ident(item.trim()) {
                    out.insert(m);
                }
            }
            continue;
        }
        if let Some(m) = first_ident(rest) {
            out.insert(m);
        }
    }
    out
}

fn first_ident(s: &str) -> Option<String> {
    let id: String = s
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!id.is_empty()).then_some(id)
}

fn matching_brace(s: &str) -> usize {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module → the modules it uses, from the source tree.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("component");
        let name = first.as_os_str().to_string_lossy();
        let module = name.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("read");
        let uses = g.entry(module.clone()).or_default();
        for used in crate_uses(&text) {
            if used != module {
                uses.insert(used);
            }
        }
    }
    g
}

#[test]
fn every_module_has_a_layer() {
    let unknown: Vec<String> = graph()
        .keys()
        .filter(|m| layer_of(m).is_none())
        .cloned()
        .collect();
    assert!(
        unknown.is_empty(),
        "modules missing from LAYERS: {unknown:?}"
    );
}

#[test]
fn modules_use_only_lower_layers() {
    let g = graph();
    let mut wrong = Vec::new();
    for (m, uses) in &g {
        let Some(lm) = layer_of(m) else { continue };
        for u in uses {
            match layer_of(u) {
                Some(lu) if lu < lm => {}
                Some(lu) => wrong.push(format!("{m} (layer {lm}) uses {u} (layer {lu})")),
                None => wrong.push(format!("{m} uses unknown module {u}")),
            }
        }
    }
    // Print the whole listing: it is the architecture at a glance.
    for (m, uses) in &g {
        println!(
            "{m:>10} -> {}",
            uses.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    assert!(
        wrong.is_empty(),
        "uses against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_reader_sees_grouped_and_nested_uses() {
    let uses = crate_uses(
        "use crate::{a::X, b::{c, d}};\nfn f() { crate::e::g(); $crate::h; my_crate::i; }",
    );
    let names: Vec<&str> = uses.iter().map(String::as_str).collect();
    assert_eq!(names, ["a", "b", "e"]);
}

/// SPEC "The callback dialer": callback state has one writer, the dialer's
/// book, which checks every write against the lifecycle table.
#[test]
fn callback_state_is_written_only_by_the_dialer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let writes = [
        ".transition(",
        ".begin_attempt(",
        ".end_attempt(",
        ".insert_callback(",
    ];
    let mut found = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .to_string();
        if rel.starts_with("dialer/") || rel.starts_with("store/") {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("read");
        for w in writes {
            if text.contains(w) {
                found.push(format!("{rel}: {w}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "callback state written outside dialer/: {found:?}"
    );
}
