//! The checks of post-check, one function each. Each returns its verdict,
//! or an error when it cannot run: the table's runner turns that error into
//! the check's failure, with the reason.
use std::collections::BTreeSet;

use anyhow::{Context, Result, anyhow};

use super::Expected;
use xtask_adapters::{
    git, process,
    python::{OnFirstUse, Session},
    sqlite,
};
use xtask_model::label::Label;
use xtask_model::{
    advice,
    check::{Check, CheckId},
    manifest::{Kind, table_differences},
    migrations::revisions_in,
    profile::Tree,
    schema::Schema,
};

/// What every quick check is given.
pub(super) struct Ctx<'a> {
    pub tree: &'a Tree,
    /// Where the tree's programs run: a scratch copy of it, or, with
    /// `--live`, the tree itself.
    pub programs: &'a Tree,
    pub expected: &'a Expected,
    /// What is judged: a tree never rolled back has no failure to keep.
    pub judging: &'a super::Judging,
    pub label: &'a Label,
    /// `alembic current` and `alembic history`, asked once for the two
    /// checks that read them.
    pub alembic: std::cell::OnceCell<Result<Vec<process::Output>>>,
    /// The Python helper that answers every quick check's question, started
    /// by the first check that has one: confined to where the programs run.
    pub helper: OnFirstUse<'a>,
}

impl Ctx<'_> {
    /// alembic's answer to `current` (0) or `history` (1).
    fn alembic(&self, which: usize) -> Result<&process::Output> {
        let outs = self.alembic.get_or_init(|| {
            self.ask(|session| {
                let current = session.alembic(&["current"])?.output;
                let history = session.alembic(&["history"])?.output;
                Ok(vec![current, history])
            })
        });
        outs.as_ref().map(|outs| &outs[which]).map_err(|e| anyhow!("{e:#}"))
    }

    fn ask<T>(&self, question: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        self.helper.ask(question)
    }
}

/// How a check runs: quickly, in the main thread, or in the thread of its
/// slow group (pytest; the server), which gives several checks at once.
pub(super) enum Run {
    Quick(fn(&Ctx) -> Result<Check>),
    Tests,
    Server,
}

/// The quick checks that run a program of the tree, on a scratch copy.
pub(super) const QUICK_PROGRAMS: [CheckId; 3] =
    [CheckId::MigrationsCurrent, CheckId::MigrationsHistory, CheckId::Imports];

/// Every check that runs a program of the tree.
pub(super) const RUN_PROGRAMS: [CheckId; 8] = [
    QUICK_PROGRAMS[0],
    QUICK_PROGRAMS[1],
    QUICK_PROGRAMS[2],
    CheckId::TestsUnit,
    CheckId::TestsIntegration,
    CheckId::ServerStart,
    CheckId::ServerHealth,
    CheckId::ServerRestart,
];

/// Post-check's checks, in report order.
pub(super) fn ids() -> impl Iterator<Item = CheckId> {
    CHECKS.iter().map(|(id, _)| *id)
}

/// Every check of post-check with how it runs, in report order. `--only`,
/// `--skip`, the titles and the checklist all come from here.
pub(super) const CHECKS: [(CheckId, Run); 19] = [
    (CheckId::RollbackUnfinished, Run::Quick(|c| rollback_finished(c.tree))),
    (CheckId::DatabaseFile, Run::Quick(|c| database_file(c.tree))),
    (CheckId::DatabaseTables, Run::Quick(|c| database_tables(c.tree, c.expected))),
    (CheckId::DatabaseRevision, Run::Quick(|c| database_revision(c.tree, c.expected))),
    (CheckId::DatabaseIntegrity, Run::Quick(|c| database_integrity(c.tree))),
    (CheckId::MigrationsCurrent, Run::Quick(|c| alembic_current(c.alembic(0)?, c.tree))),
    (CheckId::MigrationsHistory, Run::Quick(|c| alembic_history(c.alembic(1)?, c.tree))),
    (CheckId::MigrationsCount, Run::Quick(|c| migrations_count(c.tree, c.expected))),
    (CheckId::Imports, Run::Quick(|c| c.ask(|session| imports(session, c.programs)))),
    (CheckId::TestsUnit, Run::Tests),
    (CheckId::TestsIntegration, Run::Tests),
    (CheckId::ServerStart, Run::Server),
    (CheckId::ServerHealth, Run::Server),
    (CheckId::ServerRestart, Run::Server),
    (CheckId::GitClean, Run::Quick(|c| git_clean(c.tree, c.expected))),
    (CheckId::GitHead, Run::Quick(|c| git_head(c.tree, c.label, c.expected))),
    (CheckId::FilesRestored, Run::Quick(|c| files_restored(c.tree, c.expected))),
    (CheckId::FilesExternal, Run::Quick(|c| files_external(c.tree, c.expected))),
    (CheckId::Forensics, Run::Quick(|c| forensics(c.tree, c.judging))),
];

