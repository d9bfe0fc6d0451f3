//! The checks of post-check, one function each. Each returns a `Check`
//! that fails with the reason when it cannot run.
use std::{collections::BTreeSet, fs, path::Path};

use xshell::Shell;

use super::Expected;
use crate::{
    adapters::{git, process, python::Python, sqlite},
    fs::files,
    model::label::Label,
    model::{
        advice,
        check::{Check, check_ids},
        manifest::{Kind, table_differences},
        migrations::revision_files,
        profile::Tree,
    },
};

/// What every quick check is given.
pub(super) struct Ctx<'a> {
    pub sh: &'a Shell,
    pub tree: &'a Tree,
    pub db: std::path::PathBuf,
    pub expected: &'a Expected,
    pub python: Result<&'a Python, String>,
    pub label: &'a Label,
    /// `alembic current` and `alembic history`, run together once for the
    /// two checks that read them.
    pub alembic: std::cell::OnceCell<Result<Vec<process::Output>, String>>,
}

impl Ctx<'_> {
    /// alembic's answer to `current` (0) or `history` (1).
    fn alembic(&self, which: usize) -> Result<&process::Output, String> {
        let outs = self.alembic.get_or_init(|| {
            let python = self.python.clone().map_err(|e| format!("no Python: {e}"))?;
            let commands: [crate::adapters::python::AlembicCommand<'_>; 2] =
                [(&["current"], &[]), (&["history"], &[])];
            python.alembic_each(self.sh, self.tree, &commands).map_err(|e| format!("{e:#}"))
        });
        outs.as_ref().map(|outs| &outs[which]).map_err(Clone::clone)
    }
}

/// How a check runs: quickly, in the main thread, or in the thread of its
/// slow group (pytest; the server), which gives several checks at once.
pub(super) enum Run {
    Quick(fn(&Ctx) -> Check),
    Tests,
    Server,
}

check_ids! {
    /// The checks of post-check, in report order.
    PostCheck {
        RollbackUnfinished = "rollback.unfinished", "no rollback is unfinished";
        DatabaseFile = "database.file", "database file exists";
        DatabaseTables = "database.tables", "tables equal the backup's";
        DatabaseRevision = "database.revision", "alembic_version is the expected revision";
        DatabaseIntegrity = "database.integrity", "PRAGMA integrity_check is ok";
        MigrationsCurrent = "migrations.current", "alembic current agrees with the database";
        MigrationsHistory = "migrations.history", "alembic history runs";
        MigrationsCount = "migrations.count", "revision files equal the backup's count";
        Imports = "imports", "critical modules import and compile";
        TestsUnit = "tests.unit", "unit tests pass";
        TestsIntegration = "tests.integration", "integration tests pass";
        ServerStart = "server.start", "server starts without errors";
        ServerHealth = "server.health", "health endpoint responds";
        GitClean = "git.clean", "git state is clean";
        GitHead = "git.head", "HEAD is on the rollback branch or the tag";
        FilesRestored = "files.restored", "config and critical files equal the backup's";
        Forensics = "forensics", "a forensics bundle exists";
    }
}

/// Every check with how it runs, in report order. `--only`, `--skip`, the
/// titles and the checklist all come from here and `PostCheck`.
pub(super) const CHECKS: [(PostCheck, Run); 17] = [
    (PostCheck::RollbackUnfinished, Run::Quick(|c| rollback_finished(c.tree))),
    (PostCheck::DatabaseFile, Run::Quick(|c| database_file(c.tree))),
    (PostCheck::DatabaseTables, Run::Quick(|c| database_tables(&c.db, c.expected))),
    (PostCheck::DatabaseRevision, Run::Quick(|c| database_revision(&c.db, c.expected))),
    (PostCheck::DatabaseIntegrity, Run::Quick(|c| database_integrity(&c.db))),
    (PostCheck::MigrationsCurrent, Run::Quick(|c| alembic_current(c.alembic(0), &c.db))),
    (PostCheck::MigrationsHistory, Run::Quick(|c| alembic_history(c.alembic(1)))),
    (PostCheck::MigrationsCount, Run::Quick(|c| migrations_count(c.tree, c.expected))),
    (PostCheck::Imports, Run::Quick(|c| imports(c.sh, c.python.clone(), c.tree))),
    (PostCheck::TestsUnit, Run::Tests),
    (PostCheck::TestsIntegration, Run::Tests),
    (PostCheck::ServerStart, Run::Server),
    (PostCheck::ServerHealth, Run::Server),
    (PostCheck::GitClean, Run::Quick(|c| git_clean(c.tree, c.expected))),
    (PostCheck::GitHead, Run::Quick(|c| git_head(c.tree, c.label, c.expected))),
    (PostCheck::FilesRestored, Run::Quick(|c| files_restored(c.tree, c.expected))),
    (PostCheck::Forensics, Run::Quick(|c| forensics(c.tree))),
];

