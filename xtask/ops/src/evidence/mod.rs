//! The forensics bundle: the failed state, preserved whole before anything
//! is overwritten, with hashes, diffs against the backup and a report.
//!
//! A bundle folder is created once and never reused (`create_dir`, not
//! `create_dir_all`), and only its owner can read it: it holds a database.
use std::{
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use xshell::{Shell, cmd};

use xtask_adapters::git;
use xtask_base::clock;
use xtask_fs::files;
use xtask_model::label::Label;
use xtask_model::manifest::{Kind, Manifest};
use xtask_model::migrations;
use xtask_model::profile::Tree;

mod alembic;
mod database;
mod markdown;

pub use alembic::AlembicRuns;
pub use database::ANALYZE_LIMIT;
use database::{Ahead, Analysis};

/// How the failed database is preserved. Either way its files (with the
/// `-wal` and `-shm`) are kept byte for byte as they were on disk, before any
/// program opens them; what is learnt by opening the database comes after,
/// from a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatabaseCapture {
    /// The database is replaced next: its files are moved into the bundle by
    /// the restore, once the replacement is staged beside them.
    Move,
    /// The database stays in use (a downgrade, a look at a live tree): its
    /// files are copied into the bundle as they are.
    Copy,
}

/// A file the bundle keeps, with its hash.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct EvidenceFile {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// Everything the bundle records; `failure.json` is this, and
/// `FAILURE_REPORT.md` says the same for a person.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Facts {
    /// The version of the documents when the bundle was written.
    pub schema: u32,
    /// The backup it is compared with.
    pub label: String,
    pub root: String,
    /// The rollback's row, when a rollback made the bundle.
    pub scenario: Option<String>,
    pub initiated: String,
    pub completed: Option<String>,
    pub git_commit: Option<String>,
    pub git_branch: Option<String>,
    pub database_revision: Vec<String>,
    pub integrity: Vec<String>,
    pub database_files: Vec<EvidenceFile>,
    /// A consolidated copy of the failed database, made after its files
    /// were kept as they were.
    pub database_copy: Option<EvidenceFile>,
    /// The SQL dump of that copy, in the bundle.
    pub dump: Option<String>,
    pub migrations: Vec<EvidenceFile>,
    pub files: Vec<EvidenceFile>,
    pub diffs: Vec<String>,
    pub worktree_changes: Vec<String>,
    pub log: String,
    pub symptoms: Vec<String>,
    /// What the rollback did, a line a step.
    pub steps: Vec<String>,
    /// What could not be kept or learnt, and why.
    pub problems: Vec<String>,
}

pub struct Bundle {
    pub dir: PathBuf,
    pub facts: Facts,
    tree: Tree,
    /// The database's files hashed in place while the restore stages its copy.
    ahead: Option<std::thread::JoinHandle<Vec<Ahead>>>,
    /// The moved database's hashes and its consolidated copy, being made in
    /// the background while the restore goes on.
    analysis: Option<std::thread::JoinHandle<Analysis>>,
}

/// The folder a new bundle would get: by time and by process, so two runs
/// in the same second get two folders; `create` makes it exclusively.
pub fn new_bundle_path(tree: &Tree, label: &Label) -> PathBuf {
    tree.forensics_dir().join(format!(
        "{label}-failure-{}-{}",
        clock::now_compact(),
        std::process::id()
    ))
}

/// The file that names the run a bundle belongs to.
/// The file that marks a bundle folder with the run that made it.
pub const RUN_FILE: &str = ".run";

