//! The decision matrix as ordered steps. A plan is computed once, printed
//! (that is the dry run), journaled, and then executed exactly as printed.
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::choices::{Choices, GitMove};
use crate::evidence::DatabaseCapture;
use xtask_adapters::{git, sqlite};
use xtask_base::exit::{refused, usage};
use xtask_model::{
    database,
    manifest::{Kind, Manifest},
    profile::Tree,
    scenario::Scenario,
};

/// A critical file a files rollback leaves as the deploy's commits made it,
/// and the commit that last changed it (`abc123def456 (its summary)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub path: String,
    pub commit: String,
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.path, self.commit)
    }
}

/// One step of a rollback. Every step checks whether its effect already
/// holds, so running it again (on `--resume`) is safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    StopServices,
    Preserve {
        database: Option<DatabaseCapture>,
    },
    RestoreDatabase,
    /// The database copied into a folder of its own beside it, and
    /// downgraded (or upgraded) there by alembic, which may write nowhere
    /// else; the copy
    /// checked (integrity, revision, schema). The live file is not touched.
    MigrateCopy {
        target: String,
        /// alembic upgrades the copy to `target` (the database was below
        /// it, as after a database rollback under the deployed code)
        /// instead of downgrading it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        up: bool,
        /// The copy's folder, relative to the root: beside the database, so
        /// that the swap is a rename on one file system.
        folder: String,
    },
    /// The failed files moved into the bundle, the checked copy renamed
    /// into their place.
    SwapMigrated {
        folder: String,
        target: String,
    },
    RestoreConfig,
    RestoreMigrations,
    RestoreFiles {
        paths: Vec<String>,
        /// Critical files that differ from the backup because the deploy's
        /// commits changed them: left as they are (`--all` restores them).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kept: Vec<Kept>,
    },
    GitBranch {
        branch: String,
        tag: String,
        commit: String,
        /// The repository lacks the backup's tag (a clone of the origin,
        /// which never received it: the tool never pushes), so the step
        /// makes it again at the manifest's commit first.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        recreate_tag: bool,
    },
    GitSoftReset {
        commit: String,
    },
    GitHardReset {
        commit: String,
        keep_ref: String,
    },
    GitRestorePaths {
        from: String,
        paths: Vec<String>,
    },
    /// The backup's files outside the tree (`--external`), each current
    /// one kept in the bundle first.
    RestoreExternal {
        paths: Vec<String>,
    },
}

/// Builds the ordered steps of a scenario for this tree and backup.
pub fn build(choices: &Choices, tree: &Tree, manifest: &Manifest, run: &str) -> Result<Vec<Step>> {
    let repo = git::open(&tree.root)?;
    let mut steps = Vec::new();
    match choices {
        Choices::Database => {
            steps.push(Step::StopServices);
            steps.push(Step::Preserve { database: Some(DatabaseCapture::Move) });
            steps.push(Step::RestoreDatabase);
        }
        Choices::Migration { down, allow_data_loss } => {
            let super::target::Target { revision: target, up } =
                super::target::migration_target(tree, manifest, down, *allow_data_loss)?;
            steps.push(Step::StopServices);
            steps.push(Step::Preserve { database: Some(DatabaseCapture::Move) });
            let folder = migration_folder(tree, run);
            steps.push(Step::MigrateCopy { target: target.clone(), up, folder: folder.clone() });
            steps.push(Step::SwapMigrated { folder, target });
        }
        Choices::Files { paths: wanted, all } => {
            let paths = critical_paths(manifest, wanted)?;
            // Without --paths or --all, what the deploy's commits changed on
            // purpose stays; what changed beside them is restored.
            let (paths, kept) = match (&repo, wanted.is_empty() && !all) {
                (Some(repo), true) => split_by_commits(tree, manifest, repo, paths),
                _ => (paths, Vec::new()),
            };
            steps.push(Step::Preserve { database: None });
            steps.push(Step::RestoreFiles { paths, kept });
        }
        Choices::Complete { external } => {
            steps = complete(tree, manifest, repo.as_ref())?;
            if *external && manifest.count(Kind::External) > 0 {
                steps.push(Step::RestoreExternal { paths: external_paths(tree, manifest)? });
            }
        }
        Choices::Git(how) => {
            let Some(repo) = &repo else {
                return Err(usage(format!("{} is not a git repository", tree.root.display())));
            };
            steps = git(tree, manifest, how, run, repo)?;
        }
    }
    Ok(steps)
}