/// A rollback journal means a run that was interrupted or failed: the tree
/// is between two states, whatever the other checks find.
pub(super) fn rollback_finished(tree: &Tree) -> Check {
    let id = PostCheck::RollbackUnfinished;
    match crate::model::journal::Journal::<serde_json::Value>::load(tree) {
        Ok(None) => Check::pass(id, "no rollback journal"),
        Ok(Some(j)) => Check::fail(
            id,
            format!(
                "rollback --scenario {} (run {}) stopped at step {} ({:?}): `{}` finishes it, `{}` closes it",
                j.scenario,
                j.run,
                j.stopped_at() + 1,
                j.status,
                advice::resume(j.scenario, &tree.root),
                advice::abandon(j.scenario, &tree.root),
            ),
        ),
        Err(err) => Check::fail(id, format!("the rollback journal cannot be read: {err:#}")),
    }
}

pub(super) fn database_file(tree: &Tree) -> Check {
    match fs::metadata(tree.database()) {
        Ok(m) => Check::pass(
            PostCheck::DatabaseFile,
            format!("{} ({} bytes)", tree.profile.database, m.len()),
        ),
        Err(err) => {
            Check::fail(PostCheck::DatabaseFile, format!("{}: {err}", tree.profile.database))
        }
    }
}

fn open(db: &Path) -> Result<rusqlite::Connection, String> {
    // Read without leaving a -wal or -shm beside a closed database.
    sqlite::open_to_read(db).map_err(|e| format!("{e:#}"))
}

pub(super) fn database_tables(db: &Path, expected: &Expected) -> Check {
    let Some((_, manifest)) = &expected.manifest else {
        return expected.no_backup(PostCheck::DatabaseTables);
    };
    let names = open(db).and_then(|c| sqlite::table_names(&c).map_err(|e| format!("{e:#}")));
    match names {
        Ok(names) => {
            let actual: Vec<sqlite::TableCount> =
                names.iter().map(|n| sqlite::TableCount { name: n.clone(), rows: 0 }).collect();
            let wanted: Vec<sqlite::TableCount> = manifest
                .tables
                .iter()
                .map(|t| sqlite::TableCount { name: t.name.clone(), rows: 0 })
                .collect();
            let differences = table_differences(&actual, &wanted);
            let ok = format!("{} tables: {}", names.len(), names.join(", "));
            Check::unless(PostCheck::DatabaseTables, &differences, ok)
        }
        Err(err) => Check::fail(PostCheck::DatabaseTables, err),
    }
}

pub(super) fn database_revision(db: &Path, expected: &Expected) -> Check {
    let Some(revision) = &expected.revision else {
        return Check::fail(PostCheck::DatabaseRevision, expected.missing.clone());
    };
    match open(db).and_then(|c| sqlite::alembic_revisions(&c).map_err(|e| format!("{e:#}"))) {
        Ok(revs) => Check::from(
            PostCheck::DatabaseRevision,
            revs == [revision.clone()],
            format!("{}, expected {revision}", revs.join(" ")),
        ),
        Err(err) => Check::fail(PostCheck::DatabaseRevision, err),
    }
}

pub(super) fn database_integrity(db: &Path) -> Check {
    match open(db).and_then(|c| sqlite::integrity_check(&c).map_err(|e| format!("{e:#}"))) {
        Ok(rows) if rows == ["ok"] => Check::pass(PostCheck::DatabaseIntegrity, "ok"),
        Ok(rows) => Check::fail(
            PostCheck::DatabaseIntegrity,
            rows.into_iter().take(5).collect::<Vec<_>>().join("\n"),
        ),
        Err(err) => Check::fail(PostCheck::DatabaseIntegrity, err),
    }
}

