//! `cargo xtask verify-backup`: proves a backup complete, intact and
//! restorable, reporting every failure in one run. The backup is only read:
//! the database is opened immutable and Python compiles without bytecode.
use std::{
    collections::{BTreeMap, BTreeSet},
    io::Read,
    path::{Path, PathBuf},
    thread,
    time::Instant,
};

use anyhow::Result;
use xshell::Shell;

use crate::destination;
use xtask_adapters::{
    git, process,
    python::{Python, TOOL_TIMEOUT},
};
use xtask_base::exit::{Kind as ExitKind, kind_of, usage};
use xtask_fs::{files, root_dir::RootDir};
use xtask_model::{
    advice,
    backup::Backup,
    check::{Check, CheckId, Checker, Report},
    label::Label,
    manifest::{Kind, MANIFEST_FILE, Manifest, SUMS_FILE, TAG_MANIFEST_FIELD, parse_sums},
    migrations::Graph,
    profile::Tree,
    repository::Repository,
};

mod database;
pub mod stamp;

use database::check_database;

/// Verifies the tree's backup `label`, and stamps it verified when every
/// check passed and no file changed meanwhile (a later rollback or push then
/// need not verify it again).
pub fn verify_label(
    sh: &Shell,
    tree: &Tree,
    label: &Label,
    python: Option<&Path>,
) -> Result<Report> {
    let backup = tree.backup(label);
    // A backup folder that is a link out of the root is refused.
    if let Err(err) = tree.fs.dir(&backup)
        && kind_of(&err) == ExitKind::Unsafe
    {
        return Err(usage(format!("{err:#}")));
    }
    let before = stamp::snapshot(&backup).ok();
    let report = verify(sh, &backup, Some(label), Some(tree), python)?;
    if let (true, Some(before)) = (report.ok(), before) {
        stamp::remember(tree, &backup, before);
    }
    Ok(report)
}

/// Verifies the newest snapshot of `label` in a restic repository: restored
/// into a scratch folder (restic reads and checks every blob of it), every
/// check run on it, then `restic check` on the repository's structure. A
/// restored copy is not the tree's backup: no stamp, and the report names
/// the snapshot, not the scratch folder that is gone when it is read.
pub fn verify_repository(
    sh: &Shell,
    tree: &Tree,
    label: &Label,
    repo: &Repository,
    python: Option<&Path>,
) -> Result<Report> {
    let remote = destination::remote(repo);
    let scratch = files::scratch_dir("tmws-verify-repo")?;
    // Into a 0700 folder of its own: what the snapshot holds (a setuid file
    // its writer put there) is never within another user's reach.
    let restored = scratch.path().join("snapshot");
    xtask_fs::unconfined::private_dir(&restored)?;
    let id = remote.fetch(sh, label, &restored)?;
    let mut report = verify(sh, &restored, Some(label), Some(tree), python)?;
    let started = Instant::now();
    let short = &id[..id.len().min(8)];
    let data = match remote.check(sh) {
        Ok(()) => Check::pass(
            CheckId::RepositoryCheck,
            format!(
                "snapshot {short} of {label} in {repo}: every blob read and checked by its restore, every file hashed above; restic check passed on the repository's structure (restic 0.14 cannot read only this snapshot's packs, so the whole-repository read is left to `restic -r {} check --read-data`)",
                xtask_base::shell_words::quote(&repo.to_string())
            ),
        ),
        Err(err) => Check::fail(CheckId::RepositoryCheck, format!("{err:#}")),
    }
    .since(started);
    let mut checks = std::mem::take(&mut report.checks);
    let scratch_path = restored.display().to_string();
    for check in &mut checks {
        check.detail = check.detail.replace(&scratch_path, &format!("snapshot {short}"));
    }
    checks.push(data);
    let interpreter = report.interpreter.take();
    let mut report = Report::new(Checker::VerifyBackup, format!("{repo} ({label})"), checks);
    report.interpreter = interpreter;
    Ok(report)
}