/// The complete row: everything, the code included when git has the tag.
fn complete(
    tree: &Tree,
    manifest: &Manifest,
    repo: Option<&git2::Repository>,
) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    steps.push(Step::StopServices);
    steps.push(Step::Preserve { database: Some(DatabaseCapture::Move) });
    if let Some(repo) = repo
        && let Some((commit, recreate_tag)) = backup_commit(tree, manifest, repo)?
    {
        // Every object the checkout needs is present before step 1: the
        // forced checkout writes back every locally changed file too.
        git::refuse_move(&git::plan_forced_checkout(repo, &tree.fs, commit)?, true)?;
        steps.push(Step::GitBranch {
            branch: format!("rollback-{}", manifest.label),
            tag: manifest.label.to_string(),
            commit: commit.to_string(),
            recreate_tag,
        });
    }
    steps.push(Step::RestoreDatabase);
    steps.push(Step::RestoreConfig);
    steps.push(Step::RestoreMigrations);
    steps.push(Step::RestoreFiles { paths: critical_paths(manifest, &[])?, kept: Vec::new() });
    Ok(steps)
}

/// The git row: a branch at the tag, a reset to `--commit`, or `--paths`
/// restored from `--from`.
fn git(
    tree: &Tree,
    manifest: &Manifest,
    how: &GitMove,
    run: &str,
    repo: &git2::Repository,
) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    steps.push(Step::Preserve { database: None });
    let resolve = |rev: &str| git::resolve(repo, rev).map_err(|e| usage(format!("{e:#}")));
    match how {
        GitMove::Paths { from, paths } => {
            let from = resolve(from)?;
            git::plan_restore(repo, &tree.fs, from, paths)?;
            steps.push(Step::GitRestorePaths { from: from.to_string(), paths: paths.clone() });
        }
        GitMove::Hard { commit } => {
            let oid = resolve(commit)?;
            git::refuse_move(&git::plan_reset(repo, &tree.fs, oid)?, true)?;
            let keep_ref = format!("refs/tmws-rollback/discarded-{run}");
            steps.push(Step::GitHardReset { commit: oid.to_string(), keep_ref });
        }
        GitMove::Soft { commit } => {
            steps.push(Step::GitSoftReset { commit: resolve(commit)?.to_string() })
        }
        GitMove::Tag { force } => steps.push(tag_branch(tree, manifest, repo, *force)?),
    }
    Ok(steps)
}

/// The git row's branch at the backup's tag (made again when a clone of
/// the origin lacks it), refused when the database is ahead of that code
/// unless `force` says to move only the code.
fn tag_branch(
    tree: &Tree,
    manifest: &Manifest,
    repo: &git2::Repository,
    force: bool,
) -> Result<Step> {
    let Some((commit, recreate_tag)) = backup_commit(tree, manifest, repo)? else {
        return Err(usage(format!(
            "no git tag {}: pass --commit REV, or take backups with their tag",
            manifest.label
        )));
    };
    git::refuse_move(&git::plan_move(repo, &tree.fs, commit)?, false)?;
    check_database_fits(tree, repo, commit, force)?;
    Ok(Step::GitBranch {
        branch: format!("rollback-{}", manifest.label),
        tag: manifest.label.to_string(),
        commit: commit.to_string(),
        recreate_tag,
    })
}

/// The commit the backup's branch starts at, and whether its tag must be
/// made again first: the tag's commit when this repository has the tag;
/// else the manifest's commit when the repository holds it and the backup
/// was tagged (a fresh clone of the origin has the history, never the
/// tool's tags); `None` when the backup records no commit. A commit the
/// repository lacks, or a `--no-tag` backup, is refused with what to do.
fn backup_commit(
    tree: &Tree,
    manifest: &Manifest,
    repo: &git2::Repository,
) -> Result<Option<(git2::Oid, bool)>> {
    if let Some(commit) = git::tag_commit(repo, &manifest.label) {
        return Ok(Some((commit, false)));
    }
    let Some(recorded) = &manifest.git_commit else { return Ok(None) };
    let label = manifest.label.as_str();
    match git2::Oid::from_str(recorded) {
        Ok(commit) if git::has_commit(repo, commit) => match manifest.git_tag {
            Some(_) => Ok(Some((commit, true))),
            None => Err(xtask_model::advice::untagged_backup(label, recorded)
                .error(xtask_base::exit::Kind::Unsafe, "")),
        },
        _ => Err(xtask_model::advice::missing_commit(label, recorded, &tree.root)
            .error(xtask_base::exit::Kind::Unsafe, "")),
    }
}