pub(super) fn alembic_current(out: Result<&process::Output, String>, db: &Path) -> Check {
    let out = match out {
        Ok(out) => out,
        Err(err) => return Check::fail(PostCheck::MigrationsCurrent, err),
    };
    if !out.success() {
        return Check::fail(
            PostCheck::MigrationsCurrent,
            format!("alembic current failed ({}):\n{}", out.describe_status(), out.tail(6)),
        );
    }
    let shown: BTreeSet<String> =
        out.stdout.lines().filter_map(|l| l.split_whitespace().next()).map(String::from).collect();
    let stored: BTreeSet<String> = open(db)
        .and_then(|c| sqlite::alembic_revisions(&c).map_err(|e| format!("{e:#}")))
        .unwrap_or_default()
        .into_iter()
        .collect();
    Check::from(
        PostCheck::MigrationsCurrent,
        shown == stored && !shown.is_empty(),
        format!("alembic current: {}", out.stdout.trim()),
    )
}

pub(super) fn alembic_history(out: Result<&process::Output, String>) -> Check {
    match out {
        Ok(out) if out.success() => Check::pass(
            PostCheck::MigrationsHistory,
            format!("{} revisions listed", out.stdout.lines().count()),
        ),
        Ok(out) => Check::fail(
            PostCheck::MigrationsHistory,
            format!("alembic history failed ({}):\n{}", out.describe_status(), out.tail(6)),
        ),
        Err(err) => Check::fail(PostCheck::MigrationsHistory, err),
    }
}

pub(super) fn migrations_count(tree: &Tree, expected: &Expected) -> Check {
    let Some((_, manifest)) = &expected.manifest else {
        return expected.no_backup(PostCheck::MigrationsCount);
    };
    match revision_files(&tree.migrations()) {
        Ok(files) => Check::from(
            PostCheck::MigrationsCount,
            files.len() == manifest.migration_count,
            format!(
                "{} revision files (not counting __pycache__ or other files), backup {}",
                files.len(),
                manifest.migration_count
            ),
        ),
        Err(err) => Check::fail(PostCheck::MigrationsCount, format!("{err:#}")),
    }
}

/// The import check on its own, for `diagnose`.
pub fn imports_check(sh: &Shell, python: &Python, tree: &Tree) -> Check {
    imports(sh, Ok(python), tree)
}

/// Imports each critical module and compiles the critical files in one
/// interpreter, without writing bytecode into the tree.
pub(super) fn imports(sh: &Shell, python: Result<&Python, String>, tree: &Tree) -> Check {
    let python = match python {
        Ok(p) => p,
        Err(e) => return Check::fail(PostCheck::Imports, format!("no Python: {e}")),
    };
    const CODE: &str = "import importlib, sys, traceback\nbad = 0\nmodules, files = sys.argv[1].split(','), sys.argv[2:]\nfor name in filter(None, modules):\n    try:\n        importlib.import_module(name)\n    except BaseException as error:\n        bad += 1\n        print(f'{name}: {error.__class__.__name__}: {error}')\nfor path in files:\n    try:\n        compile(open(path, 'rb').read(), path, 'exec', dont_inherit=True)\n    except SyntaxError as error:\n        bad += 1\n        print(f'{path}:{error.lineno}: SyntaxError: {error.msg}')\nsys.exit(1 if bad else 0)\n";
    let modules = tree.profile.critical_modules.join(",");
    let files: Vec<&String> =
        tree.profile.critical_files.iter().filter(|f| f.ends_with(".py")).collect();
    let _d = sh.push_dir(&tree.root);
    let cmd = python.tool(sh, tree, "python").args(["-c", CODE]).arg(&modules).args(files);
    match process::run(cmd, crate::adapters::python::TOOL_TIMEOUT) {
        Ok(out) if out.success() => Check::pass(
            PostCheck::Imports,
            format!(
                "{} modules import: {}",
                tree.profile.critical_modules.len(),
                tree.profile.critical_modules.join(", ")
            ),
        ),
        Ok(out) => Check::fail(PostCheck::Imports, out.tail(8)),
        Err(err) => Check::fail(PostCheck::Imports, format!("{err:#}")),
    }
}

