//! The module layout check: within each crate of the workspace (every crate under `crates/`, the root
//! crate's `src/` and `src-tauri/src/`), the top-level modules must not depend on each other in a
//! cycle. A module `a` and all its children (`a/…`, inline `mod`s) count as `a`; a dependency is any
//! `crate::…` path (in `use` or in code, groups `crate::{a, b}` included) and any `super::…` path that
//! leaves the top-level module, resolved from the file's place in the tree. A name the crate root
//! re-exports (`pub use a::Thing;`) counts as its module. The crate root itself is the composition
//! point: its own dependencies are not edges. No compiler, no network: the sources are read as text
//! (comments and string literals skipped), which takes milliseconds.
//!
//! In tend-engine, besides, only the App facade (`app`) may depend on the engine loop (`engine`): its
//! sources and sinks reach it through the mailbox.
//!
//! Run it alone with `cargo test -p tend --test e2e -- layout::`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One source file of a crate: its module path below the crate root (`[]` for `lib.rs`/`main.rs`),
/// where it is (for messages), and its text.
struct SourceFile {
    module: Vec<String>,
    shown: String,
    text: String,
}

/// Edges between top-level modules: from → to → where the first such path was seen.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

#[test]
fn no_crate_has_a_cycle_between_its_top_level_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut crates: Vec<(String, PathBuf)> = vec![("tend".into(), root.join("src"))];
    let mut members: Vec<PathBuf> =
        std::fs::read_dir(root.join("crates")).unwrap().map(|e| e.unwrap().path()).collect();
    members.push(root.join("src-tauri"));
    members.sort();
    for dir in members {
        if dir.join("Cargo.toml").is_file() && dir.join("src").is_dir() {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            crates.push((name, dir.join("src")));
        }
    }
    let mut cycles = Vec::new();
    let mut graphs = BTreeMap::new();
    for (name, src) in &crates {
        let files = read_sources(src, src);
        assert!(!files.is_empty(), "no sources under {}", src.display());
        let graph = graph(&files);
        if let Some(cycle) = find_cycle(&graph) {
            cycles.push(format!("{name}: {}", describe(&graph, &cycle)));
        }
        graphs.insert(name.clone(), graph);
    }
    // The reading itself works on the real tree: the facade depends on the engine it starts.
    assert!(
        graphs["tend-engine"].get("app").is_some_and(|to| to.contains_key("engine")),
        "the layout check no longer sees tend-engine's app → engine: {:?}",
        graphs["tend-engine"]
    );
    assert!(cycles.is_empty(), "cycles between top-level modules:\n{}", cycles.join("\n"));
    // The engine loop is reached through the App facade only; its tasks see the mailbox.
    let into_engine: Vec<String> = graphs["tend-engine"]
        .iter()
        .filter(|(from, to)| *from != "app" && to.contains_key("engine"))
        .map(|(from, to)| format!("{from} → engine: {}", to["engine"]))
        .collect();
    assert!(into_engine.is_empty(), "only tend-engine's app may name the engine: {into_engine:?}");
}

/// Every `.rs` file under `dir` (not `src/bin/`, which holds other crates), with its module path.
fn read_sources(src: &Path, dir: &Path) -> Vec<SourceFile> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path != src.join("bin") {
                out.extend(read_sources(src, &path));
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(src).unwrap();
        let mut module: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
        let file = module.pop().unwrap();
        let stem = file.trim_end_matches(".rs");
        if !(module.is_empty() && (stem == "lib" || stem == "main")) && stem != "mod" {
            module.push(stem.to_owned());
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let shown = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(&path).display().to_string();
        out.push(SourceFile { module, shown, text });
    }
    out
}

/// A token of Rust source with its line: identifiers, `::`, and single punctuation characters.
#[derive(Clone, Debug, PartialEq)]
struct Token {
    text: String,
    line: usize,
}

/// The tokens that matter for paths; comments, string, byte-string, raw-string and char literals are
/// skipped, lifetimes kept as punctuation.
fn tokens(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(c[i] == '\n');
                    i += 1;
                }
            }
        } else if ch == '"' || (ch == 'b' && at(i + 1) == '"') {
            i += if ch == 'b' { 2 } else { 1 };
            while i < c.len() && c[i] != '"' {
                line += usize::from(c[i] == '\n');
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if let Some(hashes) = raw_string_at(&c, i) {
            // A raw string: r"…", r#"…"#, br"…".
            i += if ch == 'b' { 3 } else { 2 } + hashes;
            while i < c.len() && !(c[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#')) {
                line += usize::from(c[i] == '\n');
                i += 1;
            }
            i += 1 + hashes;
        } else if ch == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if at(i + 1) == '\\' {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                out.push(Token { text: "'".into(), line });
                i += 1;
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Token { text: c[start..i].iter().collect(), line });
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Token { text: "::".into(), line });
            i += 2;
        } else {
            out.push(Token { text: ch.to_string(), line });
            i += 1;
        }
    }
    out
}

