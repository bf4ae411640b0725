//! The module graph stays layered: this test reads the Rust sources of `src/` and `crates/kube-sim/src/` and
//! builds the graph of edges between their top-level modules (each `src/X.rs` or `src/X/`, plus the crate roots
//! `lib` and `main`).
//!
//! An edge is any path that names another top-level module: `use crate::a::…`, grouped
//! `use crate::{a::…, b::…}`, `super::` climbing to the crate root, a path in an expression
//! (`crate::a::f()`), bare `a::` in a crate root, and `backup_ns::a` / `kube_sim::a` in `main.rs`. `crate::Name`
//! of a root re-export (`pub use exit::Exit`) counts as an edge to the module it comes from. Comments, doc
//! comments and string literals are blanked before scanning. `#[cfg(test)]` modules are scanned like any other
//! code: a test that reaches into a higher module couples the two all the same, so it gets no exemption.
//!
//! The checks: no cycle between top-level modules (each edge of a cycle is printed with the files and lines that
//! make it); every import points down or sideways in the crate's layer table in ARCHITECTURE.md, and the table
//! lists exactly the modules that exist.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where an edge comes from: a file (relative to the repository) and a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Site {
    file: String,
    line: usize,
}

/// Edges between top-level modules, each with every site that makes it.
type Graph = BTreeMap<(String, String), Vec<Site>>;

/// One crate's sources: its `src/` directory and the name `main.rs` uses for the library.
struct Sources {
    repo: PathBuf,
    src: PathBuf,
    lib_name: &'static str,
}

impl Sources {
    /// `src` relative to the repository; `lib_name` as `main.rs` writes the library's name.
    fn new(src: &str, lib_name: &'static str) -> Sources {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        Sources {
            src: repo.join(src),
            repo,
            lib_name,
        }
    }

    fn backup_ns() -> Sources {
        Sources::new("src", "backup_ns")
    }

    fn kube_sim() -> Sources {
        Sources::new("crates/kube-sim/src", "kube_sim")
    }

    /// The top-level modules: `X.rs` and `X/` in `src/`; `lib.rs` and `main.rs` are the roots `lib` and `main`.
    fn modules(&self) -> BTreeSet<String> {
        let mut modules = BTreeSet::new();
        for entry in std::fs::read_dir(&self.src).expect("read src/") {
            let path = entry.expect("read src/ entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                modules.insert(name);
            } else if let Some(stem) = name.strip_suffix(".rs") {
                modules.insert(stem.to_string());
            }
        }
        modules
    }

    /// Every `.rs` file under `src/`, sorted, so failures print in a stable order.
    fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).expect("read a source directory") {
                let path = entry.expect("read a directory entry").path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        walk(&self.src, &mut files);
        files.sort();
        files
    }

    /// The module graph of this crate.
    fn graph(&self) -> Graph {
        let modules = self.modules();
        let lib = self.src.join("lib.rs");
        let reexports = match std::fs::read_to_string(&lib) {
            Ok(text) => root_reexports(&text, &modules),
            Err(_) => BTreeMap::new(),
        };
        let mut graph = Graph::new();
        for file in self.files() {
            let relative = file.strip_prefix(&self.src).unwrap();
            let text = std::fs::read_to_string(&file).expect("read a source file");
            let shown = file.strip_prefix(&self.repo).unwrap().display().to_string();
            for (to, line) in edges_of_file(relative, &text, &modules, &reexports, self.lib_name) {
                let from = top_module(relative);
                if from != to {
                    graph.entry((from, to)).or_default().push(Site {
                        file: shown.clone(),
                        line,
                    });
                }
            }
        }
        for sites in graph.values_mut() {
            sites.dedup();
        }
        graph
    }
}

/// `engine/steps.rs` → `engine`; `lib.rs` → `lib`.
fn top_module(relative: &Path) -> String {
    let first = relative.components().next().unwrap();
    let first = first.as_os_str().to_string_lossy();
    first.strip_suffix(".rs").unwrap_or(&first).to_string()
}

/// The module path of a file: `engine/steps.rs` → `[engine, steps]`, `engine/mod.rs` → `[engine]`, the roots → `[]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.strip_suffix(".rs").unwrap_or(&last);
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return Vec::new();
    }
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

