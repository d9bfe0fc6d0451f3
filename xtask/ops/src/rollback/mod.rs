//! `cargo xtask rollback`: the runbook's decision matrix, run safely (verified
//! backup, plan first, confirmation), atomically (staged restores) and
//! resumably (a journal of every step).
mod choices;
mod describe;
mod helper;
mod losses;
mod migration_folders;
mod offsite_first;
mod plan;
mod restored;
mod steps;
mod target;
mod unfinished;
mod writes;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Result;
use schemars::JsonSchema;
use serde::Serialize;
use xshell::Shell;

pub use choices::{Choices, Down, Flags, GitMove};
pub use describe::StepId;
pub use plan::{Kept, Step};
use unfinished::{abandon, abandon_unreadable, triage};
pub use unfinished::{unfinished_label, unfinished_scenario};
pub use writes::{DryRun, dry_run};
pub use xtask_model::scenario::Scenario;

use crate::{evidence, verify};
use xtask_base::{
    clock, events,
    exit::{kind_of, refused, usage},
};
use xtask_model::label::Label;
use xtask_model::{
    advice,
    backup::Backup,
    check::Version,
    journal::{Journal, Peek, RunStatus},
    lock::Lock,
    manifest::Manifest,
    profile::Tree,
};

/// The result of one step, as reported.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StepResult {
    pub step: StepId,
    /// The plan's line for a person.
    pub plan: String,
    /// What the step did.
    pub result: String,
    pub duration_ms: u64,
}

/// One step of the plan, as the JSON document gives it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PlannedStep {
    /// 1-based, as printed.
    pub step: usize,
    pub id: StepId,
    /// The plan's line for a person.
    pub action: String,
    /// Finished before an interruption (a resumed run re-checks it).
    pub done: bool,
    #[serde(flatten)]
    pub touches: describe::PlanTouches,
}

/// What a rollback did or would do: the document of `rollback` (a plan
/// with `--dry-run`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Outcome {
    pub schema: Version,
    #[schemars(extend("const" = "rollback"))]
    pub command: &'static str,
    pub scenario: Scenario,
    pub dry_run: bool,
    pub plan: Vec<PlannedStep>,
    /// The steps this run made, in order.
    pub steps: Vec<StepResult>,
    /// The run's forensics bundle; null when the run changed nothing (no
    /// bundle is kept) or planned none.
    pub bundle: Option<String>,
    pub result: Ending,
    /// The backup pulled from the repository before step 1 (or, in a dry
    /// run, the pull it would make), when backups/ did not hold it.
    pub pull: Option<String>,
    /// What the plan loses, measured before step 1: rows written since the
    /// backup that its database discards, tables and columns (with their
    /// rows and non-null values) that a downgrade drops.
    pub losses: Vec<String>,
    /// The backup's files outside the tree this run leaves as they are (the
    /// complete row without `--external`).
    pub not_restored: Vec<String>,
}

/// How a rollback ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ending {
    /// A dry run: the plan, nothing changed.
    Planned,
    Done,
    /// An unfinished run closed with `--abandon`.
    Abandoned,
}

impl Outcome {
    /// A run closed on purpose: no step ran now; its bundle is kept.
    fn abandoned(scenario: Scenario, bundle: String) -> Outcome {
        Outcome {
            schema: Version,
            command: "rollback",
            scenario,
            dry_run: false,
            plan: Vec::new(),
            steps: Vec::new(),
            bundle: Some(bundle),
            result: Ending::Abandoned,
            pull: None,
            losses: Vec::new(),
            not_restored: Vec::new(),
        }
    }
}

pub struct Options {
    pub label: Label,
    /// The scenario, with what it was asked for.
    pub choices: Choices,
    pub dry_run: bool,
    pub resume: bool,
    pub abandon: bool,
    pub break_lock: bool,
    pub skip_verify: bool,
    pub grace: Duration,
    pub python: Option<PathBuf>,
    /// Where the backup is pulled from when backups/ does not hold it.
    pub repo: Option<xtask_model::repository::Repository>,
}

