//! `cargo xtask post-check`: the runbook's "Verification Tests" and its
//! post-rollback checklist, as checks with exact results for CI and people.
mod checks;
mod judging;
mod live;
mod pytest;
mod refused;
mod restart;
mod server;
mod slow;

use std::{fmt::Write as _, path::PathBuf, time::Instant};

use anyhow::Result;
use xshell::Shell;

use crate::{check_copy::CheckCopy, rollback::Step};
use xtask_adapters::python::{OnFirstUse, Python};
use xtask_base::exit::usage;
use xtask_fs::files;
use xtask_model::{
    backup::Backup,
    check::{Check, CheckId, Checker, Report, Status},
    label::Label,
    manifest::Manifest,
    profile::Tree,
};

use checks::*;
pub use judging::After;
use judging::Judging;
pub use server::free_port;
use slow::Slow;

#[derive(Debug, Clone)]
pub struct Options {
    pub label: Label,
    pub only: Vec<String>,
    pub skip: Vec<String>,
    pub expect_revision: Option<String>,
    pub port: Option<u16>,
    pub python: Option<PathBuf>,
    pub require_backup: bool,
    /// Run the tree's programs on the live tree, not on a scratch copy.
    pub live: bool,
    /// `--after`: what is judged (a deploy, a rollback).
    pub after: Option<After>,
}

impl Options {
    /// Every check, against backup `label`, on scratch copies.
    pub fn of(label: Label) -> Options {
        Options {
            label,
            only: Vec::new(),
            skip: Vec::new(),
            expect_revision: None,
            port: None,
            python: None,
            require_backup: false,
            live: false,
            after: None,
        }
    }
}

/// What the checks compare against: the backup's manifest, or the code.
struct Expected {
    manifest: Option<(PathBuf, Manifest)>,
    revision: Option<String>,
    /// Why there is no expected revision, when there is none.
    missing: String,
    /// `--require-backup`: a missing backup fails the checks that need one.
    require_backup: bool,
    label: Label,
    /// When the last rollback is a files rollback: the critical files it
    /// wrote (what files.restored judges) and those it kept as the deploy's
    /// commits left them (not compared with the backup). `None`: every
    /// config and critical file is judged.
    files: Option<(Vec<String>, Vec<String>)>,
    /// When the last rollback is a migration rollback that took the
    /// database elsewhere than the backup's revision (`--to REV`, `--to
    /// head`): that revision. Its tables are not the backup's to compare.
    migrated_elsewhere: Option<String>,
    /// When the last rollback is a git rollback that took the code
    /// elsewhere than the backup's commit (`--commit REV`, `--from REV
    /// --paths`): that commit. The code is not the backup's to compare.
    code_elsewhere: Option<String>,
    /// Which files outside the tree files.external judges.
    external: External,
}

/// Which files outside the tree (`external_files`) are judged, from the
/// journal of the last rollback when one is judged.
enum External {
    /// Every one the backup holds: no rollback is judged.
    All,
    /// Those the last rollback restored (`--external`).
    Restored(Vec<String>),
    /// The last rollback, of this scenario, left them as they were.
    LeftAsFound(xtask_model::scenario::Scenario),
}

impl Expected {
    /// Why a check that compares with the backup does not apply to what
    /// the last rollback did: it put the database or the code elsewhere.
    fn not_judged(&self, id: CheckId) -> Option<String> {
        use CheckId::*;
        match (id, &self.migrated_elsewhere, &self.code_elsewhere) {
            (DatabaseTables, Some(target), _) => Some(format!(
                "the last rollback took the database to {target}, not the backup's revision: its tables are not the backup's (database.revision and migrations.current judge it)"
            )),
            (MigrationsCount | FilesRestored | GitHead, _, Some(commit)) => Some(format!(
                "the last rollback took the code to {commit}, not the backup's commit: it is not the backup's to compare (git.clean and the other checks judge it)"
            )),
            _ => None,
        }
    }

    /// The verdict of a check that compares with a backup when there is none:
    /// not applicable (after a normal deploy there is no backup to compare
    /// with), or a failure with `--require-backup`.
    fn no_backup(&self, id: CheckId) -> Check {
        let why = format!("there is no backup {} to compare with", self.label);
        if self.require_backup {
            Check::fail(id, format!("{why} (--require-backup)"))
        } else {
            Check::not_applicable(id, why)
        }
    }
}

