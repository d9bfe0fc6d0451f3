//! The forensics bundle: the failed state, preserved whole before anything
//! is overwritten, with hashes, diffs against the backup and a report.
//!
//! A bundle folder is created once and never reused (`create_dir`, not
//! `create_dir_all`), and only its owner can read it: it holds a database.
use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use xshell::{Shell, cmd};

use crate::{
    clock, fsutil, git,
    manifest::{Kind, Manifest},
    migrations,
    profile::Tree,
    python::Python,
    sqlite,
};

mod markdown;

/// How the failed database is preserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatabaseCapture {
    /// The service is stopped and the database is replaced next: the file and
    /// its `-wal`/`-shm` are moved into the bundle together, whole and free.
    Move,
    /// The database stays in use (a downgrade, a look at a live tree): it is
    /// copied through SQLite, and the raw `-wal`/`-shm` beside it.
    Copy,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EvidenceFile {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// Everything the bundle records; `failure.json` is this, and
/// `FAILURE_REPORT.md` says the same for a person.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Facts {
    pub schema: u32,
    pub label: String,
    pub root: String,
    pub scenario: Option<String>,
    pub initiated: String,
    pub completed: Option<String>,
    pub git_commit: Option<String>,
    pub git_branch: Option<String>,
    pub database_revision: Vec<String>,
    pub integrity: Vec<String>,
    pub database_files: Vec<EvidenceFile>,
    pub database_copy: Option<EvidenceFile>,
    pub dump: Option<String>,
    pub migrations: Vec<EvidenceFile>,
    pub files: Vec<EvidenceFile>,
    pub diffs: Vec<String>,
    pub worktree_changes: Vec<String>,
    pub log: String,
    pub symptoms: Vec<String>,
    pub steps: Vec<String>,
    pub problems: Vec<String>,
}

