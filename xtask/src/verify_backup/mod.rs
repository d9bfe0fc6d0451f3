//! `cargo xtask verify-backup`: proves a backup complete, intact and
//! restorable, reporting every failure in one run. The backup is only read:
//! the database is opened immutable and Python compiles without bytecode.
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    thread,
    time::Instant,
};

use anyhow::Result;
use xshell::Shell;

use crate::{
    backup::{DEFAULT_LABEL, TAG_MANIFEST_FIELD},
    confine::RootDir,
    exit::{failed, usage},
    flags, fsutil, git,
    manifest::{Kind, MANIFEST_FILE, Manifest, SUMS_FILE, parse_sums},
    migrations::Graph,
    process,
    profile::{Tree, check_label},
    python::{Python, TOOL_TIMEOUT},
    report::{Check, Report},
};

mod database;
pub mod stamp;

use database::check_database;
pub use database::table_differences;

impl flags::VerifyBackup {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let format = self.format.unwrap_or_default();
        if let Some(junit) = &self.junit {
            crate::report::check_output_file("--junit", junit)?;
        }
        // The scratch folder a repository's snapshot is restored into lives
        // as long as the report is being made.
        let mut scratch = None;
        let located = (|| -> Result<_> {
            if let Some(repo) = &self.repo {
                let (tree, label) = Tree::with_label(self.root.as_deref(), self.label.as_deref())?;
                let dir = fsutil::scratch_dir("tmws-verify-repo")?;
                let id = crate::restic::restore_latest(sh, repo, &label, dir.path())?;
                let path = dir.path().to_path_buf();
                scratch = Some(dir);
                let mut report = verify(sh, &path, Some(&tree), self.python.as_deref())?;
                let started = Instant::now();
                let data = match crate::restic::check_data(sh, repo) {
                    Ok(()) => Check::pass(
                        "repository.check",
                        "restic check --read-data passes",
                        format!("snapshot {} of {label} in {repo}", &id[..id.len().min(8)]),
                    ),
                    Err(err) => Check::fail(
                        "repository.check",
                        "restic check --read-data passes",
                        format!("{err:#}"),
                    ),
                }
                .since(started);
                let mut checks = std::mem::take(&mut report.checks);
                checks.push(data);
                let interpreter = report.interpreter.take();
                report = Report::new("verify-backup", format!("{repo} ({label})"), checks);
                report.interpreter = interpreter;
                // A restored copy is not the tree's backup: no stamp.
                return Ok((path, None, None, report));
            }
            let (dir, tree) = match &self.backup {
                Some(dir) => (dir.clone(), None),
                None => {
                    let tree = Tree::locate(self.root.as_deref())?;
                    let label = self.label.as_deref().unwrap_or(DEFAULT_LABEL);
                    check_label(label)?;
                    let backup = tree.backup(label);
                    // A backup folder that is a link out of the root is refused.
                    if let Err(err) = tree.fs.dir(&backup)
                        && crate::exit::code_of(&err) == 4
                    {
                        return Err(usage(format!("{err:#}")));
                    }
                    (backup, Some(tree))
                }
            };
            let before = stamp::snapshot(&dir).ok();
            let report = verify(sh, &dir, tree.as_ref(), self.python.as_deref())?;
            Ok((dir, tree, before, report))
        })();
        // A JUnit file on every exit: when no check could run, one error says why.
        let (dir, tree, before, report) =
            crate::report::or_junit_error(located, "verify-backup", self.junit.as_deref())?;
        if let (true, Some(tree), Some(before)) = (report.ok(), &tree, before) {
            // Best effort: without the stamp the next rollback verifies again.
            let _ = stamp::record(tree, &dir, before);
        }
        print!("{}", report.emit(format, self.junit.as_deref(), false)?);
        if !report.ok() {
            return Err(failed(format!("{} of the backup's checks failed", report.failed)));
        }
        Ok(())
    }
}

