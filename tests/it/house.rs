//! The house rules, kept by walking every source file of `xtask/src` (as
//! rust-analyzer's `tidy.rs` does), with no list of files to keep up to date:
//!
//! - the layers: a module imports only from its own layer or the ones below
//!   (`base` < `fs` < `model` < `adapters` < `ops` < `cli` < `dev`), and no
//!   modules that share a parent import each other in a loop, at any level;
//! - only `cli` prints;
//! - only `fs` reads, writes, removes, renames or changes modes through
//!   `std::fs` (everything else goes through `RootDir` or `fs::unconfined`);
//! - only `fs/sys.rs` calls the operating system unsafely;
//! - files of at most 600 lines, functions of at most 80 (the generated part
//!   of `flags.rs` aside).
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// The layers, lowest first.
const LAYERS: [&str; 7] = ["base", "fs", "model", "adapters", "ops", "cli", "dev"];
/// The layers of the binary; the others are the library's.
const BINARY: [&str; 2] = ["cli", "dev"];

struct Source {
    /// `ops/rollback/steps.rs`.
    relative: String,
    /// `["ops", "rollback", "steps"]`; empty for `lib.rs` and `main.rs`.
    module: Vec<String>,
    /// The text without its `#[cfg(test)]` module and comments.
    code: String,
    /// The whole text.
    text: String,
}

impl Source {
    fn layer(&self) -> Option<usize> {
        let first = self.module.first()?;
        LAYERS.iter().position(|l| l == first)
    }

    fn in_binary(&self) -> bool {
        self.relative == "main.rs"
            || self.module.first().is_some_and(|m| BINARY.contains(&m.as_str()))
    }
}

fn sources() -> Vec<Source> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() > 30, "the walk found only {} files", files.len());
    files.into_iter().map(|path| read(&src, &path)).collect()
}

fn read(src: &Path, path: &PathBuf) -> Source {
    let relative = path.strip_prefix(src).unwrap().display().to_string();
    let mut module: Vec<String> =
        relative.trim_end_matches(".rs").split('/').map(String::from).collect();
    if matches!(module.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        module.pop();
    }
    let text = fs::read_to_string(path).unwrap();
    let without_tests = text.split("\n#[cfg(test)]").next().unwrap();
    let code = without_tests
        .lines()
        .map(|l| if l.trim_start().starts_with("//") { "" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    Source { relative, module, code, text }
}

/// Every module path a file names (`crate::`, `super::`, `self::`,
/// `xtask::`, in `use` trees and inline), made absolute, with the crate
/// (`xtask` for the library, `bin` for the binary) in front.
fn references(source: &Source) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let code = &source.code;
    // `use` statements: a line that starts one, up to its `;`.
    let lines: Vec<&str> = code.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim_start();
        let line =
            line.strip_prefix("pub ").or_else(|| line.strip_prefix("pub(crate) ")).unwrap_or(line);
        let Some(tree) = line.strip_prefix("use ") else { continue };
        let mut statement = tree.to_string();
        for next in &lines[i + 1..] {
            if statement.contains(';') {
                break;
            }
            statement.push_str(next);
        }
        let statement = statement.split(';').next().unwrap_or("").replace(char::is_whitespace, "");
        expand(&statement, Vec::new(), &mut paths);
    }
    // Inline paths such as `crate::fs::files::sha256_file(...)`.
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    for root in ["crate::", "super::", "self::", "xtask::"] {
        for (at, _) in code.match_indices(root) {
            if code[..at].chars().last().is_some_and(|c| ident(c) || c == ':') {
                continue;
            }
            let end =
                code[at..].find(|c: char| !(ident(c) || c == ':')).map_or(code.len(), |i| at + i);
            let segments = code[at..end].split("::").filter(|s| !s.is_empty()).map(String::from);
            paths.push(segments.collect());
        }
    }
    paths.into_iter().filter_map(|p| absolute(source, &p)).collect()
}

/// Expands a `use` tree such as `crate::{a::b, c::{d, e}}` into paths.
fn expand(tree: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree);
        let mut full = prefix;
        full.extend(path.split("::").filter(|s| !s.is_empty()).map(String::from));
        out.push(full);
        return;
    };
    let mut head = prefix;
    head.extend(tree[..open].split("::").filter(|s| !s.is_empty()).map(String::from));
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut depth = 0;
    let mut item = String::new();
    for c in inner.chars().chain([',']) {
        match c {
            ',' if depth == 0 => {
                if !item.is_empty() {
                    expand(&item, head.clone(), out);
                }
                item.clear();
                continue;
            }
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        item.push(c);
    }
}