impl Bundle {
    /// Creates the bundle folder at `dir` for run `run`, or a numbered
    /// sibling if that name is taken: an earlier bundle is never written into.
    pub fn create(tree: &Tree, label: &Label, dir: &Path, run: &str) -> Result<Bundle> {
        tree.fs.create_dir_all(&tree.forensics_dir())?;
        let mut candidate = dir.to_path_buf();
        let mut n = 1;
        loop {
            match tree.fs.create_dir(&candidate, 0o700) {
                Ok(()) => break,
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    n += 1;
                    candidate = PathBuf::from(format!("{}-{n}", dir.display()));
                }
                Err(err) => {
                    return Err(err).with_context(|| format!("create {}", candidate.display()));
                }
            }
        }
        files::write_atomic(&tree.fs, &candidate.join(RUN_FILE), run.as_bytes())?;
        Ok(Bundle::describe(tree, label, candidate))
    }

    /// Whether `dir` is the bundle of run `run` (and not another run's).
    pub fn belongs_to(tree: &Tree, dir: &Path, run: &str) -> bool {
        let mut text = String::new();
        tree.fs
            .open_read(&dir.join(RUN_FILE))
            .is_ok_and(|mut f| f.read_to_string(&mut text).is_ok())
            && text == run
    }

    fn describe(tree: &Tree, label: &Label, dir: PathBuf) -> Bundle {
        let repo = git::open(&tree.root).ok().flatten();
        let (git_commit, git_branch) = repo.as_ref().map(git::head).unwrap_or((None, None));
        let facts = Facts {
            schema: xtask_model::check::SCHEMA,
            label: label.to_string(),
            root: tree.root.display().to_string(),
            initiated: clock::now_rfc3339(),
            git_commit,
            git_branch,
            ..Facts::default()
        };
        Bundle { dir, facts, tree: tree.clone(), ahead: None, analysis: None }
    }

    /// Reopens a bundle of an interrupted run (its facts from failure.json),
    /// or takes over the run's own folder before anything was written in it.
    pub fn reopen(tree: &Tree, label: &Label, dir: &Path) -> Result<Bundle> {
        let mut text = String::new();
        match tree.fs.open_read(&dir.join("failure.json")) {
            Ok(mut file) => {
                file.read_to_string(&mut text)?;
                let facts = serde_json::from_str(&text)
                    .with_context(|| format!("read {}", dir.join("failure.json").display()))?;
                Ok(Bundle {
                    dir: dir.to_path_buf(),
                    facts,
                    tree: tree.clone(),
                    ahead: None,
                    analysis: None,
                })
            }
            Err(_) => Ok(Bundle::describe(tree, label, dir.to_path_buf())),
        }
    }

    /// Copies the migrations folder, the config and critical files, diffs them
    /// against the backup, and keeps tracked files that differ from HEAD.
    pub fn preserve_files(
        &mut self,
        sh: &Shell,
        tree: &Tree,
        backup: Option<(&Path, &Manifest)>,
    ) -> Result<()> {
        for migrations_dir in tree.migration_folders() {
            if !tree.fs.is_dir(&migrations_dir) {
                continue;
            }
            for file in migrations::revision_files(&tree.fs, &migrations_dir)? {
                let source = file.strip_prefix(&tree.root).unwrap_or(&file).to_string_lossy();
                let dest =
                    self.dir.join("migrations").join(tree.profile.migrations.kept_as(&source));
                if let Some(kept) = self.copy_in(&file, &dest) {
                    self.facts.migrations.push(kept);
                }
            }
        }
        let profile = &tree.profile;
        for source in profile.config_files.iter().chain(&profile.critical_files) {
            let path = tree.path(source);
            if tree.fs.kind(&path).ok().flatten().is_none() {
                self.facts.problems.push(format!("{source} was missing"));
            } else if let Some(file) = self.copy_in(&path, &self.dir.join("files").join(source)) {
                self.facts.files.push(file);
            }
        }
        for source in &profile.external_files {
            self.keep_external(source);
        }
        if let Some((backup_dir, manifest)) = backup {
            self.diff_against_backup(sh, tree, backup_dir, manifest);
        }
        if let Some(repo) = git::open(&tree.root)? {
            for path in git::modified_tracked(&repo)? {
                let source = tree.root.join(&path);
                if tree.fs.kind(&source).ok().flatten().is_some() {
                    self.copy_in(&source, &self.dir.join("worktree").join(&path));
                }
                self.facts.worktree_changes.push(path);
            }
        }
        Ok(())
    }

    fn diff_against_backup(
        &mut self,
        sh: &Shell,
        tree: &Tree,
        backup_dir: &Path,
        manifest: &Manifest,
    ) {
        let kinds = [Kind::Config, Kind::Critical, Kind::Migration];
        for entry in manifest.files.iter().filter(|f| kinds.contains(&f.kind)) {
            let old = backup_dir.join(&entry.backup_path);
            // Most files are unchanged: the hash taken when the file was
            // copied into the bundle says so without running diff.
            let copied = match entry.kind {
                Kind::Migration => {
                    format!("migrations/{}", tree.profile.migrations.kept_as(&entry.source_path))
                }
                _ => format!("files/{}", entry.source_path),
            };
            let kept =
                self.facts.migrations.iter().chain(&self.facts.files).find(|f| f.path == copied);
            if kept.is_some_and(|f| f.sha256 == entry.sha256) {
                continue;
            }
            // The bundle's copy is diffed, not the tree's file: what diff
            // reads has passed the file-access layer already.
            let new_arg = match kept {
                Some(_) => self.dir.join(&copied),
                None => PathBuf::from("/dev/null"),
            };
            let (old_label, new_label) =
                (format!("backup/{}", entry.source_path), format!("tree/{}", entry.source_path));
            let out = cmd!(sh, "diff -u --label {old_label} --label {new_label} {old} {new_arg}")
                .quiet()
                .ignore_status()
                .output();
            match out {
                Ok(out) if out.status.code() == Some(1) => {
                    let dest = self.dir.join("diffs").join(format!("{}.diff", entry.source_path));
                    let written = dest
                        .parent()
                        .map_or(Ok(()), |p| self.tree.fs.create_dir_all(p))
                        .and_then(|()| files::write_atomic(&self.tree.fs, &dest, &out.stdout));
                    match written {
                        Ok(()) => self.facts.diffs.push(rel(&self.dir, &dest)),
                        Err(err) => self
                            .facts
                            .problems
                            .push(format!("diff of {}: {err}", entry.source_path)),
                    }
                }
                Ok(out) if out.status.success() => {}
                Ok(out) => self.facts.problems.push(format!(
                    "diff of {} failed: {}",
                    entry.source_path,
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(err) => self.facts.problems.push(format!("diff could not run: {err}")),
            }
        }
        // Revision files that are in the tree but not in the backup (Phase 4's).
        let known: Vec<&str> =
            manifest.files_of(Kind::Migration).map(|f| f.source_path.as_str()).collect();
        for file in tree.revision_files().unwrap_or_default() {
            let relative = rel(&tree.root, &file);
            if !known.contains(&relative.as_str()) {
                self.facts.diffs.push(format!("{relative}: not in the backup (added since)"));
            }
        }
    }

    /// Keeps the last lines of the service log; a missing log is noted.
    pub fn capture_log(&mut self, tree: &Tree) {
        /// The tail is bounded: a log of gigabytes is not read whole.
        const TAIL_BYTES: u64 = 256 << 10;
        let Some(log_file) = tree.profile.log_file() else {
            self.facts.log = "no service log: the profile sets no log_file".into();
            return;
        };
        let log = tree.path(log_file);
        let read = tree.fs.open_read(&log).and_then(|mut file| {
            let len = file.metadata()?.len();
            file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        });
        match read {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(200)..].join("\n");
                let written = files::write_atomic(
                    &self.tree.fs,
                    &self.dir.join("service.log"),
                    (tail + "\n").as_bytes(),
                );
                if let Err(err) = written {
                    self.facts.problems.push(format!("service.log: {err:#}"));
                }
                self.facts.log =
                    format!("last {} lines of {log_file} in service.log", lines.len().min(200));
            }
            Err(err) => self.facts.log = format!("no service log at {log_file}: {err:#}"),
        }
    }

    /// Copies a file of the tree into the bundle, byte for byte. A file
    /// the layer refuses to read (a link out of the root, a FIFO) is recorded
    /// as a problem, never followed.
    fn copy_in(&mut self, source: &Path, dest: &Path) -> Option<EvidenceFile> {
        match files::copy_new(&self.tree.fs, source, &self.tree.fs, dest) {
            Ok((sha256, size)) => Some(EvidenceFile { path: rel(&self.dir, dest), sha256, size }),
            Err(err) => {
                self.facts
                    .problems
                    .push(format!("{}: not kept: {err:#}", rel(&self.tree.root, source)));
                None
            }
        }
    }

    /// Keeps a file outside the tree in the bundle, at `files/external/`
    /// and its absolute path (a free name beside an earlier copy), read
    /// through its folder's handle (never through a link), with no more
    /// than its own read bits; recorded like the tree's files.
    pub fn keep_external(&mut self, source: &str) -> Option<EvidenceFile> {
        let dest = self.dir.join("files").join(crate::external::backup_path(source));
        let kept = (|| -> Result<Option<EvidenceFile>> {
            let Some((input, mode)) = crate::external::open(source)? else { return Ok(None) };
            let dest = files::free_name(&dest);
            self.tree.fs.create_dir_all(dest.parent().unwrap_or(&self.dir))?;
            let output = self.tree.fs.create_new(&dest, 0o400)?;
            let (sha256, size) = files::copy_hashed(&input, &output)?;
            self.tree.fs.set_mode(&dest, 0o444 & mode)?;
            Ok(Some(EvidenceFile { path: rel(&self.dir, &dest), sha256, size }))
        })();
        match kept {
            Ok(Some(file)) => {
                self.facts.files.push(file.clone());
                Some(file)
            }
            Ok(None) => {
                self.facts.problems.push(format!("{source} was missing"));
                None
            }
            Err(err) => {
                self.facts.problems.push(format!("{source}: not kept: {err:#}"));
                None
            }
        }
    }

    /// Writes `failure.json` and `FAILURE_REPORT.md` (again, as facts grow).
    pub fn write_reports(&self) -> Result<()> {
        let json = serde_json::to_string_pretty(&self.facts)?;
        files::write_atomic(&self.tree.fs, &self.dir.join("failure.json"), json.as_bytes())?;
        files::write_atomic(
            &self.tree.fs,
            &self.dir.join("FAILURE_REPORT.md"),
            self.markdown().as_bytes(),
        )
    }
}

fn rel(base: &Path, path: &Path) -> String {
    path.strip_prefix(base).unwrap_or(path).display().to_string()
}

fn db_name(tree: &Tree) -> String {
    tree.database().file_name().unwrap_or_default().to_string_lossy().into_owned()
}