/// Runs every check on the backup folder `dir`. Errors only when there is no
/// backup to check at all; everything else is a failed check.
/// When `label` is given, the manifest must name it.
pub fn verify(
    sh: &Shell,
    dir: &Path,
    label: Option<&Label>,
    tree: Option<&Tree>,
    python: Option<&Path>,
) -> Result<Report> {
    if !xtask_fs::outside::is_dir(dir) {
        let labels = tree.map(xtask_model::profile::labels).unwrap_or_default();
        return Err(usage(format!(
            "no backup folder at {}{}",
            dir.display(),
            xtask_model::advice::labels_here(&labels)
        )));
    }
    // Every file is read through the file-access layer anchored at the
    // backup: a link that leads out of it is never followed, a FIFO never read.
    let backup_fs = std::sync::Arc::new(RootDir::open(&xtask_fs::outside::canonicalize(dir)?)?);
    let mut checks = vec![Check::pass(CheckId::Folder, dir.display().to_string())];
    let manifest = match Backup::read_manifest(&backup_fs, Path::new(""), label) {
        Ok(manifest) => {
            let detail =
                format!("{} {}, {} files", manifest.format, manifest.label, manifest.files.len());
            checks.push(Check::pass(CheckId::Manifest, detail));
            manifest
        }
        Err(err) => {
            checks.push(Check::fail(CheckId::Manifest, format!("{err:#}")));
            return Ok(Report::new(Checker::VerifyBackup, dir.display().to_string(), checks));
        }
    };
    checks.push(check_paths(dir, &manifest));
    checks.push(check_sums(&backup_fs, &manifest));

    // The hashes (I/O and SHA) and SQLite's integrity check are the slow
    // parts; they run at the same time on two cores.
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
                    files::sha256_open(file, path).ok()
                })
                .collect();
            (hashes, started)
        })
    };
    checks.extend(check_completeness(dir, &manifest));
    let (database_checks, revisions) = check_database(dir, &manifest, &backup_fs);
    checks.extend(database_checks);
    checks.extend(check_migrations(&backup_fs, &manifest, revisions));
    let python = Python::find(sh, tree.map(|t| t.root.as_path()), python);
    let interpreter = python.as_ref().ok().map(Python::describe);
    checks.push(check_python(sh, dir, &manifest, python, &backup_fs));
    if let Some(tree) = tree {
        match git::open(&tree.root) {
            Ok(Some(repo)) => checks.push(check_tag(&repo, &manifest, &backup_fs)),
            Ok(None) => {}
            Err(err) => checks.push(Check::fail(CheckId::GitTag, format!("{err:#}"))),
        }
    }
    let (hashes, started) = hashing.join().expect("the hashing thread does not panic");
    checks.insert(4, check_hashes(&manifest, &hashes).since(started));
    let mut report = Report::new(Checker::VerifyBackup, dir.display().to_string(), checks);
    report.interpreter = interpreter;
    Ok(report)
}

/// Backup paths stay inside the backup, and original paths are relative
/// paths that stay inside the tree: a restore writes where they say. The
/// manifest judges its paths as a plan from a snapshot does; here, a backup
/// path must also lead to no link out of the backup.
fn check_paths(dir: &Path, manifest: &Manifest) -> Check {
    let mut problems = manifest.path_problems();
    let relative = manifest.files.iter().filter(|f| files::check_relative(&f.backup_path).is_ok());
    for f in relative {
        if let Err(err) = files::check_inside(dir, &f.backup_path) {
            problems.push(format!("{err:#}"));
        }
    }
    Check::unless(CheckId::ManifestPaths, &problems, format!("{} paths", manifest.files.len()))
}

