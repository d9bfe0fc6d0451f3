//! The database steps: restore from the backup, check that alembic answers
//! for the tree's own database, and downgrade.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::Ctx;
use crate::{evidence::DatabaseCapture, rollback::restored};
use xtask_adapters::sqlite;
use xtask_base::exit::failed;
use xtask_fs::files;
use xtask_model::manifest::JournalMode;

impl Ctx<'_> {
    /// Restores the database without ever leaving the tree with none: the
    /// backup's copy is staged beside the live file, fsynced, hash-checked,
    /// integrity-checked as the staged copy when the backup was not verified
    /// in this run, and given its mode. Only then do the failed files move,
    /// byte for byte, into the bundle, and the staged copy takes their place.
    pub(super) fn restore_database(&mut self) -> Result<String> {
        let entry = self.manifest.database().context("the backup has no database")?.clone();
        let db = self.tree.database();
        let fs = &self.tree.fs;
        let sidecars: Vec<PathBuf> =
            ["-wal", "-shm", "-journal"].iter().map(|s| files::with_suffix(&db, s)).collect();
        let mut leftover = false;
        for path in std::iter::once(&db).chain(&sidecars) {
            leftover |= fs.expect_file_or_nothing(path)? && path != &db;
        }
        let in_place = fs.expect_file_or_nothing(&db)?
            && (restored::is_restore_of(self.tree, &db, &entry.sha256)
                || self.tree.fs.sha256(&db)?.0 == entry.sha256);
        if in_place && !leftover {
            if !self.backup_verified && !restored::is_restore_of(self.tree, &db, &entry.sha256) {
                self.integrity_of(&db, "the database in place")?;
            }
            // An interrupted run may have renamed the backup into place and
            // stopped before it switched the journal mode.
            let mode = self.recorded_journal_mode(&db, &entry.sha256)?;
            return Ok(format!("already restored from the backup{mode}"));
        }
        self.changed = true;
        if let Some(parent) = db.parent() {
            fs.create_dir_all(parent)?;
        }
        let source = self.backup_file(&entry.backup_path)?;
        // The failed files are hashed where they lie while the copy is staged.
        self.bundle()?;
        self.bundle.as_mut().expect("opened above").hash_ahead();
        let staged = files::stage_copy(fs, &source, &db, Some(&entry.sha256), entry.restored_mode())
            .with_context(|| {
                format!(
                    "stage the backup's database beside {}; nothing was moved: the failed database is still in place",
                    self.tree.profile.database
                )
            })?;
        let checked = if self.backup_verified {
            "integrity_check ok: the same sha256 as the verified backup"
        } else {
            self.integrity_of(staged.path(), "the staged copy of the backup")?;
            "integrity_check ok on the staged copy"
        };
        crate::rollback::fault_hook("inside", "restore-staged");
        // Now the failed files go, byte for byte, and nothing opened them.
        self.bundle()?;
        let bundle = self.bundle.as_mut().expect("opened above");
        bundle.capture_database(DatabaseCapture::Move)?;
        crate::rollback::fault_hook("inside", "restore-moved");
        staged.commit().context("rename the restored database into place")?;
        crate::rollback::fault_hook("inside", "restore-committed");
        let mode = self.recorded_journal_mode(&db, &entry.sha256)?;
        Ok(format!(
            "restored {} ({}); {checked}; the failed files are in {}/database{mode}",
            self.tree.profile.database,
            xtask_base::units::size(entry.size),
            self.rel(&self.bundle_dir)
        ))
    }

    pub(super) fn integrity_of(&self, path: &Path, what: &str) -> Result<()> {
        let integrity = sqlite::integrity_check(&sqlite::open_snapshot(path)?)?;
        if integrity != ["ok"] {
            return Err(failed(format!(
                "{what} fails integrity_check ({}): nothing was replaced, {} is as it was",
                integrity.join("; "),
                self.tree.profile.database
            )));
        }
        Ok(())
    }

    /// The backup file is in rollback journal mode; the service's database
    /// was in the mode the manifest recorded, and only WAL is kept in the
    /// file. Without this a WAL service would come back with readers and
    /// writers blocking each other. Switching a database already in WAL mode
    /// changes nothing, so this can run again.
    pub(super) fn recorded_journal_mode(
        &self,
        db: &Path,
        backup_sha256: &str,
    ) -> Result<&'static str> {
        if self.manifest.journal_mode != JournalMode::Wal {
            return Ok("");
        }
        sqlite::switch_to_wal(&self.tree.fs, db)
            .context("put the restored database back in WAL mode")?;
        restored::record(self.tree, db, backup_sha256)?;
        Ok(", back in WAL mode as when it was backed up")
    }
}