/// Replaces comments (line, block, nested block, doc), string literals (plain, byte, raw) and char literals with
/// spaces, keeping newlines so lines still count. Lifetimes (`'a`) are kept.
fn blank(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let spaces = |from: usize, to: usize, out: &mut String| {
        for &ch in &c[from..to.min(c.len())] {
            out.push(if ch == '\n' { '\n' } else { ' ' });
        }
    };
    let mut i = 0;
    while i < c.len() {
        let ident_before = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            let end = c[i..]
                .iter()
                .position(|&ch| ch == '\n')
                .map_or(c.len(), |p| i + p);
            spaces(i, end, &mut out);
            i = end;
        } else if c[i] == '/' && next == Some('*') {
            let (mut depth, mut j) = (1, i + 2);
            while j < c.len() && depth > 0 {
                if c[j] == '/' && c.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if c[j] == '*' && c.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            spaces(i, j, &mut out);
            i = j;
        } else if let Some(end) = (!ident_before).then(|| raw_string_end(&c, i)).flatten() {
            spaces(i, end, &mut out);
            i = end;
        } else if c[i] == '"' {
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            spaces(i, j + 1, &mut out);
            i = j + 1;
        } else if c[i] == '\'' && next == Some('\\') {
            let mut j = i + 3;
            while j < c.len() && c[j] != '\'' {
                j += 1;
            }
            spaces(i, j + 1, &mut out);
            i = j + 1;
        } else if c[i] == '\'' && c.get(i + 2) == Some(&'\'') {
            spaces(i, i + 3, &mut out);
            i += 3;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// If a raw string (`r"…"`, `r#"…"#`, `br"…"`) starts at `i`, the index just past its end.
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if c.get(j) == Some(&'b') {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = c[j..].iter().take_while(|&&ch| ch == '#').count();
    j += hashes;
    if c.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < c.len() {
        if c[j] == '"'
            && c[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&ch| ch == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(c.len())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Other,
}

/// Identifiers, `::`, braces and commas with their lines; everything else is `Other`.
fn tokens(blanked: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = blanked.chars().collect();
    let (mut out, mut line, mut i) = (Vec::new(), 1, 0);
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(c[start..i].iter().collect()), line));
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push((Tok::PathSep, line));
            i += 2;
        } else {
            let tok = match ch {
                '{' => Tok::Open,
                '}' => Tok::Close,
                ',' => Tok::Comma,
                _ => Tok::Other,
            };
            out.push((tok, line));
            i += 1;
        }
    }
    out
}

/// Names the crate root re-exports (`pub use exit::Exit;` → `Exit` → `exit`), so `crate::Exit` is an edge to
/// `exit`, not to the root.
fn root_reexports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let toks = tokens(&blank(lib));
    let mut map = BTreeMap::new();
    let mut i = 0;
    while i + 2 < toks.len() {
        let is_pub_use =
            toks[i].0 == Tok::Ident("pub".into()) && toks[i + 1].0 == Tok::Ident("use".into());
        let module = match &toks[i + 2].0 {
            Tok::Ident(m) if is_pub_use && modules.contains(m) => m.clone(),
            _ => {
                i += 1;
                continue;
            }
        };
        let mut j = i + 3;
        while j < toks.len() && toks[j].0 != Tok::Other {
            if let Tok::Ident(name) = &toks[j].0
                && toks.get(j + 1).map(|t| &t.0) != Some(&Tok::PathSep)
            {
                map.insert(name.clone(), module.clone());
            }
            j += 1;
        }
        i = j;
    }
    map
}