/// SHA256SUMS must list exactly the manifest's files, and the manifest's own
/// hash: an edited manifest is caught here.
fn check_sums(backup_fs: &RootDir, manifest: &Manifest) -> Check {
    let read = || -> Result<String> {
        let mut text = String::new();
        backup_fs.open_read(Path::new(SUMS_FILE))?.read_to_string(&mut text)?;
        Ok(text)
    };
    let sums = match read().and_then(|t| parse_sums(&t)) {
        Ok(sums) => sums,
        Err(err) => return Check::fail(CheckId::Sums, format!("{SUMS_FILE}: {err:#}")),
    };
    let mut problems = Vec::new();
    let listed: BTreeMap<&str, &str> = sums.iter().map(|(s, p)| (p.as_str(), s.as_str())).collect();
    for f in &manifest.files {
        if listed.get(f.backup_path.as_str()) != Some(&f.sha256.as_str()) {
            problems.push(format!("{} has another hash in {SUMS_FILE} (or none)", f.backup_path));
        }
    }
    match (manifest_sha(backup_fs), listed.get(MANIFEST_FILE)) {
        (Some(actual), Some(expected)) if actual == *expected => {}
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
    Check::unless(CheckId::Sums, &problems, format!("{} entries", sums.len()))
}

fn check_completeness(dir: &Path, manifest: &Manifest) -> Vec<Check> {
    let listed: BTreeSet<PathBuf> =
        manifest.files.iter().map(|f| PathBuf::from(&f.backup_path)).collect();
    let present: BTreeSet<PathBuf> =
        files::list_files(dir).unwrap_or_default().into_iter().collect();
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
            CheckId::FilesMissing,
            missing.is_empty(),
            if missing.is_empty() {
                format!("{} files listed, all present", listed.len())
            } else {
                format!("missing: {}", missing.join(", "))
            },
        ),
        Check::from(
            CheckId::FilesUnlisted,
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
        // Files outside the tree are counted where a profile names some.
        if kind != Kind::External || expected + found > 0 {
            counts.push(format!("{} {found}/{expected}", kind.name()));
        }
    }
    ok &= manifest.count(Kind::Database) == 1
        && manifest.count(Kind::Migration) == manifest.migration_count;
    checks.push(Check::from(CheckId::FilesCounts, ok, counts.join(", ")));
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
    Check::unless(CheckId::Hashes, &problems, format!("{} files", manifest.files.len()))
}