/// A git-only rollback that moves the code below the database's revision
/// leaves the database ahead of its migrations: say so before it starts, and
/// go on only with `--force`.
fn check_database_fits(
    tree: &Tree,
    repo: &git2::Repository,
    commit: git2::Oid,
    force: bool,
) -> Result<()> {
    let Ok(revisions) =
        sqlite::open_tree_database(tree).and_then(|c| sqlite::alembic_revisions(&c))
    else {
        return Ok(());
    };
    let defined = git::revisions_defined_at(repo, commit, tree.profile.migrations.iter())?;
    let missing: Vec<&String> = revisions.iter().filter(|r| !defined.contains(r)).collect();
    if missing.is_empty() || force {
        return Ok(());
    }
    Err(refused(format!(
        "the database is at revision {} which commit {} does not define: after this git rollback the database would be ahead of the code. Use --scenario complete (it restores the database too), or pass --force to move only the code",
        missing.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" "),
        &commit.to_string()[..12]
    )))
}

/// Checks, before step 1, that every path the plan will write is one the
/// file-access layer accepts (no link on the way, a regular file or nothing
/// where a file goes, a folder where a folder goes), that the database's
/// files are regular files, and that every backup file a step restores is
/// there to read (a backup damaged since it was verified, or never verified
/// with `--skip-verify`): a plan that would stop half-way does not start.
pub fn check_paths(tree: &Tree, backup: &Path, steps: &[Step], manifest: &Manifest) -> Result<()> {
    let fs = &tree.fs;
    fs.expect_dir_or_nothing(&tree.forensics_dir())?;
    let sources = |kind: Kind| -> Result<()> {
        for entry in manifest.files_of(kind) {
            xtask_fs::files::check_relative(&entry.backup_path)?;
            fs.open_read(&backup.join(&entry.backup_path)).map_err(|err| {
                refused(format!(
                    "the backup's {} cannot be read ({err:#}): it is not restored, and nothing was changed",
                    entry.backup_path
                ))
            })?;
        }
        Ok(())
    };
    for step in steps {
        match step {
            Step::RestoreDatabase => {
                database::check_files(fs, &tree.database())?;
                sources(Kind::Database)?;
            }
            Step::Preserve { database: Some(_) } => database::check_files(fs, &tree.database())?,
            Step::MigrateCopy { folder, .. } | Step::SwapMigrated { folder, .. } => {
                database::check_files(fs, &tree.database())?;
                fs.expect_dir_or_nothing(&tree.path(folder))?;
            }
            Step::RestoreConfig | Step::RestoreFiles { .. } => {
                let kind = if *step == Step::RestoreConfig { Kind::Config } else { Kind::Critical };
                let paths = manifest
                    .files_of(kind)
                    .map(|f| f.source_path.as_str())
                    .chain(manifest.absent_of(kind));
                for path in paths {
                    xtask_fs::files::check_relative(path)?;
                    fs.expect_file_or_nothing(&tree.path(path))?;
                }
                sources(kind)?;
            }
            Step::RestoreExternal { paths } => {
                for path in paths {
                    if let Some(why) = xtask_fs::external::not_plain(path) {
                        return Err(refused(format!("{path}: {why}; nothing was changed")));
                    }
                    crate::external::folder(path)?.expect_file_or_nothing(Path::new(path))?;
                }
                sources(Kind::External)?;
            }
            Step::RestoreMigrations => {
                for folder in tree.migration_folders() {
                    fs.expect_dir_or_nothing(&folder)?;
                    refuse_mount_point(&folder)?;
                    // The swap stages the backup's revisions there: a folder
                    // a crash left is kept, anything else stops the step.
                    fs.expect_dir_or_nothing(&xtask_fs::files::staging_path(&folder))?;
                }
                sources(Kind::Migration)?;
                crate::rollback::migration_folders::refuse_unplaced(tree, manifest)?;
            }
            Step::GitBranch { branch, commit, .. } => {
                let repo = git::open(&tree.root)?.context("the root is not a git repository")?;
                git::refuse_unready(&repo, Some((branch, git2::Oid::from_str(commit)?)))?;
            }
            Step::GitSoftReset { .. }
            | Step::GitHardReset { .. }
            | Step::GitRestorePaths { .. } => {
                let repo = git::open(&tree.root)?.context("the root is not a git repository")?;
                git::refuse_unready(&repo, None)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A folder the plan swaps whole must not be a mount point: it cannot be
/// renamed (a mount point beneath it, like `forensics/` or `data/`, is
/// fine: what moves across is copied).
fn refuse_mount_point(folder: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let entry = xtask_fs::outside::entry;
    let (Some(here), Some(Some(above))) = (entry(folder), folder.parent().map(entry)) else {
        return Ok(());
    };
    if here.dev() != above.dev() {
        return Err(refused(format!(
            "{} is a mount point: a migration restore swaps that folder whole, which a mount point cannot be. Mount its parent instead, or restore the files by hand (docs/backup-format.md). Nothing was changed",
            folder.display()
        )));
    }
    Ok(())
}

/// Splits the critical files into those to restore and those the deploy's
/// commits changed (since the backup's commit; the working file is the
/// committed one), with the commit that did, for the plan.
fn split_by_commits(
    tree: &Tree,
    manifest: &Manifest,
    repo: &git2::Repository,
    paths: Vec<String>,
) -> (Vec<String>, Vec<Kept>) {
    let since = manifest.git_commit.as_deref();
    let (mut restore, mut kept) = (Vec::new(), Vec::new());
    for path in paths {
        let backed_up = manifest.files_of(Kind::Critical).find(|f| f.source_path == path);
        let now = tree.fs.sha256(&tree.path(&path)).ok().map(|(sha, _)| sha);
        let differs = match (backed_up, &now) {
            (Some(entry), Some(sha)) => entry.sha256 != *sha,
            (Some(_), None) => true,
            // Absent at backup time: it differs when it exists now.
            (None, now) => now.is_some(),
        };
        match git::committed_in(repo, &path, since).filter(|_| differs && now.is_some()) {
            Some(commit) => kept.push(Kept { path, commit }),
            None => restore.push(path),
        }
    }
    (restore, kept)
}

/// The files outside the tree a restore writes: the backup's, each of
/// which the profile names too. A manifest that lists another (a profile
/// changed since, or a forged snapshot) is refused: nothing outside the
/// tree is written but the files the profile names.
fn external_paths(tree: &Tree, manifest: &Manifest) -> Result<Vec<String>> {
    let named = &tree.profile.external_files;
    let (paths, stray): (Vec<String>, Vec<String>) = manifest
        .files_of(Kind::External)
        .map(|f| f.source_path.clone())
        .partition(|p| named.contains(p));
    if !stray.is_empty() {
        return Err(refused(format!(
            "the backup holds files outside the tree that the profile's external_files does not name: {}; the tool writes outside the tree only the files the profile names, so nothing was changed (name them in external_files to restore them)",
            stray.join(", ")
        )));
    }
    Ok(paths)
}

/// The backup's files outside the tree that a complete rollback leaves as
/// they are: all of them, unless `--external` put its step in the plan.
pub fn external_left(scenario: Scenario, steps: &[Step], manifest: &Manifest) -> Vec<String> {
    let restores = steps.iter().any(|s| matches!(s, Step::RestoreExternal { .. }));
    if scenario != Scenario::Complete || restores {
        return Vec::new();
    }
    manifest.files_of(Kind::External).map(|f| f.source_path.clone()).collect()
}

/// What the plan and the end of a run say of the files left outside the tree.
pub fn external_left_line(paths: &[String], root: &Path) -> String {
    format!(
        "not restored: the files outside the tree ({}) stay as they are; to restore them too (each current one kept in the bundle first): `{}`",
        paths.join(", "),
        xtask_model::advice::restore_external(root)
    )
}

/// The critical files to restore: all, or those named by `--paths`.
fn critical_paths(manifest: &Manifest, wanted: &[String]) -> Result<Vec<String>> {
    let all: Vec<String> = manifest
        .files_of(Kind::Critical)
        .map(|f| f.source_path.clone())
        .chain(manifest.absent_of(Kind::Critical).map(String::from))
        .collect();
    if wanted.is_empty() {
        return Ok(all);
    }
    for path in wanted {
        if !all.contains(path) {
            return Err(usage(format!(
                "{path} is not a critical file of the backup; it has: {}",
                all.join(", ")
            )));
        }
    }
    Ok(wanted.to_vec())
}

/// The folder a migration rollback's copy of the database lives in while
/// alembic works on it: beside the database (one file system, so the swap
/// is a rename), hidden, named after the run.
pub fn migration_folder(tree: &Tree, run: &str) -> String {
    let db = Path::new(&tree.profile.database);
    let name = db.file_name().unwrap_or_default().to_string_lossy();
    let folder = db.with_file_name(format!(".{name}.migration-{run}"));
    folder.display().to_string()
}

pub fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}
