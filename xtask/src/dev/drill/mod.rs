//! `cargo xtask drill`: rehearses the decision matrix end to end. For each
//! scenario: a Phase 4 sandbox with its backup, broken the way the scenario
//! says, diagnosed, rolled back, checked, and its evidence verified.
use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use schemars::JsonSchema;
use serde::Serialize;
use xshell::Shell;

use xtask_adapters::python::Python;
use xtask_base::exit::{failed, usage};
use xtask_fs::files;
use xtask_fs::unconfined;
use xtask_model::{
    check::{Verdict, Version},
    label::Label,
    profile::Tree,
    scenario::{Recommendation, Scenario},
};
use xtask_ops::{diagnose, evidence::Facts, post_check, rollback};

use crate::{
    cli::{
        flags::{self, Format, Rows, Stage},
        ui,
    },
    dev::sandbox,
};

/// One rehearsed scenario, as the table shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Rehearsal {
    pub scenario: Scenario,
    /// What diagnose recommended (`-` when it did not run).
    pub diagnosis: String,
    /// What the rollback did (`-` when it did not run).
    pub rollback: String,
    /// What post-check found (`-` when it did not run).
    pub post_check: String,
    /// What of the broken state the forensics bundle was found to hold
    /// (`-` when not looked at).
    pub evidence: String,
    pub passed: bool,
    pub break_ms: u64,
    pub diagnose_ms: u64,
    pub rollback_ms: u64,
    pub post_check_ms: u64,
    /// The runbook's estimate for this row.
    pub runbook_minutes: u32,
    /// Why it failed, when it did.
    pub problem: Option<String>,
}

/// `drill --format json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DrillDocument {
    pub schema: Version,
    #[schemars(extend("const" = "drill"))]
    pub command: &'static str,
    /// `pass` when every scenario passed.
    pub result: Verdict,
    pub scenarios: Vec<Rehearsal>,
}

mod breakage;

use breakage::{break_tree, post_check_groups};