/// The top-level modules one file names, with the line of each mention.
fn edges_of_file(
    relative: &Path,
    text: &str,
    modules: &BTreeSet<String>,
    reexports: &BTreeMap<String, String>,
    lib_name: &str,
) -> Vec<(String, usize)> {
    let toks = tokens(&blank(text));
    let file_path = module_path(relative);
    let is_main = relative == Path::new("main.rs");
    let is_root = file_path.is_empty();
    // Inline `mod name { … }` blocks: (name, brace depth inside the block), so `super::` climbs from the right place.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut out = Vec::new();
    let ident = |k: usize| match toks.get(k) {
        Some((Tok::Ident(s), _)) => Some(s.as_str()),
        _ => None,
    };
    let sep = |k: usize| toks.get(k).map(|t| &t.0) == Some(&Tok::PathSep);
    // The module a path segment right after the crate root names.
    let resolve = |name: &str| -> Option<String> {
        if modules.contains(name) {
            Some(name.to_string())
        } else if let Some(m) = reexports.get(name) {
            Some(m.clone())
        } else if name == "self" || name == "super" {
            None
        } else {
            Some("lib".to_string())
        }
    };
    for k in 0..toks.len() {
        match &toks[k].0 {
            Tok::Open => {
                depth += 1;
                if ident(k.wrapping_sub(2)) == Some("mod")
                    && let Some(name) = ident(k - 1)
                {
                    inline.push((name.to_string(), depth));
                }
                continue;
            }
            Tok::Close => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
                continue;
            }
            _ => {}
        }
        let Some(word) = ident(k) else { continue };
        let starts_path = k == 0 || !sep(k - 1);
        if !starts_path || !sep(k + 1) {
            continue;
        }
        let line = toks[k].1;
        let mut here: Vec<String> = file_path.clone();
        here.extend(inline.iter().map(|(n, _)| n.clone()));
        // Where the path continues after its anchor, if it continues at the crate root.
        let at_root = match word {
            "crate" if !is_main => Some(k + 2),
            w if is_main && w == lib_name => Some(k + 2),
            "super" | "self" => {
                let mut j = k;
                let mut up = 0;
                while ident(j) == Some("super") && sep(j + 1) {
                    up += 1;
                    j += 2;
                }
                if word == "self" {
                    j = k + 2;
                }
                if up >= here.len() {
                    Some(j)
                } else {
                    // Still inside this file's own top-level module (or an inline module of a root).
                    out.push((top_module(relative), line));
                    None
                }
            }
            w if is_root && !is_main && inline.is_empty() && modules.contains(w) => Some(k),
            _ => None,
        };
        let Some(j) = at_root else { continue };
        if toks.get(j).map(|t| &t.0) == Some(&Tok::Open) {
            // A group: the first segment of each item at the group's own depth.
            let mut level = 0;
            let mut item_start = true;
            for (tok, item_line) in &toks[j..] {
                match tok {
                    Tok::Open => {
                        level += 1;
                        item_start = level == 1;
                        continue;
                    }
                    Tok::Close => {
                        level -= 1;
                        if level == 0 {
                            break;
                        }
                    }
                    Tok::Comma if level == 1 => {
                        item_start = true;
                        continue;
                    }
                    Tok::Ident(name) if item_start && level == 1 => {
                        if let Some(m) = resolve(name) {
                            out.push((m, *item_line));
                        }
                    }
                    _ => {}
                }
                item_start = false;
            }
        } else if let Some(name) = ident(j)
            && let Some(m) = resolve(name)
        {
            out.push((m, line));
        }
    }
    out
}

/// Groups of modules that reach each other (strongly connected components with more than one module).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in graph.keys() {
        next.entry(from).or_default().push(to);
    }
    let reach = |start: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([start.to_string()]);
        while let Some(n) = queue.pop_front() {
            for &m in next.get(n.as_str()).into_iter().flatten() {
                if seen.insert(m.to_string()) {
                    queue.push_back(m.to_string());
                }
            }
        }
        seen
    };
    let nodes: BTreeSet<&str> = graph
        .keys()
        .flat_map(|(a, b)| [a.as_str(), b.as_str()])
        .collect();
    let reachable: BTreeMap<&str, BTreeSet<String>> =
        nodes.iter().map(|&n| (n, reach(n))).collect();
    let mut groups: Vec<Vec<String>> = Vec::new();
    for &n in &nodes {
        if groups.iter().any(|g| g.iter().any(|m| m == n)) {
            continue;
        }
        let group: Vec<String> = nodes
            .iter()
            .filter(|&&m| m == n || (reachable[n].contains(m) && reachable[m].contains(n)))
            .map(|m| m.to_string())
            .collect();
        if group.len() > 1 {
            groups.push(group);
        }
    }
    groups
}

/// The shortest cycle through `start` that stays inside `group`: `[start, …, start]`.
fn shortest_cycle(graph: &Graph, group: &[String], start: &str) -> Vec<String> {
    let mut parent: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = VecDeque::from([start.to_string()]);
    while let Some(n) = queue.pop_front() {
        for (from, to) in graph.keys() {
            if *from != n || !group.contains(to) {
                continue;
            }
            if to == start {
                let mut path = vec![n.clone()];
                let mut cur = n.clone();
                while let Some(p) = parent.get(&cur) {
                    path.push(p.clone());
                    cur = p.clone();
                }
                path.reverse();
                path.push(start.to_string());
                return path;
            }
            if to != start && !parent.contains_key(to) {
                parent.insert(to.clone(), n.clone());
                queue.push_back(to.clone());
            }
        }
    }
    unreachable!("{start} is in a strongly connected group, so a cycle exists")
}