/// Clean, or dirty exactly as the tree was when the backup was taken (the
/// manifest records those uncommitted changes): then it says so.
pub(super) fn git_clean(tree: &Tree, expected: &Expected) -> Check {
    let repo = match git::open(&tree.root) {
        Ok(repo) => repo,
        Err(err) => return Check::fail(PostCheck::GitClean, format!("{err:#}")),
    };
    let Some(repo) = repo else {
        return Check::fail(
            PostCheck::GitClean,
            format!("{} is not a git repository", tree.root.display()),
        );
    };
    match git::dirty_paths(&repo) {
        Ok(paths) if paths.is_empty() => {
            Check::pass(PostCheck::GitClean, "git status: nothing to commit, working tree clean")
        }
        Ok(paths) => {
            let recorded = expected.manifest.as_ref().map(|(_, m)| &m.worktree);
            let as_backed_up = |path: &String| {
                recorded.is_some_and(|changes| {
                    changes.iter().any(|w| {
                        &w.path == path
                            && w.sha256 == files::sha256_file(&tree.path(path)).ok().map(|(s, _)| s)
                    })
                })
            };
            if paths.iter().all(as_backed_up) {
                return Check::pass(
                    PostCheck::GitClean,
                    format!(
                        "the only changes are the ones uncommitted when the backup was taken (its manifest records them): {}",
                        paths.join(", ")
                    ),
                );
            }
            Check::fail(
                PostCheck::GitClean,
                format!("{} changed or untracked: {}", paths.len(), paths.join(", ")),
            )
        }
        Err(err) => Check::fail(PostCheck::GitClean, format!("{err:#}")),
    }
}

pub(super) fn git_head(tree: &Tree, label: &Label, expected: &Expected) -> Check {
    let repo = match git::open(&tree.root) {
        Ok(repo) => repo,
        Err(err) => return Check::fail(PostCheck::GitHead, format!("{err:#}")),
    };
    let Some(repo) = repo else {
        return Check::fail(
            PostCheck::GitHead,
            format!("{} is not a git repository", tree.root.display()),
        );
    };
    let (commit, branch) = git::head(&repo);
    let rollback_branch = format!("rollback-{label}");
    let tag = git::tag_commit(&repo, label).map(|o| o.to_string());
    let has_rollback_branch = repo.find_branch(&rollback_branch, git2::BranchType::Local).is_ok();
    let at = format!(
        "HEAD {} on {}",
        commit.as_deref().unwrap_or("none"),
        branch.as_deref().unwrap_or("a detached HEAD")
    );
    // A detached HEAD is the backup's commit, or wrong.
    let backup_commit = expected.manifest.as_ref().and_then(|(_, m)| m.git_commit.clone());
    if branch.is_none()
        && let Some(want) = &backup_commit
        && commit.as_ref() != Some(want)
    {
        return Check::fail(PostCheck::GitHead, format!("{at}, not the backup's commit {want}"));
    }
    if !has_rollback_branch {
        return Check::pass(
            PostCheck::GitHead,
            format!("no rollback branch {rollback_branch}; {at}"),
        );
    }
    let ok =
        branch.as_deref() == Some(rollback_branch.as_str()) || (tag.is_some() && commit == tag);
    Check::from(PostCheck::GitHead, ok, at)
}

pub(super) fn files_restored(tree: &Tree, expected: &Expected) -> Check {
    let Some((_, manifest)) = &expected.manifest else {
        return expected.no_backup(PostCheck::FilesRestored);
    };
    let mut differ = Vec::new();
    let entries: Vec<_> =
        manifest.files.iter().filter(|f| matches!(f.kind, Kind::Config | Kind::Critical)).collect();
    for entry in &entries {
        match files::sha256_file(&tree.path(&entry.source_path)) {
            Ok((sha, _)) if sha == entry.sha256 => {}
            Ok(_) => differ.push(format!("{} differs from the backup", entry.source_path)),
            Err(_) => differ.push(format!("{} is missing", entry.source_path)),
        }
    }
    let mut absent = 0;
    for path in manifest.absent.iter().map(|a| a.source_path.as_str()) {
        if tree.fs.kind(&tree.path(path)).ok().flatten().is_some() {
            differ.push(format!("{path} exists, but it was absent at backup time"));
        } else {
            absent += 1;
        }
    }
    let mut ok = format!("{} files equal the backup's hashes", entries.len());
    if absent > 0 {
        ok.push_str(&format!("; {absent} absent, as at backup time"));
    }
    Check::unless(PostCheck::FilesRestored, &differ, ok)
}

pub(super) fn forensics(tree: &Tree) -> Check {
    let bundles: Vec<String> = fs::read_dir(tree.forensics_dir())
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("FAILURE_REPORT.md").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if bundles.is_empty() {
        Check::fail(
            PostCheck::Forensics,
            "no bundle under forensics/ (cargo xtask forensics writes one)",
        )
    } else {
        Check::pass(
            PostCheck::Forensics,
            format!(
                "{} bundle(s), latest {}",
                bundles.len(),
                bundles.iter().max().cloned().unwrap_or_default()
            ),
        )
    }
}
