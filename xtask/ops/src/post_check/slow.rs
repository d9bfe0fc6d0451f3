//! The slow checks, started first, each group in its own thread with its
//! own shell and its own scratch copy of the tree: pytest's two groups and
//! the server's two checks. An app that migrates when it starts does so in
//! its copy, never under pytest's or alembic's feet.
use std::{path::Path, thread, time::Instant};

use anyhow::Result;
use xshell::Shell;

use super::{
    Expected, Selection,
    checks::{CHECKS, Run},
    live, pytest, server,
};
use crate::check_copy::CheckCopy;
use xtask_adapters::python::Python;
use xtask_fs::scratch_copy::Cost;
use xtask_model::{
    check::{Check, CheckId},
    profile::Tree,
};

/// A group's checks and what its copy of the tree cost.
type Finished = Result<(Vec<Check>, Option<Cost>)>;
type Pending = Option<thread::JoinHandle<Finished>>;
/// A group of slow checks, as its thread runs it.
type Group = Box<dyn FnOnce(&Shell, &Python, &Tree, &Path) -> Result<Vec<Check>> + Send>;

pub(super) struct Slow {
    tests: Option<Pending>,
    server: Option<Pending>,
}

/// Where the slow checks run.
pub(super) struct Where<'a> {
    pub port: u16,
    /// Outside the tree: pytest's XML report and the server's log.
    pub scratch: &'a Path,
    /// On the live tree (`--live`), not on copies.
    pub live: bool,
    /// A deploy is judged: the app's start-up migration is its own.
    pub after_deploy: bool,
}

/// The service's interpreter is never swapped for ours: a group whose tool
/// it lacks fails each of its checks saying so.
fn needs(python: &Python, tool: &str) -> Result<()> {
    if python.lacks(tool) {
        anyhow::bail!(
            "{} has no {tool}: install {tool} in that interpreter, or choose another with --python (the tool never swaps the service's interpreter for its own)",
            python.describe()
        );
    }
    Ok(())
}

/// Runs `group` on a copy of `tree` (or on the tree itself when `live`).
fn on_a_copy(tree: &Tree, live: bool, group: impl FnOnce(&Tree) -> Result<Vec<Check>>) -> Finished {
    if live {
        return Ok((group(tree)?, None));
    }
    let copy = CheckCopy::of(tree)?;
    Ok((group(&copy.tree)?, Some(copy.cost)))
}

impl Slow {
    pub(super) fn start(
        selection: &Selection<'_>,
        python: Option<&Python>,
        tree: &Tree,
        expected: &Expected,
        at: Where<'_>,
    ) -> Slow {
        let (live, port, after_deploy) = (at.live, at.port, at.after_deploy);
        let spawn = |group: Group| {
            let (py, tree, scratch) = (python.cloned(), tree.clone(), at.scratch.to_path_buf());
            py.map(|py| {
                thread::spawn(move || {
                    let started = Instant::now();
                    let (checks, cost) =
                        on_a_copy(&tree, live, |on| group(&Shell::new()?, &py, on, &scratch))?;
                    Ok((checks.into_iter().map(|c| c.since(started)).collect(), cost))
                })
            })
        };
        let tests = selection.runs_any(|r| matches!(r, Run::Tests)).then(|| {
            spawn(Box::new(|sh, py, on, scratch| {
                needs(py, "pytest")?;
                pytest::run(sh, py, on, scratch)
            }))
        });
        let revision = expected.revision.clone();
        let barred = live::server_barred(tree, live);
        let server = selection.runs_any(|r| matches!(r, Run::Server)).then(|| match barred {
            Some(why) => {
                let barred = |id| Check::not_applicable(id, why.clone());
                let ids = [CheckId::ServerStart, CheckId::ServerHealth, CheckId::ServerRestart];
                let checks = ids.into_iter().map(barred).collect();
                Some(thread::spawn(move || Ok((checks, None))))
            }
            None => spawn(Box::new(move |sh, py, on, scratch| {
                // The launcher serves a WSGI app without uvicorn, and says
                // when it cannot; uvicorn's own arguments need uvicorn.
                if !on.profile.server_args.is_empty() {
                    needs(py, "uvicorn")?;
                }
                let expected = revision.as_deref();
                let at = server::At { port, expected, scratch, after_deploy };
                let outcome = server::check(sh, py, on, &at);
                Ok(vec![outcome.start, outcome.health, outcome.restart])
            })),
        });
        Slow { tests, server }
    }

    /// Their checks and copies; a group that could not run fails each of
    /// its checks with the reason (`no_python` when there was no interpreter).
    pub(super) fn finish(self, no_python: Option<String>) -> (Vec<Check>, Vec<Cost>) {
        let (mut checks, mut costs) = (Vec::new(), Vec::new());
        let groups = [(self.tests, Run::Tests), (self.server, Run::Server)];
        for (pending, kind) in groups {
            let Some(pending) = pending else { continue };
            let outcome = match pending {
                Some(handle) => {
                    handle.join().unwrap_or_else(|_| Err(anyhow::anyhow!("its thread panicked")))
                }
                None => Err(anyhow::anyhow!("{}", no_python.clone().unwrap_or_default())),
            };
            match outcome {
                Ok((group, cost)) => {
                    checks.extend(group);
                    costs.extend(cost);
                }
                Err(err) => {
                    let ids = CHECKS.iter().filter(|(_, run)| {
                        std::mem::discriminant(run) == std::mem::discriminant(&kind)
                    });
                    checks.extend(ids.map(|(id, _)| Check::fail(*id, format!("{err:#}"))));
                }
            }
        }
        (checks, costs)
    }
}

/// For a report: the copies the programs ran on and what they cost.
pub(super) fn describe(copies: &[Cost]) -> String {
    let each: Vec<String> = copies.iter().map(Cost::to_string).collect();
    format!("scratch copies of the tree, one per group of checks: {}", each.join("; "))
}
