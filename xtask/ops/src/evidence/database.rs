//! The failed database in the bundle: its files kept byte for byte (copied,
//! or moved by the restore), hashed, and analysed from a consolidated copy.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{Bundle, DatabaseCapture, EvidenceFile, db_name, rel};
use xtask_adapters::sqlite;
use xtask_fs::files;
use xtask_model::database;

/// A database file hashed where it lay, before it moved: a rename keeps its
/// inode, size and mtime, so the hash still names the moved file.
pub(super) struct Ahead {
    name: String,
    inode: u64,
    size: u64,
    mtime_ns: i128,
    sha256: String,
}

/// What the background work on a moved database found.
pub(super) struct Analysis {
    files: Vec<EvidenceFile>,
    /// The database as one file, made through SQLite from a scratch copy.
    consolidated: Option<PathBuf>,
    problems: Vec<String>,
}

/// Up to this size a preserved database is also consolidated, checked and
/// dumped during a rollback; above it the raw files alone are kept.
pub const ANALYZE_LIMIT: u64 = 16 << 20;

impl Bundle {
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
        for (name, source) in database::files(&db) {
            if !tree.fs.expect_file_or_nothing(&source)? {
                continue;
            }
            found |= source == db;
            match how {
                DatabaseCapture::Copy => {
                    let (sha256, size) =
                        files::copy_new(&tree.fs, &source, &tree.fs, &target.join(&name))?;
                    self.facts.database_files.push(EvidenceFile {
                        path: format!("database/{name}"),
                        sha256,
                        size,
                    });
                }
                DatabaseCapture::Move => {
                    // A resumed run may find part of it moved already: what
                    // is in the bundle is never replaced.
                    let dest = files::free_name(&target.join(&name));
                    tree.fs
                        .move_across(&source, &dest)
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
                match sqlite::online_backup((&tree.fs, &db), (&tree.fs, &consolidated)) {
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
                if let Ok(entries) = tree.fs.list(&target) {
                    for (file, _) in entries {
                        let file = file.to_string_lossy().into_owned();
                        let raw = file.starts_with(&name) && !file.ends_with(".consolidated");
                        let path = target.join(&file);
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
        let files: Vec<(String, PathBuf)> = database::files(&self.tree.database()).into();
        let fs = self.tree.fs.clone();
        self.ahead = Some(std::thread::spawn(move || {
            files
                .into_iter()
                .filter_map(|(name, path)| {
                    let before = xtask_fs::files::Identity::of(&path).ok()?;
                    let (sha256, size) = fs.sha256(&path).ok()?;
                    let after = xtask_fs::files::Identity::of(&path).ok()?;
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
    pub(super) fn analyse_moved(&mut self, moved: Vec<PathBuf>) {
        let (dir, name) = (self.dir.clone(), db_name(&self.tree));
        let ahead = self.ahead.take();
        let fs = self.tree.fs.clone();
        self.analysis = Some(std::thread::spawn(move || {
            let ahead: Vec<Ahead> = ahead.and_then(|h| h.join().ok()).unwrap_or_default();
            // A moved file whose hash was taken where it lay, unchanged since.
            let known = |path: &Path| -> Option<(String, u64)> {
                let id = xtask_fs::files::Identity::of(path).ok()?;
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
            let scratch = files::scratch_dir("tmws-evidence");
            let main_size = moved
                .iter()
                .find(|p| p.file_name().is_some_and(|n| *n == *name))
                .and_then(|p| fs.open_read(p).and_then(|f| Ok(f.metadata()?)).ok())
                .map_or(0, |m| m.len());
            let analyse = main_size > 0 && main_size <= ANALYZE_LIMIT && scratch.is_ok();
            for path in &moved {
                let hashed = if analyse {
                    let copy = scratch
                        .as_ref()
                        .map(|s| s.path().join(path.file_name().unwrap_or_default()));
                    copy.map_err(|e| anyhow::anyhow!("{e:#}")).and_then(|copy| {
                        let input = fs.open_read(path)?;
                        let output = xtask_fs::unconfined::create(&copy)?;
                        files::copy_hashed(&input, &output)
                    })
                } else {
                    known(path).map_or_else(|| fs.sha256(path), Ok)
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
                let from = xtask_fs::RootDir::open(scratch.path());
                let from = from.and_then(|from| {
                    sqlite::online_backup(
                        (&from, &scratch.path().join(&name)),
                        (&fs, &consolidated),
                    )
                });
                match from {
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
        if let Ok(entries) = self.tree.fs.list(&folder) {
            for (file, _) in entries {
                let file = file.to_string_lossy().into_owned();
                let relative = format!("database/{file}");
                let raw = file.starts_with(&name) && !file.ends_with(".consolidated");
                let listed = self.facts.database_files.iter().any(|f| f.path == relative);
                if !raw || listed {
                    continue;
                }
                match self.tree.fs.sha256(&folder.join(&file)) {
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

    pub(super) fn inspect_database(&mut self, copy: &Path) {
        match self.tree.fs.sha256(copy) {
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
}
