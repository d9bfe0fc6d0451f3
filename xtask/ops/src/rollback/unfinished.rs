//! A run that did not finish: found in the journal under the lock (exit 5
//! until it is resumed or abandoned), or closed on purpose with `--abandon`,
//! its bundle kept and the tree left as its finished steps left it.
use anyhow::Result;

use super::{Options, Outcome, plan::Step};
use xtask_base::{
    clock,
    exit::{Kind, usage, with_next},
};
use xtask_model::{
    advice,
    journal::{Journal, Peek, RunStatus},
    label::Label,
    profile::Tree,
    scenario::Scenario,
};

/// The scenario of `--resume` and `--abandon` without `--scenario`: the
/// unfinished run's, from its journal (any, when the journal cannot be read:
/// abandoning it moves the file away unread).
pub fn unfinished_scenario(tree: &Tree) -> Result<Scenario> {
    match Journal::<Step>::peek(tree) {
        Peek::Found(journal) => Ok(journal.scenario),
        Peek::Unreadable(_) => Ok(Scenario::Complete),
        Peek::None => Err(usage(
            "there is no interrupted or failed rollback to resume or abandon (a new rollback needs --scenario)",
        )),
    }
}

/// The backup of `--resume` and `--abandon` without `--label`: the one the
/// unfinished run started from, from its journal (the run goes on from
/// the backup its finished steps restored, never from another).
pub fn unfinished_label(tree: &Tree) -> Option<Label> {
    match Journal::<Step>::peek(tree) {
        Peek::Found(journal) => Some(journal.label),
        _ => None,
    }
}

/// What the journal says about earlier runs, read under the lock: an
/// unfinished run blocks a new one (exit 5) until it is resumed or abandoned.
pub(super) fn triage(tree: &Tree, o: &Options) -> Result<Option<Journal<Step>>> {
    let journal: Option<Journal<Step>> = Journal::load(tree)?;
    match (&journal, o.resume || o.abandon) {
        (Some(j), false) => {
            let at = j.stopped_at();
            let what = match j.status {
                RunStatus::Failed => format!(
                    "failed at step {} ({}): {}",
                    at + 1,
                    j.steps.get(at).map_or("?", |s| s.name()),
                    j.failure.as_deref().unwrap_or("no reason recorded")
                ),
                _ => format!(
                    "was interrupted at step {} ({})",
                    at + 1,
                    j.steps.get(at).map_or("?", |s| s.name())
                ),
            };
            let resume = advice::resume(j.scenario, &tree.root);
            Err(with_next(
                Kind::Interrupted,
                format!(
                    "an earlier rollback (--scenario {}, run {}, started {}) {what}.\nIts failed state is in {}. Finish it with `{resume}`, or close it and keep the tree as it is with `{}`",
                    j.scenario,
                    j.run,
                    j.started,
                    j.bundle.display(),
                    advice::abandon(j.scenario, &tree.root)
                ),
                resume,
            ))
        }
        (None, true) if o.resume => Err(usage("there is no interrupted rollback to resume")),
        (Some(j), true) if j.scenario != o.choices.scenario() => Err(usage(format!(
            "the unfinished rollback is --scenario {}: use --scenario {} with --resume or --abandon",
            j.scenario, j.scenario
        ))),
        (Some(j), true) if j.label != o.label => Err(usage(format!(
            "the unfinished rollback restores from the backup {}, not {}: use --label {} with --resume or --abandon, or leave --label out",
            j.label, o.label, j.label
        ))),
        _ => Ok(journal),
    }
}

/// Closes a run whose journal cannot be read: the file (whatever it is: it
/// is moved, never opened) goes into a folder of its own under
/// `forensics/`, and the tree stays as it is.
pub(super) fn abandon_unreadable(
    tree: &Tree,
    o: &Options,
    why: &str,
    say: &dyn Fn(String),
) -> Result<Outcome> {
    let kept = tree.forensics_dir().join(format!(
        "unreadable-journal-{}-{}",
        clock::now_compact(),
        std::process::id()
    ));
    tree.fs.create_dir_all(&kept)?;
    let journal = xtask_model::journal::path(&tree.state_dir());
    tree.fs.rename(&journal, &kept.join("journal.json"), xtask_fs::sys::Rename::NoReplace)?;
    let relative = kept.strip_prefix(&tree.root).unwrap_or(&kept).display().to_string();
    say(format!(
        "abandoned an unfinished rollback whose journal could not be read: {why}. The file is kept in {relative}/journal.json; the tree stays as it is (check it with `{}`)",
        advice::xtask("diagnose", &tree.root)
    ));
    Ok(Outcome::abandoned(o.choices.scenario(), relative))
}

/// Closes an unfinished run on purpose: its journal goes into its bundle,
/// and the tree stays as the finished steps left it.
pub(super) fn abandon(
    tree: &Tree,
    mut journal: Journal<Step>,
    o: &Options,
    say: &dyn Fn(String),
) -> Result<Outcome> {
    let done: Vec<String> = journal
        .steps
        .iter()
        .zip(&journal.done)
        .enumerate()
        .filter(|(_, (_, done))| **done)
        .map(|(i, (s, _))| format!("{}. {}", i + 1, s.name()))
        .collect();
    let copy = keep_migration_copy(tree, &journal)?;
    journal.close(tree, RunStatus::Abandoned)?;
    say(format!(
        "abandoned rollback run {} (--scenario {}). The tree stays as its finished steps left it: {}. Its bundle (the failed state, and journal.json{copy}) is kept in {}",
        journal.run,
        journal.scenario,
        if done.is_empty() { "none finished, nothing was changed".into() } else { done.join(", ") },
        journal.bundle.display()
    ));
    Ok(Outcome::abandoned(o.choices.scenario(), journal.bundle.display().to_string()))
}

/// The copy a migration step left (to look at, when the downgrade failed)
/// goes into the bundle, so that nothing of the run stays beside the
/// database: ", the migration's copy in migration-copy/" when it did.
fn keep_migration_copy(tree: &Tree, journal: &Journal<Step>) -> Result<&'static str> {
    let bundle = tree.root.join(&journal.bundle);
    for step in &journal.steps {
        let Step::MigrateCopy { folder, .. } = step else { continue };
        let dir = tree.path(folder);
        if tree.fs.expect_dir_or_nothing(&dir)? {
            tree.fs.create_dir_all(&bundle)?;
            let kept = xtask_fs::files::free_name(&bundle.join("migration-copy"));
            tree.fs.rename(&dir, &kept, xtask_fs::sys::Rename::NoReplace)?;
            return Ok(", the migration's copy in migration-copy/");
        }
    }
    Ok("")
}