fn describe_edge(out: &mut String, graph: &Graph, from: &str, to: &str) {
    let sites = &graph[&(from.to_string(), to.to_string())];
    let _ = writeln!(out, "    {from} -> {to}:");
    for site in sites.iter().take(6) {
        let _ = writeln!(out, "      {}:{}", site.file, site.line);
    }
    if sites.len() > 6 {
        let _ = writeln!(out, "      … and {} more", sites.len() - 6);
    }
}

/// Every cycle, one per module of each cyclic group (deduplicated), each edge with its sites. Empty: acyclic.
fn cycle_report(graph: &Graph) -> String {
    let mut out = String::new();
    let mut shown: BTreeSet<Vec<String>> = BTreeSet::new();
    for group in cycles(graph) {
        for start in &group {
            let cycle = shortest_cycle(graph, &group, start);
            let mut key = cycle[..cycle.len() - 1].to_vec();
            key.sort();
            if !shown.insert(key) {
                continue;
            }
            let _ = writeln!(out, "cycle: {}", cycle.join(" -> "));
            for pair in cycle.windows(2) {
                describe_edge(&mut out, graph, &pair[0], &pair[1]);
            }
        }
    }
    out
}

/// A layer table of ARCHITECTURE.md: rows `| N | \`module\`, … | … |` under a header that starts with
/// `header` (`| layer | modules |`), bottom (0) first. Returns module → layer, or what is wrong with the table.
fn layer_table(markdown: &str, header: &str) -> Result<BTreeMap<String, usize>, String> {
    let mut lines = markdown
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(header));
    if lines.next().is_none() {
        return Err(format!(
            "ARCHITECTURE.md has no table with the header `{header} … |`"
        ));
    }
    lines.next(); // the |---| separator
    let mut layers = BTreeMap::new();
    for (expected, row) in lines
        .take_while(|l| l.trim_start().starts_with('|'))
        .enumerate()
    {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let layer: usize = cells
            .get(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("layer table row without a layer number: {row}"))?;
        if layer != expected {
            return Err(format!(
                "layer table rows go bottom to top as 0, 1, 2, …; found {layer} where {expected} belongs: {row}"
            ));
        }
        let names = cells.get(2).copied().unwrap_or("");
        for name in names.split('`').skip(1).step_by(2) {
            let name = name
                .trim_end_matches('/')
                .trim_end_matches(".rs")
                .to_string();
            if let Some(before) = layers.insert(name.clone(), layer) {
                return Err(format!("`{name}` is listed in layers {before} and {layer}"));
            }
        }
    }
    if layers.is_empty() {
        return Err("the layer table of ARCHITECTURE.md has no rows".into());
    }
    Ok(layers)
}

fn assert_acyclic(sources: &Sources) {
    let report = cycle_report(&sources.graph());
    let shown = sources.src.strip_prefix(&sources.repo).unwrap().display();
    assert!(
        report.is_empty(),
        "import cycles between top-level modules of {shown}/:\n{report}"
    );
}

#[test]
fn src_has_no_import_cycles_between_top_level_modules() {
    assert_acyclic(&Sources::backup_ns());
}

#[test]
fn kube_sim_has_no_import_cycles_between_top_level_modules() {
    assert_acyclic(&Sources::kube_sim());
}

