//! `cargo xtask post-check`: the runbook's "Verification Tests" and its
//! post-rollback checklist, as checks with exact results for CI and people.
mod checks;
mod pytest;
mod server;

use std::{fmt::Write as _, fs, path::PathBuf, thread, time::Instant};

use anyhow::{Context, Result};
use xshell::Shell;

use crate::{
    backup::DEFAULT_LABEL,
    exit::{failed, usage},
    flags, fsutil,
    manifest::{MANIFEST_FILE, Manifest},
    migrations::Graph,
    profile::{Tree, check_label},
    python::Python,
    report::{Check, Report, Status},
};

pub use checks::imports_check;
use checks::*;
pub use server::free_port;

/// Every check id, in report order (from the one table, `checks::CHECKS`).
pub fn check_ids() -> impl Iterator<Item = &'static str> {
    CHECKS.iter().map(|(id, _, _)| *id)
}

impl flags::PostCheck {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let format = self.format.unwrap_or_default();
        for (flag, path) in [("--junit", &self.junit), ("--checklist", &self.checklist)] {
            if let Some(path) = path {
                crate::report::check_output_file(flag, path)?;
            }
        }
        // `--only a,b` is `--only a --only b`.
        let split = |ids: Vec<String>| -> Vec<String> {
            ids.iter()
                .flat_map(|i| i.split(','))
                .map(|i| i.trim().to_string())
                .filter(|i| !i.is_empty())
                .collect()
        };
        let junit = self.junit.clone();
        let report = (|| {
            let tree = Tree::locate(self.root.as_deref())?;
            let options = Options {
                label: self.label.unwrap_or_else(|| DEFAULT_LABEL.into()),
                only: split(self.only),
                skip: split(self.skip),
                expect_revision: self.expect_revision,
                port: self.port,
                python: self.python,
                require_backup: self.require_backup,
            };
            post_check(sh, &tree, &options).map(|report| (tree, report))
        })();
        // A JUnit file on every exit: when no check could run, one error says why.
        let (tree, report) = crate::report::or_junit_error(report, "post-check", junit.as_deref())?;
        print!("{}", report.emit(format, junit.as_deref(), true)?);
        if let Some(path) = &self.checklist {
            fs::write(path, checklist(&tree, &report))
                .with_context(|| format!("write the checklist to {}", path.display()))?;
        }
        if !report.ok() {
            return Err(failed(format!("{} of the post-rollback checks failed", report.failed)));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub label: String,
    pub only: Vec<String>,
    pub skip: Vec<String>,
    pub expect_revision: Option<String>,
    pub port: Option<u16>,
    pub python: Option<PathBuf>,
    pub require_backup: bool,
}

/// What the checks compare against: the backup's manifest, or the code.
struct Expected {
    manifest: Option<(PathBuf, Manifest)>,
    revision: Option<String>,
    /// Why there is no expected revision, when there is none.
    missing: String,
    /// `--require-backup`: a missing backup fails the checks that need one.
    require_backup: bool,
    label: String,
}

impl Expected {
    /// The verdict of a check that compares with a backup when there is none:
    /// not applicable (after a normal deploy there is no backup to compare
    /// with), or a failure with `--require-backup`.
    fn no_backup(&self, id: &str, title: &str) -> Check {
        let why = format!("there is no backup {} to compare with", self.label);
        if self.require_backup {
            Check::fail(id, title, format!("{why} (--require-backup)"))
        } else {
            Check::not_applicable(id, title, why)
        }
    }
}

pub fn post_check(sh: &Shell, tree: &Tree, o: &Options) -> Result<Report> {
    check_label(&o.label)?;
    for id in o.only.iter().chain(&o.skip) {
        if !check_ids().any(|known| known == id || known.split('.').next() == Some(id.as_str())) {
            return Err(usage(format!(
                "unknown check {id:?}; the checks are: {}",
                check_ids().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let named = |list: &[String], id: &str| {
        let group = id.split('.').next().unwrap_or(id);
        list.iter().any(|n| n == id || n == group)
    };
    let wanted = |id: &str| o.only.is_empty() || named(&o.only, id);
    let selected = |id: &str| wanted(id) && !named(&o.skip, id);
    if !check_ids().any(selected) {
        return Err(usage(format!(
            "--only {} with --skip {} leaves no check to run",
            o.only.join(","),
            o.skip.join(",")
        )));
    }
    let expected = expectations(tree, o)?;
    // Outside the tree: pytest's XML report and the server's log.
    let scratch = fsutil::scratch_dir("tmws-post-check")?;
    let python = Python::find(sh, Some(&tree.root), o.python.as_deref());

    // The slow checks start first, each in its own thread with its own shell;
    // the quick ones run meanwhile.
    let port = match o.port {
        Some(port) => port,
        None if tree.profile.port != 0 => tree.profile.port,
        None => free_port()?,
    };
    let group_selected =
        |run: fn(&Run) -> bool| CHECKS.iter().any(|(id, _, how)| run(how) && selected(id));
    let wants_tests = group_selected(|r| matches!(r, Run::Tests));
    let wants_server = group_selected(|r| matches!(r, Run::Server));
    let tests = python.as_ref().ok().filter(|_| wants_tests).map(|py| {
        let (py, tree, scratch) = (py.clone(), tree.clone(), scratch.path().to_path_buf());
        thread::spawn(move || {
            let sh = Shell::new()?;
            let started = Instant::now();
            let checks = pytest::run(&sh, &py, &tree, &scratch)?;
            Ok::<_, anyhow::Error>(checks.into_iter().map(|c| c.since(started)).collect::<Vec<_>>())
        })
    });
    let server = python.as_ref().ok().filter(|_| wants_server).map(|py| {
        let (py, tree, scratch) = (py.clone(), tree.clone(), scratch.path().to_path_buf());
        let revision = expected.revision.clone();
        thread::spawn(move || {
            let sh = Shell::new()?;
            Ok::<_, anyhow::Error>(server::check(
                &sh,
                &py,
                &tree,
                port,
                revision.as_deref(),
                &scratch,
            ))
        })
    });

    // The quick checks, in the table's order, while the slow ones run.
    let py = python.as_ref().map_err(|e| format!("{e:#}"));
    let ctx = Ctx {
        sh,
        tree,
        db: tree.database(),
        expected: &expected,
        python: py.clone(),
        label: &o.label,
        alembic: Default::default(),
    };
    let mut checks = Vec::new();
    for (id, _, how) in &CHECKS {
        if let (Run::Quick(check), true) = (how, selected(id)) {
            let started = Instant::now();
            checks.push(check(&ctx).since(started));
        }
    }

    // Waiting for the slow ones: a thread that could not run fails its
    // checks with the reason.
    let cannot_run = |ids: &[&str], why: String| -> Vec<Check> {
        ids.iter().map(|id| Check::fail(id, title_of(id), why.clone())).collect()
    };
    let no_python = || format!("no Python to run it: {}", py.clone().err().unwrap_or_default());
    let ids_of = |run: fn(&Run) -> bool| -> Vec<&str> {
        CHECKS.iter().filter(|(_, _, how)| run(how)).map(|(id, _, _)| *id).collect()
    };
    let test_ids = ids_of(|r| matches!(r, Run::Tests));
    let mut slow = Vec::new();
    if wants_tests {
        slow.extend(match tests {
            Some(handle) => handle
                .join()
                .expect("the pytest thread does not panic")
                .unwrap_or_else(|err| cannot_run(&test_ids, format!("{err:#}"))),
            None => cannot_run(&test_ids, no_python()),
        });
    }
    let server_ids = ids_of(|r| matches!(r, Run::Server));
    if wants_server {
        slow.extend(match server.map(|h| h.join().expect("the server thread does not panic")) {
            Some(Ok(outcome)) => vec![outcome.start, outcome.health],
            Some(Err(err)) => cannot_run(&server_ids, format!("{err:#}")),
            None => cannot_run(&server_ids, no_python()),
        });
    }
    checks.extend(slow.into_iter().filter(|c| selected(&c.id)));
    // A check is `skip` only when the user skipped it by name.
    for id in check_ids() {
        if wanted(id) && named(&o.skip, id) {
            checks.push(Check::skip(id, title_of(id)));
        }
    }
    checks.sort_by_key(|c| check_ids().position(|id| id == c.id).unwrap_or(usize::MAX));
    let mut report = Report::new("post-check", tree.root.display().to_string(), checks);
    report.interpreter = python.as_ref().ok().map(Python::describe);
    Ok(report)
}

fn expectations(tree: &Tree, o: &Options) -> Result<Expected> {
    let dir = tree.backup(&o.label);
    let manifest = match fs::read_to_string(dir.join(MANIFEST_FILE)) {
        Ok(text) => Some((
            dir,
            Manifest::parse(&text).map_err(|e| usage(format!("the backup's manifest: {e:#}")))?,
        )),
        Err(_) => None,
    };
    let (revision, missing) = match (&o.expect_revision, &manifest) {
        (Some(rev), _) if rev == "head" => {
            let heads = Graph::load(&tree.migrations()).map(|g| g.heads()).unwrap_or_default();
            match heads.as_slice() {
                [one] => (Some(one.clone()), String::new()),
                _ => (None, format!("the migrations have {} heads, not one", heads.len())),
            }
        }
        (Some(rev), _) => (Some(rev.clone()), String::new()),
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
    })
}

/// The runbook's post-rollback checklist, ticked from the real results.
pub fn checklist(tree: &Tree, report: &Report) -> String {
    let passed = |ids: &[&str]| {
        ids.iter().all(|id| report.checks.iter().any(|c| c.id == *id && c.status == Status::Pass))
    };
    let postmortem = ["POSTMORTEM.md", "post-mortem.md", "docs/POSTMORTEM.md"]
        .iter()
        .any(|p| tree.path(p).is_file())
        || fs::read_dir(tree.forensics_dir())
            .map(|d| d.flatten().any(|e| e.path().join("POSTMORTEM.md").is_file()))
            .unwrap_or(false);
    let rows = [
        (passed(&["database.integrity"]), "Database integrity verified (`PRAGMA integrity_check`)"),
        (passed(&["database.revision"]), "Alembic revision matches pre-Phase4"),
        (passed(&["files.restored"]), "All critical files restored"),
        (passed(&["tests.unit"]), "Unit tests pass (100%)"),
        (passed(&["tests.integration"]), "Integration tests pass"),
        (passed(&["server.start"]), "Server starts without errors"),
        (passed(&["server.health"]), "Health endpoint responds"),
        (passed(&["git.clean"]), "Git state is clean (`git status`)"),
        (passed(&["forensics"]), "Backup forensics performed (analyze failure)"),
        (postmortem, "Post-mortem document created"),
    ];
    let mut out = String::from("# Post-Rollback Checklist\n\n");
    let _ = writeln!(
        out,
        "Tree: {}  \nChecked: {}\n",
        tree.root.display(),
        crate::clock::now_rfc3339()
    );
    for (ok, text) in rows {
        let _ = writeln!(out, "- [{}] {text}", if ok { "x" } else { " " });
    }
    out
}