fn absolute(source: &Source, path: &[String]) -> Option<Vec<String>> {
    let krate = if source.in_binary() { "bin" } else { "xtask" };
    let (root, rest): (Vec<String>, &[String]) = match path.first()?.as_str() {
        "crate" => (vec![krate.into()], &path[1..]),
        "xtask" => (vec!["xtask".into()], &path[1..]),
        "self" => (own(source, krate), &path[1..]),
        "super" => {
            let mut own = own(source, krate);
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                own.pop();
                rest = &rest[1..];
            }
            (own, rest)
        }
        _ => return None,
    };
    let mut full = root;
    full.extend(rest.iter().filter(|s| *s != "self").cloned());
    Some(full)
}

fn own(source: &Source, krate: &str) -> Vec<String> {
    let mut own = vec![krate.to_string()];
    own.extend(source.module.iter().cloned());
    own
}

fn rank(path: &[String]) -> Option<usize> {
    LAYERS.iter().position(|l| path.get(1).is_some_and(|p| p == l))
}

#[test]
fn imports_point_down_the_layers() {
    let mut wrong = Vec::new();
    for source in sources() {
        let Some(layer) = source.layer() else { continue };
        for path in references(&source) {
            if let Some(target) = rank(&path)
                && target > layer
            {
                wrong.push(format!(
                    "{} ({}) imports {} ({})",
                    source.relative,
                    LAYERS[layer],
                    path.join("::"),
                    LAYERS[target]
                ));
            }
        }
    }
    wrong.dedup();
    assert!(wrong.is_empty(), "imports from a higher layer:\n{}", wrong.join("\n"));
}

#[test]
fn no_modules_that_share_a_parent_import_each_other_in_a_loop() {
    let sources = sources();
    let krate = |s: &Source| if s.in_binary() { "bin" } else { "xtask" };
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| own(s, krate(s))).collect();
    // parent -> (child -> children it imports from)
    let mut graphs: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for source in &sources {
        let from = own(source, krate(source));
        for to in references(source) {
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            let (Some(a), Some(b)) = (from.get(common), to.get(common)) else { continue };
            let parent = from[..common].to_vec();
            let mut target = parent.clone();
            target.push(b.clone());
            if modules.contains(&target) {
                let graph = graphs.entry(parent).or_default();
                graph.entry(a.clone()).or_default().insert(b.clone());
            }
        }
    }
    let mut loops = Vec::new();
    for (parent, graph) in &graphs {
        for start in graph.keys() {
            if reaches(graph, start, start, &mut BTreeSet::new()) {
                loops.push(format!("{}::{start}", parent.join("::")));
            }
        }
    }
    assert!(loops.is_empty(), "modules in an import loop with a sibling:\n{}", loops.join("\n"));
}

/// Whether `goal` can be reached from `from`'s imports.
fn reaches(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    goal: &str,
    seen: &mut BTreeSet<String>,
) -> bool {
    let Some(next) = graph.get(from) else { return false };
    next.iter().any(|n| n == goal || (seen.insert(n.clone()) && reaches(graph, n, goal, seen)))
}

/// The lines of a file's code that contain one of `needles`.
fn lines_with(source: &Source, needles: &[&str]) -> Vec<String> {
    source
        .code
        .lines()
        .enumerate()
        .filter(|(_, l)| needles.iter().any(|n| l.contains(n)))
        .map(|(i, l)| format!("{}:{}: {}", source.relative, i + 1, l.trim()))
        .collect()
}

#[test]
fn only_cli_prints() {
    const PRINTING: [&str; 7] =
        ["print!(", "println!(", "eprint!(", "eprintln!(", "dbg!(", "io::stdout()", "io::stderr()"];
    let found: Vec<String> = sources()
        .iter()
        .filter(|s| s.module.first().is_none_or(|m| m != "cli"))
        .flat_map(|s| lines_with(s, &PRINTING))
        .collect();
    assert!(
        found.is_empty(),
        "printing outside cli (return the text, or report an event):\n{}",
        found.join("\n")
    );
}

#[test]
fn only_fs_writes_through_std_fs() {
    const WRITING: [&str; 14] = [
        "fs::write(",
        "fs::create_dir(",
        "fs::create_dir_all(",
        "fs::remove_file(",
        "fs::remove_dir(",
        "fs::remove_dir_all(",
        "fs::rename(",
        "fs::copy(",
        "fs::hard_link(",
        "set_permissions(",
        "File::create(",
        "OpenOptions",
        "symlink(",
        "File::create_new(",
    ];
    let found: Vec<String> = sources()
        .iter()
        .filter(|s| s.module.first().is_none_or(|m| m != "fs"))
        .flat_map(|s| lines_with(s, &WRITING))
        .collect();
    assert!(
        found.is_empty(),
        "writes through std::fs outside the fs layer (use RootDir below a root, fs::unconfined elsewhere):\n{}",
        found.join("\n")
    );
}

