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
use serde::{Deserialize, Serialize};
use xshell::{Shell, cmd};

use crate::{
    clock, fsutil, git,
    manifest::{Kind, Manifest},
    migrations,
    profile::Tree,
    python::Python,
    sqlite,
    sys::Rename,
};

mod markdown;

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

/// What one alembic call left: the text kept in the bundle, and alembic's
/// stdout when it succeeded.
type AlembicAnswer = (String, Option<String>);

/// `alembic current` and `alembic history`, running in one Python process.
pub struct AlembicRuns {
    /// Each file's name, text, and alembic's stdout when it succeeded.
    runs: std::thread::JoinHandle<Vec<(&'static str, AlembicAnswer)>>,
    /// `alembic current` reads the preserved database, not the tree's.
    preserved: bool,
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

/// A database file hashed where it lay, before it moved: a rename keeps its
/// inode, size and mtime, so the hash still names the moved file.
struct Ahead {
    name: String,
    inode: u64,
    size: u64,
    mtime_ns: i128,
    sha256: String,
}

/// What the background work on a moved database found.
struct Analysis {
    files: Vec<EvidenceFile>,
    /// The database as one file, made through SQLite from a scratch copy.
    consolidated: Option<PathBuf>,
    problems: Vec<String>,
}

/// Up to this size a preserved database is also consolidated, checked and
/// dumped during a rollback; above it the raw files alone are kept.
pub const ANALYZE_LIMIT: u64 = 16 << 20;

/// The folder a new bundle would get: by time and by process, so two runs
/// in the same second get two folders; `create` makes it exclusively.
pub fn new_bundle_path(tree: &Tree, label: &str) -> PathBuf {
    tree.forensics_dir().join(format!(
        "{label}-failure-{}-{}",
        clock::now_compact(),
        std::process::id()
    ))
}

/// The file that names the run a bundle belongs to.
const RUN_FILE: &str = ".run";

impl Bundle {
    /// Creates the bundle folder at `dir` for run `run`, or a numbered
    /// sibling if that name is taken: an earlier bundle is never written into.
    pub fn create(tree: &Tree, label: &str, dir: &Path, run: &str) -> Result<Bundle> {
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
        fsutil::write_atomic(&tree.fs, &candidate.join(RUN_FILE), run.as_bytes())?;
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

    fn describe(tree: &Tree, label: &str, dir: PathBuf) -> Bundle {
        let repo = git::open(&tree.root).ok().flatten();
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
        Bundle { dir, facts, tree: tree.clone(), ahead: None, analysis: None }
    }

    /// Reopens a bundle of an interrupted run (its facts from failure.json),
    /// or takes over the run's own folder before anything was written in it.
    pub fn reopen(tree: &Tree, label: &str, dir: &Path) -> Result<Bundle> {
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
        const FILES: [(&str, &str); 2] =
            [("alembic-current.txt", "current"), ("alembic-history.txt", "history")];
        let (python, tree) = (python.clone(), tree.clone());
        let runs = std::thread::spawn(move || {
            let no_env = Vec::new();
            let commands: [crate::python::AlembicCommand<'_>; 2] =
                [(&["current"], &current_env), (&["history"], &no_env)];
            let outs = Shell::new()
                .map_err(anyhow::Error::from)
                .and_then(|sh| python.alembic_each(&sh, &tree, &commands));
            FILES
                .iter()
                .enumerate()
                .map(|(i, (name, arg))| {
                    let answer = match &outs {
                        Ok(outs) => (
                            format!(
                                "$ alembic {arg}\n({})\n{}{}",
                                outs[i].describe_status(),
                                outs[i].stdout,
                                outs[i].stderr
                            ),
                            outs[i].success().then(|| outs[i].stdout.clone()),
                        ),
                        Err(err) => (format!("alembic {arg} could not run: {err:#}\n"), None),
                    };
                    (*name, answer)
                })
                .collect()
        });
        AlembicRuns { runs, preserved: preserved.is_some() }
    }

    pub fn finish_alembic(&mut self, runs: AlembicRuns) {
        let answers = runs.runs.join().unwrap_or_else(|_| {
            let lost = || ("alembic could not run\n".to_string(), None);
            vec![("alembic-current.txt", lost()), ("alembic-history.txt", lost())]
        });
        for (name, (text, stdout)) in answers {
            if name == "alembic-current.txt" && runs.preserved {
                // It must have read the preserved database, not the restored one.
                let said: Vec<&str> = stdout
                    .as_deref()
                    .unwrap_or("")
                    .lines()
                    .filter_map(|l| l.split_whitespace().next())
                    .collect();
                let expected: Vec<&str> =
                    self.facts.database_revision.iter().map(String::as_str).collect();
                if said != expected {
                    self.facts.problems.push(format!(
                        "alembic current reported {said:?} for the preserved database at {expected:?}: check that migrations/env.py reads its URL from the profile's database_url_env"
                    ));
                }
            }
            if let Err(err) =
                fsutil::write_atomic(&self.tree.fs, &self.dir.join(name), text.as_bytes())
            {
                self.facts.problems.push(format!("{name}: {err:#}"));
            }
        }
    }

    /// Keeps the database's files byte for byte, before anything opens
    /// them: copied (`Copy`) or moved (`Move`, by the restore, once its
    /// replacement is staged) into `database/`, with the hashes of those
    /// bytes. A copy is then consolidated and inspected through SQLite.
    pub fn capture_database(&mut self, how: DatabaseCapture) -> Result<()> {
        let tree = self.tree.clone();
        let db = tree.database();
        let target = self.dir.join("database");
        tree.fs.create_dir_all(&target)?;
        let mut found = false;
        let mut moved = Vec::new();
        for (name, source) in sidecars(&db) {
            if !tree.fs.expect_file_or_nothing(&source)? {
                continue;
            }
            found |= source == db;
            match how {
                DatabaseCapture::Copy => {
                    let (sha256, size) =
                        fsutil::copy_new(&tree.fs, &source, &tree.fs, &target.join(&name))?;
                    self.facts.database_files.push(EvidenceFile {
                        path: format!("database/{name}"),
                        sha256,
                        size,
                    });
                }
                DatabaseCapture::Move => {
                    // A resumed run may find part of it moved already: what
                    // is in the bundle is never replaced.
                    let dest = fsutil::free_name(&target.join(&name));
                    tree.fs
                        .rename(&source, &dest, Rename::NoReplace)
                        .with_context(|| format!("move {} into the bundle", source.display()))?;
                    moved.push(dest);
                }
            }
        }
        if !found && how == DatabaseCapture::Copy {
            self.facts.problems.push(format!("there was no database at {}", tree.profile.database));
            return Ok(());
        }
        match how {
            DatabaseCapture::Copy => {
                let consolidated = target.join(format!("{}.consolidated", db_name(&tree)));
                match sqlite::online_backup(&db, &consolidated) {
                    Ok(()) => self.inspect_database(&consolidated),
                    Err(err) => self
                        .facts
                        .problems
                        .push(format!("the database could not be copied through SQLite: {err:#}")),
                }
            }
            DatabaseCapture::Move => {
                // A run resumed after a crash finds the files it moved then.
                let name = db_name(&tree);
                let known: Vec<String> =
                    self.facts.database_files.iter().map(|f| f.path.clone()).collect();
                if let Ok(entries) = std::fs::read_dir(&target) {
                    for entry in entries.flatten() {
                        let file = entry.file_name().to_string_lossy().into_owned();
                        let raw = file.starts_with(&name) && !file.ends_with(".consolidated");
                        let path = entry.path();
                        if raw
                            && !moved.contains(&path)
                            && !known.contains(&format!("database/{file}"))
                        {
                            moved.push(path);
                        }
                    }
                }
                self.analyse_moved(moved)
            }
        }
        Ok(())
    }

    /// Starts hashing the database's files where they lie (plain reads: the
    /// service is stopped and nothing opens them), so that the restore's
    /// copy and these hashes overlap; the move then needs no second read.
    pub fn hash_ahead(&mut self) {
        let files: Vec<(String, PathBuf)> = sidecars(&self.tree.database()).into();
        self.ahead = Some(std::thread::spawn(move || {
            files
                .into_iter()
                .filter_map(|(name, path)| {
                    let before = crate::fsutil::Identity::of(&path).ok()?;
                    let (sha256, size) = fsutil::sha256_file(&path).ok()?;
                    let after = crate::fsutil::Identity::of(&path).ok()?;
                    // Changed while it was read: not trusted, hashed again later.
                    (before == after).then_some(Ahead {
                        name,
                        inode: after.inode,
                        size,
                        mtime_ns: after.mtime_ns,
                        sha256,
                    })
                })
                .collect()
        }));
    }

    /// Hashes the moved files and, up to `ANALYZE_LIMIT`, consolidates a
    /// scratch copy of them through SQLite, in the background: opening the
    /// moved files themselves would change their `-shm`.
    fn analyse_moved(&mut self, moved: Vec<PathBuf>) {
        let (dir, name) = (self.dir.clone(), db_name(&self.tree));
        let ahead = self.ahead.take();
        self.analysis = Some(std::thread::spawn(move || {
            let ahead: Vec<Ahead> = ahead.and_then(|h| h.join().ok()).unwrap_or_default();
            // A moved file whose hash was taken where it lay, unchanged since.
            let known = |path: &Path| -> Option<(String, u64)> {
                let id = crate::fsutil::Identity::of(path).ok()?;
                let file = path.file_name()?.to_string_lossy().into_owned();
                ahead
                    .iter()
                    .find(|a| {
                        a.name == file
                            && a.inode == id.inode
                            && a.size == id.size
                            && a.mtime_ns == id.mtime_ns
                    })
                    .map(|a| (a.sha256.clone(), a.size))
            };
            let mut analysis =
                Analysis { files: Vec::new(), consolidated: None, problems: Vec::new() };
            let scratch = fsutil::scratch_dir("tmws-evidence");
            let main_size = moved
                .iter()
                .find(|p| p.file_name().is_some_and(|n| *n == *name))
                .and_then(|p| std::fs::metadata(p).ok())
                .map_or(0, |m| m.len());
            let analyse = main_size > 0 && main_size <= ANALYZE_LIMIT && scratch.is_ok();
            for path in &moved {
                let hashed = if analyse {
                    let copy = scratch
                        .as_ref()
                        .map(|s| s.path().join(path.file_name().unwrap_or_default()));
                    copy.map_err(|e| anyhow::anyhow!("{e:#}")).and_then(|copy| {
                        let input = crate::sys::open_regular(path)?;
                        let output = std::fs::File::create(&copy)?;
                        fsutil::copy_hashed(&input, &output)
                    })
                } else {
                    known(path).map_or_else(|| fsutil::sha256_file(path), Ok)
                };
                match hashed {
                    Ok((sha256, size)) => {
                        analysis.files.push(EvidenceFile { path: rel(&dir, path), sha256, size })
                    }
                    Err(err) => analysis
                        .problems
                        .push(format!("{} could not be hashed: {err:#}", rel(&dir, path))),
                }
            }
            if let (true, Ok(scratch)) = (analyse, &scratch) {
                let consolidated = dir.join("database").join(format!("{name}.consolidated"));
                match sqlite::online_backup(&scratch.path().join(&name), &consolidated) {
                    Ok(()) => analysis.consolidated = Some(consolidated),
                    Err(err) => analysis
                        .problems
                        .push(format!("the database could not be copied through SQLite: {err:#}")),
                }
            } else if main_size > ANALYZE_LIMIT {
                analysis.problems.push(format!(
                    "the database is {} MiB: its raw files are kept whole and hashed, without a dump or integrity_check, so the rollback is not delayed; open a copy of database/{name} with sqlite3 to analyse it",
                    main_size >> 20
                ));
            }
            analysis
        }));
    }

    /// Waits for the background analysis of a moved database; returns its
    /// consolidated copy, for alembic to read.
    pub fn finish_analysis(&mut self) -> Option<PathBuf> {
        let analysis = self.analysis.take()?.join().ok()?;
        self.facts.database_files.extend(analysis.files);
        self.facts.database_files.sort_by(|a, b| a.path.cmp(&b.path));
        self.facts.problems.extend(analysis.problems);
        let consolidated = analysis.consolidated?;
        self.inspect_database(&consolidated);
        Some(consolidated)
    }

    /// Writes the reports a last time. Database files in the bundle that the
    /// report does not list yet (moved by a run that was interrupted before
    /// its background hashing ended) are hashed now: none goes unrecorded.
    pub fn seal(&mut self) -> Result<()> {
        self.finish_analysis();
        let name = db_name(&self.tree);
        let folder = self.dir.join("database");
        if let Ok(entries) = std::fs::read_dir(&folder) {
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                let relative = format!("database/{file}");
                let raw = file.starts_with(&name) && !file.ends_with(".consolidated");
                let listed = self.facts.database_files.iter().any(|f| f.path == relative);
                if !raw || listed {
                    continue;
                }
                match fsutil::sha256_file(&entry.path()) {
                    Ok((sha256, size)) => self.facts.database_files.push(EvidenceFile {
                        path: relative,
                        sha256,
                        size,
                    }),
                    Err(err) => {
                        self.facts.problems.push(format!("{relative} could not be hashed: {err:#}"))
                    }
                }
            }
        }
        self.facts.database_files.sort_by(|a, b| a.path.cmp(&b.path));
        self.write_reports()
    }

    fn inspect_database(&mut self, copy: &Path) {
        match fsutil::sha256_file(copy) {
            Ok((sha256, size)) => {
                self.facts.database_copy =
                    Some(EvidenceFile { path: rel(&self.dir, copy), sha256, size })
            }
            Err(err) => self
                .facts
                .problems
                .push(format!("{} could not be hashed: {err:#}", rel(&self.dir, copy))),
        }
        let conn = match sqlite::open_snapshot(copy) {
            Ok(conn) => conn,
            Err(err) => return self.facts.problems.push(format!("{err:#}")),
        };
        self.facts.integrity =
            sqlite::integrity_check(&conn).unwrap_or_else(|e| vec![format!("{e:#}")]);
        self.facts.database_revision = sqlite::alembic_revisions(&conn).unwrap_or_default();
        let dump_path = self.dir.join("database/dump.sql");
        let dumped = self
            .tree
            .fs
            .create_new(&dump_path, 0o600)
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
            // The bundle's copy is diffed, not the tree's file: what diff
            // reads has passed the file-access layer already.
            let new_arg = match kept {
                Some(_) => self.dir.join(&copied),
                None => PathBuf::from("/dev/null"),
            };
            let _ = &new;
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
                        .and_then(|()| fsutil::write_atomic(&self.tree.fs, &dest, &out.stdout));
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
        /// The tail is bounded: a log of gigabytes is not read whole.
        const TAIL_BYTES: u64 = 256 << 10;
        let log = tree.path(&tree.profile.log_file);
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
                let written = fsutil::write_atomic(
                    &self.tree.fs,
                    &self.dir.join("service.log"),
                    (tail + "\n").as_bytes(),
                );
                if let Err(err) = written {
                    self.facts.problems.push(format!("service.log: {err:#}"));
                }
                self.facts.log = format!(
                    "last {} lines of {} in service.log",
                    lines.len().min(200),
                    tree.profile.log_file
                );
            }
            Err(err) => {
                self.facts.log = format!("no service log at {}: {err:#}", tree.profile.log_file)
            }
        }
    }

    /// Copies a file of the tree into the bundle, byte for byte. A file
    /// the layer refuses to read (a link out of the root, a FIFO) is recorded
    /// as a problem, never followed.
    fn copy_in(&mut self, source: &Path, dest: &Path) -> Option<EvidenceFile> {
        match fsutil::copy_new(&self.tree.fs, source, &self.tree.fs, dest) {
            Ok((sha256, size)) => Some(EvidenceFile { path: rel(&self.dir, dest), sha256, size }),
            Err(err) => {
                self.facts
                    .problems
                    .push(format!("{}: not kept: {err:#}", rel(&self.tree.root, source)));
                None
            }
        }
    }

    /// Writes `failure.json` and `FAILURE_REPORT.md` (again, as facts grow).
    pub fn write_reports(&self) -> Result<()> {
        let json = serde_json::to_string_pretty(&self.facts)?;
        fsutil::write_atomic(&self.tree.fs, &self.dir.join("failure.json"), json.as_bytes())?;
        fsutil::write_atomic(
            &self.tree.fs,
            &self.dir.join("FAILURE_REPORT.md"),
            self.markdown().as_bytes(),
        )
    }
}

fn rel(base: &Path, path: &Path) -> String {
    path.strip_prefix(base).unwrap_or(path).display().to_string()
}

/// The database's files: itself, its `-wal` and its `-shm`, by name.
pub fn sidecars(db: &Path) -> [(String, PathBuf); 3] {
    let name = db.file_name().unwrap_or_default().to_string_lossy().into_owned();
    ["", "-wal", "-shm"].map(|s| (format!("{name}{s}"), db.with_file_name(format!("{name}{s}"))))
}

fn db_name(tree: &Tree) -> String {
    tree.database().file_name().unwrap_or_default().to_string_lossy().into_owned()
}
