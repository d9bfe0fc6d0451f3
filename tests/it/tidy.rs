//! The house rules the compiler cannot keep by itself, and proof that the
//! ones it keeps are switched on.
//!
//! The compiler keeps the layers: each one below the command line is a
//! crate (`xtask/base`, `fs`, `model`, `adapters`, `ops`), so an import that
//! points up does not compile (the `compile_fail` examples in each crate's
//! `lib.rs` show it). Clippy keeps what a layer may do (`clippy.toml`:
//! `std::fs` only in the fs crate, printing only in `cli/ui.rs`; functions of
//! at most 80 lines). What is left here: those settings are in force and not
//! waved away, files stay small and say what they are, the command line
//! never reaches into the developer tools (one crate holds both), and no
//! sibling modules import each other in a loop. The last test runs clippy
//! on a scratch crate holding every known way around the lints, and fails
//! when one gets through.
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::Command,
};

/// The layers' crates, lowest first; the binary (`xtask`) sits on top.
const LAYERS: [&str; 5] = ["base", "fs", "model", "adapters", "ops"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn manifest(dir: &Path) -> toml::Table {
    let text = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    text.parse().unwrap_or_else(|e| panic!("{}/Cargo.toml: {e}", dir.display()))
}

/// Every `.rs` file below `dir`, with its path relative to it.
fn rust_files(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in fs::read_dir(&next).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(dir).unwrap().display().to_string();
                files.push((relative, fs::read_to_string(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// The sources of every crate: (crate folder, file relative to its src/, text).
fn sources() -> Vec<(String, String, String)> {
    let xtask = workspace().join("xtask");
    let mut all = Vec::new();
    for krate in LAYERS.iter().map(|l| format!("xtask/{l}")).chain(["xtask".to_string()]) {
        let src = workspace().join(&krate).join("src");
        for (relative, text) in rust_files(&src) {
            all.push((krate.clone(), relative, text));
        }
    }
    assert!(all.len() > 60 && xtask.is_dir(), "the walk found only {} files", all.len());
    all
}

#[test]
fn every_layer_is_a_crate_that_depends_only_on_the_layers_below() {
    let root = manifest(&workspace());
    let members: Vec<&str> = root["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    for (rank, layer) in LAYERS.iter().enumerate() {
        let dir = format!("xtask/{layer}");
        assert!(members.contains(&dir.as_str()), "{dir} is not a member of the workspace");
        let toml = manifest(&workspace().join(&dir));
        assert_eq!(toml["package"]["name"].as_str(), Some(format!("xtask-{layer}").as_str()));
        for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let Some(deps) = toml.get(section).and_then(|d| d.as_table()) else { continue };
            for name in deps.keys() {
                let Some(other) = name.strip_prefix("xtask-") else { continue };
                let other_rank = LAYERS.iter().position(|l| *l == other);
                assert!(
                    other_rank.is_some_and(|o| o < rank),
                    "{dir} names {name} in [{section}]: a layer depends only on the layers below it"
                );
            }
        }
    }
    // The binary holds the command line and the developer tools, nothing else.
    let src = workspace().join("xtask/src");
    let mut top: Vec<String> = fs::read_dir(&src)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["cli", "dev", "main.rs"], "xtask/src holds the binary's layers only");
}

#[test]
fn every_crate_keeps_the_workspace_lints_and_clippy_settings() {
    for krate in LAYERS.iter().map(|l| format!("xtask/{l}")).chain(["xtask".to_string()]) {
        let toml = manifest(&workspace().join(&krate));
        let lints = toml.get("lints").and_then(|l| l.get("workspace")).and_then(|w| w.as_bool());
        assert_eq!(lints, Some(true), "{krate}/Cargo.toml: [lints] workspace = true");
    }
    // A clippy.toml nearer to a crate would replace the workspace's: only
    // the fs crate has one, and it refuses printing as the workspace's does.
    let mut found: Vec<String> = Vec::new();
    for krate in ["", "xtask", "xtask/base", "xtask/fs", "xtask/model", "xtask/adapters"] {
        for name in ["clippy.toml", ".clippy.toml"] {
            if workspace().join(krate).join(name).exists() {
                found.push(format!("{krate}/{name}").trim_start_matches('/').to_string());
            }
        }
    }
    if workspace().join("xtask/ops/clippy.toml").exists() {
        found.push("xtask/ops/clippy.toml".into());
    }
    assert_eq!(found, ["clippy.toml", "xtask/fs/clippy.toml"]);
    let read = |p: &str| fs::read_to_string(workspace().join(p)).unwrap();
    let (all, fs_crate) = (read("clippy.toml"), read("xtask/fs/clippy.toml"));
    let macros = |text: &str| text[text.find("disallowed-macros").unwrap()..].to_string();
    assert_eq!(macros(&all), macros(&fs_crate), "the fs crate refuses the same printing");
    for entry in ["std::io::stdout", "std::io::stderr", "too-many-lines-threshold = 80"] {
        assert!(all.contains(entry) && fs_crate.contains(entry), "{entry} in both clippy.toml");
    }
    for entry in ["std::fs::write", "std::fs::File::options", "std::path::Path::is_file"] {
        assert!(all.contains(entry), "the workspace's clippy.toml refuses {entry}");
    }
}

#[test]
fn the_lints_are_waved_away_only_where_the_house_says() {
    let mut wrong = Vec::new();
    for (krate, relative, text) in sources() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let at = format!("{krate}/src/{relative}:{}", i + 1);
            if line.contains("allow(clippy::disallowed") {
                // Printing is allowed in ui.rs alone; a unit test may lay
                // out its files by hand, and says so.
                let ui = krate == "xtask" && relative == "cli/ui.rs";
                let test_module = lines.get(i.wrapping_sub(1)) == Some(&"#[cfg(test)]")
                    && line.contains("a test lays out its files by hand");
                if !(ui || test_module) {
                    wrong.push(format!("{at}: {}", line.trim()));
                }
            }
            // The one libgit2 option the tool sets is unsafe to call; every
            // operating-system call is in the fs crate's sys.rs.
            let allowed =
                relative == "sys.rs" || (krate == "xtask/adapters" && relative == "git/mod.rs");
            if line.contains("allow(unsafe_code)") && !allowed {
                wrong.push(format!("{at}: unsafe code belongs in the fs crate's sys.rs"));
            }
            if line.contains("allow(clippy::too_many_lines") {
                wrong.push(format!("{at}: split the function instead"));
            }
        }
    }
    assert!(wrong.is_empty(), "lints waved away:\n{}", wrong.join("\n"));
}

#[test]
fn the_command_line_never_reaches_into_the_developer_tools() {
    // cli and dev share the binary's crate, so the compiler cannot refuse
    // this import: dev sits on top of cli, never the reverse.
    let found: Vec<String> = sources()
        .into_iter()
        .filter(|(krate, relative, _)| krate == "xtask" && relative.starts_with("cli/"))
        .filter(|(_, _, text)| text.contains("crate::dev") || text.contains("super::dev"))
        .map(|(_, relative, _)| relative)
        .collect();
    assert!(found.is_empty(), "cli names dev: {found:?}");
}

#[test]
fn files_stay_small_and_say_what_they_are() {
    let mut wrong = Vec::new();
    for (krate, relative, text) in sources() {
        let lines: Vec<&str> = text.lines().collect();
        // What xflags generates in flags.rs is not written by hand.
        let generated = lines.iter().position(|l| l.starts_with("// generated start"));
        let written = generated.unwrap_or(lines.len());
        if written > 600 {
            wrong.push(format!("{krate}/src/{relative}: {written} lines (at most 600)"));
        }
        if !text.starts_with("//!") {
            wrong.push(format!("{krate}/src/{relative}: starts with a //! line saying what it is"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The modules a file names through `crate::`, `super::` and `self::`, as
/// absolute paths inside its crate (the `use` trees expanded).
fn references(module: &[String], text: &str) -> Vec<Vec<String>> {
    let code: String = text
        .split("\n#[cfg(test)]")
        .next()
        .unwrap_or("")
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut paths = Vec::new();
    let lines: Vec<&str> = code.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim_start();
        let line = line.strip_prefix("pub(crate) ").or(line.strip_prefix("pub ")).unwrap_or(line);
        let Some(tree) = line.strip_prefix("use ") else { continue };
        let mut statement = tree.to_string();
        for next in &lines[i + 1..] {
            if statement.contains(';') {
                break;
            }
            statement.push_str(next);
        }
        let statement = statement.split(';').next().unwrap_or("");
        let tree: String = statement.chars().filter(|c| !c.is_whitespace()).collect();
        expand(&tree, Vec::new(), &mut paths);
    }
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    for root in ["crate::", "super::"] {
        for (at, _) in code.match_indices(root) {
            if code[..at].chars().last().is_some_and(|c| ident(c) || c == ':') {
                continue;
            }
            let end =
                code[at..].find(|c: char| !(ident(c) || c == ':')).map_or(code.len(), |i| at + i);
            paths.push(
                code[at..end].split("::").filter(|s| !s.is_empty()).map(String::from).collect(),
            );
        }
    }
    paths.into_iter().filter_map(|p| absolute(module, &p)).collect()
}

fn expand(tree: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let Some(open) = tree.find('{') else {
        // An alias (`a::b as c`, spaces gone) renames only the last segment.
        let mut full = prefix;
        full.extend(tree.split("::").filter(|s| !s.is_empty()).map(String::from));
        out.push(full);
        return;
    };
    let mut head = prefix;
    head.extend(tree[..open].split("::").filter(|s| !s.is_empty()).map(String::from));
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut depth, mut item) = (0, String::new());
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

fn absolute(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let (mut full, rest): (Vec<String>, &[String]) = match path.first()?.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (module.to_vec(), &path[1..]),
        "super" => {
            let mut own = module.to_vec();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                own.pop();
                rest = &rest[1..];
            }
            (own, rest)
        }
        _ => return None,
    };
    full.extend(rest.iter().filter(|s| *s != "self").cloned());
    Some(full)
}

#[test]
fn no_modules_that_share_a_parent_import_each_other_in_a_loop() {
    let mut loops = Vec::new();
    let all = sources();
    for krate in LAYERS.iter().map(|l| format!("xtask/{l}")).chain(["xtask".to_string()]) {
        let module_of = |relative: &str| -> Vec<String> {
            let mut m: Vec<String> =
                relative.trim_end_matches(".rs").split('/').map(String::from).collect();
            if matches!(m.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                m.pop();
            }
            m
        };
        let files: Vec<_> = all.iter().filter(|(k, _, _)| *k == krate).collect();
        let modules: BTreeSet<Vec<String>> = files.iter().map(|(_, r, _)| module_of(r)).collect();
        let mut graphs: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for (_, relative, text) in &files {
            let from = module_of(relative);
            for to in references(&from, text) {
                let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
                let (Some(a), Some(b)) = (from.get(common), to.get(common)) else { continue };
                let mut target = from[..common].to_vec();
                target.push(b.clone());
                if modules.contains(&target) {
                    let graph = graphs.entry(from[..common].to_vec()).or_default();
                    graph.entry(a.clone()).or_default().insert(b.clone());
                }
            }
        }
        for (parent, graph) in &graphs {
            for start in graph.keys() {
                if reaches(graph, start, start, &mut BTreeSet::new()) {
                    loops.push(format!("{krate}: {}::{start}", parent.join("::")));
                }
            }
        }
    }
    assert!(loops.is_empty(), "modules in an import loop with a sibling:\n{}", loops.join("\n"));
}

fn reaches(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    goal: &str,
    seen: &mut BTreeSet<String>,
) -> bool {
    let Some(next) = graph.get(from) else { return false };
    next.iter().any(|n| n == goal || (seen.insert(n.clone()) && reaches(graph, n, goal, seen)))
}

/// Every way around the lints that a reader found in the text scans the
/// lints replaced, each on its own line, with the lint that must catch it.
const BYPASSES: &[(&str, &str)] = &[
    (
        "pub fn a(p: &Path) { let _ = std::fs::File::options().write(true).open(p); }",
        "std::fs::File::options",
    ),
    ("pub fn b(p: &Path) { use std::fs::write as w; let _ = w(p, b\"x\"); }", "std::fs::write"),
    (
        "pub fn c() { use std::io::Write; let _ = writeln!(std::io::stdout(), \"x\"); }",
        "std::io::stdout",
    ),
    (
        "pub fn d() { let mut e = std::io::stderr(); let _ = std::io::Write::flush(&mut e); }",
        "std::io::stderr",
    ),
    ("pub fn e() { println!(\"x\"); }", "std::println"),
    ("pub fn f() { eprint!(\"x\"); }", "std::eprint"),
    ("pub fn g(p: &Path) -> bool { p.is_file() }", "std::path::Path::is_file"),
    ("pub fn h(p: &Path) { let _ = std::fs::read_dir(p); }", "std::fs::read_dir"),
    (
        "pub fn i(p: &Path) { let _ = std::fs::OpenOptions::new().append(true).open(p); }",
        "std::fs::OpenOptions::new",
    ),
    (
        "pub fn j(p: &Path) { let read = std::fs::read_to_string; let _ = read(p); }",
        "std::fs::read_to_string",
    ),
    ("pub fn k() { dbg!(1); }", "std::dbg"),
];

/// The scratch crate's source: every bypass, a test module after the first
/// `#[cfg(test)]` that prints, and a function of 81 lines whose closing
/// brace carries a comment.
fn bypass_crate() -> String {
    let mut text = String::from("//! Ways around the lints.\nuse std::path::Path;\n");
    for (line, _) in BYPASSES {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str("#[cfg(test)]\nmod early {}\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() { println!(\"x\"); }\n}\n");
    text.push_str("pub fn long() -> u32 {\n    let mut n = 0;\n");
    for _ in 0..80 {
        text.push_str("    n += 1;\n");
    }
    text.push_str("    n\n} // the end of a long function\n");
    text
}

#[test]
fn the_lints_catch_every_known_way_around_them() {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tidy-bypasses");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(scratch.join("src")).unwrap();
    // The workspace's own lint settings, as they are written.
    let ours = fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let lints = &ours[ours.find("[workspace.lints").expect("the workspace declares its lints")..];
    let cargo = format!(
        "[package]\nname = \"bypasses\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[lints]\nworkspace = true\n\n[workspace]\n\n{lints}"
    );
    fs::write(scratch.join("Cargo.toml"), cargo).unwrap();
    fs::copy(workspace().join("clippy.toml"), scratch.join("clippy.toml")).unwrap();
    let source = bypass_crate();
    fs::write(scratch.join("src/lib.rs"), &source).unwrap();
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["clippy", "--quiet", "--all-targets", "--message-format=short"])
        .current_dir(&scratch)
        .env("CARGO_TARGET_DIR", scratch.join("target"))
        .env_remove("RUSTC_WRAPPER")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stderr).into_owned();
    let flagged = |line: usize, what: &str| {
        report.lines().any(|l| l.starts_with(&format!("src/lib.rs:{line}:")) && l.contains(what))
    };
    let mut missed = Vec::new();
    for (i, (code, lint)) in BYPASSES.iter().enumerate() {
        if !flagged(i + 3, lint) {
            missed.push(format!("{code}  (expected {lint})"));
        }
    }
    let printing_test = source.lines().position(|l| l.contains("fn t()")).unwrap() + 1;
    if !flagged(printing_test, "std::println") {
        missed.push("println! in a test module after the first #[cfg(test)]".into());
    }
    let long = source.lines().position(|l| l.starts_with("pub fn long")).unwrap() + 1;
    if !flagged(long, "too many lines") {
        missed.push("a function of 82 lines whose closing brace carries a comment".into());
    }
    assert!(
        missed.is_empty(),
        "the lints let these through:\n{}\n\nclippy said:\n{report}",
        missed.join("\n")
    );
}
