//! The migration steps: alembic works on a copy of the database in a folder
//! of its own, where it alone may write; the copy is checked; only then do
//! the failed files go into the bundle and the copy takes their place. A
//! downgrade that fails, or reaches for another file, leaves the live
//! database as it was.
use std::{
    collections::BTreeSet,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use super::Ctx;
use crate::evidence::DatabaseCapture;
use xtask_adapters::{
    python::{Answer, Session},
    sqlite,
};
use xtask_base::exit::{Kind, refused};
use xtask_fs::{files, sys::Rename};
use xtask_model::{advice, database, migrations::revisions_in, schema::Schema};

impl Ctx<'_> {
    /// The copy of the database, in `folder`, under the database's name.
    fn migrated_copy(&self, folder: &str) -> PathBuf {
        let db = self.tree.database();
        self.tree.path(folder).join(db.file_name().unwrap_or_default())
    }

    /// Copies the database's files (not the index SQLite rebuilds) into
    /// `folder`, has alembic downgrade (or, `up`, upgrade) that copy to
    /// `target`, and checks it.
    /// A resumed run keeps a copy that is at `target` and passes the checks
    /// (the step ended, or the swap began), and starts any other copy again:
    /// the live files are untouched.
    pub(super) fn migrate_copy(&mut self, target: &str, up: bool, folder: &str) -> Result<String> {
        if let Some(done) = self.migrated_before(target, folder)? {
            return Ok(done);
        }
        let fs = &self.tree.fs;
        let dir = self.tree.path(folder);
        // The folder is the one the helper was confined to before step 1:
        // emptied (of what an interrupted run left), never replaced.
        if !fs.expect_dir_or_nothing(&dir)? {
            bail!("{folder} is gone: the Python helper has nowhere to work");
        }
        for (name, kind) in fs.list(&dir)? {
            let left = dir.join(name);
            if kind.is_dir() { fs.remove_dir_all(&left)? } else { fs.remove_file(&left)? }
        }
        let copy = self.migrated_copy(folder);
        for (name, source) in database::files(&self.tree.database()) {
            if !name.ends_with("-shm") && fs.expect_file_or_nothing(&source)? {
                files::copy_like(fs, &source, &dir.join(&name))?;
            }
        }
        let stored = sqlite::alembic_revisions(&sqlite::open_live_read_only(&copy)?)?;
        // The copy says which way alembic goes, whatever the plan foresaw
        // (it reads the live database only for a target it was given).
        let up = match stored.as_slice() {
            [current] => up || self.tree.graph()?.ancestors(target).contains(current),
            _ => up,
        };
        let mut session = self.session.take().context("the Python helper was not started")?;
        let done = self.migrate_on_copy(&mut session, &copy, &stored, Move { target, up });
        self.session = Some(session);
        let mut notes = done?;
        notes.push(self.check_copy(&copy, target)?);
        Ok(notes.join("; "))
    }

    /// The effect of an interrupted run's migration step, when it holds: a
    /// copy at `target` that passes the checks, or the copy in place (its
    /// folder gone, the database at `target`).
    fn migrated_before(&self, target: &str, folder: &str) -> Result<Option<String>> {
        let fs = &self.tree.fs;
        let copy = self.migrated_copy(folder);
        let want = wanted(target);
        if fs.exists(&copy)
            && revisions_of(&copy).is_ok_and(|now| now == want)
            && let Ok(checked) = self.check_copy(&copy, target)
        {
            return Ok(Some(format!("the copy was migrated before the interruption; {checked}")));
        }
        let db = self.tree.database();
        if !fs.expect_dir_or_nothing(&self.tree.path(folder))?
            && fs.exists(&db)
            && revisions_of(&db)? == want
        {
            return Ok(Some(format!("the migrated copy is in place already: {target}")));
        }
        Ok(None)
    }

    /// alembic's work on the copy: every answer must come from the copy
    /// itself (device and inode), whatever env.py does when it is probed.
    fn migrate_on_copy(
        &mut self,
        session: &mut Session,
        copy: &Path,
        stored: &[String],
        Move { target, up }: Move<'_>,
    ) -> Result<Vec<String>> {
        let graph = self.tree.graph()?;
        let current = session.alembic(&["current"])?;
        only_the_copy(&current, copy, self)?;
        let said = revisions_in(&current.output.stdout, &graph);
        if !current.output.success() || said != stored {
            return Err(refused(format!(
                "alembic current says {said:?} ({}) but the copy of {} holds {stored:?}: alembic would act on another database; nothing was changed.\n{}",
                current.output.describe_status(),
                self.tree.profile.database,
                current.output.tail(6)
            )));
        }
        let history = session.alembic(&["history"]).map(|a| a.output);
        self.bundle()?.keep_alembic([Ok(current.output), history], stored.to_vec());
        let mut notes = vec![format!("alembic opens the copy: {}", stored.join(" "))];
        // A half-applied child is stamped so its downgrade removes it; an
        // upgrade goes through it again instead.
        if !up && let Some(stamped) = self.repair_half_applied(session, copy, stored)? {
            notes.push(stamped);
        }
        let want = wanted(target);
        if revisions_of(copy)? == want {
            notes.push(format!("already at {target}"));
            return Ok(notes);
        }
        self.changed = true;
        let verb = if up { "upgrade" } else { "downgrade" };
        let migrated = session.alembic(&[verb, target])?;
        only_the_copy(&migrated, copy, self)?;
        if !migrated.output.success() {
            return Err(advice::database_instead(&self.tree.root).error(
                Kind::Failed,
                &format!(
                    "alembic {verb} {target} failed on the copy ({}); {} is as it was, and the copy is left in {} to look at.\n{}\nNext steps: ",
                    migrated.output.describe_status(),
                    self.tree.profile.database,
                    self.rel(copy.parent().unwrap_or(copy)),
                    migrated.output.tail(8),
                ),
            ));
        }
        let after = session.alembic(&["current"])?;
        only_the_copy(&after, copy, self)?;
        let alembic_says = revisions_in(&after.output.stdout, &graph);
        if alembic_says != want {
            bail!(
                "after the {verb} alembic current says {alembic_says:?}, expected {target}\n{}",
                after.output.tail(6)
            );
        }
        notes.push(format!("alembic {verb} {target} on the copy"));
        Ok(notes)
    }

    /// The copy as the live database must be: whole (its WAL folded in),
    /// passing integrity_check, at `target`, with the backup's schema at the
    /// backup's revision.
    fn check_copy(&self, copy: &Path, target: &str) -> Result<String> {
        let conn = sqlite::Anchored::open(&self.tree.fs, copy, false)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let integrity = sqlite::integrity_check(&conn)?;
        let now = sqlite::alembic_revisions(&conn)?;
        let differences = self.schema_differences(&conn, target)?;
        conn.close(&self.tree.fs)?;
        let want = wanted(target);
        let mut problems = Vec::new();
        if integrity != ["ok"] {
            problems.push(format!("integrity_check: {}", integrity.join("; ")));
        }
        if now != want {
            problems.push(format!("alembic_version holds {now:?}, expected {target}"));
        }
        problems.extend(differences);
        if !problems.is_empty() {
            return Err(advice::database_instead(&self.tree.root).error(
                Kind::Failed,
                &format!(
                    "the migrated copy is not what {target} must be, so it does not take the database's place ({} is as it was):\n  {}\nWhat is left was made by no revision the copy's downgrades ran (a migration after {target} that left its stamp behind, when its offline SQL could not be read to recognise it, is one such). Next steps: ",
                    self.tree.profile.database,
                    problems.join("\n  "),
                ),
            ));
        }
        Ok(format!("the copy passes integrity_check and holds {target}"))
    }

    /// At the backup's revision, the copy has the backup's schema: its
    /// columns and indexes where the manifest records them, else its tables.
    fn schema_differences(&self, conn: &rusqlite::Connection, target: &str) -> Result<Vec<String>> {
        if target != self.manifest.revision().unwrap_or_default() {
            return Ok(Vec::new());
        }
        if !self.manifest.schema.is_empty() {
            return Ok(Schema::differences(&sqlite::schema(conn)?, &self.manifest.schema));
        }
        let expected: BTreeSet<String> =
            self.manifest.tables.iter().map(|t| t.name.clone()).collect();
        let tables: BTreeSet<String> = sqlite::table_names(conn)?.into_iter().collect();
        let extra = tables.difference(&expected).map(|t| format!("table {t} is extra"));
        let missing = expected.difference(&tables).map(|t| format!("table {t} is missing"));
        Ok(extra.chain(missing).collect())
    }

    /// A migration that failed half-way (SQLite DDL is not transactional)
    /// leaves its tables without bumping `alembic_version`. When a child of
    /// the copy's revision has created any of its tables, the copy is
    /// stamped so that the downgrade runs its `downgrade()` and removes them.
    fn repair_half_applied(
        &mut self,
        session: &mut Session,
        copy: &Path,
        current: &[String],
    ) -> Result<Option<String>> {
        let [revision] = current else { return Ok(None) };
        let graph = self.tree.graph()?;
        let schema = sqlite::schema(&sqlite::open_live_read_only(copy)?)?;
        for child in graph.children(revision) {
            // A probe that fails (a migration that needs a live connection
            // to render its SQL) finds nothing; the copy's schema is still
            // compared with the backup's before it takes the database's place.
            let Ok(made) = session.made_by(revision, &child) else { continue };
            let present = made.present_in(&schema);
            if present.is_empty() {
                continue;
            }
            self.changed = true;
            let stamped = session.alembic(&["stamp", &child])?;
            only_the_copy(&stamped, copy, self)?;
            if !stamped.output.success() {
                bail!("alembic stamp {child} failed on the copy: {}", stamped.output.tail(5));
            }
            return Ok(Some(format!(
                "{child} was half-applied ({} exist at {revision}): the copy was stamped {child} so its downgrade removes them",
                present.join(", ")
            )));
        }
        Ok(None)
    }

    /// The failed files go into the bundle byte for byte, and the checked
    /// copy is renamed into their place; the copy's folder goes. A resumed
    /// run finds the copy in place already, or finishes the swap.
    pub(super) fn swap_migrated(&mut self, folder: &str, target: &str) -> Result<String> {
        let fs = &self.tree.fs;
        let db = self.tree.database();
        let copy = self.migrated_copy(folder);
        let dir = self.tree.path(folder);
        if !fs.exists(&copy) {
            if fs.exists(&db) && revisions_of(&db)? == wanted(target) {
                if fs.expect_dir_or_nothing(&dir)? {
                    fs.remove_dir_all(&dir)?;
                }
                return Ok(format!("the migrated copy is in place already: {target}"));
            }
            bail!(
                "the migrated copy {} is gone and {} is not at {target}: abandon this run and roll back again",
                self.rel(&copy),
                self.tree.profile.database
            );
        }
        // alembic changed nothing on the copy (the database was at the
        // target already, nothing half-applied): the copy goes, the
        // database stays.
        if !self.changed && fs.exists(&db) && revisions_of(&db)? == wanted(target) {
            fs.remove_dir_all(&dir).with_context(|| format!("remove {folder}"))?;
            return Ok(format!(
                "{} is at {target} already: nothing to swap",
                self.tree.profile.database
            ));
        }
        self.changed = true;
        self.bundle()?.capture_database(DatabaseCapture::Move)?;
        crate::rollback::fault_hook("inside", "migrated-moved");
        fs.rename(&copy, &db, Rename::NoReplace).context("rename the migrated copy into place")?;
        files::fsync_parent(&db)?;
        fs.remove_dir_all(&dir).with_context(|| format!("remove {folder}"))?;
        Ok(format!(
            "{} is the migrated copy ({target}); the failed files are in {}/database",
            self.tree.profile.database,
            self.rel(&self.bundle_dir)
        ))
    }
}