/// Reads too go through the layer: below a root a `RootDir` (never a link
/// out of it, never a FIFO that would block), elsewhere `fs::unconfined`.
#[test]
fn only_fs_reads_through_std_fs() {
    const READING: [&str; 4] = ["fs::read_to_string(", "fs::read(", "File::open(", "open_regular("];
    let found: Vec<String> = sources()
        .iter()
        .filter(|s| s.module.first().is_none_or(|m| m != "fs"))
        .flat_map(|s| lines_with(s, &READING))
        .collect();
    assert!(
        found.is_empty(),
        "reads through std::fs outside the fs layer (use RootDir below a root, fs::unconfined elsewhere):\n{}",
        found.join("\n")
    );
}

#[test]
fn only_sys_calls_the_operating_system_unsafely() {
    let sources = sources();
    for root in ["main.rs", "lib.rs"] {
        let text = &sources.iter().find(|s| s.relative == root).unwrap().text;
        assert!(text.contains("#![deny(unsafe_code)]"), "{root} denies unsafe code");
    }
    for source in sources.iter().filter(|s| s.relative != "fs/sys.rs") {
        let text = &source.text;
        assert!(
            !text.contains("libc::"),
            "{} calls libc: put the call in fs/sys.rs",
            source.relative
        );
        let unsafe_code = ["unsafe {", "unsafe fn", "unsafe impl"].iter().any(|u| text.contains(u));
        assert!(!unsafe_code, "{} has unsafe code: put it in fs/sys.rs", source.relative);
    }
}

#[test]
fn files_and_functions_stay_small() {
    let mut big = Vec::new();
    for source in sources() {
        let lines: Vec<&str> = source.text.lines().collect();
        // What xflags generates in flags.rs is not written by hand.
        let generated = |i: usize| {
            source.relative == "cli/flags.rs"
                && lines[..i].iter().any(|l| l.starts_with("// generated start"))
                && !lines[..i].iter().any(|l| l.starts_with("// generated end"))
        };
        let written = (0..lines.len()).filter(|i| !generated(*i)).count();
        if written > 600 {
            big.push(format!("{}: {written} lines (at most 600)", source.relative));
        }
        for (start, line) in lines.iter().enumerate() {
            let Some(name) = function_name(line) else { continue };
            let indent = line.len() - line.trim_start().len();
            let close = format!("{}}}", " ".repeat(indent));
            let body = lines[start..].iter().position(|l| l.contains('{') || l.ends_with(';'));
            if body.is_none_or(|b| lines[start + b].trim_end().ends_with(';')) || generated(start) {
                continue;
            }
            let Some(length) = lines[start..].iter().position(|l| *l == close) else { continue };
            if length + 1 > 80 {
                big.push(format!(
                    "{}:{}: fn {name} is {} lines (at most 80)",
                    source.relative,
                    start + 1,
                    length + 1
                ));
            }
        }
    }
    assert!(big.is_empty(), "too big:\n{}", big.join("\n"));
}

/// The name of the function a line starts, if it starts one.
fn function_name(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    loop {
        match words.next()? {
            "fn" => return words.next()?.split(['(', '<']).next(),
            w if w.starts_with("pub") || ["const", "async", "unsafe", "extern"].contains(&w) => {}
            w if w.starts_with('"') => {}
            _ => return None,
        }
    }
}

/// The tidy test's own parts work on what they must catch.
#[test]
fn the_rules_catch_what_they_must() {
    let source = |relative: &str, code: &str| {
        let module = relative.trim_end_matches(".rs").split('/').map(String::from).collect();
        Source { relative: relative.into(), module, code: code.into(), text: code.into() }
    };
    let low = source("model/journal.rs", "use crate::{fs::files, ops::rollback::Step};");
    let refs = references(&low);
    assert!(refs.contains(&vec!["xtask".into(), "ops".into(), "rollback".into(), "Step".into()]));
    assert_eq!(rank(&refs[1]), Some(4), "{refs:?}");
    let nested = source("ops/rollback/steps.rs", "fn f() { super::plan::Step::name(); }");
    assert_eq!(references(&nested)[0].join("::"), "xtask::ops::rollback::plan::Step::name");
    let bin = source("cli/list.rs", "use xtask::ops::list; use super::flags;");
    let refs: BTreeSet<String> = references(&bin).iter().map(|p| p.join("::")).collect();
    assert_eq!(refs, BTreeSet::from(["xtask::ops::list".into(), "bin::cli::flags".into()]));
    assert_eq!(function_name("    pub(crate) fn run(self) {"), Some("run"));
    assert_eq!(function_name("    let fn_name = 1;"), None);
}
