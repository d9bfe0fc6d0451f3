//! `cargo xtask diagnose`: looks at a live tree and recommends one row of the
//! decision matrix, with the evidence for it.
mod converge;
mod migration;

use std::{fmt::Write as _, path::Path};

use anyhow::Result;
use schemars::JsonSchema;
use serde::Serialize;
use xshell::Shell;

use crate::check_copy::CheckCopy;
use xtask_adapters::{
    git,
    python::{OnFirstUse, Python},
    sqlite,
};
use xtask_model::label::Label;
use xtask_model::{
    advice,
    backup::Backup,
    check::{Check, CheckId, Status, Version},
    manifest::{Kind, Manifest},
    profile::Tree,
    scenario::{Recommendation, Scenario},
};

/// The document of `diagnose`: the row it recommends, and its evidence.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Diagnosis {
    pub schema: Version,
    #[schemars(extend("const" = "diagnose"))]
    pub command: &'static str,
    pub recommendation: Recommendation,
    /// The rows the failed evidence points to.
    pub scenarios: Vec<Scenario>,
    /// The command to run next, when it is not a rollback row.
    pub next: Option<String>,
    /// Why the recommended rollback leads to a healthy tree.
    pub why: Option<String>,
    /// The command the recommended rollback leaves due, named up front
    /// (a database rollback under newer code, then its upgrade).
    pub then: Option<String>,
    /// Rollbacks considered and passed over: their dry run changed nothing,
    /// or their plan could not be made.
    pub passed_over: Vec<String>,
    /// The rollback the recommended row means, as a command line to paste
    /// (with `--root`; the git row back to `--expect-commit` carries
    /// `--commit`); null when no row is recommended.
    #[serde(rename = "rollback")]
    pub command_line: Option<String>,
    /// The Python interpreter the evidence came from, and why it was chosen.
    pub interpreter: String,
    /// Where the tree's programs ran: a scratch copy, and what it cost.
    pub programs_ran_on: String,
    pub checks: Vec<Check>,
}

impl Diagnosis {
    pub fn healthy(&self) -> bool {
        self.recommendation == Recommendation::Healthy
    }
}

/// Each piece of evidence names the scenario it points to when it fails.
pub fn diagnose(
    sh: &Shell,
    tree: &Tree,
    label: &Label,
    expect_commit: Option<&str>,
    python: Option<&Path>,
) -> Result<Diagnosis> {
    if let Some(note) = xtask_adapters::services::orphans_note(tree) {
        xtask_base::events::note(&note);
    }
    let python = Python::find(sh, Some(&tree.root), python)?;
    // Evidence without a backup to compare with is still evidence.
    let manifest = Backup::find(tree, label).ok().flatten().map(|b| b.manifest);
    // An unfinished rollback comes first: any row recommended now would
    // exit 5 until it is resumed or abandoned.
    if let Some(mut unfinished) = unfinished_rollback(tree)? {
        unfinished.interpreter = python.describe();
        return Ok(unfinished);
    }
    // The tree's programs (the import check, alembic's offline SQL) run on
    // a scratch copy: whatever they write never reaches the tree.
    let copy = CheckCopy::of(tree)?;
    let programs = &copy.tree;
    let mut evidence: Vec<(Option<Scenario>, Check)> = Vec::new();
    let integrity = integrity(tree);
    let helper = OnFirstUse::on(Ok(&python), sh, programs);
    let migration = migration::Evidence {
        helper: &helper,
        manifest: manifest.as_ref(),
        corrupt: integrity.status == Status::Fail,
    };
    evidence.push((Some(Scenario::Database), integrity));
    evidence.extend(
        migration::checks(tree, &migration).into_iter().map(|c| (Some(Scenario::Migration), c)),
    );
    let (imports, deploy_fault) = imports_of_the_deploy(&helper, tree, programs, manifest.as_ref());
    evidence.push((deploy_fault.then_some(Scenario::Files), imports));
    evidence.push((Some(Scenario::Files), changed_files(tree, manifest.as_ref())));
    evidence.extend(
        git_state(tree, label, expect_commit, manifest.as_ref())
            .into_iter()
            .map(|c| (Some(Scenario::Git), c)),
    );

    let (recommendation, scenarios, next, chosen) =
        advise(tree, label, expect_commit, manifest.as_ref(), &evidence);
    let checks = evidence.into_iter().map(|(_, c)| c).collect();
    Ok(Diagnosis {
        schema: Version,
        command: "diagnose",
        recommendation,
        scenarios,
        next,
        why: chosen.why,
        then: chosen.then,
        passed_over: chosen.passed_over,
        command_line: chosen.command_line,
        interpreter: python.describe(),
        programs_ran_on: format!("a scratch copy of the tree ({})", copy.cost),
        checks,
    })
}