/// A rollback journal means a run that was interrupted or failed: the tree
/// is between two states, whatever the other checks find.
pub(super) fn rollback_finished(tree: &Tree) -> Result<Check> {
    let id = CheckId::RollbackUnfinished;
    let journal = xtask_model::journal::Journal::<crate::rollback::Step>::load(tree)
        .context("the rollback journal cannot be read")?;
    Ok(match journal {
        None => Check::pass(id, "no rollback journal"),
        Some(j) => Check::fail(
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
    })
}

pub(super) fn database_file(tree: &Tree) -> Result<Check> {
    let meta =
        tree.fs.open_read(&tree.database())?.metadata().context(tree.profile.database.clone())?;
    let detail = format!("{} ({})", tree.profile.database, xtask_base::units::size(meta.len()));
    Ok(Check::pass(CheckId::DatabaseFile, detail))
}

/// Reads without leaving a -wal or -shm beside a closed database, and never
/// through a link, a FIFO or a hot journal.
fn open(tree: &Tree) -> Result<rusqlite::Connection> {
    sqlite::open_tree_database(tree)
}

/// The tables, and with a manifest that records it, every table's columns
/// and indexes: a leftover column is not a rollback.
pub(super) fn database_tables(tree: &Tree, expected: &Expected) -> Result<Check> {
    let Some((_, manifest)) = &expected.manifest else {
        return Ok(expected.no_backup(CheckId::DatabaseTables));
    };
    let conn = open(tree)?;
    let names = sqlite::table_names(&conn)?;
    let named = |name: &String| sqlite::TableCount { name: name.clone(), rows: 0 };
    let actual: Vec<_> = names.iter().map(named).collect();
    let wanted: Vec<_> = manifest.tables.iter().map(|t| named(&t.name)).collect();
    let mut differences = table_differences(&actual, &wanted);
    let mut ok = format!("{} tables: {}", names.len(), names.join(", "));
    if !manifest.schema.is_empty() {
        differences.extend(Schema::differences(&sqlite::schema(&conn)?, &manifest.schema));
        differences.dedup();
        ok = format!("{ok}; their columns and indexes equal the backup's");
    }
    Ok(Check::unless(CheckId::DatabaseTables, &differences, ok))
}

pub(super) fn database_revision(tree: &Tree, expected: &Expected) -> Result<Check> {
    let Some(revision) = &expected.revision else {
        return Ok(Check::fail(CheckId::DatabaseRevision, expected.missing.clone()));
    };
    let revs = sqlite::alembic_revisions(&open(tree)?)?;
    Ok(Check::from(
        CheckId::DatabaseRevision,
        revs == [revision.clone()],
        format!("{}, expected {revision}", revs.join(" ")),
    ))
}

pub(super) fn database_integrity(tree: &Tree) -> Result<Check> {
    let rows = sqlite::integrity_check(&open(tree)?)?;
    Ok(match rows.as_slice() {
        [ok] if ok == "ok" => Check::pass(CheckId::DatabaseIntegrity, "ok"),
        _ => Check::fail(CheckId::DatabaseIntegrity, rows[..rows.len().min(5)].join("\n")),
    })
}

pub(super) fn alembic_current(out: &process::Output, tree: &Tree) -> Result<Check> {
    if !out.success() {
        let why = format!("alembic current failed ({}):\n{}", out.describe_status(), out.tail(6));
        return Ok(Check::fail(CheckId::MigrationsCurrent, why));
    }
    let shown: BTreeSet<String> = revisions_in(&out.stdout, &tree.graph()?).into_iter().collect();
    let stored: BTreeSet<String> = sqlite::alembic_revisions(&open(tree)?)?.into_iter().collect();
    Ok(Check::from(
        CheckId::MigrationsCurrent,
        shown == stored && !shown.is_empty(),
        format!("alembic current: {}", out.stdout.trim()),
    ))
}

/// alembic history runs and lists the revisions the tree's migrations
/// define: a listing of none (another script location than the profile's,
/// version_locations it does not read) is a failure, not "0 listed".
pub(super) fn alembic_history(out: &process::Output, tree: &Tree) -> Result<Check> {
    let id = CheckId::MigrationsHistory;
    if !out.success() {
        let why = format!("alembic history failed ({}):\n{}", out.describe_status(), out.tail(6));
        return Ok(Check::fail(id, why));
    }
    let graph = tree.graph()?;
    let listed = graph.revisions.keys().filter(|r| out.stdout.contains(r.as_str())).count();
    let defined = graph.revisions.len();
    Ok(match listed == defined {
        true => Check::pass(id, format!("{listed} revisions listed")),
        false => Check::fail(
            id,
            format!(
                "alembic history lists {listed} of the {defined} revisions the files of {} define: alembic reads other migrations than the profile's (script_location, version_locations)\n{}",
                tree.profile.migrations,
                out.tail(6)
            ),
        ),
    })
}

pub(super) fn migrations_count(tree: &Tree, expected: &Expected) -> Result<Check> {
    let Some((_, manifest)) = &expected.manifest else {
        return Ok(expected.no_backup(CheckId::MigrationsCount));
    };
    let files = tree.revision_files()?;
    Ok(Check::from(
        CheckId::MigrationsCount,
        files.len() == manifest.migration_count,
        format!(
            "{} revision files (not counting __pycache__ or other files), backup {}",
            files.len(),
            manifest.migration_count
        ),
    ))
}

/// Each critical module imports and each critical file compiles, in one
/// interpreter, without writing bytecode into the tree.
pub(super) fn imports(session: &mut Session, tree: &Tree) -> Result<Check> {
    let out = session.import_check(tree)?;
    let modules = &tree.profile.critical_modules;
    Ok(if out.success() {
        let detail = format!("{} modules import: {}", modules.len(), modules.join(", "));
        Check::pass(CheckId::Imports, detail)
    } else {
        Check::fail(CheckId::Imports, out.tail(8))
    })
}

/// Clean, or dirty only with the tree's own data and the changes the
/// backup recorded (judged as diagnose judges it: `crate::git_clean`).
pub(super) fn git_clean(tree: &Tree, expected: &Expected) -> Result<Check> {
    let repo = git::open(&tree.root)?
        .with_context(|| format!("{} is not a git repository", tree.root.display()))?;
    let manifest = expected.manifest.as_ref().map(|(_, m)| m);
    Ok(crate::git_clean::judge(tree, &repo, manifest, None))
}

pub(super) fn git_head(tree: &Tree, label: &Label, expected: &Expected) -> Result<Check> {
    let repo = git::open(&tree.root)?
        .with_context(|| format!("{} is not a git repository", tree.root.display()))?;
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
        return Ok(Check::fail(CheckId::GitHead, format!("{at}, not the backup's commit {want}")));
    }
    if !has_rollback_branch {
        return Ok(Check::pass(
            CheckId::GitHead,
            format!("no rollback branch {rollback_branch}; {at}"),
        ));
    }
    let ok =
        branch.as_deref() == Some(rollback_branch.as_str()) || (tag.is_some() && commit == tag);
    Ok(Check::from(CheckId::GitHead, ok, at))
}

