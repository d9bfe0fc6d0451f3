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
use xtask_adapters::python::{AppFacts, Python, Scope, Scripts, Session};
use xtask_model::{
    migrations::revision_files,
    profile::{Profile, Tree},
};

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
    /// The folders alembic itself reads the revisions from, relative to
    /// the root; `None` when its configuration did not load.
    pub migrations: Option<Vec<String>>,
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
        return Err(Unworkable::DatabaseOutside(file.to_path_buf()).into());
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
    // Where alembic reads the revisions; a configuration that does not
    // load leaves the ini's text to stand in.
    let migrations = match session.scripts() {
        Ok(scripts) => Some(revision_folders(&copy.tree, root, &scripts)?),
        Err(_) => None,
    };
    let tests = collected_test_folders(&mut session).ok();
    Ok(Asked { database, variable, tests, app, migrations })
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

/// `pytest --collect-only` on the copy, in the helper (confined to the
/// copy): the folders of the test files it collects, each folder inside
/// another left out.
fn collected_test_folders(session: &mut Session) -> Result<Vec<String>> {
    let out = session.collect_tests()?;
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

/// What the service answered that the tool cannot work with: an answer,
/// not a failure to answer (exit 1, naming it).
#[derive(Debug)]
pub(super) enum Unworkable {
    /// The database its alembic environment opens lies outside the checkout.
    DatabaseOutside(PathBuf),
    /// Alembic reads revisions from outside the checkout, or loads revision
    /// files the tool would not keep.
    Revisions(String),
}

impl std::fmt::Display for Unworkable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unworkable::DatabaseOutside(file) => write!(
                f,
                "the service's alembic environment opens {}, outside the checkout: the tool rolls back a database beneath the tree; move it there (and point the service at it), then run init again",
                file.display()
            ),
            Unworkable::Revisions(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Unworkable {}

/// The folders alembic reads the revisions from (its own answer), relative
/// to the root. One outside the checkout, or a revision file alembic loads
/// that the tool would not keep (in a subfolder of a recursive location, a
/// sourceless one), is unworkable: the tool backs up and restores the `.py`
/// files at the top of each folder beneath the tree.
fn revision_folders(tree: &Tree, live: &Path, scripts: &Scripts) -> Result<Vec<String>> {
    // An absolute path in the ini reaches the live checkout even from the
    // copy: the same folder, relative to the root.
    let relative = |path: &Path| inside(&tree.root, path).or_else(|| inside(live, path));
    let mut folders = Vec::new();
    for folder in &scripts.versions {
        let Some(relative) = relative(folder) else {
            return Err(Unworkable::Revisions(format!(
                "alembic reads revisions from {}, outside the checkout: the tool backs up and restores the revisions beneath the tree",
                folder.display()
            ))
            .into());
        };
        folders.push(relative);
    }
    let kept: std::collections::BTreeSet<String> = folders
        .iter()
        .flat_map(|folder| revision_files(&tree.fs, &tree.path(folder)).unwrap_or_default())
        .filter_map(|file| relative(&file))
        .collect();
    let unkept: Vec<String> = (scripts.files.iter().flatten())
        .map(|file| relative(file).unwrap_or_else(|| file.display().to_string()))
        .filter(|file| !kept.contains(file))
        .collect();
    if !unkept.is_empty() {
        let recursive = if scripts.recursive { " (recursive_version_locations is on)" } else { "" };
        return Err(Unworkable::Revisions(format!(
            "alembic loads revision files the tool would not keep{recursive}: {}; the tool backs up and restores the .py files at the top of each version location, so move these there",
            unkept.join(", ")
        ))
        .into());
    }
    Ok(folders)
}

/// `file` relative to `root`, when it lies beneath it.
fn inside(root: &Path, file: &Path) -> Option<String> {
    file.strip_prefix(root).ok().map(|p| p.display().to_string()).filter(|p| !p.is_empty())
}
