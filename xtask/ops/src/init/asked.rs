//! What the service's own Alembic environment says of its database: run
//! confined on a scratch copy of the checkout, every connection refused
//! before it opens (the identity probe), once with no URL variable set
//! (which file alembic opens by itself) and once per candidate variable set
//! to a scratch path (which one moves the connection). The code's strings
//! only name the candidates; the answers come from the service.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xshell::Shell;

use crate::check_copy::CheckCopy;
use xtask_adapters::python::{AppFacts, Python, Scope, Session};
use xtask_model::profile::{Profile, Tree};

/// The answers, each with where it came from.
pub(super) struct Asked {
    /// The database alembic opens with no variable set, relative to the root.
    pub database: Option<String>,
    /// The variable whose URL alembic follows.
    pub variable: Option<String>,
    /// The folders of the test files pytest's own collection finds,
    /// wherever they live (inside the package too); `None` when pytest
    /// could not collect.
    pub tests: Option<Vec<String>>,
    /// The first of the apps init's reading proposed that imports as an
    /// app (its index, what it is); else the first, and why it did not.
    pub app: Option<(usize, Result<AppFacts, String>)>,
}

/// Asks the checkout at `root`, whose alembic.ini and migrations `profile`
/// names, with `candidates` as the variables to try.
pub(super) fn ask(
    sh: &Shell,
    python: Option<&Path>,
    root: &Path,
    profile: Profile,
    candidates: &[String],
    apps: &[&str],
) -> Result<Asked> {
    let fs = std::sync::Arc::new(xtask_fs::RootDir::open(root)?);
    let tree = Tree { root: root.to_path_buf(), profile, fs, copy_of: None };
    let copy = CheckCopy::of(&tree)?;
    let python = Python::find(sh, Some(root), python)?;
    let writable = [copy.tree.root.as_path()];
    let scope = Scope { url: String::new(), writable: &writable };
    let mut session = python.session(sh, &copy.tree, scope)?;
    // The apps first: an env.py that needs the app's context (Flask-
    // Migrate's) is asked inside the one that imports.
    let app = import_first(&mut session, apps);
    if let Some((index, Ok(_))) = &app {
        session.use_app(apps[*index]);
    }
    let unset: Vec<&str> = candidates.iter().map(String::as_str).collect();
    let alone = session.probe_with(&[], &unset).context("alembic current, with no URL set")?;
    let opened = alone.iter().find_map(|c| c.file.as_deref());
    // A file outside the copy is outside the checkout: the tool works on a
    // database beneath the tree, and init never guesses another.
    if let Some(file) = opened.filter(|f| inside(&copy.tree.root, f).is_none()) {
        return Err(Outside(file.to_path_buf()).into());
    }
    let database = opened.and_then(|file| inside(&copy.tree.root, file));
    let probe: PathBuf = copy.tree.root.join(".tmws-init-probe.db");
    let url = format!("sqlite:///{}", probe.display());
    let mut variable = None;
    for name in candidates {
        let others: Vec<&str> = unset.iter().copied().filter(|n| n != name).collect();
        let moved = session.probe_with(&[(name, &url)], &others)?;
        if moved.iter().any(|c| c.file.as_deref() == Some(probe.as_path())) {
            variable = Some(name.clone());
            break;
        }
    }
    let tests = collected_test_folders(sh, &python, &copy.tree).ok();
    Ok(Asked { database, variable, tests, app })
}

/// Imports the candidate apps in turn on the copy: the first that imports
/// as an app, else the first with why it did not.
fn import_first(session: &mut Session, apps: &[&str]) -> Option<(usize, Result<AppFacts, String>)> {
    let mut first_failure = None;
    for (index, spec) in apps.iter().enumerate() {
        match session.app_facts(spec) {
            Ok(facts) => return Some((index, Ok(facts))),
            Err(err) if first_failure.is_none() => {
                first_failure = Some((index, Err(format!("{err:#}"))))
            }
            Err(_) => {}
        }
    }
    first_failure
}

/// `pytest --collect-only` on the copy, confined to it: the folders of the
/// test files it collects, each folder inside another left out.
fn collected_test_folders(sh: &Shell, python: &Python, tree: &Tree) -> Result<Vec<String>> {
    let _d = sh.push_dir(&tree.root);
    let cmd = python.tool(sh, tree, "python").args([
        "-m",
        "pytest",
        "--collect-only",
        "-q",
        "-p",
        "no:cacheprovider",
    ]);
    let writable = [tree.root.as_path()];
    let confined = xtask_adapters::process::Confinement::beneath(&writable)?;
    let out =
        xtask_adapters::process::run(cmd, std::time::Duration::from_secs(120), Some(&confined))?;
    anyhow::ensure!(out.success(), "pytest --collect-only failed ({})", out.describe_status());
    let mut folders: Vec<String> = out
        .stdout
        .lines()
        .filter_map(|line| line.split_once("::").map(|(file, _)| file))
        .filter(|file| file.ends_with(".py"))
        .map(|file| Path::new(file).parent().map(|p| p.display().to_string()).unwrap_or_default())
        .filter(|folder| !folder.is_empty())
        .collect();
    folders.sort();
    folders.dedup();
    let nested = |f: &String| folders.iter().any(|o| o != f && f.starts_with(&format!("{o}/")));
    let top: Vec<String> = folders.iter().filter(|f| !nested(f)).cloned().collect();
    Ok(top)
}

/// The database the service's alembic environment opens lies outside the
/// checkout: an answer, not a failure to answer.
#[derive(Debug)]
pub(super) struct Outside(pub PathBuf);

impl std::fmt::Display for Outside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the service's alembic environment opens {}, outside the checkout: the tool rolls back a database beneath the tree; move it there (and point the service at it), then run init again",
            self.0.display()
        )
    }
}

impl std::error::Error for Outside {}

/// `file` relative to `root`, when it lies beneath it.
fn inside(root: &Path, file: &Path) -> Option<String> {
    file.strip_prefix(root).ok().map(|p| p.display().to_string()).filter(|p| !p.is_empty())
}