/// The row the evidence points to (each failed check names one), checked
/// by its dry run; what to do next when no row applies.
fn advise(
    tree: &Tree,
    label: &Label,
    expect_commit: Option<&str>,
    manifest: Option<&Manifest>,
    evidence: &[(Option<Scenario>, Check)],
) -> (Recommendation, Vec<Scenario>, Option<String>, converge::Chosen) {
    let failed =
        |of: Option<Scenario>| evidence.iter().any(|(s, c)| *s == of && c.status == Status::Fail);
    let scenarios: Vec<Scenario> = Scenario::ALL.into_iter().filter(|s| failed(Some(*s))).collect();
    let head_misplaced = evidence
        .iter()
        .any(|(_, c)| c.id == CheckId::GitExpectedCommit && c.status == Status::Fail);
    let state = converge::State {
        tree,
        label,
        expect_commit,
        manifest,
        scenarios: &scenarios,
        head_misplaced,
        failing_files: failing_files(tree, evidence),
        half_applied: evidence
            .iter()
            .any(|(_, c)| c.id == CheckId::MigrationHalfApplied && c.status == Status::Fail),
    };
    let chosen = match scenarios.as_slice() {
        [] => None,
        _ => Some(converge::choose(&state)),
    };
    let (recommendation, next) = match (&chosen, failed(None)) {
        (Some(chosen), _) if chosen.recommendation == Recommendation::Manual => {
            (chosen.recommendation, chosen.why.clone())
        }
        (Some(chosen), _) => (chosen.recommendation, None),
        (None, true) => (
            Recommendation::Environment,
            Some("the interpreter lacks a module that code unchanged since the backup imports: install it (the imports check names it); no rollback row applies".to_string()),
        ),
        (None, false) => (Recommendation::Healthy, None),
    };
    let chosen = chosen.unwrap_or(converge::Chosen {
        recommendation,
        command_line: None,
        why: None,
        then: None,
        passed_over: Vec::new(),
    });
    (recommendation, scenarios, next, chosen)
}

/// The files of the tree in which a critical module's import failed: the
/// import check names each (`  in FILE`) under the module's line.
fn failing_files(tree: &Tree, evidence: &[(Option<Scenario>, Check)]) -> Vec<String> {
    let Some((_, imports)) = evidence.iter().find(|(_, c)| c.id == CheckId::Imports) else {
        return Vec::new();
    };
    if imports.status != Status::Fail {
        return Vec::new();
    }
    let mut files = Vec::new();
    let mut module = None;
    for line in imports.detail.lines() {
        if let Some(file) = line.strip_prefix("  in ") {
            files.push(file.to_string());
            module = None;
            continue;
        }
        if let Some(m) = module.take().and_then(|m: String| converge::module_file(tree, &m)) {
            files.push(m);
        }
        // A critical file that does not compile: `path:line: SyntaxError`.
        let compiled = line.split_once(": ").and_then(|(at, _)| at.rsplit_once(':'));
        if let Some((path, _)) = compiled.filter(|(p, _)| tree.fs.exists(&tree.path(p))) {
            files.push(path.to_string());
            continue;
        }
        module = line.split_once(": ").map(|(m, _)| m.to_string());
    }
    if let Some(m) = module.and_then(|m| converge::module_file(tree, &m)) {
        files.push(m);
    }
    files.dedup();
    files
}

/// A rollback journal left by an interrupted or failed run.
fn unfinished_rollback(tree: &Tree) -> Result<Option<Diagnosis>> {
    use xtask_model::journal::{Journal, Peek};
    let j = match Journal::<serde_json::Value>::peek(tree) {
        Peek::None => return Ok(None),
        Peek::Found(j) => j,
        Peek::Unreadable(why) => {
            let check = Check::fail(CheckId::RollbackUnfinished, why);
            let next = format!("`{}` to close it", advice::abandon_unreadable(&tree.root));
            return Ok(Some(resume_first(check, next)));
        }
    };
    let at = j.stopped_at();
    let next = format!(
        "`{}` to finish it, or `{}` to close it",
        advice::resume(j.scenario, &tree.root),
        advice::abandon(j.scenario, &tree.root)
    );
    let check = Check::fail(
        CheckId::RollbackUnfinished,
        format!(
            "rollback --scenario {} (run {}, started {}) stopped at step {} ({:?}); its bundle is {}",
            j.scenario,
            j.run,
            j.started,
            at + 1,
            j.status,
            j.bundle.display()
        ),
    );
    Ok(Some(resume_first(check, next)))
}