/// Runs the selected checks on `tree`: the slow ones (pytest, the server)
/// each in a thread of its own, the quick ones meanwhile.
pub fn post_check(sh: &Shell, tree: &Tree, o: &Options) -> Result<Report> {
    if let Some(note) = xtask_adapters::services::orphans_note(tree) {
        xtask_base::events::note(&note);
    }
    let selection = Selection::new(&o.only, &o.skip)?;
    let judging = Judging::of(tree, o.after);
    let expected = expectations(tree, o, &judging)?;
    // Outside the tree: pytest's XML report and the server's log.
    let scratch_dir = files::scratch_dir("tmws-post-check")?;
    let scratch = xtask_fs::programs_owner::folder_for_programs(scratch_dir.path())?;
    let python = Python::find(sh, Some(&tree.root), o.python.as_deref());
    let port = match o.port {
        Some(port) => port,
        None if tree.profile.port != 0 => tree.profile.port,
        None => free_port()?,
    };
    // The tree's programs run on scratch copies of it, one per group of
    // checks (so the app's writes never meet alembic's answer), or, with
    // --live, on the tree, its database watched.
    let quick_copy = match o.live || !QUICK_PROGRAMS.iter().any(|id| selection.runs(*id)) {
        true => None,
        false => Some(CheckCopy::of(tree)?),
    };
    let programs = quick_copy.as_ref().map_or(tree, |c| &c.tree);
    let watch = o.live.then(|| live::Watch::start(tree)).transpose()?;
    let slow = Slow::start(
        &selection,
        python.as_ref().ok(),
        tree,
        &expected,
        slow::Where {
            port,
            scratch: &scratch,
            live: o.live,
            after_deploy: judging == Judging::Deploy,
        },
    );
    let ctx = Ctx {
        tree,
        programs,
        expected: &expected,
        judging: &judging,
        label: &o.label,
        alembic: Default::default(),
        helper: OnFirstUse::on(python.as_ref().map_err(|e| format!("{e:#}")), sh, programs),
    };
    let mut checks = Vec::new();
    for (id, how) in &CHECKS {
        if let (Run::Quick(check), true) = (how, selection.runs(*id)) {
            let started = Instant::now();
            checks.push(Check::of(*id, check(&ctx)).since(started));
        }
    }
    let no_python = python.as_ref().err().map(|e| format!("no Python to run it: {e:#}"));
    let (slow_checks, mut copies) = slow.finish(no_python);
    checks.extend(slow_checks.into_iter().filter(|c| selection.runs(c.id)));
    copies.extend(quick_copy.map(|c| c.cost));
    if let Some(watch) = watch {
        watch.judge(tree, &mut checks)?;
    }
    for check in checks.iter_mut() {
        if let Some(why) = judging.not_judged(check.id).or_else(|| expected.not_judged(check.id)) {
            let took = check.duration_ms;
            *check = Check::not_applicable(check.id, why);
            check.duration_ms = took;
        }
    }
    let confinement_refused = refused::name_refusals(&mut checks);
    // A check is `skip` only when the user skipped it by name.
    checks.extend(checks::ids().filter(|id| selection.skips(*id)).map(Check::skip));
    checks.sort_by_key(|c| checks::ids().position(|id| id == c.id));
    let mut report = Report::new(Checker::PostCheck, tree.root.display().to_string(), checks);
    report.interpreter = python.as_ref().ok().map(Python::describe);
    report.judged = Some(judging.describe());
    report.confinement_refused = confinement_refused;
    report.programs_ran_on = match (copies.is_empty(), o.live) {
        (_, true) => Some("the live tree (--live)".into()),
        (true, false) => None,
        (false, false) => Some(slow::describe(&copies)),
    };
    Ok(report)
}

/// Which checks `--only` and `--skip` leave, by id or by group (the part of
/// an id before its dot).
struct Selection<'a> {
    only: &'a [String],
    skip: &'a [String],
}