pub(super) fn files_restored(tree: &Tree, expected: &Expected) -> Result<Check> {
    let Some((_, manifest)) = &expected.manifest else {
        return Ok(expected.no_backup(CheckId::FilesRestored));
    };
    let mut differ = Vec::new();
    // After a files rollback, what it wrote; otherwise every config and
    // critical file.
    let (wrote, kept) = match &expected.files {
        Some((wrote, kept)) => (Some(wrote), kept.as_slice()),
        None => (None, &[][..]),
    };
    let judged = |path: &String| wrote.is_none_or(|wrote| wrote.contains(path));
    let entries: Vec<_> = manifest
        .files
        .iter()
        .filter(|f| matches!(f.kind, Kind::Config | Kind::Critical))
        .filter(|f| judged(&f.source_path) && !kept.contains(&f.source_path))
        .collect();
    for entry in &entries {
        match tree.fs.sha256(&tree.path(&entry.source_path)) {
            Ok((sha, _)) if sha == entry.sha256 => {}
            Ok(_) => differ.push(format!("{} differs from the backup", entry.source_path)),
            Err(_) => differ.push(format!("{} is missing", entry.source_path)),
        }
    }
    let mut absent = 0;
    for path in manifest.absent.iter().map(|a| &a.source_path) {
        if kept.contains(path) || !judged(path) {
            continue;
        }
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
    if wrote.is_some() {
        ok.push_str("; the files the last rollback (--scenario files) wrote");
    }
    if !kept.is_empty() {
        ok.push_str(&format!(
            "; {} kept as the deploy's commits left them by the last rollback (--scenario files)",
            kept.len()
        ));
    }
    Ok(Check::unless(CheckId::FilesRestored, &differ, ok))
}

/// Each file outside the tree (`external_files`) equals the backup's copy
/// (sha256), read through a handle on its folder, never through a link:
/// those the last rollback restored (`--external`), or every one the
/// backup holds when no rollback is judged. Not applicable when the
/// profile names none, or the last rollback left them as they were.
pub(super) fn files_external(tree: &Tree, expected: &Expected) -> Result<Check> {
    let id = CheckId::FilesExternal;
    let named = &tree.profile.external_files;
    if named.is_empty() {
        let why = "the profile names no file outside the tree (external_files)";
        return Ok(Check::not_applicable(id, why));
    }
    let Some((_, manifest)) = &expected.manifest else {
        return Ok(expected.no_backup(id));
    };
    let judged: Vec<_> = match &expected.external {
        super::External::LeftAsFound(scenario) => {
            return Ok(Check::not_applicable(
                id,
                format!(
                    "the last rollback (--scenario {scenario}) left the files outside the tree as they were (`{}` restores them)",
                    advice::restore_external(&tree.root)
                ),
            ));
        }
        super::External::Restored(paths) => {
            manifest.files_of(Kind::External).filter(|f| paths.contains(&f.source_path)).collect()
        }
        super::External::All => {
            manifest.files_of(Kind::External).filter(|f| named.contains(&f.source_path)).collect()
        }
    };
    if judged.is_empty() {
        let why = format!("the backup {} holds no file outside the tree", expected.label);
        return Ok(Check::not_applicable(id, why));
    }
    let mut differ = Vec::new();
    for entry in &judged {
        let source = &entry.source_path;
        match crate::external::sha256(source) {
            Ok(Some(sha)) if sha == entry.sha256 => {}
            Ok(Some(_)) => differ.push(format!("{source} differs from the backup's copy")),
            Ok(None) => differ.push(format!("{source} is missing")),
            Err(err) => differ.push(format!("{source}: {err:#}")),
        }
    }
    let paths: Vec<&str> = judged.iter().map(|f| f.source_path.as_str()).collect();
    let mut ok = format!("{} equal the backup's hashes", paths.join(", "));
    if matches!(expected.external, super::External::Restored(_)) {
        ok.push_str("; restored by the last rollback (--external)");
    }
    Ok(Check::unless(id, &differ, ok))
}

/// The folders of forensics/ that hold a file of that name.
pub(super) fn bundles_with(tree: &Tree, file: &str) -> Vec<String> {
    let folders = tree.fs.list(&tree.forensics_dir()).unwrap_or_default();
    let holds =
        |name: &std::ffi::OsString| tree.fs.is_file(&tree.forensics_dir().join(name).join(file));
    folders
        .into_iter()
        .filter(|(name, kind)| kind.is_dir() && holds(name))
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect()
}

/// A bundle is what a rollback leaves (or `forensics` writes): on a tree
/// with no rollback on record, and none asked for with `--after rollback`,
/// there is no failure to keep, so no bundle is not a fault.
pub(super) fn forensics(tree: &Tree, judging: &super::Judging) -> Result<Check> {
    let bundles: Vec<String> = bundles_with(tree, "FAILURE_REPORT.md");
    let latest = bundles.iter().max().cloned().unwrap_or_default();
    let write_one = xtask_model::advice::xtask("forensics", &tree.root);
    Ok(match (bundles.is_empty(), judging) {
        (true, super::Judging::Backup) => Check::not_applicable(
            CheckId::Forensics,
            format!(
                "no rollback on record here and no bundle under forensics/: no failure to keep (`{write_one}` writes one of the tree as it is)"
            ),
        ),
        (true, _) => Check::fail(
            CheckId::Forensics,
            format!("no bundle under forensics/ (`{write_one}` writes one)"),
        ),
        (false, _) => {
            Check::pass(CheckId::Forensics, format!("{} bundle(s), latest {latest}", bundles.len()))
        }
    })
}