/// Runs every check on the backup folder `dir`. Errors only when there is no
/// backup to check at all; everything else is a failed check.
pub fn verify(
    sh: &Shell,
    dir: &Path,
    tree: Option<&Tree>,
    python: Option<&Path>,
) -> Result<Report> {
    if !dir.is_dir() {
        let labels = tree.map(crate::profile::labels).unwrap_or_default();
        return Err(usage(format!(
            "no backup folder at {}{}",
            dir.display(),
            crate::profile::labels_hint(&labels)
        )));
    }
    let mut checks = vec![Check::pass("folder", "backup folder exists", dir.display().to_string())];
    let manifest = read_manifest(dir, &mut checks);
    let Some(manifest) = manifest else {
        return Ok(Report::new("verify-backup", dir.display().to_string(), checks));
    };
    checks.push(check_paths(dir, &manifest));
    checks.push(check_sums(dir, &manifest));

    // The hashes (I/O and SHA) and SQLite's integrity check are the slow
    // parts; they run at the same time on two cores.
    // Every file is read through the file-access layer anchored at the
    // backup: a link that leads out of it is never followed, a FIFO never read.
    let backup_fs = std::sync::Arc::new(RootDir::open(&dir.canonicalize()?)?);
    let listed: Vec<PathBuf> =
        manifest.files.iter().map(|f| PathBuf::from(&f.backup_path)).collect();
    let hashing = {
        let backup_fs = backup_fs.clone();
        thread::spawn(move || {
            let started = Instant::now();
            let hashes: Vec<Option<(String, u64)>> = listed
                .iter()
                .map(|path| {
                    let file = backup_fs.open_read(path).ok()?;
                    fsutil::sha256_open(file, path).ok()
                })
                .collect();
            (hashes, started)
        })
    };
    checks.extend(check_completeness(dir, &manifest));
    let (database_checks, revisions) = check_database(dir, &manifest, &backup_fs);
    checks.extend(database_checks);
    checks.extend(check_migrations(dir, &manifest, revisions));
    let python = Python::find(sh, tree.map(|t| t.root.as_path()), python);
    let interpreter = python.as_ref().ok().map(Python::describe);
    checks.push(check_python(sh, dir, &manifest, python, &backup_fs));
    if let Some(tree) = tree {
        match git::open(&tree.root) {
            Ok(Some(repo)) => checks.push(check_tag(&repo, &manifest, dir)),
            Ok(None) => {}
            Err(err) => checks.push(Check::fail(
                "git.tag",
                "git tag points at the manifest's commit",
                format!("{err:#}"),
            )),
        }
    }
    let (hashes, started) = hashing.join().expect("the hashing thread does not panic");
    checks.insert(4, check_hashes(&manifest, &hashes).since(started));
    let mut report = Report::new("verify-backup", dir.display().to_string(), checks);
    report.interpreter = interpreter;
    Ok(report)
}

fn read_manifest(dir: &Path, checks: &mut Vec<Check>) -> Option<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) => {
            checks.push(Check::fail(
                "manifest",
                "manifest is present and parses",
                format!("{MANIFEST_FILE}: {err}"),
            ));
            return None;
        }
    };
    match Manifest::parse(&text) {
        Ok(manifest) => {
            checks.push(Check::pass(
                "manifest",
                "manifest is present and parses",
                format!("{} {}, {} files", manifest.format, manifest.label, manifest.files.len()),
            ));
            Some(manifest)
        }
        Err(err) => {
            checks.push(Check::fail(
                "manifest",
                "manifest is present and parses",
                format!("{MANIFEST_FILE}: {err:#}"),
            ));
            None
        }
    }
}

/// Backup paths stay inside the backup, and original paths are relative
/// paths that stay inside the tree: a restore writes where they say.
fn check_paths(dir: &Path, manifest: &Manifest) -> Check {
    let problems: Vec<String> = manifest
        .files
        .iter()
        .flat_map(|f| {
            let backup = fsutil::check_inside(dir, &f.backup_path).err();
            let original = fsutil::check_relative(&f.source_path)
                .err()
                .map(|e| e.context(format!("the original path of {}", f.backup_path)));
            backup.into_iter().chain(original).map(|e| format!("{e:#}"))
        })
        .collect();
    let title = "manifest paths stay inside the backup";
    Check::unless("manifest.paths", title, &problems, format!("{} paths", manifest.files.len()))
}

/// SHA256SUMS must list exactly the manifest's files, and the manifest's own
/// hash: an edited manifest is caught here.
fn check_sums(dir: &Path, manifest: &Manifest) -> Check {
    let title = "SHA256SUMS agrees with the manifest";
    let sums = match fs::read_to_string(dir.join(SUMS_FILE))
        .map_err(anyhow::Error::from)
        .and_then(|t| parse_sums(&t))
    {
        Ok(sums) => sums,
        Err(err) => return Check::fail("sums", title, format!("{SUMS_FILE}: {err:#}")),
    };
    let mut problems = Vec::new();
    let listed: BTreeMap<&str, &str> = sums.iter().map(|(s, p)| (p.as_str(), s.as_str())).collect();
    for f in &manifest.files {
        if listed.get(f.backup_path.as_str()) != Some(&f.sha256.as_str()) {
            problems.push(format!("{} has another hash in {SUMS_FILE} (or none)", f.backup_path));
        }
    }
    match (fsutil::sha256_file(&dir.join(MANIFEST_FILE)), listed.get(MANIFEST_FILE)) {
        (Ok((actual, _)), Some(expected)) if actual == *expected => {}
        _ => problems.push(format!(
            "{MANIFEST_FILE} was changed after the backup: its hash is not the one in {SUMS_FILE}"
        )),
    }
    if sums.len() != manifest.files.len() + 1 {
        problems.push(format!(
            "{SUMS_FILE} lists {} files, the manifest {}",
            sums.len(),
            manifest.files.len() + 1
        ));
    }
    Check::unless("sums", title, &problems, format!("{} entries", sums.len()))
}

