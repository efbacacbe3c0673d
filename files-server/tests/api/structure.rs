//! The shape of the code: no module of a crate imports a module that imports it back, and no
//! route handler reaches an adapter (handlers extract, call the service and map the result).
//!
//! Each crate's `src` is read as text: comments and literals blanked, then every `use` tree and
//! every `crate::`/`super::`/`self::`/child-module path resolved to the file of the module it
//! names. A name a module re-exports (`pub use config::JwtConfig`) resolves to where it is
//! defined, so a re-export is not a loop; code inside an inline module (`mod tests { ... }`)
//! counts as its file's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

/// A loop is any chain of imports that comes back to where it started, a child module and its
/// parent using each other included: a parent declares and re-exports its children, and a
/// child takes what it needs from a sibling leaf, never through its parent.
fn no_loops_in(name: &str) {
    let graph = Graph::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name).join("src"));
    let loops: Vec<String> = graph.loops(true).into_iter().map(|cycle| cycle.join(" -> ")).collect();
    assert!(
        loops.is_empty(),
        "{name}: modules that import each other:\n{}",
        loops.join("\n")
    );
}

#[test]
fn no_module_of_the_server_imports_a_module_that_imports_it_back() {
    no_loops_in("files-server");
}

#[test]
fn no_module_of_the_adapters_imports_a_module_that_imports_it_back() {
    no_loops_in("files-adapters");
}

#[test]
fn no_module_of_the_core_imports_a_module_that_imports_it_back() {
    no_loops_in("files-core");
}

#[test]
fn no_module_of_the_testkit_imports_a_module_that_imports_it_back() {
    no_loops_in("files-testkit");
}

#[test]
fn no_route_handler_uses_an_adapter() {
    let routes = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
    let offenders: Vec<_> = rust_files(&routes)
        .into_iter()
        .filter(|file| std::fs::read_to_string(file).unwrap().contains("files_adapters"))
        .collect();
    assert!(
        offenders.is_empty(),
        "route handlers that name files_adapters: {offenders:?}"
    );
}

/// The check itself finds a loop, through `crate::`, `super::`, a child module and a use tree.
#[test]
fn the_check_finds_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir(src.join("b")).unwrap();
    let write = |file: &str, text: &str| std::fs::write(src.join(file), text).unwrap();
    write("lib.rs", "mod a;\nmod b;\npub use a::A;\n");
    write("a.rs", "use crate::{b::{c::C}};\npub struct A;\n");
    write("b/mod.rs", "mod c;\npub fn b() { c::f(); }\n");
    // "crate::a" in a comment and a string does not count; the use, through the re-export in
    // lib.rs, does.
    write(
        "b/c.rs",
        "// crate::a::A\nconst S: &str = \"crate::a::A\";\nuse crate::A as _;\npub struct C;\n",
    );
    let loops = Graph::read(src).loops(false);
    assert_eq!(loops.len(), 1, "{loops:?}");
    assert!(
        loops[0].contains(&"a.rs".to_owned()) && loops[0].contains(&"b/c.rs".to_owned()),
        "{loops:?}"
    );
    write(
        "b/c.rs",
        "// crate::a::A\nconst S: &str = \"crate::a::A\";\npub struct C;\n",
    );
    assert!(Graph::read(src).loops(false).is_empty());
    // A child that uses its parent's items while the parent uses the child's: a loop only when
    // every import counts.
    write("b/c.rs", "use super::b;\npub struct C;\n");
    assert!(Graph::read(src).loops(false).is_empty());
    assert_eq!(Graph::read(src).loops(true).len(), 1);
    // A test module's imports are not part of the structure.
    write(
        "b/c.rs",
        "#[cfg(test)]\nmod tests {\n    use crate::a::A;\n}\npub struct C;\n",
    );
    assert!(Graph::read(src).loops(true).is_empty());
}

