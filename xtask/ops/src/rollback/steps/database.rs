//! The database steps: restore from the backup, check that alembic answers
//! for the tree's own database, and downgrade.
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use super::Ctx;
use crate::{evidence::DatabaseCapture, rollback::restored};
use xtask_adapters::{python::Python, sqlite};
use xtask_base::exit::{failed, refused};
use xtask_fs::files;
use xtask_model::{advice, manifest::JournalMode, migrations::revisions_in, schema::Schema};

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
        let staged = files::stage_copy(fs, &source, &db, Some(&entry.sha256), entry.mode)
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

    /// `alembic current`, with the URL variable set to the tree's database,
    /// must name the revision stored in that very file: otherwise alembic
    /// would act on another database (an exported URL, an env.py that
    /// ignores the variable), and nothing is changed.
    pub(super) fn check_alembic(&mut self) -> Result<String> {
        let db = self.tree.database();
        let stored = sqlite::alembic_revisions(&sqlite::open_live_read_only(&db)?)?;
        let python = self.python()?;
        let out = python.alembic(self.sh, self.tree, &["current"])?;
        let graph = self.tree.graph()?;
        let said = if out.success() {
            revisions_in(&out.stdout, &graph)
        } else {
            return Err(refused(format!(
                "alembic current failed ({}), so it cannot be shown to act on {}: nothing was changed.\n{}",
                out.describe_status(),
                self.tree.profile.database,
                out.tail(6)
            )));
        };
        if said != stored {
            return Err(refused(format!(
                "alembic current says {:?} but {} holds {:?}: alembic would act on another database (check {} in {} and the environment); nothing was changed. alembic's output:\n{}",
                said,
                self.tree.profile.database,
                stored,
                if self.tree.profile.database_url_env.is_empty() {
                    "database_url_env in the profile"
                } else {
                    &self.tree.profile.database_url_env
                },
                crate::identity::env_py(self.tree),
                out.stdout.trim(),
            )));
        }
        Ok(format!(
            "alembic current answers for {}: {}",
            self.tree.profile.database,
            stored.join(" ")
        ))
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
        sqlite::switch_to_wal(db).context("put the restored database back in WAL mode")?;
        restored::record(self.tree, db, backup_sha256)?;
        Ok(", back in WAL mode as when it was backed up")
    }

    pub(super) fn downgrade(&mut self, target: &str) -> Result<String> {
        let db = self.tree.database();
        let current = || -> Result<Vec<String>> {
            sqlite::alembic_revisions(&sqlite::open_live_read_only(&db)?)
        };
        let want: Vec<String> =
            if target == "base" { Vec::new() } else { vec![target.to_string()] };
        let python = self.python()?;
        let mut notes = Vec::new();
        if let Some(stamped) = self.repair_half_applied(&python, &current()?)? {
            self.changed = true;
            notes.push(stamped);
        }
        if current()? == want {
            // The stamp alone proves nothing: a half-applied migration
            // leaves its changes under the old stamp.
            self.schema_is_the_backups(target)?;
            notes.push(format!("already at {target}, and the schema is the backup's"));
            return Ok(notes.join("; "));
        }
        self.changed = true;
        let out = python.alembic(self.sh, self.tree, &["downgrade", target])?;
        let now = current().unwrap_or_default();
        if !out.success() {
            let tables = sqlite::open_live_read_only(&db)
                .and_then(|c| sqlite::table_names(&c))
                .unwrap_or_default();
            return Err(failed(format!(
                "alembic downgrade {target} failed ({}) half-way: the database is now at revision {} with tables {}.\n{}\nThe failed database is preserved in {}. Next steps: {}",
                out.describe_status(),
                if now.is_empty() { "none".into() } else { now.join(" ") },
                tables.join(", "),
                out.tail(8),
                self.rel(&self.bundle_dir),
                advice::database_instead(&self.tree.root)
            )));
        }
        let shown = python.alembic(self.sh, self.tree, &["current"])?;
        let alembic_says = revisions_in(&shown.stdout, &self.tree.graph()?);
        if now != want || alembic_says != want {
            return Err(failed(format!(
                "after the downgrade alembic_version holds {now:?} and alembic current says {alembic_says:?}, expected {target}\n{}",
                shown.tail(6)
            )));
        }
        self.schema_is_the_backups(target)?;
        notes
            .push(format!("alembic downgrade {target}: alembic current and alembic_version agree"));
        Ok(notes.join("; "))
    }

    /// At the backup's revision, the database has the backup's schema: its
    /// columns and indexes where the manifest records them, else its
    /// tables. Anything else is a failure that says what differs and what
    /// to do instead.
    fn schema_is_the_backups(&self, target: &str) -> Result<()> {
        if target != self.manifest.revision().unwrap_or_default() {
            return Ok(());
        }
        let conn = sqlite::open_live_read_only(&self.tree.database())?;
        let differences = if self.manifest.schema.is_empty() {
            let expected: BTreeSet<String> =
                self.manifest.tables.iter().map(|t| t.name.clone()).collect();
            let tables: BTreeSet<String> = sqlite::table_names(&conn)?.into_iter().collect();
            let extra = tables.difference(&expected).map(|t| format!("table {t} is extra"));
            let missing = expected.difference(&tables).map(|t| format!("table {t} is missing"));
            extra.chain(missing).collect()
        } else {
            Schema::differences(&sqlite::schema(&conn)?, &self.manifest.schema)
        };
        if differences.is_empty() {
            return Ok(());
        }
        Err(failed(format!(
            "the database is stamped {target}, the backup's revision, but its schema is not the backup's:\n  {}\nA downgrade cannot remove what no revision's downgrade knows of. Next steps: {}",
            differences.join("\n  "),
            advice::database_instead(&self.tree.root)
        )))
    }

    /// A migration that failed half-way (SQLite DDL is not transactional)
    /// leaves its tables without bumping `alembic_version`. When a child of the
    /// current revision has created any of its tables, it is stamped so that
    /// the downgrade runs its `downgrade()` and removes them.
    pub(super) fn repair_half_applied(
        &mut self,
        python: &Python,
        current: &[String],
    ) -> Result<Option<String>> {
        let [revision] = current else { return Ok(None) };
        let graph = self.tree.graph()?;
        let db = self.tree.database();
        let tables: BTreeSet<String> =
            sqlite::table_names(&sqlite::open_live_read_only(&db)?)?.into_iter().collect();
        for child in graph.children(revision) {
            // A probe that fails (a migration that needs a live connection
            // to render its SQL) finds nothing; the schema check after the
            // downgrade still compares with the backup's.
            let Ok(created) = python.tables_created_by(self.sh, self.tree, revision, &child) else {
                continue;
            };
            let present: Vec<&String> = created.iter().filter(|t| tables.contains(*t)).collect();
            if present.is_empty() {
                continue;
            }
            let out = python.alembic(self.sh, self.tree, &["stamp", &child])?;
            if !out.success() {
                bail!("alembic stamp {child} failed: {}", out.tail(5));
            }
            return Ok(Some(format!(
                "{child} was half-applied (tables {present:?} exist at {revision}): stamped {child} so its downgrade removes them"
            )));
        }
        Ok(None)
    }
}