fn check_completeness(dir: &Path, manifest: &Manifest) -> Vec<Check> {
    let listed: BTreeSet<PathBuf> =
        manifest.files.iter().map(|f| PathBuf::from(&f.backup_path)).collect();
    let present: BTreeSet<PathBuf> =
        fsutil::list_files(dir).unwrap_or_default().into_iter().collect();
    let missing: Vec<String> =
        listed.difference(&present).map(|p| p.display().to_string()).collect();
    let own = [PathBuf::from(MANIFEST_FILE), PathBuf::from(SUMS_FILE)];
    let extra: Vec<String> = present
        .difference(&listed)
        .filter(|p| !own.contains(p))
        .map(|p| p.display().to_string())
        .collect();
    let mut checks = vec![
        Check::from(
            "files.missing",
            "no listed file is missing",
            missing.is_empty(),
            if missing.is_empty() {
                format!("{} files listed, all present", listed.len())
            } else {
                format!("missing: {}", missing.join(", "))
            },
        ),
        Check::from(
            "files.unlisted",
            "no unlisted file is present",
            extra.is_empty(),
            if extra.is_empty() {
                "none".to_string()
            } else {
                format!("not in the manifest: {}", extra.join(", "))
            },
        ),
    ];
    // The runbook counts files per category; ours compares with the manifest.
    let mut counts = Vec::new();
    let mut ok = true;
    for kind in Kind::ALL {
        let expected = manifest.count(kind);
        let found = present.iter().filter(|p| p.starts_with(kind.folder())).count();
        ok &= expected == found;
        counts.push(format!("{} {found}/{expected}", kind.name()));
    }
    ok &= manifest.count(Kind::Database) == 1
        && manifest.count(Kind::Migration) == manifest.migration_count;
    checks.push(Check::from(
        "files.counts",
        "file counts per category equal the manifest's",
        ok,
        counts.join(", "),
    ));
    checks
}

fn check_hashes(manifest: &Manifest, hashes: &[Option<(String, u64)>]) -> Check {
    let mut problems = Vec::new();
    for (f, actual) in manifest.files.iter().zip(hashes) {
        match actual {
            None => problems.push(format!("{}: unreadable", f.backup_path)),
            Some((sha, size)) if *sha != f.sha256 || *size != f.size => problems.push(format!(
                "{}: sha256 {}… size {size}, the manifest says {}… size {}",
                f.backup_path,
                &sha[..12],
                &f.sha256[..12],
                f.size
            )),
            Some(_) => {}
        }
    }
    let title = "every file's sha256 and size equal the manifest's";
    Check::unless("hashes", title, &problems, format!("{} files", manifest.files.len()))
}

fn check_migrations(
    dir: &Path,
    manifest: &Manifest,
    db_revisions: Option<Vec<String>>,
) -> Vec<Check> {
    let files: Vec<PathBuf> = manifest
        .files_of(Kind::Migration)
        .map(|f| dir.join(&f.backup_path))
        .filter(|p| p.is_file())
        .collect();
    let title = "migrations form a revision graph with the manifest's heads";
    let graph = match Graph::from_files(&files) {
        Ok(graph) => graph,
        Err(err) => return vec![Check::fail("migrations.graph", title, format!("{err:#}"))],
    };
    let heads = graph.heads();
    let ok = heads == manifest.migration_heads && graph.len() == manifest.migration_count;
    let mut checks = vec![Check::from(
        "migrations.graph",
        title,
        ok,
        format!(
            "{} revisions, heads {}; manifest {} revisions, heads {}",
            graph.len(),
            heads.join(" "),
            manifest.migration_count,
            manifest.migration_heads.join(" ")
        ),
    )];
    let title = "the database's revision is a head of the migrations";
    checks.push(match db_revisions {
        None => Check::fail(
            "migrations.revision",
            title,
            "the database's alembic_version cannot be read",
        ),
        Some(revisions) => {
            let unknown: Vec<&str> =
                revisions.iter().filter(|r| !heads.contains(r)).map(String::as_str).collect();
            let ok = unknown.is_empty() && !revisions.is_empty();
            Check::from(
                "migrations.revision",
                title,
                ok,
                if ok {
                    format!("{} is a head", revisions.join(" "))
                } else if revisions.is_empty() {
                    "alembic_version is empty".to_string()
                } else {
                    let known: Vec<&str> =
                        unknown.iter().copied().filter(|r| graph.contains(r)).collect();
                    let what = if known.is_empty() {
                        "not a revision of the backed-up migrations"
                    } else {
                        "not a head"
                    };
                    format!("{} is {what}", unknown.join(" "))
                },
            )
        }
    });
    checks
}