/// `alembic current` and `alembic history`, running.
pub struct AlembicRuns {
    runs: Vec<(&'static str, std::thread::JoinHandle<String>)>,
    /// `alembic current` reads the preserved database, not the tree's.
    preserved: bool,
}

pub struct Bundle {
    pub dir: PathBuf,
    pub facts: Facts,
    /// The evidence's hashes, being taken in the background.
    hashing: Option<std::thread::JoinHandle<Vec<EvidenceFile>>>,
    /// alembic, asked about the preserved database in the background.
    pending_alembic: Option<AlembicRuns>,
}

/// Up to this size a preserved database is also consolidated, checked and
/// dumped during a rollback; above it the raw files alone are kept.
pub const ANALYZE_LIMIT: u64 = 16 << 20;

/// The folder a new bundle would get, unique by time; `create` makes it.
pub fn new_bundle_path(tree: &Tree, label: &str) -> PathBuf {
    tree.forensics_dir().join(format!("{label}-failure-{}", clock::now_compact()))
}

impl Bundle {
    /// Creates the bundle folder at `dir`, or a numbered sibling if that name
    /// is taken: an earlier bundle is never written into.
    pub fn create(tree: &Tree, label: &str, dir: &Path) -> Result<Bundle> {
        fs::create_dir_all(tree.forensics_dir())?;
        let mut candidate = dir.to_path_buf();
        let mut n = 1;
        loop {
            match fs::create_dir(&candidate) {
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
        fs::set_permissions(&candidate, fs::Permissions::from_mode(0o700))?;
        Ok(Bundle::describe(tree, label, candidate))
    }

    /// Takes over this run's own bundle folder, created by an interrupted
    /// run before it wrote anything into it.
    pub fn adopt(tree: &Tree, label: &str, dir: &Path) -> Bundle {
        Bundle::describe(tree, label, dir.to_path_buf())
    }

    fn describe(tree: &Tree, label: &str, dir: PathBuf) -> Bundle {
        let repo = git::open(&tree.root);
        let (git_commit, git_branch) = repo.as_ref().map(git::head).unwrap_or((None, None));
        let facts = Facts {
            schema: crate::report::SCHEMA,
            label: label.into(),
            root: tree.root.display().to_string(),
            initiated: clock::now_rfc3339(),
            git_commit,
            git_branch,
            ..Facts::default()
        };
        Bundle { dir, facts, hashing: None, pending_alembic: None }
    }

    /// Reopens a bundle of an interrupted run (its facts from failure.json).
    pub fn reopen(dir: &Path) -> Result<Bundle> {
        let text = fs::read_to_string(dir.join("failure.json"))
            .with_context(|| format!("read {}", dir.join("failure.json").display()))?;
        Ok(Bundle {
            dir: dir.to_path_buf(),
            facts: serde_json::from_str(&text)?,
            hashing: None,
            pending_alembic: None,
        })
    }

    /// Starts `alembic current` and `alembic history` in the background
    /// (each is mostly Python start-up); `finish_alembic` keeps their output.
    /// Without `preserved`, they read the tree's database, so they must finish
    /// before it is moved. With `preserved` (a moved database in this bundle)
    /// `alembic current` reads that file, read-only, through the URL variable
    /// of the profile, and may run while the tree's database is restored.
    pub fn start_alembic(
        &self,
        python: &Python,
        tree: &Tree,
        preserved: Option<&Path>,
    ) -> AlembicRuns {
        let url_env = &tree.profile.database_url_env;
        let current_env: Vec<(String, String)> = match preserved {
            Some(db) if !url_env.is_empty() => {
                vec![(url_env.clone(), format!("sqlite:///file:{}?mode=ro&uri=true", db.display()))]
            }
            _ => Vec::new(),
        };
        let runs = [
            ("alembic-current.txt", "current", current_env),
            ("alembic-history.txt", "history", Vec::new()),
        ]
        .map(|(name, arg, env)| {
            let (python, tree) = (python.clone(), tree.clone());
            let handle = std::thread::spawn(move || {
                let out = Shell::new()
                    .map_err(anyhow::Error::from)
                    .and_then(|sh| python.alembic_with_env(&sh, &tree, &[arg], &env));
                match out {
                    Ok(out) => format!(
                        "$ alembic {arg}\n({})\n{}{}",
                        out.describe_status(),
                        out.stdout,
                        out.stderr
                    ),
                    Err(err) => format!("alembic {arg} could not run: {err:#}\n"),
                }
            });
            (name, handle)
        });
        AlembicRuns { runs: runs.into(), preserved: preserved.is_some() }
    }

    pub fn finish_alembic(&mut self, runs: AlembicRuns) {
        for (name, handle) in runs.runs {
            let text = handle.join().unwrap_or_else(|_| "alembic could not run\n".into());
            if name == "alembic-current.txt" && runs.preserved {
                // It must have read the preserved database, not the restored one.
                let said: Vec<&str> = text
                    .lines()
                    .skip(2)
                    .filter_map(|l| l.split_whitespace().next())
                    .filter(|w| w.chars().all(|c| c.is_ascii_hexdigit()))
                    .collect();
                let expected: Vec<&str> =
                    self.facts.database_revision.iter().map(String::as_str).collect();
                if said != expected {
                    self.facts.problems.push(format!(
                        "alembic current reported {said:?} for the preserved database at {expected:?}: check that migrations/env.py reads its URL from the profile's database_url_env"
                    ));
                }
            }
            if let Err(err) = fs::write(self.dir.join(name), text) {
                self.facts.problems.push(format!("{name}: {err}"));
            }
        }
    }

    pub fn has_pending_alembic(&self) -> bool {
        self.pending_alembic.is_some()
    }

    /// Keeps running alembic calls for `seal` to finish.
    pub fn defer_alembic(&mut self, runs: AlembicRuns) {
        self.pending_alembic = Some(runs);
    }

    /// Preserves the database with what its WAL holds. A database up to
    /// `ANALYZE_LIMIT` is also copied through SQLite into one consolidated
    /// file, checked and dumped; a larger one that was moved is kept raw and
    /// whole, so the rollback is not held up by gigabytes of SQL. Hashes of
    /// moved files are taken in the background; `seal` waits for them.
    pub fn preserve_database(&mut self, tree: &Tree, how: DatabaseCapture) -> Result<()> {
        let db = tree.database();
        let name = db.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let target = self.dir.join("database");
        fs::create_dir_all(&target)?;
        let sidecars = ["", "-wal", "-shm"]
            .map(|s| (format!("{name}{s}"), db.with_file_name(format!("{name}{s}"))));
        for (file_name, source) in &sidecars {
            if !source.exists() {
                continue;
            }
            let dest = target.join(file_name);
            match how {
                DatabaseCapture::Move => {
                    // A resumed run may find part of the database moved
                    // already: what is in the bundle is never replaced.
                    let dest = fsutil::free_name(&dest);
                    fs::rename(source, &dest)
                        .with_context(|| format!("move {} into the bundle", source.display()))?;
                    fsutil::fsync_parent(source)?;
                }
                // The main file goes through SQLite below; the raw sidecars are
                // copied as extra evidence of what was on disk.
                DatabaseCapture::Copy if file_name == &name => continue,
                DatabaseCapture::Copy => {
                    fs::copy(source, &dest)?;
                }
            }
        }
        let source = if how == DatabaseCapture::Move { target.join(&name) } else { db.clone() };
        let size = fs::metadata(&source).map(|m| m.len()).unwrap_or(0);
        let consolidated = target.join(format!("{name}.consolidated"));
        if !source.exists() {
            self.facts.problems.push(format!("there was no database at {}", tree.profile.database));
        } else if how == DatabaseCapture::Copy || size <= ANALYZE_LIMIT {
            match sqlite::online_backup(&source, &consolidated) {
                Ok(()) => {
                    let _ = fs::File::open(&consolidated).and_then(|f| f.sync_all());
                    self.inspect_database(&consolidated)
                }
                Err(err) => self
                    .facts
                    .problems
                    .push(format!("the database could not be copied through SQLite: {err:#}")),
            }
        } else {
            if let Ok(conn) = sqlite::open_live_read_only(&source) {
                self.facts.database_revision = sqlite::alembic_revisions(&conn).unwrap_or_default();
            }
            self.facts.problems.push(format!(
                "the database is {} MiB: its raw files are kept whole and hashed, without a dump or integrity_check, so the rollback is not delayed; open a copy of database/{name} with sqlite3 to analyse it",
                size >> 20
            ));
        }
        let files: Vec<PathBuf> = fs::read_dir(&target)?.flatten().map(|e| e.path()).collect();
        let dir = self.dir.clone();
        self.hashing = Some(std::thread::spawn(move || {
            files
                .iter()
                // The -shm index may still be touched by a read-only reader
                // (alembic): `seal` hashes it once everything is done.
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n != "dump.sql" && !n.to_string_lossy().ends_with("-shm"))
                })
                .map(|path| {
                    let (sha256, size) = fsutil::sha256_file(path).unwrap_or_default();
                    EvidenceFile { path: rel(&dir, path), sha256, size }
                })
                .collect()
        }));
        Ok(())
    }