/// The diagnosis while a rollback is unfinished: resume (or close) it first.
fn resume_first(check: Check, next: String) -> Diagnosis {
    Diagnosis {
        schema: Version,
        command: "diagnose",
        recommendation: Recommendation::Resume,
        scenarios: Vec::new(),
        next: Some(next),
        why: None,
        then: None,
        passed_over: Vec::new(),
        command_line: None,
        interpreter: String::new(),
        programs_ran_on: "no program ran: an unfinished rollback comes first".into(),
        checks: vec![check],
    }
}

/// The import check, and whether its failure is the deploy's: a critical
/// module that fails to import while its file still equals the backup's is
/// the environment's fault (a third-party module missing from the
/// interpreter), and points to no row of the matrix.
fn imports_of_the_deploy(
    helper: &OnFirstUse<'_>,
    tree: &Tree,
    programs: &Tree,
    manifest: Option<&Manifest>,
) -> (Check, bool) {
    let mut check = imports(helper, programs);
    if check.status != Status::Fail {
        return (check, true);
    }
    let Some(manifest) = manifest else { return (check, true) };
    let failures: Vec<(&str, &str)> = check
        .detail
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(m, _)| {
            tree.profile.critical_modules.iter().any(|c| c == m)
                || app_module(tree).is_some_and(|app| app == *m)
        })
        .collect();
    // Only the app's module fails, and its code is the backup's: what it
    // trips on at import (a database it migrates as it loads, a setting)
    // is the other evidence's to name, not the deploy's code.
    let app_alone = !failures.is_empty()
        && failures.iter().all(|(m, _)| app_module(tree).is_some_and(|app| app == *m));
    if app_alone && app_code_is_the_backups(tree, manifest) {
        check.detail = format!(
            "the app's module fails to import, yet its code is the backup's: the cause is not the code\n{}",
            check.detail
        );
        return (check, false);
    }
    // Only a module that is not the tree's own, missing from the
    // interpreter, is the environment's fault; a module of the tree that
    // raises (a RuntimeError, or one the deploy removed) is the deploy's.
    let third_party_missing = |why: &str| {
        let missing = why
            .strip_prefix("ModuleNotFoundError: No module named '")
            .and_then(|rest| rest.split(['\'', '.']).next());
        missing.is_some_and(|top| {
            [format!("{top}.py"), top.to_string()]
                .iter()
                .all(|p| tree.fs.kind(&tree.path(p)).ok().flatten().is_none())
        })
    };
    if !failures.iter().all(|(_, why)| third_party_missing(why)) {
        return (check, true);
    }
    let failing: Vec<&str> = failures.iter().map(|(module, _)| *module).collect();
    let unchanged = |module: &str| {
        let base = module.replace('.', "/");
        [format!("{base}.py"), format!("{base}/__init__.py")].iter().any(|path| {
            manifest.files_of(Kind::Critical).any(|f| {
                &f.source_path == path
                    && tree.fs.sha256(&tree.path(path)).is_ok_and(|(s, _)| s == f.sha256)
            })
        })
    };
    if failing.is_empty() || !failing.iter().all(|m| unchanged(m)) {
        return (check, true);
    }
    check.detail = format!(
        "the environment, not the deploy: these modules equal the backup's yet fail to import:\n{}",
        check.detail
    );
    (check, false)
}

/// Whether the app module's file is as the backup's commit has it: no
/// commit since touched it, and it has no uncommitted change.
fn app_code_is_the_backups(tree: &Tree, manifest: &Manifest) -> bool {
    let file = app_module(tree).and_then(|m| converge::module_file(tree, &m));
    let (Some(file), Some(since)) = (file, manifest.git_commit.as_deref()) else { return false };
    let Ok(Some(repo)) = git::open(&tree.root) else { return false };
    let modified = git::modified_tracked(&repo).unwrap_or_default();
    git::last_change(&repo, &file, Some(since)).is_none() && !modified.contains(&file)
}

fn integrity(tree: &Tree) -> Check {
    let result = sqlite::open_tree_database(tree).and_then(|c| sqlite::integrity_check(&c));
    match result {
        Ok(rows) if rows == ["ok"] => Check::pass(CheckId::DatabaseIntegrity, "ok"),
        Ok(rows) => Check::fail(
            CheckId::DatabaseIntegrity,
            rows.into_iter().take(3).collect::<Vec<_>>().join("\n"),
        ),
        Err(err) => Check::fail(CheckId::DatabaseIntegrity, format!("{err:#}")),
    }
}

