//! Executing the steps of a plan. Each step first checks whether its effect
//! already holds (a resumed run), and checks its own result afterwards.
use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use xshell::Shell;

use super::{plan::Step, restored};
use crate::{
    evidence::{Bundle, DatabaseCapture},
    exit::{failed, refused},
    fsutil, git,
    journal::Journal,
    manifest::{Kind, Manifest},
    migrations::{Graph, revision_files},
    profile::Tree,
    python::Python,
    services, sqlite,
    sys::Rename,
};

pub struct Ctx<'a> {
    pub sh: &'a Shell,
    pub tree: &'a Tree,
    pub backup: PathBuf,
    pub manifest: Manifest,
    pub python_choice: Option<PathBuf>,
    pub grace: Duration,
    pub bundle_dir: PathBuf,
    pub bundle: Option<Bundle>,
    pub scenario: String,
    /// This run's id: a bundle folder is this run's only if it says so.
    pub run: String,
    /// The backup passed verify-backup (its integrity_check included), so a
    /// restored file with the same sha256 needs no second integrity check.
    pub backup_verified: bool,
    python: Option<Python>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        sh: &'a Shell,
        tree: &'a Tree,
        backup: PathBuf,
        manifest: Manifest,
        options: &super::Options,
        bundle_dir: PathBuf,
        journal: &Journal<Step>,
    ) -> Ctx<'a> {
        Ctx {
            sh,
            tree,
            backup,
            manifest,
            python_choice: options.python.clone(),
            grace: options.grace,
            bundle_dir,
            bundle: None,
            scenario: journal.scenario.clone(),
            run: journal.run.clone(),
            backup_verified: false,
            python: None,
        }
    }

    fn python(&mut self) -> Result<Python> {
        if self.python.is_none() {
            self.python =
                Some(Python::find(self.sh, Some(&self.tree.root), self.python_choice.as_deref())?);
        }
        Ok(self.python.clone().expect("set above"))
    }

    /// The bundle of this run: created by the preserve step, reopened on
    /// resume, and never another run's folder.
    fn bundle(&mut self) -> Result<&mut Bundle> {
        if self.bundle.is_none() {
            if !Bundle::belongs_to(self.tree, &self.bundle_dir, &self.run) {
                bail!(
                    "{} is not this run's forensics bundle: it is never written into",
                    self.rel(&self.bundle_dir)
                );
            }
            let reopened = Bundle::reopen(self.tree, &self.manifest.label, &self.bundle_dir)
                .context("reopen this run's forensics bundle")?;
            self.bundle = Some(reopened);
        }
        Ok(self.bundle.as_mut().expect("set above"))
    }

    fn note(&mut self, line: String) {
        if let Ok(bundle) = self.bundle() {
            bundle.facts.steps.push(line);
        }
    }

    /// Runs one step; returns what it did, for the report.
    pub fn run(&mut self, step: &Step) -> Result<String> {
        let done = match step {
            Step::StopServices => self.stop_services()?,
            Step::Preserve { database } => self.preserve(*database)?,
            Step::RestoreDatabase => self.restore_database()?,
            Step::CheckAlembic => self.check_alembic()?,
            Step::Downgrade { target } => self.downgrade(target)?,
            Step::RestoreConfig => self.restore_kind(Kind::Config, None)?,
            Step::RestoreMigrations => self.restore_migrations()?,
            Step::RestoreFiles { paths } => self.restore_kind(Kind::Critical, Some(paths))?,
            Step::GitBranch { branch, commit, .. } => self.git_branch(branch, commit)?,
            Step::GitSoftReset { commit } => self.git_reset(commit, None)?,
            Step::GitHardReset { commit, keep_ref } => self.git_reset(commit, Some(keep_ref))?,
            Step::GitRestorePaths { from, paths } => self.git_restore_paths(from, paths)?,
        };
        if !matches!(step, Step::Preserve { .. }) {
            self.note(format!("{}: {done}", step.name()));
        }
        if let Some(bundle) = &self.bundle {
            bundle.write_reports()?;
        }
        Ok(done)
    }

    fn stop_services(&mut self) -> Result<String> {
        let found = services::find(self.tree);
        let survivors = services::stop(&found, self.grace);
        if !survivors.is_empty() {
            let pids: Vec<String> = survivors.iter().map(|p| p.pid.to_string()).collect();
            return Err(refused(format!(
                "the service is still running after SIGKILL: pids {}",
                pids.join(", ")
            )));
        }
        let db = self.tree.database();
        let files = vec![db.clone(), with_suffix(&db, "-wal")];
        let holders = services::holders(&files);
        if !holders.is_empty() {
            return Err(refused(format!(
                "{} is still open in pids {:?}: stop them before rolling back",
                self.tree.profile.database, holders
            )));
        }
        Ok(if found.is_empty() {
            "no service process of this root was running".into()
        } else {
            let pids: Vec<String> = found.iter().map(|p| p.pid.to_string()).collect();
            format!("stopped pids {}", pids.join(", "))
        })
    }

    /// Keeps the failed state in this run's bundle. The database's files are
    /// copied byte for byte first (`Copy`), before alembic or SQLite opens
    /// them; with `Move` they stay in place until the restore has its
    /// replacement staged, and alembic is asked about them later, through a
    /// copy.
    fn preserve(&mut self, database: Option<DatabaseCapture>) -> Result<String> {
        let ours = Bundle::belongs_to(self.tree, &self.bundle_dir, &self.run);
        if ours && self.tree.fs.is_file(&self.bundle_dir.join(".complete")) {
            return Ok(format!("already preserved in {}", self.rel(&self.bundle_dir)));
        }
        let mut bundle = if ours {
            Bundle::reopen(self.tree, &self.manifest.label, &self.bundle_dir)?
        } else {
            Bundle::create(self.tree, &self.manifest.label, &self.bundle_dir, &self.run)?
        };
        // A name collision makes `create` pick a sibling: follow it.
        self.bundle_dir = bundle.dir.clone();
        bundle.facts.scenario = Some(self.scenario.clone());
        bundle.write_reports()?;
        let copy = database == Some(DatabaseCapture::Copy);
        let db_in_place = self.tree.fs.kind(&self.tree.database())?.is_some();
        if copy && db_in_place && bundle.facts.database_files.is_empty() {
            bundle.capture_database(DatabaseCapture::Copy)?;
        }
        // alembic reads the tree's database only once its bytes are kept.
        let alembic = if copy && db_in_place {
            Some(bundle.start_alembic(&self.python()?, self.tree, None))
        } else {
            None
        };
        bundle.preserve_files(self.sh, self.tree, Some((&self.backup, &self.manifest)))?;
        bundle.capture_log(self.tree);
        if let Some(runs) = alembic {
            bundle.finish_alembic(runs);
        }
        bundle
            .facts
            .steps
            .push(format!("preserve: the failed state is in {}", self.rel(&bundle.dir)));
        bundle.write_reports()?;
        fsutil::write_atomic(&self.tree.fs, &bundle.dir.join(".complete"), b"")?;
        let summary = format!("preserved in {}", self.rel(&bundle.dir));
        self.bundle = Some(bundle);
        Ok(summary)
    }

    /// Ends the run's evidence: the moved database's analysis, alembic's
    /// answer about it (from a consolidated copy, read-only), the hashes,
    /// the completion time.
    pub fn seal_bundle(&mut self) -> Result<()> {
        if self.bundle.is_none() && !Bundle::belongs_to(self.tree, &self.bundle_dir, &self.run) {
            return Ok(());
        }
        let python = self.python().ok();
        let tree = self.tree;
        let bundle = self.bundle()?;
        let consolidated = bundle.finish_analysis();
        let asked = tree.fs.is_file(&bundle.dir.join("alembic-current.txt"));
        match (asked, consolidated, python) {
            (true, _, _) => {}
            (false, Some(copy), Some(python)) if !tree.profile.database_url_env.is_empty() => {
                let runs = bundle.start_alembic(&python, tree, Some(&copy));
                bundle.finish_alembic(runs);
            }
            _ => bundle.facts.problems.push(
                "alembic's view of the failed database was not captured (no consolidated copy, no Python, or no database_url_env in the profile)".into(),
            ),
        }
        bundle.facts.completed = Some(crate::clock::now_rfc3339());
        bundle.seal()
    }

    /// Restores the database without ever leaving the tree with none: the
    /// backup's copy is staged beside the live file, fsynced, hash-checked,
    /// integrity-checked as the staged copy when the backup was not verified
    /// in this run, and given its mode. Only then do the failed files move,
    /// byte for byte, into the bundle, and the staged copy takes their place.
    fn restore_database(&mut self) -> Result<String> {
        let entry = self.manifest.database().context("the backup has no database")?.clone();
        let db = self.tree.database();
        let fs = &self.tree.fs;
        let sidecars: Vec<PathBuf> =
            ["-wal", "-shm", "-journal"].iter().map(|s| with_suffix(&db, s)).collect();
        let mut leftover = false;
        for path in std::iter::once(&db).chain(&sidecars) {
            leftover |= fs.expect_file_or_nothing(path)? && path != &db;
        }
        let in_place = fs.expect_file_or_nothing(&db)?
            && (restored::is_restore_of(self.tree, &db, &entry.sha256)
                || fsutil::sha256_file(&db)?.0 == entry.sha256);
        if in_place && !leftover {
            if !self.backup_verified && !restored::is_restore_of(self.tree, &db, &entry.sha256) {
                self.integrity_of(&db, "the database in place")?;
            }
            // An interrupted run may have renamed the backup into place and
            // stopped before it switched the journal mode.
            let mode = self.recorded_journal_mode(&db, &entry.sha256)?;
            return Ok(format!("already restored from the backup{mode}"));
        }
        if let Some(parent) = db.parent() {
            fs.create_dir_all(parent)?;
        }
        let source = self.backup_file(&entry.backup_path)?;
        // The failed files are hashed where they lie while the copy is staged.
        self.bundle()?;
        self.bundle.as_mut().expect("opened above").hash_ahead();
        let staged = fsutil::stage_copy(fs, &source, &db, Some(&entry.sha256), entry.mode)
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
        super::fault_hook("inside", "restore-staged");
        // Now the failed files go, byte for byte, and nothing opened them.
        self.bundle()?;
        let bundle = self.bundle.as_mut().expect("opened above");
        bundle.capture_database(DatabaseCapture::Move)?;
        super::fault_hook("inside", "restore-moved");
        staged.commit().context("rename the restored database into place")?;
        super::fault_hook("inside", "restore-committed");
        let mode = self.recorded_journal_mode(&db, &entry.sha256)?;
        Ok(format!(
            "restored {} ({} bytes); {checked}; the failed files are in {}/database{mode}",
            self.tree.profile.database,
            entry.size,
            self.rel(&self.bundle_dir)
        ))
    }

    fn integrity_of(&self, path: &Path, what: &str) -> Result<()> {
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
    fn check_alembic(&mut self) -> Result<String> {
        let db = self.tree.database();
        let stored = sqlite::alembic_revisions(&sqlite::open_live_read_only(&db)?)?;
        let python = self.python()?;
        let out = python.alembic(self.sh, self.tree, &["current"])?;
        let said: Vec<String> = if out.success() {
            let mut said: Vec<String> = out
                .stdout
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(String::from)
                .collect();
            said.sort();
            said
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
                "alembic current says {:?} but {} holds {:?}: alembic would act on another database (check {} in migrations/env.py and the environment); nothing was changed",
                said,
                self.tree.profile.database,
                stored,
                if self.tree.profile.database_url_env.is_empty() {
                    "database_url_env in the profile"
                } else {
                    &self.tree.profile.database_url_env
                }
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
    fn recorded_journal_mode(&self, db: &Path, backup_sha256: &str) -> Result<&'static str> {
        if self.manifest.journal_mode != "wal" {
            return Ok("");
        }
        sqlite::switch_to_wal(db).context("put the restored database back in WAL mode")?;
        restored::record(self.tree, db, backup_sha256)?;
        Ok(", back in WAL mode as when it was backed up")
    }

    fn downgrade(&mut self, target: &str) -> Result<String> {
        let db = self.tree.database();
        let current = || -> Result<Vec<String>> {
            sqlite::alembic_revisions(&sqlite::open_live_read_only(&db)?)
        };
        let want: Vec<String> =
            if target == "base" { Vec::new() } else { vec![target.to_string()] };
        if current()? == want {
            return Ok(format!("already at {target}"));
        }
        let python = self.python()?;
        let mut notes = Vec::new();
        if let Some(stamped) = self.repair_half_applied(&python, &current()?)? {
            notes.push(stamped);
        }
        let out = python.alembic(self.sh, self.tree, &["downgrade", target])?;
        let now = current().unwrap_or_default();
        if !out.success() {
            let tables = sqlite::open_live_read_only(&db)
                .and_then(|c| sqlite::table_names(&c))
                .unwrap_or_default();
            return Err(failed(format!(
                "alembic downgrade {target} failed ({}) half-way: the database is now at revision {} with tables {}.\n{}\nThe failed database is preserved in {}. Next steps: close this run with `cargo xtask rollback --scenario migration --abandon --root {root}`, then restore the database from the backup with `cargo xtask rollback --scenario database --yes --root {root}`",
                out.describe_status(),
                if now.is_empty() { "none".into() } else { now.join(" ") },
                tables.join(", "),
                out.tail(8),
                self.rel(&self.bundle_dir),
                root = self.tree.root.display()
            )));
        }
        let shown = python.alembic(self.sh, self.tree, &["current"])?;
        let alembic_says = shown.stdout.split_whitespace().next().unwrap_or("").to_string();
        if now != want || (target != "base" && alembic_says != target) {
            return Err(failed(format!(
                "after the downgrade alembic_version holds {:?} and alembic current says {alembic_says:?}, expected {target}",
                now
            )));
        }
        let expected: BTreeSet<String> =
            self.manifest.tables.iter().map(|t| t.name.clone()).collect();
        let tables: BTreeSet<String> =
            sqlite::table_names(&sqlite::open_live_read_only(&db)?)?.into_iter().collect();
        if target == self.manifest.revision().unwrap_or_default() && tables != expected {
            let extra: Vec<&String> = tables.difference(&expected).collect();
            let missing: Vec<&String> = expected.difference(&tables).collect();
            return Err(failed(format!(
                "the database is at {target} but its tables differ from the backup's (extra {extra:?}, missing {missing:?}). Next steps: `cargo xtask rollback --scenario migration --abandon --root {root}`, then `cargo xtask rollback --scenario database --yes --root {root}`",
                root = self.tree.root.display()
            )));
        }
        notes
            .push(format!("alembic downgrade {target}: alembic current and alembic_version agree"));
        Ok(notes.join("; "))
    }

    /// A migration that failed half-way (SQLite DDL is not transactional)
    /// leaves its tables without bumping `alembic_version`. When a child of the
    /// current revision has created any of its tables, it is stamped so that
    /// the downgrade runs its `downgrade()` and removes them.
    fn repair_half_applied(
        &mut self,
        python: &Python,
        current: &[String],
    ) -> Result<Option<String>> {
        let [revision] = current else { return Ok(None) };
        let graph = Graph::load(&self.tree.migrations())?;
        let db = self.tree.database();
        let tables: BTreeSet<String> =
            sqlite::table_names(&sqlite::open_live_read_only(&db)?)?.into_iter().collect();
        for child in graph.children(revision) {
            let created = tables_created_by(self.sh, python, self.tree, revision, &child)?;
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

    /// Restores the config or critical files whose hash differs.
    fn restore_kind(&mut self, kind: Kind, only: Option<&Vec<String>>) -> Result<String> {
        let entries: Vec<_> = self
            .manifest
            .files_of(kind)
            .filter(|f| only.is_none_or(|paths| paths.contains(&f.source_path)))
            .cloned()
            .collect();
        let fs = &self.tree.fs;
        let mut restored = Vec::new();
        for entry in &entries {
            fsutil::check_relative(&entry.source_path)?;
            let target = self.tree.path(&entry.source_path);
            if fs.expect_file_or_nothing(&target)?
                && fsutil::sha256_file(&target)?.0 == entry.sha256
            {
                continue;
            }
            if let Some(parent) = target.parent() {
                fs.create_dir_all(parent)?;
            }
            let source = self.backup_file(&entry.backup_path)?;
            fsutil::copy_staged(fs, &source, &target, Some(&entry.sha256), entry.mode)
                .with_context(|| format!("restore {}", entry.source_path))?;
            restored.push(entry.source_path.clone());
        }
        // Files that did not exist at backup time go into the bundle: the
        // tree then holds what it held when the backup was taken.
        let absent: Vec<String> = self
            .manifest
            .absent_of(kind)
            .filter(|p| only.is_none_or(|paths| paths.iter().any(|q| q == p)))
            .map(String::from)
            .collect();
        let mut removed = Vec::new();
        for path in absent {
            let target = self.tree.path(&path);
            if self.tree.fs.expect_file_or_nothing(&target)? {
                self.bundle()?;
                let dest = fsutil::free_name(&self.bundle_dir.join("added-since").join(&path));
                if let Some(parent) = dest.parent() {
                    self.tree.fs.create_dir_all(parent)?;
                }
                self.tree.fs.rename(&target, &dest, Rename::NoReplace)?;
                removed.push(path);
            }
        }
        let mut done = Vec::new();
        if !restored.is_empty() {
            done.push(format!("restored {}", restored.join(", ")));
        }
        if !removed.is_empty() {
            done.push(format!(
                "moved into the bundle (absent at backup time): {}",
                removed.join(", ")
            ));
        }
        Ok(if done.is_empty() {
            format!("all {} {} files already equal the backup", entries.len(), kind.name())
        } else {
            done.join("; ")
        })
    }

    /// Swaps the migrations folder: the backup's revisions are staged in a
    /// sibling folder, the two folders are exchanged in one atomic rename,
    /// and the replaced one moves into the bundle. At no instant is there no
    /// migrations folder, and it is never emptied in place.
    fn restore_migrations(&mut self) -> Result<String> {
        let dir = self.tree.migrations();
        let fs = self.tree.fs.clone();
        let entries: Vec<_> = self.manifest.files_of(Kind::Migration).cloned().collect();
        let staged = fsutil::staging_path(&dir);
        let dir_exists = fs.expect_dir_or_nothing(&dir)?;
        if dir_exists && self.migrations_match(&dir, &entries)? {
            // A crash right after the exchange leaves the replaced folder at
            // the staging name: it is evidence, kept in the bundle.
            if fs.expect_dir_or_nothing(&staged)? {
                self.keep_replaced(&staged)?;
            }
            return Ok("migrations already equal the backup".into());
        }
        if fs.expect_dir_or_nothing(&staged)? {
            // An earlier staging folder is never deleted: it may be what a
            // crash left after the exchange.
            self.keep_replaced(&staged)?;
        }
        fs.create_dir_all(&staged)?;
        for entry in &entries {
            let name =
                Path::new(&entry.source_path).file_name().context("a revision file has a name")?;
            let source = self.backup_file(&entry.backup_path)?;
            let output = fs.create_new(&staged.join(name), entry.mode)?;
            let (sha, _) = fsutil::copy_hashed(&source, &output)?;
            anyhow::ensure!(
                sha == entry.sha256,
                "{} does not match the manifest",
                entry.backup_path
            );
        }
        // Files of the folder that are not revisions (an __init__.py, a README)
        // are the project's own: they stay.
        if dir_exists {
            for item in fs::read_dir(&dir)?.flatten() {
                let name = item.file_name().to_string_lossy().into_owned();
                let revision = name.ends_with(".py") && !name.starts_with("__");
                if item.file_type()?.is_file() && !revision {
                    fsutil::copy_new(&fs, &item.path(), &fs, &staged.join(&name))?;
                }
            }
            fs.rename(&staged, &dir, Rename::Exchange)
                .context("exchange the restored migrations with the current ones")?;
            super::fault_hook("inside", "migrations-exchanged");
            self.keep_replaced(&staged)?;
        } else {
            fs.rename(&staged, &dir, Rename::NoReplace)
                .context("move the restored migrations into place")?;
        }
        Ok(format!("swapped in {} revision files", entries.len()))
    }

    /// Moves a replaced migrations folder into this run's bundle.
    fn keep_replaced(&mut self, folder: &Path) -> Result<()> {
        self.bundle()?;
        let replaced = fsutil::free_name(&self.bundle_dir.join("migrations-replaced"));
        self.tree.fs.rename(folder, &replaced, Rename::NoReplace)
    }

    fn migrations_match(&self, dir: &Path, entries: &[crate::manifest::FileEntry]) -> Result<bool> {
        let present = revision_files(dir)?;
        if present.len() != entries.len() {
            return Ok(false);
        }
        for entry in entries {
            let path = self.tree.path(&entry.source_path);
            if !path.is_file() || fsutil::sha256_file(&path)?.0 != entry.sha256 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn git_branch(&mut self, branch: &str, commit: &str) -> Result<String> {
        let repo = git::open(&self.tree.root)?.context("the root is no longer a git repository")?;
        let target = git2::Oid::from_str(commit)?;
        let (head, current) = git::head(&repo);
        if current.as_deref() == Some(branch)
            && head.as_deref() == Some(commit)
            && git::modified_tracked(&repo)?.is_empty()
        {
            return Ok(format!("already on {branch}"));
        }
        // A complete rollback kept every local change in the bundle first
        // and restores the tree whole; a git rollback leaves them alone.
        let overwrite = self.scenario == "complete";
        git::checkout_new_branch(&repo, branch, target, overwrite)?;
        Ok(format!("checked out {branch} at {}{}", &commit[..12], self.push_hint(&repo, branch)))
    }

    fn git_reset(&mut self, commit: &str, keep_ref: Option<&String>) -> Result<String> {
        let repo = git::open(&self.tree.root)?.context("the root is no longer a git repository")?;
        let target = git2::Oid::from_str(commit)?;
        let (head, branch) = git::head(&repo);
        if head.as_deref() == Some(commit)
            && (keep_ref.is_none() || git::modified_tracked(&repo)?.is_empty())
        {
            return Ok(format!("HEAD is already {}", &commit[..12]));
        }
        if let (Some(name), Some(head)) = (keep_ref, &head) {
            git::keep_ref(&repo, name, git2::Oid::from_str(head)?)?;
        }
        git::reset(&repo, target, keep_ref.is_some())?;
        let kept = keep_ref.map(|r| format!("; the old HEAD is kept as {r}")).unwrap_or_default();
        let hint = branch.map(|b| self.push_hint(&repo, &b)).unwrap_or_default();
        Ok(format!("reset to {}{kept}{hint}", &commit[..12]))
    }

    fn git_restore_paths(&mut self, from: &str, paths: &[String]) -> Result<String> {
        let repo = git::open(&self.tree.root)?.context("the root is no longer a git repository")?;
        git::restore_paths(&repo, git2::Oid::from_str(from)?, paths)?;
        Ok(format!("restored {} from {}", paths.join(" "), &from[..12]))
    }

    /// Never pushes; says what a person would run when the branch is published.
    fn push_hint(&self, repo: &git2::Repository, branch: &str) -> String {
        match git::upstream_remote(repo, branch) {
            Some(remote) => format!(
                "; this tool never pushes: if {branch} was deployed from {remote}, a person runs `git push --force-with-lease {remote} {branch}`"
            ),
            None => String::new(),
        }
    }

    /// A file of the backup, opened by its manifest path through the
    /// file-access layer: never a link out of the root, never a FIFO.
    /// Verify checks these paths too, but `--skip-verify` skips that.
    fn backup_file(&self, backup_path: &str) -> Result<std::fs::File> {
        fsutil::check_relative(backup_path)?;
        self.tree.fs.open_read(&self.backup.join(backup_path))
    }

    fn rel(&self, path: &Path) -> String {
        super::plan::rel(&self.tree.root, path)
    }
}

/// `tmws.db` + `-wal` → `tmws.db-wal`.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{name}{suffix}"))
}

/// The tables a revision creates, from Alembic's offline SQL for that step.
pub fn tables_created_by(
    sh: &Shell,
    python: &Python,
    tree: &Tree,
    from: &str,
    to: &str,
) -> Result<Vec<String>> {
    let range = format!("{from}:{to}");
    let out = python.alembic(sh, tree, &["upgrade", &range, "--sql"])?;
    if !out.success() {
        bail!(
            "alembic upgrade {range} --sql failed ({}), so the tables it creates are unknown:\n{}",
            out.describe_status(),
            out.tail(5)
        );
    }
    Ok(out
        .stdout
        .lines()
        .filter_map(|line| line.trim().strip_prefix("CREATE TABLE "))
        .filter_map(|rest| rest.split([' ', '(']).next())
        .map(|name| name.trim_matches(['"', '`', '[', ']']).to_string())
        .collect())
}
