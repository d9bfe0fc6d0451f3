//! Identity, not equality: before alembic changes a database, prove that the
//! connection its `env.py` opens is the very file the tool gave it (same
//! device and inode, or, for a file not made yet, the same path), not
//! another database that merely holds the same revision (an `env.py` with a
//! hard-coded URL, an exported variable the profile does not set, a profile
//! `[env]` that names another file). The migration rollback checks every
//! answer alembic gives on its copy the same way; this probe is the early
//! warning, before step 1.
use std::{os::unix::fs::MetadataExt, path::Path};

use anyhow::Result;

use xtask_adapters::python::{Connection, Session};
use xtask_base::exit::refused;
use xtask_model::profile::Tree;

/// Ok when every connection `alembic current` would open is `file`; a
/// refusal (exit 4) naming both files otherwise, or when alembic opens none.
/// `file` is the tree's database, or a copy of it the migration works on.
pub fn prove_alembic_opens(session: &mut Session, tree: &Tree, file: &Path) -> Result<()> {
    let given = match file == tree.database() {
        true => file.display().to_string(),
        false => {
            format!("{} ({}, the copy it is given)", tree.database().display(), file.display())
        }
    };
    let meta = tree.fs.open_read(file).ok().and_then(|f| f.metadata().ok());
    let connections = session.probe().map_err(|err| {
        refused(format!(
            "alembic's connection could not be traced to a file, so it cannot be shown to act on {}: nothing was changed.\n{err:#}",
            tree.profile.database
        ))
    })?;
    if connections.is_empty() {
        return Err(refused(format!(
            "alembic current opened no database connection, so it cannot be shown to act on {}: nothing was changed",
            tree.profile.database
        )));
    }
    let is_given = |c: &Connection| match &meta {
        Some(meta) => c.dev == Some(meta.dev()) && c.ino == Some(meta.ino()),
        None => c.dev.is_none() && c.file.as_deref() == Some(file),
    };
    if let Some(other) = connections.iter().find(|c| !is_given(c)) {
        let opened = match (&other.file, other.dev) {
            (Some(opened), Some(_)) => opened.display().to_string(),
            (Some(opened), None) => {
                format!("{} (which does not exist: SQLite would create it)", opened.display())
            }
            (None, _) => format!("a {} database, not a file", other.dialect),
        };
        return Err(refused(format!(
            "alembic would act on another database: its connection opens {opened}, not {given}; its env.py ({}) or the environment names another database ({}); nothing was changed",
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