/// The module of the profile's app (`pkg.main` of `pkg.main:app`), when it
/// is not a critical module already: a broken app is as broken as a
/// broken critical module, even where the profile does not list it.
fn app_module(tree: &Tree) -> Option<String> {
    let module = tree.profile.app.split(':').next().filter(|m| !m.is_empty())?;
    let listed = tree.profile.critical_modules.iter().any(|c| c == module);
    (!listed).then(|| module.to_string())
}

/// The critical modules and the app's module import, and the critical
/// files compile.
fn imports(helper: &OnFirstUse<'_>, tree: &Tree) -> Check {
    let app: Vec<String> = app_module(tree).into_iter().collect();
    let checked = helper.ask(|session| session.import_check_also(tree, &app)).map(|out| {
        let modules = &tree.profile.critical_modules;
        if out.success() {
            let mut detail = format!("{} modules import: {}", modules.len(), modules.join(", "));
            if let Some(app) = app.first() {
                let _ = write!(detail, "; the app's module {app} too");
            }
            Check::pass(CheckId::Imports, detail)
        } else {
            Check::fail(CheckId::Imports, import_failures(tree, &app, &out))
        }
    });
    Check::of(CheckId::Imports, checked)
}

/// The import check's own lines of its output (`module: Error: why`, the
/// `  in FILE` under it, `file:line: SyntaxError`), without what the code
/// it imported logged around them (an app that migrates as it loads logs
/// alembic's lines); its last lines when it printed none of its own.
fn import_failures(tree: &Tree, app: &[String], out: &xtask_adapters::process::Output) -> String {
    let modules: Vec<&String> = tree.profile.critical_modules.iter().chain(app).collect();
    let own = |line: &&str| {
        line.starts_with("  in ")
            || line.split_once(": ").is_some_and(|(head, _)| {
                modules.iter().any(|m| *m == head)
                    || head.rsplit_once(':').is_some_and(|(file, _)| {
                        tree.profile.critical_files.iter().any(|f| f == file)
                    })
            })
    };
    let lines: Vec<&str> = out.stdout.lines().filter(own).collect();
    if lines.is_empty() { out.tail(8) } else { lines.join("\n") }
}

/// Critical files with uncommitted changes (they point to the files row),
/// and, as evidence beside them, every critical file, config file and
/// migration that differs from the backup: committed (in which commit) or
/// not, and every file outside the tree that differs. Without git, the
/// files that differ from the backup.
fn changed_files(tree: &Tree, manifest: Option<&Manifest>) -> Check {
    let critical = &tree.profile.critical_files;
    let repo = match git::open(&tree.root) {
        Ok(repo) => repo,
        Err(err) => return Check::fail(CheckId::FilesChanged, format!("{err:#}")),
    };
    let since = manifest.map(|m| since_backup(tree, repo.as_ref(), m)).unwrap_or_default();
    let changed: Vec<String> = match &repo {
        // A critical file that equals the backup's is what a files
        // rollback put there, not a fault.
        Some(repo) => match git::modified_tracked(repo) {
            Ok(paths) => paths
                .into_iter()
                .filter(|p| critical.contains(p) && !equals_backup(tree, manifest, p))
                .collect(),
            Err(err) => {
                return Check::fail(CheckId::FilesChanged, format!("git status: {err:#}"));
            }
        },
        None => since
            .iter()
            .filter(|line| critical.iter().any(|c| line.starts_with(&format!("{c}:"))))
            .cloned()
            .collect(),
    };
    let mut detail = if changed.is_empty() {
        "no uncommitted change to a critical file".to_string()
    } else {
        format!("uncommitted changes: {}", changed.join(", "))
    };
    if !since.is_empty() {
        detail.push_str("\ndiffers from the backup:\n");
        detail.push_str(&since.join("\n"));
    }
    Check::from(CheckId::FilesChanged, changed.is_empty(), detail)
}

/// Whether a file of the tree equals the backup's copy of it.
fn equals_backup(tree: &Tree, manifest: Option<&Manifest>, path: &str) -> bool {
    let entry = manifest.and_then(|m| m.files.iter().find(|f| f.source_path == path));
    entry.is_some_and(|f| tree.fs.sha256(&tree.path(path)).is_ok_and(|(sha, _)| sha == f.sha256))
}