impl<'a> Selection<'a> {
    /// Every name must be a check or a group, and some check must be left.
    fn new(only: &'a [String], skip: &'a [String]) -> Result<Selection<'a>> {
        let ids = || checks::ids().map(|c| c.id());
        for name in only.iter().chain(skip) {
            if !ids().any(|id| id == name || group(id) == name) {
                return Err(usage(format!(
                    "unknown check {name:?}; the checks are: {}",
                    ids().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        let selection = Selection { only, skip };
        if !checks::ids().any(|id| selection.runs(id)) {
            return Err(usage(format!(
                "--only {} with --skip {} leaves no check to run",
                only.join(","),
                skip.join(",")
            )));
        }
        Ok(selection)
    }

    fn named(list: &[String], id: &str) -> bool {
        list.iter().any(|n| n == id || n == group(id))
    }

    fn wanted(&self, id: &str) -> bool {
        self.only.is_empty() || Selection::named(self.only, id)
    }

    fn runs(&self, id: CheckId) -> bool {
        self.wanted(id.id()) && !Selection::named(self.skip, id.id())
    }

    fn skips(&self, id: CheckId) -> bool {
        self.wanted(id.id()) && Selection::named(self.skip, id.id())
    }

    /// Whether any check that runs `how` is selected.
    fn runs_any(&self, how: fn(&Run) -> bool) -> bool {
        CHECKS.iter().any(|(id, run)| how(run) && self.runs(*id))
    }
}

fn group(id: &str) -> &str {
    id.split('.').next().unwrap_or(id)
}

/// What the last files rollback did with the critical files, when that
/// rollback is what is judged: the paths its restore-files step wrote, and
/// those it kept as the deploy's commits left them.
fn files_of_the_last_rollback(
    tree: &Tree,
    judging: &Judging,
) -> Option<(Vec<String>, Vec<String>)> {
    use xtask_model::scenario::Scenario;
    if !matches!(judging, Judging::Rollback(Some(Scenario::Files))) {
        return None;
    }
    let run = xtask_model::journal::Journal::<Step>::last_done_run(tree)?;
    let (mut wrote, mut kept) = (Vec::new(), Vec::new());
    for step in run.steps {
        if let Step::RestoreFiles { paths, kept: left } = step {
            wrote.extend(paths);
            kept.extend(left.into_iter().map(|k| k.path));
        }
    }
    Some((wrote, kept))
}

/// Where the last git rollback took the code, when that rollback is what
/// is judged and it went elsewhere than the backup's tag.
fn code_target_of_the_last_rollback(tree: &Tree, judging: &Judging) -> Option<String> {
    use xtask_model::scenario::Scenario;
    if !matches!(judging, Judging::Rollback(Some(Scenario::Git))) {
        return None;
    }
    let run = xtask_model::journal::Journal::<Step>::last_done_run(tree)?;
    run.steps.into_iter().find_map(|step| match step {
        Step::GitSoftReset { commit } | Step::GitHardReset { commit, .. } => Some(commit),
        Step::GitRestorePaths { from, .. } => Some(from),
        _ => None,
    })
}

/// What the last rollback did with the files outside the tree, when that
/// rollback is what is judged: the paths its restore-external step
/// restored, or none (it ran without `--external`).
fn external_of_the_last_rollback(tree: &Tree, judging: &Judging) -> External {
    let Judging::Rollback(Some(scenario)) = judging else { return External::All };
    let Some(run) = xtask_model::journal::Journal::<Step>::last_done_run(tree) else {
        return External::All;
    };
    let restored = run.steps.into_iter().find_map(|step| match step {
        Step::RestoreExternal { paths } => Some(paths),
        _ => None,
    });
    restored.map_or(External::LeftAsFound(*scenario), External::Restored)
}

/// Where the last migration rollback took the database, when that rollback
/// is what is judged: its migrate-copy step's target.
fn migration_target_of_the_last_rollback(tree: &Tree, judging: &Judging) -> Option<String> {
    use xtask_model::scenario::Scenario;
    if !matches!(judging, Judging::Rollback(Some(Scenario::Migration))) {
        return None;
    }
    let run = xtask_model::journal::Journal::<Step>::last_done_run(tree)?;
    run.steps.into_iter().find_map(|step| match step {
        Step::MigrateCopy { target, .. } => Some(target),
        _ => None,
    })
}

fn expectations(tree: &Tree, o: &Options, judging: &Judging) -> Result<Expected> {
    let manifest = Backup::find(tree, &o.label)?.map(|b| (b.dir, b.manifest));
    let migrated_to = migration_target_of_the_last_rollback(tree, judging);
    let backup_revision = manifest.as_ref().and_then(|(_, m)| m.revision().map(String::from));
    let migrated_elsewhere = migrated_to.clone().filter(|t| Some(t) != backup_revision.as_ref());
    // After a deploy the database is expected at the migrations' head; so
    // after a rollback that kept the database (files, git): it must fit the
    // code it runs with, not the backup.
    use xtask_model::scenario::Part;
    let keeps_the_database = match judging {
        Judging::Deploy => true,
        Judging::Rollback(Some(scenario)) => !scenario.puts_back(Part::Schema),
        Judging::Rollback(None) | Judging::Backup => false,
    };
    let head = || Some("head".to_string());
    let expect = o
        .expect_revision
        .clone()
        .or_else(|| keeps_the_database.then(head).flatten())
        .or_else(|| migrated_elsewhere.clone());
    let (revision, missing) = match (&expect, &manifest) {
        (Some(rev), _) if rev == "head" => {
            let heads = tree.graph().map(|g| g.heads()).unwrap_or_default();
            match heads.as_slice() {
                [one] => (Some(one.clone()), String::new()),
                _ => (None, format!("the migrations have {} heads, not one", heads.len())),
            }
        }
        (Some(rev), _) => {
            // A revision no migration defines can never be met: the flag is
            // wrong, not the tree (exit 2, before any check runs).
            let graph = tree.graph().map_err(|e| usage(format!("--expect-revision: {e:#}")))?;
            if rev != "base" && !graph.contains(rev) {
                let known: Vec<&str> = graph.revisions.keys().map(String::as_str).collect();
                return Err(usage(format!(
                    "--expect-revision {rev}: no revision file of {} defines it (head, base, or one of {})",
                    tree.profile.migrations,
                    known.join(", ")
                )));
            }
            (Some(rev.clone()), String::new())
        }
        (None, Some((_, m))) => {
            (m.revision().map(String::from), "the backup records several revisions".into())
        }
        (None, None) => (
            None,
            format!(
                "no backup {} and no --expect-revision: pass --expect-revision head or a revision",
                o.label
            ),
        ),
    };
    Ok(Expected {
        manifest,
        revision,
        missing,
        require_backup: o.require_backup,
        label: o.label.clone(),
        files: files_of_the_last_rollback(tree, judging),
        migrated_elsewhere,
        code_elsewhere: code_target_of_the_last_rollback(tree, judging),
        external: external_of_the_last_rollback(tree, judging),
    })
}

/// The runbook's post-rollback checklist, ticked from the real results.
pub fn checklist(tree: &Tree, report: &Report) -> String {
    let passed = |ids: &[CheckId]| {
        ids.iter().all(|id| report.checks.iter().any(|c| c.id == *id && c.status == Status::Pass))
    };
    let postmortem = ["POSTMORTEM.md", "post-mortem.md", "docs/POSTMORTEM.md"]
        .iter()
        .any(|p| tree.fs.is_file(&tree.path(p)))
        || !checks::bundles_with(tree, "POSTMORTEM.md").is_empty();
    let rows = [
        (
            passed(&[CheckId::DatabaseIntegrity]),
            "Database integrity verified (`PRAGMA integrity_check`)",
        ),
        (passed(&[CheckId::DatabaseRevision]), "Alembic revision matches pre-Phase4"),
        (passed(&[CheckId::FilesRestored]), "All critical files restored"),
        (passed(&[CheckId::TestsUnit]), "Unit tests pass (100%)"),
        (passed(&[CheckId::TestsIntegration]), "Integration tests pass"),
        (passed(&[CheckId::ServerStart]), "Server starts without errors"),
        (passed(&[CheckId::ServerHealth]), "Health endpoint responds"),
        (passed(&[CheckId::GitClean]), "Git state is clean (`git status`)"),
        (passed(&[CheckId::Forensics]), "Backup forensics performed (analyze failure)"),
        (postmortem, "Post-mortem document created"),
    ];
    let mut out = String::from("# Post-Rollback Checklist\n\n");
    let _ = writeln!(
        out,
        "Tree: {}  \nChecked: {}\n",
        tree.root.display(),
        xtask_base::clock::now_rfc3339()
    );
    for (ok, text) in rows {
        let _ = writeln!(out, "- [{}] {text}", if ok { "x" } else { " " });
    }
    out
}
