//! Checks change nothing: the checks that run the tree's programs (the app,
//! pytest, alembic, the import check) run them on a scratch copy of the
//! tree, confined to that copy, with the profile's URL variable naming the
//! copy's database. An app that upgrades its schema at start-up, writes its
//! data folder or its log, or leaves bytecode and caches, does so in the
//! copy, which is removed afterwards (or by the signal path, see
//! `xtask_fs::scratch`).
//!
//! The copy holds what the programs use, not the whole checkout: what git
//! tracks and would track (untracked files it does not ignore), and
//! everything the profile names even where git ignores it: the database
//! and its sidecars, alembic's folder, the config, critical and test
//! files, the modules the checks import with their packages' `__init__.py`,
//! pytest's conftest.py files and configuration, the `.env` files at the
//! root (settings read them from there), and, empty, the folders the app
//! writes its data, log and pid file into. Ignored files (a large log,
//! build output) stay out. A tree git does not track is copied whole, but
//! for the folders no program needs.
use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, Result};

use xtask_fs::{
    RootDir, files,
    scratch_copy::{self, Selection},
};
use xtask_model::profile::{PROFILE_FILE, Tree};

pub struct CheckCopy {
    /// Removed (with the copy) when this is dropped.
    _dir: files::Scratch,
    pub tree: Tree,
    pub cost: scratch_copy::Cost,
}

impl CheckCopy {
    pub fn of(tree: &Tree) -> Result<CheckCopy> {
        let selection = selection(tree)?;
        let dir = files::scratch_dir("tmws-check-copy")?;
        xtask_fs::programs_owner::open_to_programs(dir.path())?;
        // The copy keeps the tree's folder name: an app may use it.
        let name = tree.root.file_name().map_or("tree".into(), |n| n.to_os_string());
        let root = dir.path().join(name);
        let cost = scratch_copy::copy_tree(&tree.fs, &tree.root, &selection, &root)
            .context("copy the tree for the checks that run its programs")?;
        let root = xtask_fs::outside::canonicalize(&root)?;
        let fs = Arc::new(RootDir::open(&root)?);
        let copy =
            Tree { root, profile: tree.profile.clone(), fs, copy_of: Some(tree.root.clone()) };
        Ok(CheckCopy { _dir: dir, tree: copy, cost })
    }
}

/// What the copy of `tree` holds (see the module's comment).
fn selection(tree: &Tree) -> Result<Selection> {
    let tracked = xtask_adapters::git::files_for_checks(&tree.root)
        .context("list the files git tracks, for the copy the checks run on")?;
    let Some(mut paths) = tracked else { return Ok(Selection::Whole) };
    let profile = &tree.profile;
    let database = Path::new(&profile.database);
    paths.extend(["", "-journal", "-wal", "-shm"].map(|s| files::with_suffix(database, s)));
    // Alembic's script folder (env.py, script.py.mako, the revisions).
    for versions in profile.migrations.iter().map(Path::new) {
        let scripts = versions.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(versions);
        paths.push(scripts.to_path_buf());
    }
    paths.extend([Path::new(&profile.alembic_ini), Path::new(PROFILE_FILE)].map(PathBuf::from));
    let named =
        profile.config_files.iter().chain(&profile.critical_files).chain(&profile.test_files);
    paths.extend(named.map(PathBuf::from));
    let app_module = profile.app.split(':').next().unwrap_or_default();
    for module in profile.critical_modules.iter().map(String::as_str).chain([app_module]) {
        paths.extend(module_paths(module));
    }
    for test in &profile.test_files {
        for folder in Path::new(test).ancestors().skip(1) {
            paths.push(folder.join("conftest.py"));
        }
    }
    paths.extend(["pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml"].map(PathBuf::from));
    paths.extend(dotenv_files(tree));
    let written = [Some(&profile.database), Some(&profile.log_file), profile.pid_file.as_ref()];
    let folders = written
        .into_iter()
        .flatten()
        .filter_map(|path| Path::new(path).parent())
        .filter(|folder| !folder.as_os_str().is_empty())
        .map(PathBuf::from)
        .collect();
    Ok(Selection::Only { paths, folders })
}

/// `src.services.x` → `src/services/x.py`, the package `src/services/x/`,
/// and the `__init__.py` of `src/` and `src/services/`.
fn module_paths(module: &str) -> Vec<PathBuf> {
    let parts: Vec<&str> = module.split('.').filter(|part| !part.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|part| part.contains(['/', '\\']) || *part == "..") {
        return Vec::new();
    }
    let path: PathBuf = parts.iter().collect();
    let mut paths = vec![path.with_extension("py"), path.clone()];
    paths.extend(
        path.ancestors()
            .skip(1)
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| p.join("__init__.py")),
    );
    paths
}

/// `.env` and `.env.*` at the root: settings classes and dotenv read them
/// from the folder the app runs in, and git usually ignores them.
fn dotenv_files(tree: &Tree) -> Vec<PathBuf> {
    let entries = tree.fs.list(&tree.root).unwrap_or_default();
    entries
        .into_iter()
        .filter(|(_, kind)| kind.is_file())
        .map(|(name, _)| PathBuf::from(name))
        .filter(|name| name.to_str().is_some_and(|n| n == ".env" || n.starts_with(".env.")))
        .collect()
}