/// The layer table under `header` lists exactly the modules of `sources`, and no module imports a higher layer.
fn assert_layered(sources: &Sources, header: &str) {
    let markdown = std::fs::read_to_string(sources.repo.join("ARCHITECTURE.md"))
        .expect("read ARCHITECTURE.md");
    let layers = layer_table(&markdown, header).unwrap_or_else(|e| panic!("{e}"));
    let shown = sources.src.strip_prefix(&sources.repo).unwrap().display();
    let modules = sources.modules();
    let mut problems = String::new();
    for m in &modules {
        if !layers.contains_key(m) {
            let _ = writeln!(
                problems,
                "{shown}/ has module `{m}`, which the layer table `{header}` does not list"
            );
        }
    }
    for m in layers.keys() {
        if !modules.contains(m) {
            let _ = writeln!(
                problems,
                "the layer table `{header}` lists `{m}`, which {shown}/ does not have"
            );
        }
    }
    let graph = sources.graph();
    for (from, to) in graph.keys() {
        if let (Some(&low), Some(&high)) = (layers.get(from), layers.get(to))
            && high > low
        {
            let _ = writeln!(
                problems,
                "`{from}` (layer {low}) imports `{to}` (layer {high}), a higher layer:"
            );
            describe_edge(&mut problems, &graph, from, to);
        }
    }
    assert!(problems.is_empty(), "{problems}");
}

#[test]
fn src_imports_point_down_the_layers_drawn_in_architecture_md() {
    assert_layered(&Sources::backup_ns(), "| layer | modules |");
}

#[test]
fn kube_sim_imports_point_down_the_layers_drawn_in_architecture_md() {
    assert_layered(&Sources::kube_sim(), "| layer | kube-sim modules |");
}

/// The bottom of the bottom layer: `vocab` is spoken by everyone, so it may lean on nothing but the label formats
/// and the clock.
#[test]
fn vocab_imports_no_other_module_but_labels_and_clock() {
    let graph = Sources::backup_ns().graph();
    let mut problems = String::new();
    for (from, to) in graph.keys() {
        if from == "vocab" && to != "labels" && to != "clock" {
            describe_edge(&mut problems, &graph, from, to);
        }
    }
    assert!(problems.is_empty(), "vocab imports:\n{problems}");
}

/// The scanner itself: it must see every form of path and nothing in comments or strings, or the checks above
/// would pass for the wrong reason.
#[test]
fn the_scanner_finds_every_form_of_module_path_and_ignores_comments_and_strings() {
    let modules: BTreeSet<String> = ["a", "b", "c", "d", "e", "f", "g", "h", "lib", "exit"]
        .map(String::from)
        .into();
    let reexports = root_reexports("pub use exit::{Exit, Other as Renamed};", &modules);
    assert_eq!(reexports.get("Exit").map(String::as_str), Some("exit"));
    assert_eq!(reexports.get("Renamed").map(String::as_str), Some("exit"));
    let text = r##"
use crate::a::Thing;
use crate::{b::X, c::{self, Y}};
// use crate::d::Commented;
/* use crate::d::{Block, /* nested */ Comment}; */
/// [`crate::d::Doc`]
fn f<'l>(s: &'l str) -> char {
    let _ = "crate::d::InAString";
    let _ = r#"crate::d::"raw"#;
    let _ = crate::e::call();
    let _ = crate::Exit::Ok;
    let _ = crate::run();
    '"'
}
mod tests {
    use super::*;
    use super::super::super::f::Z;
}
use super::super::g;
use self::h::W;
"##;
    let found: BTreeSet<String> =
        edges_of_file(Path::new("x/y.rs"), text, &modules, &reexports, "x")
            .into_iter()
            .map(|(m, line)| format!("{m}@{line}"))
            .collect();
    let expected: BTreeSet<String> = [
        "a@2", "b@3", "c@3", "e@10", "exit@11", "lib@12", "x@16", "f@17", "g@19", "x@20",
    ]
    .map(String::from)
    .into();
    assert_eq!(found, expected);
}

#[test]
fn a_cycle_is_reported_with_every_edge_and_site() {
    let site = |line| {
        vec![Site {
            file: "src/x.rs".into(),
            line,
        }]
    };
    let graph: Graph = [
        (("a".into(), "b".into()), site(1)),
        (("b".into(), "c".into()), site(2)),
        (("c".into(), "a".into()), site(3)),
        (("c".into(), "d".into()), site(4)),
    ]
    .into();
    let report = cycle_report(&graph);
    assert!(report.starts_with("cycle: a -> b -> c -> a\n"), "{report}");
    for line in 1..=3 {
        assert!(report.contains(&format!("src/x.rs:{line}\n")), "{report}");
    }
    assert!(!report.contains("src/x.rs:4"), "{report}");
}

#[test]
fn an_acyclic_graph_reports_nothing() {
    let graph: Graph = [(("a".into(), "b".into()), vec![])].into();
    assert_eq!(cycle_report(&graph), "");
}