/// How a rollback talks to the person running it: the command line
/// decides where its lines go and how the plan is confirmed.
pub struct Voice<'a> {
    /// The plan, each step's result, the end.
    pub say: &'a dyn Fn(String),
    /// Asked once the plan is shown, before step 1; an error refuses.
    pub confirm: &'a dyn Fn() -> Result<()>,
}

/// Runs (or with `dry_run`, plans) a rollback of `tree`: triage, plan,
/// confirm, execute, seal.
pub fn rollback(sh: &Shell, tree: &Tree, o: &Options, voice: &Voice<'_>) -> Result<Outcome> {
    let say = voice.say;
    // A dry run writes nothing, not even the lock; every other run holds the
    // lock for its whole length and reads the journal only under it.
    let _lock = if o.dry_run { None } else { Some(Lock::acquire(tree)?) };
    if let (true, Some(holder)) = (o.break_lock, _lock.as_ref().and_then(|l| l.left_by.as_deref()))
    {
        events::note(&format!("the lock file held a record left by {holder}; it never blocked"));
    }
    if let Some(note) = xtask_adapters::services::orphans_note(tree) {
        events::note(&note);
    }
    if let (true, Peek::Unreadable(why)) = (o.abandon, Journal::<Step>::peek(tree)) {
        return abandon_unreadable(tree, o, &why, &say);
    }
    let journal = triage(tree, o)?;
    if o.abandon {
        let journal = journal
            .ok_or_else(|| usage("there is no failed or interrupted rollback to abandon"))?;
        return abandon(tree, journal, o, &say);
    }
    let planned_pull = offsite_first::plan(sh, tree, o)?;
    if let (false, Some(pull), None) = (o.dry_run, &planned_pull, &journal) {
        // What the plan refuses (a commit this clone lacks, a path that is
        // not the backup's) is refused before the pull writes backups/.
        plan::build(&o.choices, tree, &pull.manifest, "before-the-pull")?;
    }
    let pulled = offsite_first::pull(sh, tree, o)?;
    if let Some(line) = &pulled {
        say(line.clone());
    }
    let planned_pull = planned_pull.filter(|_| o.dry_run);
    let mut run = prepare(sh, tree, o, journal, planned_pull)?;
    let mut outcome = present(tree, o, &run, &say);
    outcome.pull = pulled.or(outcome.pull);
    if o.dry_run {
        say("dry run: nothing was written, not even the lock or the journal".into());
        return Ok(outcome);
    }
    (voice.confirm)()?;
    let session = helper::start(sh, tree, o, &run.journal)?;
    if let (Verified::Now, Some(before)) = (run.verified, run.before.take()) {
        verify::stamp::remember(tree, &run.backup, before);
    }
    run.journal.status = RunStatus::Running;
    run.journal.failure = None;
    run.journal.save(tree)?;
    let Prepared { backup, manifest, mut journal, verified, plan, .. } = run;
    let bundle_dir = tree.root.join(&journal.bundle);
    let mut ctx = steps::Ctx::new(sh, tree, backup, manifest, o, bundle_dir, &journal);
    ctx.session = session;
    ctx.backup_verified = verified != Verified::Skipped;
    let started = Instant::now();
    execute(&mut ctx, &mut journal, &plan, &mut outcome, &say)?;
    let kept = seal(&mut ctx, &mut journal, &mut outcome)?;
    say(format!(
        "rollback --scenario {} done in {:.2}s; {}",
        journal.scenario,
        started.elapsed().as_secs_f64(),
        match kept {
            true => format!("the failed state is in {}", journal.bundle.display()),
            false => "nothing changed (the tree already held what the backup holds), so no bundle was kept".to_string(),
        }
    ));
    if kept {
        for loss in &outcome.losses {
            say(format!("  lost: {loss} (the failed database is kept in the bundle)"));
        }
    }
    if !outcome.not_restored.is_empty() {
        say(format!("  {}", plan::external_left_line(&outcome.not_restored, &tree.root)));
    }
    Ok(outcome)
}

