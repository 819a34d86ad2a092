//! No import circles between the library's modules: every `crate::...` path in the source
//! (use statements and inline paths, comments excluded) is resolved to the module file it
//! names, and the graph of those dependencies between different modules must be acyclic. A
//! module's dependency on its own parent (a child using an item its `mod.rs` defines) is the
//! ordinary Rust layout, not a circle, and is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/layers/cells/lstm.rs` -> `layers::cells::lstm`; `src/layers/mod.rs` -> `layers`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

/// Every path a `crate::` occurrence names: `crate::a::{b, c::d}` gives `a::b` and `a::c::d`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while let Some(pos) = code[i..].find("crate::") {
        let start = i + pos + "crate::".len();
        let mut j = start;
        while j < bytes.len()
            && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_' || bytes[j] == b':')
        {
            j += 1;
        }
        let prefix = code[start..j].trim_end_matches(':').to_string();
        if j < bytes.len() && bytes[j] == b'{' {
            // A group: take each top-level item's leading path.
            let mut depth = 0;
            let mut k = j;
            let mut item_start = j + 1;
            while k < bytes.len() {
                match bytes[k] {
                    b'{' => depth += 1,
                    b'}' | b',' if depth == 1 => {
                        let item = code[item_start..k].trim();
                        let head: String = item
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                            .collect();
                        let head = head.trim_end_matches(':');
                        if !head.is_empty() && head != "self" {
                            out.push(format!("{prefix}::{head}"));
                        } else if head == "self" {
                            out.push(prefix.clone());
                        }
                        item_start = k + 1;
                        if bytes[k] == b'}' {
                            break;
                        }
                    }
                    b'}' => depth -= 1,
                    _ => {}
                }
                k += 1;
            }
            i = k.max(j + 1);
        } else {
            out.push(prefix);
            i = j.max(start);
        }
    }
    out
}

/// The longest prefix of `path` that is a module.
fn resolve(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let segs: Vec<&str> = path.split("::").collect();
    (1..=segs.len())
        .rev()
        .map(|n| segs[..n].join("::"))
        .find(|m| modules.contains(m))
}

fn is_ancestor(a: &str, b: &str) -> bool {
    b.starts_with(&format!("{a}::"))
}

#[test]
fn modules_import_each_other_without_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let from = module_of(&src, f);
        let text = std::fs::read_to_string(f).unwrap();
        // Code only: drop line comments (doc comments included).
        let code: String = text
            .lines()
            .map(|l| match l.find("//") {
                Some(p) => &l[..p],
                None => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        for p in crate_paths(&code) {
            if let Some(to) = resolve(&p, &modules) {
                if to != from && !is_ancestor(&to, &from) {
                    graph.entry(from.clone()).or_default().insert(to);
                }
            }
        }
    }
    assert!(
        graph
            .get("layers::direction")
            .is_some_and(|d| d.contains("layers::fused")),
        "the parser must see direction.rs use fused.rs: {graph:?}"
    );
    // Depth-first search for a back edge.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(m.to_string(), 1);
        stack.push(m.to_string());
        for n in graph.get(m).into_iter().flatten() {
            match state.get(n.as_str()).copied().unwrap_or(0) {
                1 => {
                    let i = stack.iter().position(|s| s == n).unwrap();
                    let mut cycle = stack[i..].to_vec();
                    cycle.push(n.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(n, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in graph.keys() {
        if state.get(m.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(m, &graph, &mut state, &mut Vec::new()) {
                panic!("import circle: {}", c.join(" -> "));
            }
        }
    }
}
