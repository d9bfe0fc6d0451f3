//! `cargo xtask rollback`: the runbook's decision matrix, run safely (verified
//! backup, plan first, confirmation), atomically (staged restores) and
//! resumably (a journal of every step).
mod plan;
mod restored;
mod steps;

use std::{
    fs,
    io::{BufRead, IsTerminal, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use serde::Serialize;
use xshell::Shell;

pub use plan::Choices;
pub use plan::Scenario;
use plan::Step;
pub use steps::tables_created_by;

use crate::{
    backup::DEFAULT_LABEL,
    clock, evidence,
    exit::{interrupted, refused, usage},
    flags,
    journal::Journal,
    lock::{Lock, Refusal},
    manifest::{MANIFEST_FILE, Manifest},
    profile::{Tree, check_label},
    report::Format,
    verify_backup,
};

/// The result of one step, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub step: String,
    pub plan: String,
    pub result: String,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub schema: u32,
    pub command: &'static str,
    pub scenario: Scenario,
    pub dry_run: bool,
    pub plan: Vec<String>,
    pub steps: Vec<StepResult>,
    pub bundle: Option<String>,
    pub result: &'static str,
}

impl flags::Rollback {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let format = Format::parse(self.format.as_deref())?;
        let scenario = Scenario::parse(&self.scenario)?;
        let choices = Choices {
            to: self.to.clone(),
            steps: self.steps,
            allow_data_loss: self.allow_data_loss,
            paths: self.paths.clone(),
            commit: self.commit.clone(),
            hard: self.hard,
            force: self.force,
            from: self.from.clone(),
        };
        plan::check_choices(scenario, &choices)?;
        let tree = Tree::locate(self.root.as_deref())?;
        let label = self.label.clone().unwrap_or_else(|| DEFAULT_LABEL.into());
        check_label(&label)?;
        let options = Options {
            scenario,
            label,
            choices,
            dry_run: self.dry_run,
            yes: self.yes,
            resume: self.resume,
            break_lock: self.break_lock,
            skip_verify: self.skip_verify,
            grace: Duration::from_secs(self.grace.unwrap_or(10)),
            python: self.python.clone(),
            quiet: format == Format::Json,
        };
        let outcome = rollback(sh, &tree, &options)?;
        if format == Format::Json {
            println!("{}", serde_json::to_string_pretty(&outcome)?);
        }
        Ok(())
    }
}

pub struct Options {
    pub scenario: Scenario,
    pub label: String,
    pub choices: Choices,
    pub dry_run: bool,
    pub yes: bool,
    pub resume: bool,
    pub break_lock: bool,
    pub skip_verify: bool,
    pub grace: Duration,
    pub python: Option<PathBuf>,
    /// JSON output: the human lines go to stderr instead.
    pub quiet: bool,
}