fn check_migrations(
    backup_fs: &RootDir,
    manifest: &Manifest,
    db_revisions: Option<Vec<String>>,
) -> Vec<Check> {
    let files: Vec<PathBuf> = manifest
        .files_of(Kind::Migration)
        .map(|f| PathBuf::from(&f.backup_path))
        .filter(|p| backup_fs.is_file(p))
        .collect();
    let graph = match Graph::from_files(backup_fs, &files) {
        Ok(graph) => graph,
        Err(err) => return vec![Check::fail(CheckId::MigrationsGraph, format!("{err:#}"))],
    };
    let heads = graph.heads();
    let ok = heads == manifest.migration_heads && graph.len() == manifest.migration_count;
    let mut checks = vec![Check::from(
        CheckId::MigrationsGraph,
        ok,
        format!(
            "{} revisions, heads {}; manifest {} revisions, heads {}",
            graph.len(),
            heads.join(" "),
            manifest.migration_count,
            manifest.migration_heads.join(" ")
        ),
    )];
    checks.push(match db_revisions {
        None => Check::fail(
            CheckId::MigrationsRevision,
            "the database's alembic_version cannot be read",
        ),
        Some(revisions) => {
            let unknown: Vec<&str> =
                revisions.iter().filter(|r| !heads.contains(r)).map(String::as_str).collect();
            let ok = unknown.is_empty() && !revisions.is_empty();
            Check::from(
                CheckId::MigrationsRevision,
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
/// `compile()` never writes bytecode, unlike `python -m py_compile`. The
/// sources go to it on stdin (`path`, length, bytes, each in turn): the
/// interpreter, which may run as the tree's owner, needs no access to the
/// backup's folder (a pulled backup's is private).
fn check_python(
    sh: &Shell,
    dir: &Path,
    manifest: &Manifest,
    python: Result<Python>,
    backup_fs: &RootDir,
) -> Check {
    let files: Vec<&str> = manifest
        .files
        .iter()
        .filter(|f| f.backup_path.ends_with(".py"))
        .filter(|f| backup_fs.is_file(Path::new(&f.backup_path)))
        .map(|f| f.backup_path.as_str())
        .collect();
    let mut input = Vec::new();
    for file in &files {
        match backup_fs.read(Path::new(file)) {
            Ok(source) => {
                input.extend_from_slice(format!("{file}\n{}\n", source.len()).as_bytes());
                input.extend_from_slice(&source);
            }
            Err(err) => return Check::fail(CheckId::PythonCompile, format!("{err:#}")),
        }
    }
    let python = match python {
        Ok(python) => python,
        Err(err) => {
            return Check::fail(
                CheckId::PythonCompile,
                format!("no Python to compile with: {err:#}"),
            );
        }
    };
    const CODE: &str = "import sys\nbad = 0\nsources = sys.stdin.buffer\nwhile True:\n    name = sources.readline()\n    if not name:\n        break\n    path = name.decode('utf-8', 'replace').rstrip('\\n')\n    source = sources.read(int(sources.readline()))\n    try:\n        compile(source, path, 'exec', dont_inherit=True)\n    except (SyntaxError, ValueError) as error:\n        bad += 1\n        print(f'{path}:{getattr(error, \"lineno\", \"?\")}: {error.__class__.__name__}: {getattr(error, \"msg\", error)}')\nsys.exit(1 if bad else 0)\n";
    let exe = python.exe("python");
    let cmd = sh.cmd(exe).env("PYTHONDONTWRITEBYTECODE", "1").arg("-c").arg(CODE);
    // Compiling reads; the interpreter may write nothing but its scratch.
    let confined = match process::Confinement::with_network(&[], xtask_fs::sys::Net::Nothing) {
        Ok(confined) => confined,
        Err(err) => return Check::fail(CheckId::PythonCompile, format!("{err:#}")),
    };
    match process::run_with_input(cmd.quiet(), input, TOOL_TIMEOUT, Some(&confined)) {
        Ok(out) if out.success() => {
            Check::pass(CheckId::PythonCompile, format!("{} files", files.len()))
        }
        Ok(out) => Check::fail(CheckId::PythonCompile, relative_to(dir, &out.tail(10))),
        Err(err) => Check::fail(CheckId::PythonCompile, format!("{err:#}")),
    }
}

fn relative_to(dir: &Path, text: &str) -> String {
    text.replace(&format!("{}/", dir.display()), "")
}

/// The sha256 of the backup's manifest file, read through the layer.
fn manifest_sha(backup_fs: &RootDir) -> Option<String> {
    let path = Path::new(MANIFEST_FILE);
    let file = backup_fs.open_read(path).ok()?;
    files::sha256_open(file, path).ok().map(|(sha, _)| sha)
}

/// The backup's tag: the one the manifest names, else one named like the
/// label (a backup taken with `--no-tag` and renamed over the pre-deploy
/// one must still match what that tag recorded).
fn check_tag(repo: &git2::Repository, manifest: &Manifest, backup_fs: &RootDir) -> Check {
    let tag = manifest.git_tag.clone().unwrap_or_else(|| manifest.label.to_string());
    let Some(at) = git::tag_commit(repo, &tag) else {
        return match (&manifest.git_tag, &manifest.git_commit) {
            (None, _) => Check::pass(
                CheckId::GitTag,
                format!(
                    "the backup was taken without a tag (--no-tag) and no tag {tag} exists: nothing to check"
                ),
            ),
            // A backup copied to another checkout: the tag is needed only by
            // what uses git (the git and complete rollbacks refuse without it).
            (Some(_), Some(expected)) => {
                Check::not_applicable(CheckId::GitTag, advice::missing_tag(&tag, expected))
            }
            (Some(_), None) => Check::fail(
                CheckId::GitTag,
                "the manifest records no git commit, but the root is a git repository",
            ),
        };
    };
    match &manifest.git_commit {
        Some(expected) if at.to_string() != *expected => {
            return Check::fail(CheckId::GitTag, format!("tag {tag} at {at}, manifest {expected}"));
        }
        Some(_) => {}
        None => {
            return Check::fail(
                CheckId::GitTag,
                format!("tag {tag} exists at {at}, but the manifest records no git commit"),
            );
        }
    }
    // The tag recorded the manifest's hash when the backup was taken: a
    // manifest rewritten since (with a matching SHA256SUMS) shows here.
    let recorded = git::tag_message(repo, &tag).and_then(|m| {
        m.lines().find_map(|l| l.strip_prefix(TAG_MANIFEST_FIELD)).map(|v| v.trim().to_string())
    });
    let actual = manifest_sha(backup_fs);
    match recorded {
        Some(recorded) if Some(&recorded) != actual.as_ref() => Check::fail(
            CheckId::GitTag,
            format!(
                "{MANIFEST_FILE} was rewritten after the backup: tag {tag} recorded sha256 {recorded}, the file has {}",
                actual.unwrap_or_else(|| "none".into())
            ),
        ),
        Some(_) => Check::pass(
            CheckId::GitTag,
            format!("tag {tag} at {at}; it records the manifest's sha256, unchanged"),
        ),
        None => Check::pass(
            CheckId::GitTag,
            format!("tag {tag} at {at} (a tag without the manifest's hash)"),
        ),
    }
}