    /// Waits for the evidence's hashes (taking them now if an interrupted run
    /// never did) and writes the reports.
    pub fn seal(&mut self) -> Result<()> {
        if let Some(runs) = self.pending_alembic.take() {
            self.finish_alembic(runs);
        }
        let mut files = match self.hashing.take() {
            Some(handle) => {
                handle.join().map_err(|_| anyhow::anyhow!("the hashing thread panicked"))?
            }
            None => Vec::new(),
        };
        // Whatever the background did not hash (the -shm index, or all of it
        // after an interruption) is hashed now.
        let known: Vec<String> = self
            .facts
            .database_files
            .iter()
            .chain(&self.facts.database_copy)
            .chain(&files)
            .map(|f| f.path.clone())
            .collect();
        if self.dir.join("database").is_dir() {
            for entry in fs::read_dir(self.dir.join("database"))?.flatten() {
                let path = entry.path();
                let relative = rel(&self.dir, &path);
                if entry.file_name() == "dump.sql" || known.contains(&relative) {
                    continue;
                }
                let (sha256, size) = fsutil::sha256_file(&path)?;
                files.push(EvidenceFile { path: relative, sha256, size });
            }
        }
        for file in files {
            if file.path.ends_with(".consolidated") {
                self.facts.database_copy = Some(file);
            } else {
                self.facts.database_files.push(file);
            }
        }
        self.facts.database_files.sort_by(|a, b| a.path.cmp(&b.path));
        self.write_reports()
    }

