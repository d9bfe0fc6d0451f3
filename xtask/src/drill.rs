//! `cargo xtask drill`: rehearses the decision matrix end to end. For each
//! scenario: a Phase 4 sandbox with its backup, broken the way the scenario
//! says, diagnosed, rolled back, checked, and its evidence verified.
use std::{
    fs,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use xshell::Shell;

use crate::{
    backup::DEFAULT_LABEL,
    diagnose,
    evidence::Facts,
    exit::{failed, usage},
    flags, fsutil, git,
    migrations::Graph,
    post_check,
    profile::Tree,
    python::Python,
    report::Format,
    rollback::{self, Scenario, tables_created_by},
    sandbox::{self, Stage},
    sqlite,
};

/// One rehearsed scenario, as the table shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Rehearsal {
    pub scenario: Scenario,
    pub diagnosis: String,
    pub rollback: String,
    pub post_check: String,
    pub evidence: String,
    pub passed: bool,
    pub break_ms: u64,
    pub diagnose_ms: u64,
    pub rollback_ms: u64,
    pub post_check_ms: u64,
    pub runbook_minutes: u32,
    pub problem: Option<String>,
}

impl flags::Drill {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let format = Format::parse(self.format.as_deref())?;
        let scenarios = match self.scenario.as_deref() {
            None | Some("all") => Scenario::ALL.to_vec(),
            Some(name) => vec![Scenario::parse(name)?],
        };
        let (work, _temp) = match &self.keep {
            Some(dir) => {
                if dir.exists() && fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true)
                {
                    return Err(usage(format!(
                        "--keep {} must be a new or empty folder",
                        dir.display()
                    )));
                }
                fs::create_dir_all(dir)?;
                (dir.canonicalize()?, None)
            }
            None => {
                let temp = fsutil::ScratchDir::new("tmws-drill")?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        eprintln!(
            "drill: building a Phase 4 sandbox with its pre-Phase-4 backup in {}",
            work.display()
        );
        let template = work.join("template");
        let tree = sandbox::build(sh, &template, Stage::Phase4, self.python.as_deref())?;
        let python = Python::find(sh, Some(&tree.root), self.python.as_deref())?;
        let mut rehearsals = Vec::new();
        for scenario in scenarios {
            eprintln!("drill {}: break, diagnose, rollback, post-check", scenario.name());
            let dir = work.join(scenario.name());
            fsutil::copy_tree(&template, &dir).context("copy the sandbox")?;
            let tree = Tree::locate(Some(&dir))?;
            let rehearsal = rehearse(sh, &python, &tree, scenario);
            eprintln!(
                "drill {}: {}",
                scenario.name(),
                if rehearsal.passed {
                    "passed".to_string()
                } else {
                    format!("FAILED: {}", rehearsal.problem.clone().unwrap_or_default())
                }
            );
            rehearsals.push(rehearsal);
        }
        match format {
            Format::Json => println!("{}", serde_json::to_string_pretty(&rehearsals)?),
            Format::Human => print!("{}", table(&rehearsals)),
        }
        if let Some(dir) = &self.keep {
            println!("sandboxes kept in {}", dir.display());
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
struct Broken {
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
        DEFAULT_LABEL,
        broken.expect_commit.as_deref(),
        Some(&python.exe("python")),
    )?;
    r.diagnose_ms = ms(started.elapsed());
    r.diagnosis = diagnosis.recommendation.clone();
    if diagnosis.recommendation != scenario.name() {
        bail!("diagnose recommended {}, not {}", diagnosis.recommendation, scenario.name());
    }

    let started = Instant::now();
    let options = rollback::Options {
        scenario,
        label: DEFAULT_LABEL.into(),
        choices: rollback::Choices {
            paths: broken.file.iter().map(|(p, _)| p.clone()).collect(),
            ..Default::default()
        },
        dry_run: false,
        yes: true,
        resume: false,
        break_lock: false,
        skip_verify: false,
        grace: Duration::from_secs(10),
        python: Some(python.exe("python")),
        quiet: true,
    };
    let outcome = rollback::rollback(sh, tree, &options);
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

    let started = Instant::now();
    let only: Vec<String> = post_check_groups(scenario).iter().map(|s| s.to_string()).collect();
    let report = post_check::post_check(
        sh,
        tree,
        &post_check::Options {
            label: DEFAULT_LABEL.into(),
            only,
            python: Some(python.exe("python")),
            ..Default::default()
        },
    )?;
    r.post_check_ms = ms(started.elapsed());
    r.post_check = format!("{}/{} passed", report.passed, report.checks.len());
    if !report.ok() {
        bail!("post-check failed: {}", report.failures().join("; "));
    }

    let bundle = tree.root.join(outcome.bundle.as_deref().unwrap_or_default());
    r.evidence = check_evidence(&bundle, &broken).context("the forensics bundle")?;
    Ok(())
}

/// The post-check groups that prove a scenario's rollback: what that row of
/// the matrix restores. `complete` must pass every check.
fn post_check_groups(scenario: Scenario) -> &'static [&'static str] {
    match scenario {
        Scenario::Database => &["database"],
        Scenario::Migration => &[
            "database.revision",
            "database.tables",
            "database.integrity",
            "migrations.current",
            "migrations.history",
        ],
        Scenario::Files => &["imports", "tests"],
        Scenario::Git => &["git"],
        Scenario::Complete => &[],
    }
}

fn break_tree(sh: &Shell, python: &Python, tree: &Tree, scenario: Scenario) -> Result<Broken> {
    let mut broken = Broken::default();
    let all = scenario == Scenario::Complete;
    if scenario == Scenario::Migration || all {
        broken.revision = Some(half_apply_head(sh, python, tree)?);
    }
    if scenario == Scenario::Files || all {
        broken.file = Some(break_critical_file(tree)?);
    }
    if scenario == Scenario::Git || all {
        let repo = git::open(&tree.root).context("the sandbox is a git repository")?;
        broken.expect_commit = git::head(&repo).0;
        let bad = git::commit_file(
            &repo,
            &tree.root,
            "README.md",
            "# TMWS\n\nAn unreviewed change.\n",
            "WIP: bad commit on the deployed branch",
        )?;
        broken.bad_commit = Some(bad.to_string());
    }
    if scenario == Scenario::Database || all {
        broken.database_sha = Some(corrupt_database(tree)?);
    }
    Ok(broken)
}

/// Downgrades the head migration and recreates its tables without bumping
/// `alembic_version`: what a migration that failed half-way leaves on SQLite.
fn half_apply_head(sh: &Shell, python: &Python, tree: &Tree) -> Result<String> {
    let graph = Graph::load(&tree.migrations())?;
    let [head] = graph
        .heads()
        .try_into()
        .map_err(|_| anyhow::anyhow!("the migrations have several heads"))?;
    let [parent] = graph.revisions[&head]
        .down
        .clone()
        .try_into()
        .map_err(|_| anyhow::anyhow!("the head is a merge"))?;
    let out = python.alembic(sh, tree, &["downgrade", &parent])?;
    if !out.success() {
        bail!("alembic downgrade {parent}: {}", out.tail(5));
    }
    let range = format!("{parent}:{head}");
    let sql = python.alembic(sh, tree, &["upgrade", &range, "--sql"])?;
    let statements: Vec<String> = sql
        .stdout
        .split(';')
        .map(|chunk| {
            chunk
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .map(|statement| statement.trim().to_string())
        .filter(|statement| statement.starts_with("CREATE TABLE"))
        .collect();
    if statements.is_empty() || tables_created_by(sh, python, tree, &parent, &head)?.is_empty() {
        bail!("the head migration {head} creates no table to leave behind");
    }
    let conn = rusqlite::Connection::open(tree.database())?;
    for statement in statements {
        conn.execute_batch(&statement)?;
    }
    Ok(parent)
}

/// Makes a critical module fail to import (one Phase 4 left unchanged, so
/// that restoring it from the backup restores the deployed code).
fn break_critical_file(tree: &Tree) -> Result<(String, String)> {
    let repo = git::open(&tree.root);
    let candidates: Vec<&String> = tree
        .profile
        .critical_files
        .iter()
        .filter(|f| f.ends_with(".py") && !f.starts_with("tests/"))
        .collect();
    let backup = tree.backup(DEFAULT_LABEL).join("critical_files");
    let unchanged = candidates.iter().find(|f| {
        let name = Path::new(f.as_str()).file_name().unwrap_or_default();
        fs::read(backup.join(name)).ok() == fs::read(tree.path(f)).ok()
    });
    let target =
        unchanged.or(candidates.first()).context("no critical Python file to break")?.to_string();
    let path = tree.path(&target);
    let mut text = fs::read_to_string(&path)?;
    text.push_str("\nimport tmws_phase4_dependency_that_was_never_installed  # noqa\n");
    fs::write(&path, text)?;
    let _ = repo;
    Ok((target, fsutil::sha256_file(&path)?.0))
}

/// Damages a b-tree page the database uses, after a checkpoint so the damage
/// is in the main file.
fn corrupt_database(tree: &Tree) -> Result<String> {
    let db = tree.database();
    let (offset, page_size) = {
        let conn = rusqlite::Connection::open(&db)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let page: i64 = conn.query_row(
            "SELECT rootpage FROM sqlite_master WHERE type = 'index' AND rootpage > 1 ORDER BY rootpage DESC LIMIT 1",
            [],
            |r| r.get(0),
        )?;
        let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        ((page - 1) * size, size)
    };
    let mut bytes = fs::read(&db)?;
    // The page header: type, first freeblock, cell count.
    for i in 0..8.min(page_size) {
        bytes[(offset + i) as usize] ^= 0x5a;
    }
    fs::write(&db, &bytes)?;
    let check = sqlite::open_live_read_only(&db).and_then(|c| sqlite::integrity_check(&c));
    if check.is_ok_and(|rows| rows == ["ok"]) {
        bail!("the damage did not show in integrity_check");
    }
    Ok(fsutil::sha256_file(&db)?.0)
}

fn check_evidence(bundle: &Path, broken: &Broken) -> Result<String> {
    let facts: Facts = serde_json::from_str(&fs::read_to_string(bundle.join("failure.json"))?)?;
    anyhow::ensure!(bundle.join("FAILURE_REPORT.md").is_file(), "no FAILURE_REPORT.md");
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
