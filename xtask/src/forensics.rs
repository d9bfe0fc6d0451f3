//! `cargo xtask forensics`: a bundle of the current (failed) state, taken
//! without changing the tree: the database is copied through SQLite.
use anyhow::Result;
use xshell::Shell;

use crate::{
    evidence::{Bundle, DatabaseCapture, new_bundle_path},
    flags,
    manifest::{MANIFEST_FILE, Manifest},
    profile::Tree,
    python::Python,
    report::Format,
};

impl flags::Forensics {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let format = self.format.unwrap_or_default();
        let (tree, label) = Tree::with_label(self.root.as_deref(), self.label.as_deref())?;
        if self.dry_run {
            let dir = new_bundle_path(&tree, &label);
            let plan = vec![
                format!(
                    "{} with its -wal/-shm copied byte for byte, then through SQLite: an SQL dump and integrity_check",
                    tree.profile.database
                ),
                format!(
                    "the revision files of {}, the config and critical files, diffs against backups/{label}",
                    tree.profile.migrations
                ),
                format!(
                    "$ alembic current, $ alembic history, the last lines of {}",
                    tree.profile.log_file
                ),
                "FAILURE_REPORT.md and failure.json".to_string(),
            ];
            match format {
                Format::Json => {
                    let document = serde_json::json!({
                        "schema": crate::report::SCHEMA,
                        "command": "forensics",
                        "result": "planned",
                        "dry_run": true,
                        "bundle": dir,
                        "plan": plan,
                    });
                    println!("{}", serde_json::to_string_pretty(&document)?);
                }
                Format::Human => {
                    println!(
                        "dry run: nothing is written. The bundle would be {} (mode 0700):",
                        dir.display()
                    );
                    for line in plan {
                        println!("  {line}");
                    }
                }
            }
            return Ok(());
        }
        let bundle = collect(sh, &tree, &label, self.python.as_deref())?;
        match format {
            Format::Json => {
                let document = serde_json::json!({
                    "schema": crate::report::SCHEMA,
                    "command": "forensics",
                    "result": "done",
                    "dry_run": false,
                    "bundle": bundle.dir,
                    "facts": bundle.facts,
                });
                println!("{}", serde_json::to_string_pretty(&document)?);
            }
            Format::Human => println!(
                "forensics bundle written to {} ({} database files, {} diffs{})",
                bundle.dir.display(),
                bundle.facts.database_files.len()
                    + usize::from(bundle.facts.database_copy.is_some()),
                bundle.facts.diffs.len(),
                if bundle.facts.problems.is_empty() {
                    String::new()
                } else {
                    format!("; {} problems noted in FAILURE_REPORT.md", bundle.facts.problems.len())
                }
            ),
        }
        Ok(())
    }
}

/// Collects a full bundle of the tree as it is now.
pub fn collect(
    sh: &Shell,
    tree: &Tree,
    label: &str,
    python: Option<&std::path::Path>,
) -> Result<Bundle> {
    let run = format!("forensics-{}-{}", crate::clock::now_compact(), std::process::id());
    let mut bundle = Bundle::create(tree, label, &new_bundle_path(tree, label), &run)?;
    // The database's bytes first, before alembic or SQLite opens it.
    bundle.capture_database(DatabaseCapture::Copy)?;
    let backup_dir = tree.backup(label);
    let manifest = std::fs::read_to_string(backup_dir.join(MANIFEST_FILE))
        .ok()
        .and_then(|t| Manifest::parse(&t).ok());
    if manifest.is_none() {
        bundle.facts.problems.push(format!("no readable backup {label}: no diffs against it"));
    }
    let alembic = match Python::find(sh, Some(&tree.root), python) {
        Ok(python) => Some(bundle.start_alembic(&python, tree, None)),
        Err(err) => {
            bundle.facts.problems.push(format!("no Python for alembic: {err:#}"));
            None
        }
    };
    bundle.preserve_files(sh, tree, manifest.as_ref().map(|m| (backup_dir.as_path(), m)))?;
    bundle.capture_log(tree);
    if let Some(runs) = alembic {
        bundle.finish_alembic(runs);
    }
    let journal = crate::journal::path(&tree.state_dir());
    if tree.fs.is_file(&journal) {
        crate::fsutil::copy_new(&tree.fs, &journal, &tree.fs, &bundle.dir.join("journal.json"))?;
        bundle.facts.steps.push("an interrupted rollback's journal is in journal.json".into());
    }
    bundle.facts.completed = Some(crate::clock::now_rfc3339());
    bundle.seal()?;
    Ok(bundle)
}