/// The modules of one crate's `src` (the library; `main.rs` and `bin/` are not part of it) and
/// the files each one's file imports.
struct Graph {
    /// Module path (`["routes", "files"]`) to its file, relative to `src`.
    modules: BTreeMap<Vec<String>, String>,
    /// Per module, the names its `use` items bring in, and the absolute path each stands for.
    imports: BTreeMap<Vec<String>, BTreeMap<String, Vec<String>>>,
    /// Per file, the files it imports from.
    edges: BTreeMap<String, BTreeSet<String>>,
}

/// A path from the crate root, as written in a file.
struct Mention {
    path: Vec<String>,
}

impl Graph {
    fn read(src: &Path) -> Self {
        let mut modules = BTreeMap::new();
        let mut sources = Vec::new();
        let mut test_only = Vec::new();
        for file in rust_files(src) {
            let relative = file.strip_prefix(src).unwrap().to_string_lossy().replace('\\', "/");
            if relative == "main.rs" || relative.starts_with("bin/") {
                continue;
            }
            let mut module: Vec<String> = relative.trim_end_matches(".rs").split('/').map(str::to_owned).collect();
            if module.last().is_some_and(|last| last == "mod" || last == "lib") {
                module.pop();
            }
            let (code, tests) = without_tests(&blank(&std::fs::read_to_string(&file).unwrap()));
            test_only.extend(tests.into_iter().map(|name| [module.clone(), vec![name]].concat()));
            modules.insert(module.clone(), relative.clone());
            sources.push((module, relative, code));
        }
        // Test modules are not part of the structure: their imports are left out.
        modules.retain(|module, _| !test_only.iter().any(|test| module.starts_with(test)));
        sources.retain(|(module, _, _)| modules.contains_key(module));
        let uses = Regex::new(r"\buse\s+([^;]*);").unwrap();
        let paths = Regex::new(r"\b[A-Za-z_][A-Za-z0-9_]*(?:\s*::\s*[A-Za-z_][A-Za-z0-9_]*)+").unwrap();
        let mut graph = Self {
            modules,
            imports: BTreeMap::new(),
            edges: BTreeMap::new(),
        };
        let mut mentions = Vec::new();
        for (module, file, code) in &sources {
            let inline = inline_modules(code);
            let module_at = |at: usize| {
                let mut path = module.clone();
                path.extend(
                    inline
                        .iter()
                        .filter(|(start, end, _)| (*start..*end).contains(&at))
                        .map(|(_, _, name)| name.clone()),
                );
                path
            };
            let mut in_use = Vec::new();
            for found in uses.captures_iter(code) {
                let whole = found.get(0).unwrap();
                in_use.push(whole.range());
                let here = module_at(whole.start());
                for (path, renamed) in expand(&found[1]) {
                    let Some(absolute) = graph.absolute(&here, &path) else {
                        continue;
                    };
                    let alias = match renamed.as_deref().or(path.last().map(String::as_str)) {
                        Some("self") => absolute.last().cloned(),
                        Some("*" | "_") | None => None,
                        Some(last) => Some(last.to_owned()),
                    };
                    let absolute: Vec<String> = absolute.into_iter().filter(|s| s != "self").collect();
                    if let Some(alias) = alias {
                        graph
                            .imports
                            .entry(here.clone())
                            .or_default()
                            .insert(alias, absolute.clone());
                    }
                    mentions.push((file.clone(), Mention { path: absolute }));
                }
            }
            for found in paths.find_iter(code) {
                if in_use.iter().any(|range| range.contains(&found.start())) || code[..found.start()].ends_with("::") {
                    continue;
                }
                let path: Vec<String> = found.as_str().split("::").map(|s| s.trim().to_owned()).collect();
                let here = module_at(found.start());
                if let Some(absolute) = graph.absolute(&here, &path) {
                    mentions.push((file.clone(), Mention { path: absolute }));
                }
            }
        }
        for (file, mention) in mentions {
            let target = graph.resolve(&mention.path, 0);
            let target = graph.file_of(&target);
            if target != file {
                graph.edges.entry(file).or_default().insert(target);
            }
        }
        graph
    }