/// One line per file that differs from the backup, saying whether the
/// change is committed (and in which commit since the backup's) or not.
fn since_backup(tree: &Tree, repo: Option<&git2::Repository>, manifest: &Manifest) -> Vec<String> {
    let kinds = [Kind::Config, Kind::Critical, Kind::Migration];
    let mut out = Vec::new();
    let mut describe = |path: &str, what: &str| {
        let how = match repo {
            Some(repo) => git::committed_in(repo, path, manifest.git_commit.as_deref())
                .map(|c| format!("committed in {c}"))
                .unwrap_or_else(|| "uncommitted".into()),
            None => "no git repository".into(),
        };
        out.push(format!("{path}: {what}, {how}"));
    };
    for entry in manifest.files.iter().filter(|f| kinds.contains(&f.kind)) {
        let now = tree.fs.sha256(&tree.path(&entry.source_path)).map(|(s, _)| s).ok();
        match now {
            None => describe(&entry.source_path, "deleted since the backup"),
            Some(sha) if sha != entry.sha256 => describe(&entry.source_path, "changed"),
            Some(_) => {}
        }
    }
    for path in manifest.absent.iter().map(|a| a.source_path.as_str()) {
        if tree.fs.exists(&tree.path(path)) {
            describe(path, "added since the backup");
        }
    }
    let known: Vec<&str> =
        manifest.files_of(Kind::Migration).map(|f| f.source_path.as_str()).collect();
    for file in tree.revision_files().unwrap_or_default() {
        let relative = file.strip_prefix(&tree.root).unwrap_or(&file).display().to_string();
        if !known.contains(&relative.as_str()) {
            describe(&relative, "added since the backup");
        }
    }
    // A file outside the tree is evidence, never a row of its own: a
    // deploy may change its settings on purpose, and only the complete
    // row with --external restores it.
    let named = &tree.profile.external_files;
    for entry in manifest.files_of(Kind::External).filter(|f| named.contains(&f.source_path)) {
        let what = match crate::external::sha256(&entry.source_path) {
            Ok(Some(sha)) if sha == entry.sha256 => continue,
            Ok(Some(_)) => "changed since the backup".to_string(),
            Ok(None) => "deleted since the backup".to_string(),
            Err(err) => format!("unknown ({err:#})"),
        };
        let restore = advice::restore_external(&tree.root);
        out.push(format!(
            "{}: {what}, outside the tree (`{restore}` restores it)",
            entry.source_path
        ));
    }
    out
}

/// HEAD where it should be (attached or detached: a deploy may check out
/// a commit), and git clean as post-check judges it (`crate::git_clean`),
/// but for the critical files, which point to the files row.
fn git_state(
    tree: &Tree,
    label: &Label,
    expect_commit: Option<&str>,
    manifest: Option<&Manifest>,
) -> Vec<Check> {
    let repo = match git::open(&tree.root) {
        Ok(Some(repo)) => repo,
        Ok(None) => return Vec::new(),
        Err(err) => {
            return vec![Check::fail(CheckId::GitExpectedCommit, format!("{err:#}"))];
        }
    };
    let (commit, branch) = git::head(&repo);
    let head = commit.clone().unwrap_or_default();
    let on = branch.map_or("detached".to_string(), |b| format!("on {b}"));
    let expected = expect_commit.map(|rev| git::resolve(&repo, rev).map(|o| o.to_string()));
    let tag = git::tag_commit(&repo, label);
    let head_check = if let Some(expected) = expected {
        match expected {
            Ok(expected) => Check::from(
                CheckId::GitExpectedCommit,
                head == expected,
                format!("HEAD {head} ({on}), expected {expected}"),
            ),
            Err(err) => Check::fail(CheckId::GitExpectedCommit, format!("{err:#}")),
        }
    } else if let Some(tag) = tag {
        let descends = git2::Oid::from_str(&head)
            .ok()
            .is_some_and(|h| h == tag || repo.graph_descendant_of(h, tag).unwrap_or(false));
        Check::from(
            CheckId::GitExpectedCommit,
            descends,
            format!(
                "HEAD {head} ({on}) {} tag {label}",
                if descends { "contains" } else { "does not contain" }
            ),
        )
    } else {
        Check::pass(CheckId::GitExpectedCommit, format!("HEAD {head} ({on})"))
    };
    // Critical files point to the files row: files.changed judges them.
    let critical = crate::git_clean::JudgedElsewhere {
        paths: &tree.profile.critical_files,
        by: "files.changed",
    };
    let clean = crate::git_clean::judge(tree, &repo, manifest, Some(critical));
    vec![head_check, clean]
}