/// Runs (or with `dry_run`, plans) a rollback of `tree`.
pub fn rollback(sh: &Shell, tree: &Tree, o: &Options) -> Result<Outcome> {
    let say = |line: String| if o.quiet { eprintln!("{line}") } else { println!("{line}") };
    // A journal that another live run is writing is not an interrupted run:
    // a live lock holder means exit 3 before the journal is looked at. A dead
    // holder with a journal is the interrupted run itself.
    let state = tree.state_dir();
    let journal: Option<Journal<Step>> = Journal::load(&state)?;
    let takeover = o.break_lock || (o.resume && journal.is_some());
    let _lock = match (o.dry_run, Lock::acquire(&state, takeover)) {
        (true, _) => None,
        (false, Ok(lock)) => Some(lock),
        (false, Err(Refusal::Stale(_))) if journal.is_some() && !o.resume => None,
        (false, Err(refusal)) => return Err(refusal.into_error()),
    };
    match (&journal, o.resume) {
        (Some(j), false) => {
            let at = j.current.or_else(|| j.done.iter().position(|d| !d)).unwrap_or(0);
            return Err(interrupted(format!(
                "an earlier rollback (--scenario {}, run {}, started {}) was interrupted at step {} ({}): run again with --resume to finish it, or inspect {} and {} first",
                j.scenario,
                j.run,
                j.started,
                at + 1,
                j.steps.get(at).map_or("?", |s| s.name()),
                crate::journal::path(&state).display(),
                j.bundle.display()
            )));
        }
        (None, true) => return Err(usage("there is no interrupted rollback to resume")),
        (Some(j), true) if j.scenario != o.scenario.name() => {
            return Err(usage(format!(
                "the interrupted rollback is --scenario {}: resume it with --scenario {} --resume",
                j.scenario, j.scenario
            )));
        }
        _ => {}
    }

    let backup = tree.backup(&o.label);
    if !backup.is_dir() {
        return Err(usage(format!(
            "no backup at {}: take one with `cargo xtask backup`",
            backup.display()
        )));
    }
    let verified = preflight(sh, tree, &backup, o)?;
    let manifest_text =
        fs::read_to_string(backup.join(MANIFEST_FILE)).context("read the backup's manifest")?;
    let manifest = Manifest::parse(&manifest_text)
        .map_err(|e| refused(format!("the backup's manifest is unreadable: {e:#}")))?;

    let (mut journal, resuming) = match journal {
        Some(j) => (j, true),
        None => {
            let run = format!("{}-{}", clock::now_compact(), std::process::id());
            let steps = plan::build(o.scenario, tree, &manifest, &o.choices, &run)?;
            let bundle = evidence::new_bundle_path(tree, &o.label);
            let journal = Journal {
                run,
                scenario: o.scenario.name().into(),
                label: o.label.clone(),
                started: clock::now_rfc3339(),
                bundle: bundle.strip_prefix(&tree.root).unwrap_or(&bundle).to_path_buf(),
                done: vec![false; steps.len()],
                steps,
                current: None,
            };
            (journal, false)
        }
    };
    let bundle_dir = tree.root.join(&journal.bundle);
    let plan: Vec<String> =
        journal.steps.iter().map(|s| s.describe(tree, &backup, &manifest, &bundle_dir)).collect();
    say(format!(
        "{} plan: rollback --scenario {} of {} from {}",
        if o.dry_run {
            "dry-run"
        } else if resuming {
            "resumed"
        } else {
            "rollback"
        },
        journal.scenario,
        tree.root.display(),
        plan::rel(&tree.root, &backup)
    ));
    for (i, line) in plan.iter().enumerate() {
        let mark = if journal.done[i] { " (done before the interruption; re-checked)" } else { "" };
        say(format!("  {}. {line}{mark}", i + 1));
    }
    let mut outcome = Outcome {
        schema: crate::report::SCHEMA,
        command: "rollback",
        scenario: o.scenario,
        dry_run: o.dry_run,
        plan: plan.clone(),
        steps: Vec::new(),
        bundle: Some(journal.bundle.display().to_string()),
        result: "planned",
    };
    if o.dry_run {
        say("dry run: nothing was changed".into());
        return Ok(outcome);
    }
    confirm(o)?;
    if verified == Verified::Now {
        // Best effort: without the stamp the next run verifies again.
        let _ = verify_backup::stamp::record(tree, &backup);
    }

    journal.save(&state)?;
    let mut ctx = steps::Ctx::new(
        sh,
        tree,
        backup.clone(),
        manifest,
        o.python.clone(),
        o.grace,
        bundle_dir,
        journal.scenario.clone(),
    );
    ctx.backup_verified = verified != Verified::Skipped;
    let started = Instant::now();
    for (i, planned) in plan.iter().enumerate() {
        let step = journal.steps[i].clone();
        fault_hook("before", i + 1);
        journal.begin(&state, i)?;
        let step_started = Instant::now();
        let result = ctx.run(&step).with_context(|| format!("step {} ({})", i + 1, step.name()))?;
        if ctx.bundle_dir != tree.root.join(&journal.bundle) {
            journal.bundle =
                ctx.bundle_dir.strip_prefix(&tree.root).unwrap_or(&ctx.bundle_dir).to_path_buf();
        }
        journal.end(&state, i)?;
        let duration_ms = step_started.elapsed().as_millis() as u64;
        say(format!("  ✓ {}. {} ({duration_ms} ms): {result}", i + 1, step.name()));
        outcome.steps.push(StepResult {
            step: step.name().into(),
            plan: planned.clone(),
            result,
            duration_ms,
        });
        fault_hook("after", i + 1);
    }
    ctx.seal_bundle()?;
    journal.close(&state, &tree.root)?;
    outcome.result = "done";
    outcome.bundle = Some(journal.bundle.display().to_string());
    say(format!(
        "rollback --scenario {} done in {:.2}s; the failed state is in {}",
        journal.scenario,
        started.elapsed().as_secs_f64(),
        journal.bundle.display()
    ));
    Ok(outcome)
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
        eprintln!(
            "WARNING: --skip-verify: the backup at {} is NOT verified; a corrupt or incomplete backup would be restored as it is",
            backup.display()
        );
        return Ok(Verified::Skipped);
    }
    if let Some((when, files)) = verify_backup::stamp::unchanged_since(tree, backup) {
        eprintln!(
            "the backup passed verify-backup at {when} and none of its {files} files changed since (size, inode, mtime, ctime)"
        );
        return Ok(Verified::Earlier);
    }
    let report = verify_backup::verify(sh, backup, Some(tree), o.python.as_deref())?;
    if report.ok() {
        return Ok(Verified::Now);
    }
    Err(refused(format!(
        "the backup {} failed verification, so nothing was touched:\n  {}\n(--skip-verify overrides this in an emergency)",
        backup.display(),
        report.failures().join("\n  ")
    )))
}

/// `--yes`, or a person at a terminal who answers yes.
fn confirm(o: &Options) -> Result<()> {
    if o.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(refused("no terminal to confirm on: pass --yes to run this plan"));
    }
    eprint!("Run this plan? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(refused("not confirmed: nothing was changed"))
    }
}

/// A test-only fault hook: `XTASK_ROLLBACK_FAULT=after:3` aborts the process
/// right after step 3 is journaled, as a crash or power loss would.
fn fault_hook(when: &str, step: usize) {
    if let Ok(fault) = std::env::var("XTASK_ROLLBACK_FAULT")
        && fault == format!("{when}:{step}")
    {
        eprintln!("fault injected {when} step {step}: aborting");
        std::process::abort();
    }
}