/// Compiles every Python file of the backup with the real interpreter.
/// `compile()` never writes bytecode, unlike `python -m py_compile`.
fn check_python(
    sh: &Shell,
    dir: &Path,
    manifest: &Manifest,
    python: Result<Python>,
    backup_fs: &RootDir,
) -> Check {
    let title = "every Python file compiles";
    let files: Vec<String> = manifest
        .files
        .iter()
        .filter(|f| f.backup_path.ends_with(".py"))
        .filter(|f| backup_fs.is_file(Path::new(&f.backup_path)))
        .map(|f| dir.join(&f.backup_path).display().to_string())
        .collect();
    let python = match python {
        Ok(python) => python,
        Err(err) => {
            return Check::fail(
                "python.compile",
                title,
                format!("no Python to compile with: {err:#}"),
            );
        }
    };
    const CODE: &str = "import sys\nbad = 0\nfor path in sys.argv[1:]:\n    try:\n        compile(open(path, 'rb').read(), path, 'exec', dont_inherit=True)\n    except (SyntaxError, ValueError) as error:\n        bad += 1\n        print(f'{path}:{getattr(error, \"lineno\", \"?\")}: {error.__class__.__name__}: {getattr(error, \"msg\", error)}')\nsys.exit(1 if bad else 0)\n";
    let exe = python.exe("python");
    let cmd = sh.cmd(exe).env("PYTHONDONTWRITEBYTECODE", "1").arg("-c").arg(CODE).args(&files);
    match process::run(cmd.quiet(), TOOL_TIMEOUT) {
        Ok(out) if out.success() => {
            Check::pass("python.compile", title, format!("{} files", files.len()))
        }
        Ok(out) => Check::fail("python.compile", title, relative_to(dir, &out.tail(10))),
        Err(err) => Check::fail("python.compile", title, format!("{err:#}")),
    }
}

fn relative_to(dir: &Path, text: &str) -> String {
    text.replace(&format!("{}/", dir.display()), "")
}

/// What to do when a backup's tag is not in this repository.
pub fn tag_advice(tag: &str, commit: &str) -> String {
    format!(
        "no tag {tag} in this repository (the manifest's commit is {commit}): recreate it with `git tag {tag} {commit}` or fetch it with `git fetch origin tag {tag}`; only the git and complete rollbacks need it"
    )
}

fn check_tag(repo: &git2::Repository, manifest: &Manifest, dir: &Path) -> Check {
    let title = "git tag points at the manifest's commit";
    let Some(tag) = &manifest.git_tag else {
        return Check::pass(
            "git.tag",
            title,
            "the backup was taken without a tag (--no-tag): nothing to check",
        );
    };
    match (git::tag_commit(repo, tag), &manifest.git_commit) {
        (Some(at), Some(expected)) if at.to_string() != *expected => {
            Check::fail("git.tag", title, format!("tag {tag} at {at}, manifest {expected}"))
        }
        (Some(at), Some(_)) => {
            // The tag recorded the manifest's hash when the backup was taken:
            // a manifest rewritten since (with a matching SHA256SUMS) shows here.
            let recorded = git::tag_message(repo, tag).and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix(TAG_MANIFEST_FIELD))
                    .map(|v| v.trim().to_string())
            });
            let actual = fsutil::sha256_file(&dir.join(MANIFEST_FILE)).map(|(s, _)| s).ok();
            match recorded {
                Some(recorded) if Some(&recorded) != actual.as_ref() => Check::fail(
                    "git.tag",
                    title,
                    format!(
                        "{MANIFEST_FILE} was rewritten after the backup: tag {tag} recorded sha256 {recorded}, the file has {}",
                        actual.unwrap_or_else(|| "none".into())
                    ),
                ),
                Some(_) => Check::pass(
                    "git.tag",
                    title,
                    format!("tag {tag} at {at}; it records the manifest's sha256, unchanged"),
                ),
                None => Check::pass(
                    "git.tag",
                    title,
                    format!("tag {tag} at {at} (a tag without the manifest's hash)"),
                ),
            }
        }
        // A backup copied to another checkout: the tag is needed only by
        // what uses git (the git and complete rollbacks refuse without it).
        (None, Some(expected)) => {
            Check::not_applicable("git.tag", title, tag_advice(tag, expected))
        }
        (_, None) => Check::fail(
            "git.tag",
            title,
            "the manifest records no git commit, but the root is a git repository",
        ),
    }
}