/// At the start of a raw string (`r"`, `r#"`, `br##"`, …): how many `#` it has.
fn raw_string_at(c: &[char], i: usize) -> Option<usize> {
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    let j = match (at(i), at(i + 1)) {
        ('r', _) => i + 1,
        ('b', 'r') => i + 2,
        _ => return None,
    };
    let hashes = (j..).take_while(|&k| at(k) == '#').count();
    (at(j + hashes) == '"').then_some(hashes)
}

fn is_ident(t: &str) -> bool {
    t.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// The first segments named at `toks[i]`: one identifier, or each member of a `{…}` group.
fn first_segments(toks: &[Token], i: usize) -> Vec<String> {
    match toks.get(i).map(|t| t.text.as_str()) {
        Some("{") => {
            let (mut depth, mut expect, mut out) = (0, true, Vec::new());
            for t in &toks[i..] {
                match t.text.as_str() {
                    "{" => {
                        depth += 1;
                        if depth == 1 {
                            expect = true;
                            continue;
                        }
                    }
                    "}" => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    "," if depth == 1 => {
                        expect = true;
                        continue;
                    }
                    s if depth == 1 && expect && is_ident(s) && s != "self" => out.push(s.to_owned()),
                    _ => {}
                }
                expect = false;
            }
            out
        }
        Some(s) if is_ident(s) => vec![s.to_owned()],
        _ => Vec::new(),
    }
}

/// The names the crate root imports (`use a::{B, c::D as E};`): name → top-level module.
fn root_imports(toks: &[Token], modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut depth = 0;
    let mut i = 0;
    while i < toks.len() {
        match toks[i].text.as_str() {
            "{" => depth += 1,
            "}" => depth -= 1,
            "use" if depth == 0 => {
                let end = toks[i..].iter().position(|t| t.text == ";").map_or(toks.len(), |p| i + p);
                let mut stmt = &toks[i + 1..end];
                if stmt.first().is_some_and(|t| t.text == "crate" || t.text == "self") {
                    stmt = stmt.get(2..).unwrap_or_default();
                }
                if let Some(m) = stmt.first().filter(|t| modules.contains(&t.text)) {
                    // Every name the statement brings in: an identifier before `,`, `}` or the end
                    // (or after `as`), other than `self`.
                    for (k, t) in stmt.iter().enumerate() {
                        let next = stmt.get(k + 1).map(|n| n.text.as_str());
                        if k > 0
                            && is_ident(&t.text)
                            && t.text != "self"
                            && matches!(next, None | Some(",") | Some("}"))
                        {
                            out.insert(t.text.clone(), m.text.clone());
                        }
                    }
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The dependency graph between the crate's top-level modules.
fn graph(files: &[SourceFile]) -> Graph {
    let modules: BTreeSet<String> = files.iter().filter_map(|f| f.module.first().cloned()).collect();
    let mut imports = BTreeMap::new();
    for f in files.iter().filter(|f| f.module.is_empty()) {
        imports.extend(root_imports(&tokens(&f.text), &modules));
    }
    let mut graph = Graph::new();
    for f in files {
        let toks = tokens(&f.text);
        // Inline `mod name {` blocks open at this brace depth.
        let mut inline: Vec<(String, usize)> = Vec::new();
        let mut depth = 0;
        let mut i = 0;
        while i < toks.len() {
            let t = toks[i].text.as_str();
            let here: Vec<String> =
                f.module.iter().cloned().chain(inline.iter().map(|(m, _)| m.clone())).collect();
            let mut targets = Vec::new();
            let mut next = i + 1;
            match t {
                "{" => {
                    depth += 1;
                    if i >= 2 && toks[i - 2].text == "mod" && is_ident(&toks[i - 1].text) {
                        inline.push((toks[i - 1].text.clone(), depth));
                    }
                }
                "}" => {
                    if inline.last().is_some_and(|(_, d)| *d == depth) {
                        inline.pop();
                    }
                    depth -= 1;
                }
                "crate" if toks.get(i + 1).is_some_and(|t| t.text == "::") => {
                    targets = first_segments(&toks, i + 2);
                    next = i + 2;
                }
                "super" if toks.get(i + 1).is_some_and(|t| t.text == "::") => {
                    let mut base = here.clone();
                    let mut j = i;
                    while toks.get(j).is_some_and(|t| t.text == "super")
                        && toks.get(j + 1).is_some_and(|t| t.text == "::")
                    {
                        base.pop();
                        j += 2;
                    }
                    targets = match base.first() {
                        Some(top) => vec![top.clone()],
                        None => first_segments(&toks, j),
                    };
                    next = j;
                }
                _ => {}
            }
            if let Some(from) = here.first() {
                for name in targets {
                    let to = if modules.contains(&name) { Some(name) } else { imports.get(&name).cloned() };
                    if let Some(to) = to.filter(|to| to != from) {
                        let line = toks[i].line;
                        graph
                            .entry(from.clone())
                            .or_default()
                            .entry(to)
                            .or_insert_with(|| format!("{}:{line}", f.shown));
                    }
                }
            }
            i = next;
        }
    }
    graph
}

/// One cycle of the graph, as the modules along it (the first repeated at the end), if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        graph: &Graph,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(p) = path.iter().position(|n| n == node) {
            let mut cycle = path[p..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for to in graph.get(node).into_iter().flat_map(|m| m.keys()) {
            if let Some(c) = visit(graph, to, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(graph, n, &mut Vec::new(), &mut done))
}

/// `a → b → a (a → b: src/a.rs:3; b → a: src/b.rs:7)`.
fn describe(graph: &Graph, cycle: &[String]) -> String {
    let wheres: Vec<String> =
        cycle.windows(2).map(|w| format!("{} → {}: {}", w[0], w[1], graph[&w[0]][&w[1]])).collect();
    format!("{} ({})", cycle.join(" → "), wheres.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<SourceFile> {
        list.iter()
            .map(|(path, text)| {
                let mut module: Vec<String> =
                    path.trim_end_matches(".rs").split('/').map(str::to_owned).collect();
                if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                    module.pop();
                }
                SourceFile { module, shown: (*path).to_owned(), text: (*text).to_owned() }
            })
            .collect()
    }

    fn cycle(list: &[(&str, &str)]) -> Option<String> {
        let g = graph(&files(list));
        find_cycle(&g).map(|c| describe(&g, &c))
    }

    #[test]
    fn a_cycle_through_use_and_super_paths_is_found_and_named() {
        let found = cycle(&[
            ("lib", "mod a;\nmod b;\nmod c;"),
            ("a", "use crate::b::Thing;\nfn f() {}"),
            ("b/mod", "mod x;"),
            ("b/x", "fn g() {\n    super::super::a::f()\n}"),
            ("c", "use crate::a;"),
        ]);
        assert_eq!(found.as_deref(), Some("a → b → a (a → b: a:1; b → a: b/x:2)"));
    }

    #[test]
    fn comments_strings_inline_tests_and_the_root_are_no_dependencies() {
        let found = cycle(&[
            ("lib", "mod a;\nmod b;\nuse crate::a::X;\nfn root() { crate::b::y() }"),
            (
                "a",
                "use crate::b::Y;\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::Z;\n}",
            ),
            (
                "b",
                "// crate::a::X\n/* crate::a /* nested */ crate::a */\nconst S: &str = \"crate::a::X\";\nconst R: &str = r#\"super::a \"#;\nfn f<'a>(c: char) -> bool { c == '\"' }\npub(crate) fn y() {}",
            ),
        ]);
        assert_eq!(found, None);
    }

    #[test]
    fn groups_children_and_root_reexports_count_as_their_module() {
        let groups =
            cycle(&[("lib", "mod a;\nmod b;"), ("a", "use crate::{b::Y, c};"), ("b/inner", "use crate::a;")]);
        assert!(groups.is_some_and(|c| c.starts_with("a → b → a")));
        let reexport = cycle(&[
            ("lib", "mod a;\nmod b;\npub use a::{Thing, other::Deep as Renamed};"),
            ("a", "pub struct Thing;\nfn f() { crate::b::g() }"),
            ("b", "use crate::Renamed;\npub fn g() {}"),
        ]);
        assert!(reexport.is_some_and(|c| c.starts_with("a → b → a")));
    }
}
