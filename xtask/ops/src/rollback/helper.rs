//! The Python helper of a rollback that runs alembic: one process for the
//! whole run, started once the plan is confirmed and before step 1, with
//! the profile's URL variable naming the copy of the database the
//! migration works on, and allowed to write only in that copy's folder. Its
//! first answer is the identity probe: the plan's last check.
use anyhow::{Context, Result};
use xshell::Shell;

use super::{Options, plan::Step};
use crate::identity;
use xtask_adapters::python::{Python, Scope, Session};
use xtask_model::{journal::Journal, profile::Tree};

/// The copy's folder of the first migration step still to run.
fn pending_migration(journal: &Journal<Step>) -> Option<&str> {
    journal.steps.iter().zip(&journal.done).find_map(|(step, done)| match step {
        Step::MigrateCopy { folder, .. } if !done => Some(folder.as_str()),
        _ => None,
    })
}

/// A dry run's early warning: alembic, pointed at the tree's database,
/// must open that very file. It writes nowhere, and opens nothing.
pub(super) fn probe_live(
    sh: &Shell,
    tree: &Tree,
    o: &Options,
    journal: &Journal<Step>,
) -> Result<()> {
    if pending_migration(journal).is_none() {
        return Ok(());
    }
    let python = Python::find(sh, Some(&tree.root), o.python.as_deref())?;
    let mut session = python.session(sh, tree, Scope::tree(tree, &[]))?;
    identity::prove_alembic_opens(&mut session, tree, &tree.database())
}

/// The helper of a run whose plan migrates the database: its copy's
/// folder made (empty, 0700) beside the database, the helper confined to
/// it, and the probe passed for the copy it will work on. A probe that
/// fails takes the folder away again: nothing was changed.
pub(super) fn start(
    sh: &Shell,
    tree: &Tree,
    o: &Options,
    journal: &Journal<Step>,
) -> Result<Option<Session>> {
    let Some(folder) = pending_migration(journal) else { return Ok(None) };
    let dir = tree.path(folder);
    let made = !tree.fs.expect_dir_or_nothing(&dir)?;
    if made {
        tree.fs.create_dir(&dir, 0o700).with_context(|| format!("create {folder}"))?;
        // alembic writes there as the tree's owner when root runs the tool.
        xtask_fs::programs_owner::give(tree.fs.dir(&dir)?)?;
    }
    let copy = dir.join(tree.database().file_name().unwrap_or_default());
    let started = Python::find(sh, Some(&tree.root), o.python.as_deref()).and_then(|python| {
        let mut session = python.session(sh, tree, Scope::database(&copy, &[&dir]))?;
        identity::prove_alembic_opens(&mut session, tree, &copy)?;
        Ok(session)
    });
    if started.is_err() && made {
        tree.fs.remove_dir_all(&dir)?;
    }
    started.map(Some)
}