/// Everything a run needs, checked before step 1.
struct Prepared {
    backup: PathBuf,
    /// The backup's file identities before it was verified (for the stamp).
    before: Option<verify::stamp::Snapshot>,
    verified: Verified,
    manifest: Manifest,
    journal: Journal<Step>,
    resuming: bool,
    /// Each step's line for a person.
    plan: Vec<String>,
    /// The pull a dry run would make before step 1.
    pull: Option<String>,
    /// What the plan loses (see `Outcome::losses`).
    losses: Vec<String>,
}

/// The backup verified, its manifest read, the plan built (or resumed) and
/// every path it will write checked: a plan that cannot finish does not start.
fn prepare(
    sh: &Shell,
    tree: &Tree,
    o: &Options,
    journal: Option<Journal<Step>>,
    planned_pull: Option<offsite_first::PlannedPull>,
) -> Result<Prepared> {
    if let Some(pull) = planned_pull {
        return prepare_from_repository(sh, tree, o, journal, pull);
    }
    let backup = Backup::folder(tree, &o.label)?;
    let before = verify::stamp::snapshot(&backup).ok();
    let verified = preflight(sh, tree, &backup, o)?;
    let manifest = Backup::read_manifest(&tree.fs, &backup, Some(&o.label))?;
    let (journal, resuming) = match journal {
        Some(j) => (j, true),
        None => (new_journal(tree, &manifest, o)?, false),
    };
    let pending: Vec<Step> = journal
        .steps
        .iter()
        .zip(&journal.done)
        .filter(|(_, done)| !**done)
        .map(|(s, _)| s.clone())
        .collect();
    plan::check_paths(tree, &backup, &pending, &manifest)?;
    if pending.contains(&Step::StopServices) {
        refuse_what_cannot_be_seen(tree)?;
    }
    // Before alembic changes anything, the file its connection opens must
    // be the one it is given: proven in a dry run for the tree's database,
    // and before step 1 of a real run for the copy it works on.
    if o.dry_run {
        helper::probe_live(sh, tree, o, &journal)?;
    }
    let bundle_dir = tree.root.join(&journal.bundle);
    let plan =
        journal.steps.iter().map(|s| s.describe(tree, &backup, &manifest, &bundle_dir)).collect();
    let losses = losses::losses(tree, &manifest, &pending);
    Ok(Prepared { backup, before, verified, manifest, journal, resuming, plan, pull: None, losses })
}

/// A dry run's plan when the backup is only in the repository: made from
/// the manifest of the snapshot the real run would pull.
fn prepare_from_repository(
    sh: &Shell,
    tree: &Tree,
    o: &Options,
    journal: Option<Journal<Step>>,
    pull: offsite_first::PlannedPull,
) -> Result<Prepared> {
    let backup = tree.backup(&o.label);
    let manifest = pull.manifest;
    let (journal, resuming) = match journal {
        Some(j) => (j, true),
        None => (new_journal(tree, &manifest, o)?, false),
    };
    helper::probe_live(sh, tree, o, &journal)?;
    let bundle_dir = tree.root.join(&journal.bundle);
    let plan =
        journal.steps.iter().map(|s| s.describe(tree, &backup, &manifest, &bundle_dir)).collect();
    let verified = Verified::Earlier;
    let pull = Some(pull.line);
    let losses = losses::losses(tree, &manifest, &journal.steps);
    Ok(Prepared { backup, before: None, verified, manifest, journal, resuming, plan, pull, losses })
}

/// Prints the plan and returns the outcome it will fill.
fn present(tree: &Tree, o: &Options, run: &Prepared, say: &dyn Fn(String)) -> Outcome {
    let journal = &run.journal;
    let mode = match (o.dry_run, run.resuming) {
        (true, _) => "dry-run",
        (false, true) => "resumed",
        (false, false) => "rollback",
    };
    say(format!(
        "{mode} plan: rollback --scenario {} of {} from {}",
        journal.scenario,
        tree.root.display(),
        plan::rel(&tree.root, &run.backup)
    ));
    if let Some(pull) = &run.pull {
        say(format!("  before step 1: {pull}"));
    }
    for (i, line) in run.plan.iter().enumerate() {
        let mark = if journal.done[i] { " (done before the interruption; re-checked)" } else { "" };
        say(format!("  {}. {line}{mark}", i + 1));
    }
    for loss in &run.losses {
        say(format!("  loses: {loss}"));
    }
    let not_restored = plan::external_left(journal.scenario, &journal.steps, &run.manifest);
    if !not_restored.is_empty() {
        say(format!("  {}", plan::external_left_line(&not_restored, &tree.root)));
    }
    let planned = journal
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| PlannedStep {
            step: i + 1,
            id: step.id(),
            action: run.plan[i].clone(),
            done: journal.done[i],
            touches: step.touches(tree, &run.manifest),
        })
        .collect();
    Outcome {
        schema: Version,
        command: "rollback",
        scenario: o.choices.scenario(),
        dry_run: o.dry_run,
        plan: planned,
        steps: Vec::new(),
        bundle: Some(journal.bundle.display().to_string()),
        result: Ending::Planned,
        pull: run.pull.clone(),
        losses: run.losses.clone(),
        not_restored,
    }
}