impl flags::Drill {
    pub fn run(self, sh: &Shell) -> Result<()> {
        crate::dev::workspace("drill")?;
        let format = self.format.unwrap_or_default();
        let scenarios = match self.scenario.unwrap_or(Rows::All) {
            Rows::All => Scenario::ALL.to_vec(),
            Rows::One(scenario) => vec![scenario],
        };
        let (work, _temp) = match &self.keep {
            Some(dir) => {
                if xtask_fs::outside::exists(dir)
                    && xtask_fs::outside::names(dir).map_or(true, |names| !names.is_empty())
                {
                    return Err(usage(format!(
                        "--keep {} must be a new or empty folder",
                        dir.display()
                    )));
                }
                unconfined::create_dir_all(dir)?;
                (xtask_fs::outside::canonicalize(dir)?, None)
            }
            None => {
                let temp = files::scratch_dir("tmws-drill")?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        ui::note(&format!(
            "drill: building a Phase 4 sandbox with its pre-Phase-4 backup in {}",
            work.display()
        ));
        let template = work.join("template");
        let tree = sandbox::build(sh, &template, Stage::Phase4, self.python.as_deref(), None)?;
        let python = Python::find(sh, Some(&tree.root), self.python.as_deref())?;
        let mut rehearsals = Vec::new();
        for scenario in scenarios {
            ui::note(&format!("drill {}: break, diagnose, rollback, post-check", scenario.name()));
            let dir = work.join(scenario.name());
            files::copy_tree(&template, &dir).context("copy the sandbox")?;
            let tree = Tree::locate(Some(&dir))?;
            let rehearsal = rehearse(sh, &python, &tree, scenario);
            ui::note(&format!(
                "drill {}: {}",
                scenario.name(),
                if rehearsal.passed {
                    "passed".to_string()
                } else {
                    format!("FAILED: {}", rehearsal.problem.clone().unwrap_or_default())
                }
            ));
            rehearsals.push(rehearsal);
        }
        let passed = rehearsals.iter().all(|r| r.passed);
        let document = DrillDocument {
            schema: Version,
            command: "drill",
            result: if passed { Verdict::Pass } else { Verdict::Fail },
            scenarios: rehearsals,
        };
        match format {
            Format::Json => ui::document(&document)?,
            Format::Human => ui::out(&table(&document.scenarios)),
        }
        let rehearsals = document.scenarios;
        if let Some(dir) = &self.keep {
            ui::note(&format!("sandboxes kept in {}", dir.display()));
        }
        let failures = rehearsals.iter().filter(|r| !r.passed).count();
        if failures > 0 {
            return Err(failed(format!(
                "{failures} of {} drill scenarios failed",
                rehearsals.len()
            )));
        }
        Ok(())
    }
}

/// What the breakage left, to find again in the forensics bundle.
#[derive(Default)]
pub(super) struct Broken {
    database_sha: Option<String>,
    revision: Option<String>,
    file: Option<(String, String)>,
    bad_commit: Option<String>,
    expect_commit: Option<String>,
}

fn rehearse(sh: &Shell, python: &Python, tree: &Tree, scenario: Scenario) -> Rehearsal {
    let mut r = Rehearsal {
        scenario,
        diagnosis: "-".into(),
        rollback: "-".into(),
        post_check: "-".into(),
        evidence: "-".into(),
        passed: false,
        break_ms: 0,
        diagnose_ms: 0,
        rollback_ms: 0,
        post_check_ms: 0,
        runbook_minutes: scenario.runbook_minutes(),
        problem: None,
    };
    if let Err(err) = rehearse_into(sh, python, tree, scenario, &mut r) {
        r.problem = Some(format!("{err:#}"));
    }
    r.passed = r.problem.is_none();
    r
}

fn rehearse_into(
    sh: &Shell,
    python: &Python,
    tree: &Tree,
    scenario: Scenario,
    r: &mut Rehearsal,
) -> Result<()> {
    let started = Instant::now();
    let broken = break_tree(sh, python, tree, scenario).context("break the sandbox")?;
    r.break_ms = ms(started.elapsed());

    let started = Instant::now();
    let diagnosis = diagnose::diagnose(
        sh,
        tree,
        &Label::pre_deploy(),
        broken.expect_commit.as_deref(),
        Some(&python.exe("python")),
    )?;
    r.diagnose_ms = ms(started.elapsed());
    r.diagnosis = diagnosis.recommendation.word().to_string();
    if diagnosis.recommendation != Recommendation::Rollback(scenario) {
        bail!("diagnose recommended {}, not {}", r.diagnosis, scenario.name());
    }

    let outcome = roll_back(sh, python, tree, scenario, &broken, r)?;

    let started = Instant::now();
    let only: Vec<String> = post_check_groups(scenario).iter().map(|s| s.to_string()).collect();
    let report = post_check::post_check(
        sh,
        tree,
        &post_check::Options {
            only,
            python: Some(python.exe("python")),
            ..post_check::Options::of(Label::pre_deploy())
        },
    )?;
    r.post_check_ms = ms(started.elapsed());
    // A check with nothing to look at here (no file outside the tree) is
    // neither passed nor failed: it is left out of the count.
    let judged = report.checks.len() - report.not_applicable;
    r.post_check = format!("{}/{judged} passed", report.passed);
    if !report.ok() {
        bail!("post-check failed: {}", report.failures().join("; "));
    }

    let bundle = tree.root.join(outcome.bundle.as_deref().unwrap_or_default());
    r.evidence = check_evidence(&bundle, &broken).context("the forensics bundle")?;
    Ok(())
}

/// The rollback of the rehearsal, with no prompt; its lines go to stderr,
/// beside the drill's progress.
fn roll_back(
    sh: &Shell,
    python: &Python,
    tree: &Tree,
    scenario: Scenario,
    broken: &Broken,
    r: &mut Rehearsal,
) -> Result<rollback::Outcome> {
    let started = Instant::now();
    let choices = match scenario {
        Scenario::Files => rollback::Choices::Files {
            paths: broken.file.iter().map(|(p, _)| p.clone()).collect(),
            all: false,
        },
        // The git row moves only the code, as the runbook's does: the
        // database stays at the deployed revision, which the tag lacks.
        Scenario::Git => rollback::Choices::Git(rollback::GitMove::Tag { force: true }),
        other => rollback::Choices::plain(other),
    };
    let options = rollback::Options {
        label: Label::pre_deploy(),
        choices,
        dry_run: false,
        resume: false,
        abandon: false,
        break_lock: false,
        skip_verify: false,
        grace: Duration::from_secs(10),
        python: Some(python.exe("python")),
        repo: None,
    };
    // The rollback's lines go to stderr, beside the drill's progress.
    let say = |line: String| ui::note(&line);
    let voice = rollback::Voice { say: &say, confirm: &|| Ok(()) };
    let outcome = rollback::rollback(sh, tree, &options, &voice);
    r.rollback_ms = ms(started.elapsed());
    let outcome = match outcome {
        Ok(outcome) => {
            r.rollback = format!("done, {} steps", outcome.steps.len());
            outcome
        }
        Err(err) => {
            r.rollback = "FAILED".into();
            return Err(err.context("rollback"));
        }
    };
    Ok(outcome)
}

fn check_evidence(bundle: &Path, broken: &Broken) -> Result<String> {
    let facts: Facts =
        serde_json::from_str(&xtask_fs::outside::read_to_string(bundle.join("failure.json"))?)?;
    anyhow::ensure!(
        xtask_fs::outside::is_file(bundle.join("FAILURE_REPORT.md")),
        "no FAILURE_REPORT.md"
    );
    let mut found = Vec::new();
    if let Some(sha) = &broken.database_sha {
        let kept = facts.database_files.iter().any(|f| f.path.ends_with(".db") && &f.sha256 == sha);
        anyhow::ensure!(
            kept,
            "the corrupted database (sha256 {}) is not in the bundle",
            &sha[..12]
        );
        found.push("corrupt database");
    }
    if let Some(revision) = &broken.revision {
        anyhow::ensure!(
            facts.database_revision == [revision.clone()],
            "the bundle's database is at {:?}, not {revision}",
            facts.database_revision
        );
        found.push("half-applied database");
    }
    if let Some((path, sha)) = &broken.file {
        let kept =
            facts.files.iter().any(|f| f.path == format!("files/{path}") && &f.sha256 == sha);
        anyhow::ensure!(kept, "the broken {path} is not in the bundle");
        found.push("broken file");
    }
    if let Some(commit) = &broken.bad_commit {
        anyhow::ensure!(
            facts.git_commit.as_deref() == Some(commit.as_str()),
            "the bundle does not record the bad commit"
        );
        found.push("bad commit");
    }
    Ok(found.join(", "))
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn table(rows: &[Rehearsal]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:<10} {:<17} {:<12} {:>8} {:>9} {:>9} {:>11} {:>9}  evidence",
        "scenario",
        "diagnosis",
        "rollback",
        "post-check",
        "break",
        "diagnose",
        "rollback",
        "post-check",
        "runbook"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<10} {:<10} {:<17} {:<12} {:>8} {:>9} {:>9} {:>11} {:>9}  {}",
            r.scenario.name(),
            r.diagnosis,
            r.rollback,
            r.post_check,
            secs(r.break_ms),
            secs(r.diagnose_ms),
            secs(r.rollback_ms),
            secs(r.post_check_ms),
            format!("{} min", r.runbook_minutes),
            r.evidence
        );
        if let Some(problem) = &r.problem {
            let _ = writeln!(out, "  FAILED: {problem}");
        }
    }
    let passed = rows.iter().filter(|r| r.passed).count();
    let _ = writeln!(
        out,
        "\n{}: {passed} of {} scenarios passed",
        if passed == rows.len() { "ok" } else { "FAILED" },
        rows.len()
    );
    out
}

fn secs(ms: u64) -> String {
    format!("{:.2}s", ms as f64 / 1000.0)
}