    /// `path` as written in `module`, from the crate root; `None` for another crate's.
    fn absolute(&self, module: &[String], path: &[String]) -> Option<Vec<String>> {
        let first = path.first()?;
        let mut base = module.to_vec();
        let mut rest = path;
        match first.as_str() {
            "crate" => {
                base.clear();
                rest = &path[1..];
            }
            "self" => rest = &path[1..],
            "super" => {
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
            }
            name => {
                let mut child = module.to_vec();
                child.push(name.to_owned());
                let imported = self.imports.get(module).is_some_and(|names| names.contains_key(name));
                if !self.modules.contains_key(&child) && !imported {
                    return None;
                }
            }
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The module an absolute path lands in: through modules, and through the names a module
    /// imports (a re-export leads to where the name is defined).
    fn resolve(&self, path: &[String], depth: usize) -> Vec<String> {
        let mut at: Vec<String> = Vec::new();
        for (i, segment) in path.iter().enumerate() {
            let mut child = at.clone();
            child.push(segment.clone());
            if self.modules.contains_key(&child) {
                at = child;
                continue;
            }
            if depth < 16
                && let Some(target) = self.imports.get(&at).and_then(|names| names.get(segment))
                && target.as_slice() != &path[..=i]
            {
                let mut onward = target.clone();
                onward.extend(path[i + 1..].iter().cloned());
                return self.resolve(&onward, depth + 1);
            }
            break;
        }
        at
    }

    /// The file of a module, or of the module that holds it inline.
    fn file_of(&self, module: &[String]) -> String {
        (0..=module.len())
            .rev()
            .find_map(|len| self.modules.get(&module[..len]))
            .cloned()
            .unwrap_or_default()
    }

    /// Every loop: one cycle per group of files that import each other. Unless `strict`, a
    /// file's imports from its own ancestors are left out.
    fn loops(&self, strict: bool) -> Vec<Vec<String>> {
        let module_of: BTreeMap<&String, &Vec<String>> = self.modules.iter().map(|(m, f)| (f, m)).collect();
        let edges: BTreeMap<String, BTreeSet<String>> = self
            .edges
            .iter()
            .map(|(from, targets)| {
                let targets = targets
                    .iter()
                    .filter(|to| strict || !module_of[from].starts_with(module_of[to]))
                    .cloned()
                    .collect();
                (from.clone(), targets)
            })
            .collect();
        let mut found: Vec<Vec<String>> = Vec::new();
        for start in edges.keys() {
            if found.iter().any(|cycle| cycle.contains(start)) {
                continue;
            }
            if let Some(mut cycle) = Self::chain(&edges, start, start) {
                cycle.insert(0, start.clone());
                found.push(cycle);
            }
        }
        found
    }

    /// The shortest chain of imports from `from` to `to`, without `from`.
    fn chain(edges: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Option<Vec<String>> {
        let mut previous: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([from.to_owned()]);
        while let Some(file) = queue.pop_front() {
            for next in edges.get(&file).into_iter().flatten() {
                if next == to {
                    let mut chain = vec![to.to_owned()];
                    let mut at = file.clone();
                    while at != from {
                        chain.insert(0, at.clone());
                        at = previous[&at].clone();
                    }
                    return Some(chain);
                }
                if !previous.contains_key(next) && next != from {
                    previous.insert(next.clone(), file.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        None
    }
}

/// The paths of a `use` tree (`crate::{a::{self, B as C}, d::*}`), each split at `::`, with
/// the name it is brought in as when renamed.
fn expand(tree: &str) -> Vec<(Vec<String>, Option<String>)> {
    let spaced = Regex::new(r"\s+").unwrap().replace_all(tree.trim(), " ");
    let tree = Regex::new(r"\s*(::|\{|\}|,)\s*").unwrap().replace_all(&spaced, "$1");
    let mut out = Vec::new();
    expand_into(&tree, &[], &mut out);
    out
}

fn expand_into(tree: &str, prefix: &[String], out: &mut Vec<(Vec<String>, Option<String>)>) {
    for item in split_top(tree) {
        match item.find('{') {
            Some(open) => {
                let mut head = prefix.to_vec();
                head.extend(segments(item[..open].trim_end_matches("::")));
                expand_into(&item[open + 1..item.len() - 1], &head, out);
            }
            None => {
                let (item, alias) = match item.split_once(" as ") {
                    Some((item, alias)) => (item, Some(alias.trim().to_owned())),
                    None => (item, None),
                };
                let mut path = prefix.to_vec();
                path.extend(segments(item));
                if !path.is_empty() {
                    out.push((path, alias));
                }
            }
        }
    }
}

fn segments(path: &str) -> impl Iterator<Item = String> + '_ {
    path.split("::").filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Splits `a, b::{c, d}` at its top-level commas.
fn split_top(tree: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0_usize;
    let mut start = 0;
    for (at, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&tree[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(&tree[start..]);
    items.into_iter().filter(|item| !item.is_empty()).collect()
}

/// The code without its test modules' bodies (`#[cfg(test)] mod tests { ... }` blanked), and
/// the names of the test modules declared in files of their own (`#[cfg(test)] mod tests;`).
fn without_tests(code: &str) -> (String, Vec<String>) {
    let test_module = Regex::new(
        r"#\[cfg\((?:test|all\(\s*test\b[^\]]*)\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*;",
    )
    .unwrap();
    let files = test_module
        .captures_iter(code)
        .map(|found| found[1].to_owned())
        .collect();
    let test_attribute = Regex::new(r"#\[cfg\((?:test|all\(\s*test\b[^\]]*)\)\]\s*$").unwrap();
    let mut code = code.to_owned();
    for (start, end, _) in inline_modules(&code.clone()) {
        if test_attribute.is_match(&code[..start]) {
            code.replace_range(
                start..=end.min(code.len() - 1),
                &" ".repeat(end.min(code.len() - 1) + 1 - start),
            );
        }
    }
    (code, files)
}

/// The spans of inline modules (`mod tests { ... }`): start, end and name.
fn inline_modules(code: &str) -> Vec<(usize, usize, String)> {
    let opening = Regex::new(r"\bmod\s+([A-Za-z_][A-Za-z0-9_]*)\s*\{").unwrap();
    opening
        .captures_iter(code)
        .map(|found| {
            let whole = found.get(0).unwrap();
            let mut depth = 0_usize;
            let mut end = code.len();
            for (at, c) in code[whole.end() - 1..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = whole.end() - 1 + at;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            (whole.start(), end, found[1].to_owned())
        })
        .collect()
}

/// The code with comments, string and character literals replaced by spaces (line breaks
/// kept), so neither a path in a doc comment nor a brace in a string is read as code.
fn blank(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = chars.clone();
    let blank_range = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in &mut out[from..to.min(chars.len())] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let ident_before = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c == '/' && at(i + 1) == '/' {
            let end = (i..chars.len()).find(|&j| chars[j] == '\n').unwrap_or(chars.len());
            blank_range(&mut out, i, end);
            i = end;
        } else if c == '/' && at(i + 1) == '*' {
            let (mut depth, mut j) = (0_usize, i);
            while j < chars.len() {
                if chars[j] == '/' && at(j + 1) == '*' {
                    depth += 1;
                    j += 2;
                } else if chars[j] == '*' && at(j + 1) == '/' {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank_range(&mut out, i, j);
            i = j;
        } else if c == 'r'
            && (at(i + 1) == '"' || at(i + 1) == '#')
            && (!ident_before || (i > 0 && chars[i - 1] == 'b'))
        {
            let hashes = (i + 1..chars.len()).take_while(|&j| chars[j] == '#').count();
            if at(i + 1 + hashes) != '"' {
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            let body = i + 2 + hashes;
            let end = (body..chars.len())
                .find(|&j| chars[j..].iter().take(close.len()).copied().eq(close.chars()))
                .map_or(chars.len(), |j| j + close.len());
            blank_range(&mut out, i, end);
            i = end;
        } else if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            blank_range(&mut out, i, j + 1);
            i = j + 1;
        } else if c == '\'' && at(i + 1) == '\\' {
            let end = (i + 3..chars.len()).find(|&j| chars[j] == '\'').unwrap_or(chars.len());
            blank_range(&mut out, i, end + 1);
            i = end + 1;
        } else if c == '\'' && at(i + 2) == '\'' {
            blank_range(&mut out, i, i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}
