//! Whether a plan would change anything, predicted from the tree as it is:
//! what diagnose asks of an action before it recommends it. A step counts
//! when what it puts in place differs from what is there; stopping services
//! and preserving the failed state change nothing the checks judge.
use std::path::Path;

use anyhow::Result;
use git2::{ObjectType, Oid, Repository};

use super::{Choices, StepId, plan::Step};
use xtask_adapters::{git, sqlite};
use xtask_model::{
    manifest::{Kind, Manifest},
    profile::Tree,
};

/// The plan of `choices` for this tree (its dry run: nothing is written),
/// and the steps of it that would change the tree.
pub fn dry_run(choices: &Choices, tree: &Tree, manifest: &Manifest) -> Result<DryRun> {
    let steps = super::plan::build(choices, tree, manifest, "dry-run")?;
    let repo = git::open(&tree.root)?;
    let mut changing = Vec::new();
    for step in &steps {
        if changes(step, tree, manifest, repo.as_ref())? {
            changing.push(step.id());
        }
    }
    Ok(DryRun { steps, changing })
}

/// A plan, and which of its steps would change something.
pub struct DryRun {
    pub steps: Vec<Step>,
    pub changing: Vec<StepId>,
}

fn changes(
    step: &Step,
    tree: &Tree,
    manifest: &Manifest,
    repo: Option<&Repository>,
) -> Result<bool> {
    Ok(match step {
        Step::StopServices | Step::Preserve { .. } | Step::SwapMigrated { .. } => false,
        Step::RestoreDatabase => {
            let now = tree.fs.sha256(&tree.database()).ok().map(|(sha, _)| sha);
            now.as_deref() != manifest.database().map(|d| d.sha256.as_str())
        }
        Step::MigrateCopy { target, .. } => {
            let now = sqlite::open_tree_database(tree).and_then(|c| sqlite::alembic_revisions(&c));
            let want: Vec<String> =
                if target == "base" { Vec::new() } else { vec![target.clone()] };
            // A half-applied child at the same revision is repaired too:
            // the schema then differs from the backup's.
            match now {
                Ok(now) if now == want => schema_differs(tree, manifest, target),
                _ => true,
            }
        }
        Step::RestoreConfig => differs(tree, manifest, Kind::Config, None),
        Step::RestoreFiles { paths, .. } => differs(tree, manifest, Kind::Critical, Some(paths)),
        Step::RestoreMigrations => migrations_differ(tree, manifest)?,
        Step::RestoreExternal { paths } => {
            manifest.files_of(Kind::External).filter(|f| paths.contains(&f.source_path)).any(|f| {
                crate::external::sha256(&f.source_path).ok().flatten() != Some(f.sha256.clone())
            })
        }
        Step::GitBranch { commit, .. } | Step::GitHardReset { commit, .. } => {
            repo.is_some_and(|repo| !at(repo, commit) || has_changes(repo))
        }
        Step::GitSoftReset { commit } => repo.is_some_and(|repo| !at(repo, commit)),
        Step::GitRestorePaths { from, paths } => match repo {
            Some(repo) => paths_differ(repo, tree, from, paths)?,
            None => false,
        },
    })
}

/// At the backup's revision, whether the schema is not the backup's.
fn schema_differs(tree: &Tree, manifest: &Manifest, target: &str) -> bool {
    if manifest.revision() != Some(target) || manifest.schema.is_empty() {
        return false;
    }
    let live = sqlite::open_tree_database(tree).and_then(|c| sqlite::schema(&c));
    live.is_ok_and(|live| {
        !xtask_model::schema::Schema::differences(&live, &manifest.schema).is_empty()
    })
}

/// Whether a file of `kind` (of `only`, when given) differs from the
/// backup's, or is gone.
fn differs(tree: &Tree, manifest: &Manifest, kind: Kind, only: Option<&Vec<String>>) -> bool {
    manifest.files_of(kind).filter(|f| only.is_none_or(|paths| paths.contains(&f.source_path))).any(
        |f| {
            let now = tree.fs.sha256(&tree.path(&f.source_path)).ok().map(|(sha, _)| sha);
            now.as_deref() != Some(f.sha256.as_str())
        },
    )
}

/// Whether the revision files are other than the backup's.
fn migrations_differ(tree: &Tree, manifest: &Manifest) -> Result<bool> {
    let files = tree.revision_files().unwrap_or_default();
    if files.len() != manifest.count(Kind::Migration) {
        return Ok(true);
    }
    Ok(manifest.files_of(Kind::Migration).any(|f| {
        let now = tree.fs.sha256(&tree.path(&f.source_path)).ok().map(|(sha, _)| sha);
        now.as_deref() != Some(f.sha256.as_str())
    }))
}

fn at(repo: &Repository, commit: &str) -> bool {
    git::head(repo).0.as_deref() == Some(commit)
}

/// Tracked files that differ from HEAD (untracked ones no git step touches).
fn has_changes(repo: &Repository) -> bool {
    git::modified_tracked(repo).map_or(true, |paths| !paths.is_empty())
}

/// Whether a path `from` holds differs from the file in the tree.
fn paths_differ(repo: &Repository, tree: &Tree, from: &str, paths: &[String]) -> Result<bool> {
    let from = Oid::from_str(from)?;
    let commit = repo.find_commit(from)?.tree()?;
    for path in &git::plan_restore(repo, &tree.fs, from, paths)? {
        let Ok(entry) = commit.get_path(Path::new(path)) else { return Ok(true) };
        let now = tree.fs.read(&tree.path(path)).ok();
        let hashed = now.map(|bytes| Oid::hash_object(ObjectType::Blob, &bytes));
        if !matches!(hashed, Some(Ok(id)) if id == entry.id()) {
            return Ok(true);
        }
    }
    Ok(false)
}
