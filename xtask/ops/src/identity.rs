//! Identity, not equality: before alembic changes a database, prove that the
//! connection its `env.py` opens is the tree's database file itself (same
//! device and inode), not another database that merely holds the same
//! revision (an `env.py` with a hard-coded URL, an exported variable the
//! profile does not set, a profile `[env]` that names another file).
use std::os::unix::fs::MetadataExt;

use anyhow::Result;
use xshell::Shell;

use xtask_adapters::python::{Python, Target};
use xtask_base::exit::refused;
use xtask_model::profile::Tree;

/// Ok when every connection alembic would open is the tree's database; a
/// refusal (exit 4) naming both files otherwise, or when alembic opens none.
pub fn prove_alembic_opens_the_tree_database(
    sh: &Shell,
    tree: &Tree,
    python: &Python,
) -> Result<()> {
    let db = tree.database();
    let meta = tree.fs.open_read(&db)?.metadata()?;
    let targets = python.alembic_targets(sh, tree).map_err(|err| {
        refused(format!(
            "alembic's connection could not be traced to a file, so it cannot be shown to act on {}: nothing was changed.\n{err:#}",
            tree.profile.database
        ))
    })?;
    if targets.is_empty() {
        return Err(refused(format!(
            "alembic current opened no database connection, so it cannot be shown to act on {}: nothing was changed",
            tree.profile.database
        )));
    }
    let ours = |t: &Target| t.dev == Some(meta.dev()) && t.ino == Some(meta.ino());
    if let Some(other) = targets.iter().find(|t| !ours(t)) {
        let file = match (&other.file, other.dev) {
            (Some(file), Some(_)) => file.display().to_string(),
            (Some(file), None) => {
                format!("{} (which does not exist: SQLite would create it)", file.display())
            }
            (None, _) => format!("a {} database, not a file", other.dialect),
        };
        return Err(refused(format!(
            "alembic would act on another database: its connection opens {file}, not the tree's database {}; its env.py ({}) or the environment names another database ({}); nothing was changed",
            db.display(),
            env_py(tree),
            if tree.profile.database_url_env.is_empty() {
                "the profile sets no URL variable: database_url_env".to_string()
            } else {
                format!("the profile sets {} for it", tree.profile.database_url_env)
            }
        )));
    }
    Ok(())
}

/// The `env.py` alembic.ini's `script_location` points at, for a message.
pub fn env_py(tree: &Tree) -> String {
    let ini = tree.fs.read_to_string(&tree.path(&tree.profile.alembic_ini)).unwrap_or_default();
    let location = ini.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "script_location").then(|| value.trim().to_string())
    });
    let ini_dir = std::path::Path::new(&tree.profile.alembic_ini)
        .parent()
        .unwrap_or(std::path::Path::new(""));
    match location {
        Some(location) => {
            let location = location.replace("%(here)s/", "").replace("%(here)s", ".");
            ini_dir.join(location.trim_start_matches("./")).join("env.py").display().to_string()
        }
        None => format!("the script_location of {}", tree.profile.alembic_ini),
    }
}