/// A process that may be this tree's service but whose folder and files
/// this user cannot read stops the rollback before step 1: it could go on
/// writing the database while the tool swaps it.
fn refuse_what_cannot_be_seen(tree: &Tree) -> Result<()> {
    let hidden = xtask_adapters::services::unseen(tree);
    if hidden.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> =
        hidden.iter().map(|p| format!("pid {} of {} ({})", p.pid, p.owner, p.cmdline)).collect();
    Err(refused(format!(
        "these processes run one of the service's programs ({}), but their working folder and open files are hidden from this user, so the tool cannot tell whether they are this tree's service: {}. Run the rollback as their owner or as root, or stop them first. Nothing was changed",
        tree.profile.service_programs.join(", "),
        listed.join("; ")
    )))
}

/// Ends a finished run: the bundle sealed, the journal moved into it.
/// A run that changed nothing keeps no bundle (it would hold what the backup
/// holds); returns whether one was kept.
fn seal(
    ctx: &mut steps::Ctx<'_>,
    journal: &mut Journal<Step>,
    outcome: &mut Outcome,
) -> Result<bool> {
    outcome.result = Ending::Done;
    let bundle = ctx.tree.root.join(&journal.bundle);
    if !ctx.changed {
        if ctx.tree.fs.expect_dir_or_nothing(&bundle)? {
            ctx.tree.fs.remove_dir_all(&bundle)?;
        }
        journal.close(ctx.tree, RunStatus::Done)?;
        outcome.bundle = None;
        return Ok(false);
    }
    ctx.seal_bundle()?;
    journal.close(ctx.tree, RunStatus::Done)?;
    outcome.bundle = Some(journal.bundle.display().to_string());
    Ok(true)
}

fn new_journal(tree: &Tree, manifest: &Manifest, o: &Options) -> Result<Journal<Step>> {
    let run = format!("{}-{}", clock::now_compact(), std::process::id());
    let steps = plan::build(&o.choices, tree, manifest, &run)?;
    let bundle = evidence::new_bundle_path(tree, &o.label);
    Ok(Journal {
        run,
        scenario: o.choices.scenario(),
        label: o.label.clone(),
        started: clock::now_rfc3339(),
        bundle: bundle.strip_prefix(&tree.root).unwrap_or(&bundle).to_path_buf(),
        done: vec![false; steps.len()],
        steps,
        current: None,
        status: RunStatus::Running,
        failure: None,
    })
}

/// Runs the steps not done yet, journaling each before and after. A step
/// that fails ends the journal as failed, and the error says what the tree
/// holds and which commands go on from there.
fn execute(
    ctx: &mut steps::Ctx<'_>,
    journal: &mut Journal<Step>,
    plan: &[String],
    outcome: &mut Outcome,
    say: &dyn Fn(String),
) -> Result<()> {
    let tree = ctx.tree;
    for (i, planned) in plan.iter().enumerate() {
        let step = journal.steps[i].clone();
        fault_hook("before", i + 1);
        journal.begin(tree, i)?;
        let step_started = Instant::now();
        let result = match ctx.run(&step) {
            Ok(result) => result,
            Err(err) => return Err(fail(ctx, journal, i, err)),
        };
        if ctx.bundle_dir != tree.root.join(&journal.bundle) {
            journal.bundle =
                ctx.bundle_dir.strip_prefix(&tree.root).unwrap_or(&ctx.bundle_dir).to_path_buf();
        }
        journal.end(tree, i)?;
        let duration_ms = step_started.elapsed().as_millis() as u64;
        say(format!("  ✓ {}. {} ({duration_ms} ms): {result}", i + 1, step.name()));
        outcome.steps.push(StepResult {
            step: step.id(),
            plan: planned.clone(),
            result,
            duration_ms,
        });
        fault_hook("after", i + 1);
    }
    Ok(())
}

