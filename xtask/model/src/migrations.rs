//! Alembic's revision graph, read from the revision files in Rust so that a
//! backup's migrations can be checked without Python.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use xtask_fs::{RootDir, sys::FileType};

/// One revision file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub id: String,
    /// Empty for a root; two or more for a merge.
    pub down: Vec<String>,
    pub file: PathBuf,
}

/// All revisions of a versions folder.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub revisions: BTreeMap<String, Revision>,
}

/// The revision files of a versions folder below `fs`'s root: regular
/// `*.py` files directly inside it, never `__pycache__`, other folders or
/// links, sorted by name.
pub fn revision_files(fs: &RootDir, dir: &Path) -> Result<Vec<PathBuf>> {
    let files = fs.list(dir)?.into_iter().filter_map(|(name, kind)| {
        let text = name.to_str()?;
        let revision =
            kind == FileType::RegularFile && text.ends_with(".py") && !text.starts_with("__");
        revision.then(|| dir.join(text))
    });
    Ok(files.collect())
}

impl Graph {
    /// Parses every revision file of a folder below `fs`'s root.
    pub fn load(fs: &RootDir, dir: &Path) -> Result<Graph> {
        let files = revision_files(fs, dir)?;
        Graph::from_files(fs, &files)
    }

    /// Parses these revision files, read through `fs`.
    pub fn from_files(fs: &RootDir, files: &[PathBuf]) -> Result<Graph> {
        let mut graph = Graph::default();
        for file in files {
            let text = fs.read_to_string(file)?;
            let revision =
                parse(&text, file).with_context(|| format!("parse {}", file.display()))?;
            if let Some(other) = graph.revisions.get(&revision.id) {
                bail!(
                    "revision {} is defined twice: {} and {}",
                    revision.id,
                    other.file.display(),
                    file.display()
                );
            }
            graph.revisions.insert(revision.id.clone(), revision);
        }
        for revision in graph.revisions.values() {
            for down in &revision.down {
                if !graph.revisions.contains_key(down) {
                    bail!("revision {} revises {down}, which no file defines", revision.id);
                }
            }
        }
        Ok(graph)
    }

    /// Revisions that no other revision revises.
    pub fn heads(&self) -> Vec<String> {
        let revised: BTreeSet<&String> = self.revisions.values().flat_map(|r| &r.down).collect();
        self.revisions.keys().filter(|id| !revised.contains(id)).cloned().collect()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.revisions.contains_key(id)
    }

    /// Revisions whose `down_revision` names `id`.
    pub fn children(&self, id: &str) -> Vec<String> {
        let children = self.revisions.values().filter(|r| r.down.iter().any(|d| d == id));
        children.map(|r| r.id.clone()).collect()
    }