    fn inspect_database(&mut self, copy: &Path) {
        let conn = match sqlite::open_snapshot(copy) {
            Ok(conn) => conn,
            Err(err) => return self.facts.problems.push(format!("{err:#}")),
        };
        self.facts.integrity =
            sqlite::integrity_check(&conn).unwrap_or_else(|e| vec![format!("{e:#}")]);
        self.facts.database_revision = sqlite::alembic_revisions(&conn).unwrap_or_default();
        let dump_path = self.dir.join("database/dump.sql");
        let dumped = fs::File::create(&dump_path)
            .map_err(anyhow::Error::from)
            .and_then(|file| sqlite::dump(&conn, &mut std::io::BufWriter::new(file)));
        match dumped {
            Ok(()) => self.facts.dump = Some(rel(&self.dir, &dump_path)),
            Err(err) => self.facts.problems.push(format!("the SQL dump stopped: {err:#}")),
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
        let migrations_dir = tree.migrations();
        if migrations_dir.is_dir() {
            for file in migrations::revision_files(&migrations_dir)? {
                let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
                let dest = self.dir.join("migrations").join(&name);
                self.facts.migrations.push(self.copy_in(&file, &dest)?);
            }
        }
        let profile = &tree.profile;
        for source in profile.config_files.iter().chain(&profile.critical_files) {
            let path = tree.path(source);
            if path.is_file() {
                let file = self.copy_in(&path, &self.dir.join("files").join(source))?;
                self.facts.files.push(file);
            } else {
                self.facts.problems.push(format!("{source} was missing"));
            }
        }
        if let Some((backup_dir, manifest)) = backup {
            self.diff_against_backup(sh, tree, backup_dir, manifest);
        }
        if let Some(repo) = git::open(&tree.root) {
            for path in git::modified_tracked(&repo)? {
                let source = tree.root.join(&path);
                if source.is_file() {
                    self.copy_in(&source, &self.dir.join("worktree").join(&path))?;
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
            let new = tree.path(&entry.source_path);
            // Most files are unchanged: the hash taken when the file was
            // copied into the bundle says so without running diff.
            let name = Path::new(&entry.source_path).file_name().unwrap_or_default();
            let copied = match entry.kind {
                Kind::Migration => format!("migrations/{}", name.to_string_lossy()),
                _ => format!("files/{}", entry.source_path),
            };
            let kept =
                self.facts.migrations.iter().chain(&self.facts.files).find(|f| f.path == copied);
            if kept.is_some_and(|f| f.sha256 == entry.sha256) {
                continue;
            }
            let new_arg = if new.exists() { new.clone() } else { PathBuf::from("/dev/null") };
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
                        .map_or(Ok(()), fs::create_dir_all)
                        .and_then(|()| fs::write(&dest, &out.stdout));
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
        for file in migrations::revision_files(&tree.migrations()).unwrap_or_default() {
            let relative = rel(&tree.root, &file);
            if !known.contains(&relative.as_str()) {
                self.facts.diffs.push(format!("{relative}: not in the backup (added since)"));
            }
        }
    }

    /// Keeps the last lines of the service log; a missing log is noted.
    pub fn capture_log(&mut self, tree: &Tree) {
        let log = tree.path(&tree.profile.log_file);
        match fs::read_to_string(&log) {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(200)..].join("\n");
                let _ = fs::write(self.dir.join("service.log"), tail + "\n");
                self.facts.log = format!(
                    "last {} lines of {} in service.log",
                    lines.len().min(200),
                    tree.profile.log_file
                );
            }
            Err(err) => {
                self.facts.log = format!("no service log at {}: {err}", tree.profile.log_file)
            }
        }
    }

    fn copy_in(&self, source: &Path, dest: &Path) -> Result<EvidenceFile> {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        let (sha256, size) = fsutil::copy_hashed(source, dest)?;
        Ok(EvidenceFile { path: rel(&self.dir, dest), sha256, size })
    }

    /// Writes `failure.json` and `FAILURE_REPORT.md` (again, as facts grow).
    pub fn write_reports(&self) -> Result<()> {
        let json = serde_json::to_string_pretty(&self.facts)?;
        fsutil::write_atomic(&self.dir.join("failure.json"), json.as_bytes())?;
        fsutil::write_atomic(&self.dir.join("FAILURE_REPORT.md"), self.markdown().as_bytes())
    }
}

fn rel(base: &Path, path: &Path) -> String {
    path.strip_prefix(base).unwrap_or(path).display().to_string()
}
