//! How the drill breaks a Phase 4 sandbox, one way per row of the decision
//! matrix, leaving what the real failure would leave, and which post-check
//! groups then prove the row's rollback: a new row is added here.
use std::path::Path;

use anyhow::{Context, Result, bail};
use xshell::Shell;

use super::Broken;
use xtask_adapters::{
    git,
    python::{Python, Scope},
    sqlite,
};
use xtask_fs::unconfined;
use xtask_model::{
    label::Label,
    profile::Tree,
    scenario::{Part, Scenario},
};

pub(super) fn break_tree(
    sh: &Shell,
    python: &Python,
    tree: &Tree,
    scenario: Scenario,
) -> Result<Broken> {
    let mut broken = Broken::default();
    // The parts that make this row the one to take, as the row declares
    // them; a part no break here damages (migrations, config) is left.
    let parts = scenario.defining_parts();
    if parts.contains(&Part::Schema) {
        broken.revision = Some(half_apply_head(sh, python, tree)?);
    }
    if parts.contains(&Part::Files) {
        broken.file = Some(break_critical_file(tree)?);
    }
    if parts.contains(&Part::Code) {
        let repo = git::open(&tree.root)?.context("the sandbox is a git repository")?;
        broken.expect_commit = git::head(&repo).0;
        let bad = git::commit_file(
            &repo,
            &tree.fs,
            "README.md",
            "# TMWS\n\nAn unreviewed change.\n",
            "WIP: bad commit on the deployed branch",
        )?;
        broken.bad_commit = Some(bad.to_string());
    }
    if parts.contains(&Part::Rows) {
        broken.database_sha = Some(corrupt_database(tree)?);
    }
    Ok(broken)
}

/// Downgrades the head migration and recreates its tables without bumping
/// `alembic_version`: what a migration that failed half-way leaves on SQLite.
fn half_apply_head(sh: &Shell, python: &Python, tree: &Tree) -> Result<String> {
    let graph = tree.graph()?;
    let [head] = graph
        .heads()
        .try_into()
        .map_err(|_| anyhow::anyhow!("the migrations have several heads"))?;
    let [parent] = graph.revisions[&head]
        .down
        .clone()
        .try_into()
        .map_err(|_| anyhow::anyhow!("the head is a merge"))?;
    // One helper for both, confined to the tree.
    let writable = [tree.root.as_path()];
    let mut alembic = python.session(sh, tree, Scope::tree(tree, &writable))?;
    let out = alembic.alembic(&["downgrade", &parent])?.output;
    if !out.success() {
        bail!("alembic downgrade {parent}: {}", out.tail(5));
    }
    let range = format!("{parent}:{head}");
    let sql = alembic.alembic(&["upgrade", &range, "--sql"])?.output;
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
    if statements.is_empty() {
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
    let candidates: Vec<&String> = tree
        .profile
        .critical_files
        .iter()
        .filter(|f| f.ends_with(".py") && !f.starts_with("tests/"))
        .collect();
    let backup = tree.backup(&Label::pre_deploy()).join("critical_files");
    let unchanged = candidates.iter().find(|f| {
        let name = Path::new(f.as_str()).file_name().unwrap_or_default();
        tree.fs.read(&backup.join(name)).ok() == tree.fs.read(&tree.path(f)).ok()
    });
    let target =
        unchanged.or(candidates.first()).context("no critical Python file to break")?.to_string();
    let path = tree.path(&target);
    let mut text = tree.fs.read_to_string(&path)?;
    text.push_str("\nimport tmws_phase4_dependency_that_was_never_installed  # noqa\n");
    unconfined::write(&path, text)?;
    Ok((target, tree.fs.sha256(&path)?.0))
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
    let mut bytes = tree.fs.read(&db)?;
    // The page header: type, first freeblock, cell count.
    for i in 0..8.min(page_size) {
        bytes[(offset + i) as usize] ^= 0x5a;
    }
    unconfined::write(&db, &bytes)?;
    let check = sqlite::open_live_read_only(&db).and_then(|c| sqlite::integrity_check(&c));
    if check.is_ok_and(|rows| rows == ["ok"]) {
        bail!("the damage did not show in integrity_check");
    }
    Ok(tree.fs.sha256(&db)?.0)
}

/// The post-check groups that prove a scenario's rollback: what that row of
/// the matrix restores. `complete` must pass every check.
pub(super) fn post_check_groups(scenario: Scenario) -> &'static [&'static str] {
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