    /// Every revision `id` revises, directly or through others: what an
    /// upgrade to `id` has applied before it.
    pub fn ancestors(&self, id: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut next = vec![id.to_string()];
        while let Some(revision) = next.pop() {
            for down in self.revisions.get(&revision).map(|r| r.down.as_slice()).unwrap_or(&[]) {
                if found.insert(down.clone()) {
                    next.push(down.clone());
                }
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.revisions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.revisions.is_empty()
    }
}

/// The revisions alembic names in the output of `alembic current` (or
/// `heads`), sorted: each line whose first word is a revision of `graph`
/// ("abc123 (head)"). Everything else (an `env.py` that logs to stdout,
/// warnings) is noise, kept by the caller for a failure's detail.
pub fn revisions_in(output: &str, graph: &Graph) -> Vec<String> {
    let mut found: Vec<String> = output
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| graph.contains(word))
        .map(String::from)
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The revision id a revision file's text defines, if it parses.
pub fn revision_of(text: &str) -> Option<String> {
    parse(text, Path::new("")).ok().map(|r| r.id)
}

/// Reads `revision` and `down_revision` assignments at the top level of a
/// revision file (with or without type annotations).
fn parse(text: &str, file: &Path) -> Result<Revision> {
    let mut id = None;
    let mut down = None;
    for line in text.lines() {
        if let Some(value) = assignment(line, "revision") {
            id = Some(value);
        } else if let Some(value) = assignment(line, "down_revision") {
            down = Some(value);
        }
    }
    let Some(id) = id else { bail!("no `revision = ...` line") };
    let ids = strings(&id);
    if ids.len() != 1 {
        bail!("`revision` must be one quoted string, found {id}");
    }
    let Some(down) = down else { bail!("no `down_revision = ...` line") };
    let down = match down.trim() {
        "None" => Vec::new(),
        literal => {
            let parents = strings(literal);
            if parents.is_empty() {
                bail!(
                    "`down_revision` must be None, a string or a tuple of strings, found {literal}"
                );
            }
            parents
        }
    };
    Ok(Revision { id: ids[0].clone(), down, file: file.to_path_buf() })
}

/// The right-hand side of `name = ...` or `name: Type = ...` at column 0.
fn assignment(line: &str, name: &str) -> Option<String> {
    let rest = line.strip_prefix(name)?;
    let rest = rest.trim_start();
    let rest = if let Some(annotated) = rest.strip_prefix(':') {
        let (_, value) = annotated.split_once('=')?;
        value
    } else {
        rest.strip_prefix('=')?
    };
    let value = rest.split('#').next().unwrap_or("").trim();
    Some(value.to_string())
}

/// The quoted strings of a Python literal: `"a"`, `('a', "b")`, `["a"]`.
fn strings(literal: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = literal.chars();
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' {
            let value: String = chars.by_ref().take_while(|&d| d != c).collect();
            out.push(value);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test lays out its files by hand
mod tests {
    use super::*;

    #[test]
    fn parses_plain_annotated_and_merge_revisions() {
        let file = Path::new("x.py");
        let plain = parse("revision = \"abc\"\ndown_revision = None\n", file).unwrap();
        assert_eq!((plain.id.as_str(), plain.down.len()), ("abc", 0));
        let annotated = parse(
            "revision: str = 'def'\ndown_revision: Union[str, None] = 'abc'  # parent\n",
            file,
        )
        .unwrap();
        assert_eq!(annotated.down, ["abc"]);
        let merge = parse("revision = 'm'\ndown_revision = ('a', \"b\")\n", file).unwrap();
        assert_eq!(merge.down, ["a", "b"]);
    }

    #[test]
    fn rejects_a_file_without_revision() {
        let err = parse("down_revision = None\n", Path::new("x.py")).unwrap_err();
        assert!(err.to_string().contains("no `revision"), "{err}");
    }

    /// Revision files in a scratch folder: a <- b <- (c, d) <- m.
    fn written() -> (tempfile::TempDir, Graph) {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            ("001_a.py", "revision = 'a'\ndown_revision = None\n"),
            ("002_b.py", "revision = 'b'\ndown_revision = 'a'\n"),
            ("003_c.py", "revision: str = 'c'\ndown_revision = 'b'\n"),
            ("004_d.py", "revision = \"d\"\ndown_revision = 'b'\n"),
            ("005_m.py", "revision = 'm'\ndown_revision = ('c', 'd')\n"),
            ("__init__.py", ""),
            ("README", "not a revision"),
        ];
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        std::fs::create_dir(dir.path().join("__pycache__")).unwrap();
        let graph = Graph::load(&RootDir::open(dir.path()).unwrap(), dir.path()).unwrap();
        (dir, graph)
    }

    #[test]
    fn a_graph_knows_its_heads_children_and_size() {
        let (_dir, graph) = written();
        assert_eq!(graph.len(), 5, "__init__.py, README and __pycache__ are no revisions");
        assert_eq!(graph.heads(), ["m"]);
        assert_eq!(graph.children("b"), ["c", "d"]);
        assert!(graph.children("m").is_empty());
        assert_eq!(revision_of("revision = 'x'\ndown_revision = None\n").as_deref(), Some("x"));
    }

    #[test]
    fn a_graph_refuses_a_twice_defined_revision_and_a_missing_parent() {
        let (dir, _) = written();
        std::fs::write(dir.path().join("006_again.py"), "revision = 'c'\ndown_revision = 'b'\n")
            .unwrap();
        let load = || Graph::load(&RootDir::open(dir.path()).unwrap(), dir.path());
        assert!(format!("{:#}", load().unwrap_err()).contains("defined twice"));
        std::fs::remove_file(dir.path().join("006_again.py")).unwrap();
        std::fs::remove_file(dir.path().join("002_b.py")).unwrap();
        let err = format!("{:#}", load().unwrap_err());
        assert!(err.contains("which no file defines"), "{err}");
    }

    /// alembic's output may hold anything an `env.py` logs; only the lines
    /// that start with a revision of the graph count.
    #[test]
    fn alembic_output_is_read_against_the_graph() {
        let (_dir, graph) = written();
        let noisy = "INFO  [alembic.runtime.migration] Context impl SQLiteImpl.\n\
                     INFO  [alembic.runtime.migration] Will assume non-transactional DDL.\n\
                     [11/30/26 03:00:00] does something with c\n\
                     m (head) (mergepoint)\n";
        assert_eq!(revisions_in(noisy, &graph), ["m"]);
        assert_eq!(revisions_in("d\nc (head)\nc\n", &graph), ["c", "d"]);
        assert!(revisions_in("zzz (head)\n", &graph).is_empty(), "not a revision of this graph");
        assert!(revisions_in("", &graph).is_empty());
    }
}
