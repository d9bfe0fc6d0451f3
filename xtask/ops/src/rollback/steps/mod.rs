//! Executing the steps of a plan. Each step first checks whether its effect
//! already holds (a resumed run), and checks its own result afterwards.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use xshell::Shell;

mod database;
mod external;
mod file_steps;
mod git_steps;
mod migration;

use super::plan::Step;
use crate::evidence::{Bundle, DatabaseCapture};
use xtask_adapters::python::{Python, Session};
use xtask_adapters::services;
use xtask_base::exit::refused;
use xtask_fs::files;
use xtask_model::journal::Journal;
use xtask_model::manifest::{Kind, Manifest};
use xtask_model::profile::Tree;
use xtask_model::scenario::Scenario;

pub struct Ctx<'a> {
    pub sh: &'a Shell,
    pub tree: &'a Tree,
    pub backup: PathBuf,
    pub manifest: Manifest,
    pub python_choice: Option<PathBuf>,
    pub grace: Duration,
    pub bundle_dir: PathBuf,
    pub bundle: Option<Bundle>,
    pub scenario: Scenario,
    /// This run's id: a bundle folder is this run's only if it says so.
    pub run: String,
    /// The backup passed verify-backup (its integrity_check included), so a
    /// restored file with the same sha256 needs no second integrity check.
    pub backup_verified: bool,
    /// A step changed the tree (or stopped its service): without one, the
    /// run keeps no bundle, which would only repeat the backup.
    pub changed: bool,
    python: Option<Python>,
    /// The Python helper of a plan that runs alembic, started before step
    /// 1 (its probe is the plan's last check) and confined to the copy's
    /// folder.
    pub session: Option<Session>,
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
            scenario: journal.scenario,
            run: journal.run.clone(),
            backup_verified: false,
            // The steps done before an interruption may have changed it.
            changed: journal.done.iter().any(|done| *done),
            python: None,
            session: None,
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
            Step::MigrateCopy { target, up, folder } => self.migrate_copy(target, *up, folder)?,
            Step::SwapMigrated { folder, target } => self.swap_migrated(folder, target)?,
            Step::RestoreConfig => self.restore_kind(Kind::Config, None)?,
            Step::RestoreMigrations => self.restore_migrations()?,
            Step::RestoreFiles { paths, .. } => self.restore_kind(Kind::Critical, Some(paths))?,
            Step::GitBranch { branch, tag, commit, recreate_tag } => {
                let recreated = match recreate_tag {
                    true => self.recreate_tag(tag, commit)?,
                    false => String::new(),
                };
                format!("{recreated}{}", self.git_branch(branch, commit)?)
            }
            Step::GitSoftReset { commit } => self.git_reset(commit, None)?,
            Step::GitHardReset { commit, keep_ref } => self.git_reset(commit, Some(keep_ref))?,
            Step::GitRestorePaths { from, paths } => self.git_restore_paths(from, paths)?,
            Step::RestoreExternal { paths } => self.restore_external(paths)?,
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
        let files: Vec<PathBuf> =
            xtask_model::database::files(&db).into_iter().map(|(_, p)| p).collect();
        let holders = services::holders(&files);
        if !holders.is_empty() {
            return Err(refused(format!(
                "{} is still open in pids {:?}: stop them before rolling back",
                self.tree.profile.database, holders
            )));
        }
        self.changed |= !found.is_empty();
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
        bundle.facts.scenario = Some(self.scenario.name().to_string());
        bundle.write_reports()?;
        let copy = database == Some(DatabaseCapture::Copy);
        let db_in_place = self.tree.fs.kind(&self.tree.database())?.is_some();
        if copy && db_in_place && bundle.facts.database_files.is_empty() {
            bundle.capture_database(DatabaseCapture::Copy)?;
        }
        // alembic reads the kept copy, never the tree's database.
        let alembic = match (copy, bundle.consolidated()) {
            (true, Some(kept)) => Some(bundle.start_alembic(&self.python()?, self.tree, &kept)),
            _ => None,
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
        files::write_atomic(&self.tree.fs, &bundle.dir.join(".complete"), b"")?;
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
        // alembic's view is in the bundle when the run asked alembic anyway
        // (a migration rollback); a database or complete rollback starts no
        // Python at all: the preserved database's revision is read through
        // SQLite, and `forensics` asks alembic when a person wants its view.
        let bundle = self.bundle()?;
        bundle.finish_analysis();
        bundle.facts.completed = Some(xtask_base::clock::now_rfc3339());
        bundle.seal()
    }

    /// A file of the backup, opened by its manifest path through the
    /// file-access layer: never a link out of the root, never a FIFO.
    /// Verify checks these paths too, but `--skip-verify` skips that.
    fn backup_file(&self, backup_path: &str) -> Result<std::fs::File> {
        files::check_relative(backup_path)?;
        self.tree.fs.open_read(&self.backup.join(backup_path))
    }

    fn rel(&self, path: &Path) -> String {
        super::plan::rel(&self.tree.root, path)
    }
}
