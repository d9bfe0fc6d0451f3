//! `cargo xtask forensics`: a bundle of the current (failed) state, taken
//! without changing the tree: the database is copied through SQLite.
use anyhow::Result;
use xshell::Shell;

use crate::evidence::{Bundle, DatabaseCapture};
use xtask_adapters::python::Python;
use xtask_model::label::Label;
use xtask_model::{backup::Backup, profile::Tree};

pub use crate::evidence::new_bundle_path;

/// What a bundle of the tree would hold, a line each, for a dry run.
pub fn plan(tree: &Tree, label: &Label) -> Vec<String> {
    vec![
        format!(
            "{} with its -wal/-shm copied byte for byte, then through SQLite: an SQL dump and integrity_check",
            tree.profile.database
        ),
        format!(
            "the revision files of {}, the config and critical files, diffs against backups/{label}",
            tree.profile.migrations
        ),
        match tree.profile.log_file() {
            Some(log) => format!("$ alembic current, $ alembic history, the last lines of {log}"),
            None => "$ alembic current, $ alembic history (the profile names no log_file)".into(),
        },
        "FAILURE_REPORT.md and failure.json".to_string(),
    ]
}

/// Collects a full bundle of the tree as it is now.
pub fn collect(
    sh: &Shell,
    tree: &Tree,
    label: &Label,
    python: Option<&std::path::Path>,
) -> Result<Bundle> {
    let run = format!("forensics-{}-{}", xtask_base::clock::now_compact(), std::process::id());
    let mut bundle = Bundle::create(tree, label, &new_bundle_path(tree, label), &run)?;
    // The database's bytes first, before alembic or SQLite opens it.
    bundle.capture_database(DatabaseCapture::Copy)?;
    let backup = match Backup::find(tree, label) {
        Ok(Some(backup)) => Some(backup),
        Ok(None) => {
            bundle.facts.problems.push(format!("no backup {label}: no diffs against it"));
            None
        }
        Err(err) => {
            let problem = format!("backup {label} cannot be read, so no diffs against it: {err:#}");
            bundle.facts.problems.push(problem);
            None
        }
    };
    // alembic reads the kept copy, never the tree's database: the URL
    // variable is the only way to point it there.
    let alembic = match (Python::find(sh, Some(&tree.root), python), bundle.consolidated()) {
        _ if tree.profile.database_url_env.is_empty() => {
            bundle.facts.problems.push(
                "alembic's view of the kept database was not asked: the profile sets no database_url_env to point alembic at the copy (it would read the tree's database)".into(),
            );
            None
        }
        (Ok(python), Some(kept)) => Some(bundle.start_alembic(&python, tree, &kept)),
        (Ok(_), None) => None,
        (Err(err), _) => {
            bundle.facts.problems.push(format!("no Python for alembic: {err:#}"));
            None
        }
    };
    bundle.preserve_files(sh, tree, backup.as_ref().map(|b| (b.dir.as_path(), &b.manifest)))?;
    bundle.capture_log(tree);
    if let Some(runs) = alembic {
        bundle.finish_alembic(runs);
    }
    let journal = xtask_model::journal::path(&tree.state_dir());
    if tree.fs.is_file(&journal) {
        xtask_fs::files::copy_new(&tree.fs, &journal, &tree.fs, &bundle.dir.join("journal.json"))?;
        bundle.facts.steps.push("an interrupted rollback's journal is in journal.json".into());
    }
    bundle.facts.completed = Some(xtask_base::clock::now_rfc3339());
    bundle.seal()?;
    Ok(bundle)
}