/// Records a failed step in the journal and tells where everything is.
fn fail(
    ctx: &mut steps::Ctx<'_>,
    journal: &mut Journal<Step>,
    i: usize,
    err: anyhow::Error,
) -> anyhow::Error {
    let tree = ctx.tree;
    let reason = format!("{err:#}");
    journal.status = RunStatus::Failed;
    journal.current = None;
    journal.failure = Some(reason.lines().next().unwrap_or("").to_string());
    let saved = journal.save(tree);
    let sealed = ctx.seal_bundle();
    let done: Vec<String> =
        (0..i).map(|k| format!("{}. {}", k + 1, journal.steps[k].name())).collect();
    let state = format!(
        "step {} ({}) failed; finished before it: {}. The failed state is in {}. Next: fix the cause and `{}` to retry from step {}, or `{}` to close this run and keep the tree as it is",
        i + 1,
        journal.steps[i].name(),
        if done.is_empty() {
            "none, so the tree is as it was found".into()
        } else {
            done.join(", ")
        },
        journal.bundle.display(),
        advice::resume(journal.scenario, &tree.root),
        i + 1,
        advice::abandon(journal.scenario, &tree.root)
    );
    // The step's own way on, when it names one (restore the database
    // instead); else the resume.
    let mut err = match xtask_base::exit::next_of(&err) {
        Some(_) => err.context(state),
        None => {
            let (kind, next) = (kind_of(&err), advice::resume(journal.scenario, &tree.root));
            err.context(xtask_base::exit::Exit { kind, message: state, next: Some(next) })
        }
    };
    if let Err(save) = saved {
        err = err.context(format!("and the journal could not record the failure: {save:#}"));
    }
    if let Err(seal) = sealed {
        err = err.context(format!("and the bundle's report could not be completed: {seal:#}"));
    }
    err
}

/// How the backup was found good before anything was touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verified {
    /// verify-backup passed just now (a stamp is recorded once the run starts).
    Now,
    /// It passed earlier and no file of it changed since.
    Earlier,
    /// `--skip-verify`.
    Skipped,
}

/// The backup must pass verify-backup before anything is touched: now, or
/// earlier with every file unchanged since.
fn preflight(sh: &Shell, tree: &Tree, backup: &Path, o: &Options) -> Result<Verified> {
    if o.skip_verify {
        events::note(&format!(
            "WARNING: --skip-verify: the backup at {} is NOT verified; a corrupt or incomplete backup would be restored as it is",
            backup.display()
        ));
        return Ok(Verified::Skipped);
    }
    if let Some((when, files)) = verify::stamp::unchanged_since(tree, backup) {
        events::note(&format!(
            "the backup passed verify-backup at {when} and none of its {} files changed since (size, inode, mtime, ctime)",
            files.len()
        ));
        return Ok(Verified::Earlier);
    }
    let report = verify::verify(sh, backup, Some(&o.label), Some(tree), o.python.as_deref())?;
    if report.ok() {
        return Ok(Verified::Now);
    }
    Err(refused(format!(
        "the backup {} failed verification, so nothing was touched:\n  {}\n(--skip-verify overrides this in an emergency)",
        backup.display(),
        report.failures().join("\n  ")
    )))
}

/// The crash tests' hook (`xtask_base::faults::rollback`): aborts the process
/// at this instant, as a crash or power loss would, when a test armed it.
pub(super) fn fault_hook(when: &str, at: impl std::fmt::Display) {
    if let Some(fault) = xtask_base::faults::rollback()
        && fault == format!("{when}:{at}")
    {
        events::note(&format!("fault injected {when} {at}: aborting"));
        std::process::abort();
    }
}