/// Where alembic takes the copy: to `target`, upgrading when `up`.
#[derive(Clone, Copy)]
struct Move<'a> {
    target: &'a str,
    up: bool,
}

/// The revisions a database at `target` holds: none at `base`.
fn wanted(target: &str) -> Vec<String> {
    if target == "base" { Vec::new() } else { vec![target.to_string()] }
}

/// The revisions a database file holds, read without writing to it.
fn revisions_of(db: &Path) -> Result<Vec<String>> {
    sqlite::alembic_revisions(&sqlite::open_live_read_only(db)?)
}

/// Every connection of an answer must be the copy itself (its device and
/// inode), never another file that alembic's env.py chose.
fn only_the_copy(answer: &Answer, copy: &Path, ctx: &Ctx<'_>) -> Result<()> {
    let meta = ctx.tree.fs.open_read(copy)?.metadata()?;
    if answer.connections.is_empty() {
        return Err(refused(format!(
            "alembic opened no database connection, so it cannot be shown to act on the copy ({}); the live database is as it was",
            ctx.rel(copy)
        )));
    }
    let other =
        answer.connections.iter().find(|c| c.dev != Some(meta.dev()) || c.ino != Some(meta.ino()));
    if let Some(other) = other {
        let file = other.file.as_ref().map_or_else(
            || format!("a {} database, not a file", other.dialect),
            |f| f.display().to_string(),
        );
        return Err(refused(format!(
            "alembic opened {file}, not the copy it was given ({}): its env.py ({}) or the environment names another database; the live database is as it was",
            ctx.rel(copy),
            crate::identity::env_py(ctx.tree)
        )));
    }
    Ok(())
}
