//! Rollback moves: a branch at a tag, a reset, paths restored from a
//! commit. Each is planned before step 1 (what it changes, which local
//! changes it meets, which objects it lacks, which paths it cannot write
//! safely) and undone if it fails half-way.
use std::path::Path;

use anyhow::{Context, Result, bail};
use git2::{BranchType, Oid, Repository};

use super::{modified_tracked, undo::Undo, worktree};
use xtask_fs::RootDir;

/// What moving from HEAD to a target commit changes, as git's own checkout
/// sees it: only the paths that differ between the two commits.
#[derive(Debug, Default)]
pub struct Move {
    /// Paths that differ between HEAD and the target.
    pub paths: Vec<String>,
    /// Of those, the ones with local changes (staged, modified or deleted).
    pub conflicts: Vec<String>,
    /// Paths whose object the checkout needs and the repository lacks.
    pub missing: Vec<String>,
    /// Paths the tool cannot write safely, each with the reason.
    pub unwritable: Vec<String>,
    /// Files deleted locally whose object is lost and which the target has
    /// as HEAD does: nothing can write them back, and nothing needs to for
    /// the move, so they stay deleted (`git fsck` names the object).
    pub left_deleted: Vec<String>,
}

/// Works out, without touching anything, what a checkout of `target` from
/// HEAD would change, which local changes it would meet, and whether every
/// object it needs is present, and whether each path can be written
/// without going through a link.
pub fn plan_move(repo: &Repository, fs: &RootDir, target: Oid) -> Result<Move> {
    let head_tree = repo.head()?.peel_to_tree().context("HEAD has no tree")?;
    let target_tree = repo.find_commit(target)?.tree()?;
    let diff = repo.diff_tree_to_tree(Some(&head_tree), Some(&target_tree), None)?;
    let odb = repo.odb()?;
    let mut planned = Move::default();
    for delta in diff.deltas() {
        let file = if delta.new_file().exists() { delta.new_file() } else { delta.old_file() };
        let Some(path) = file.path().and_then(|p| p.to_str()).map(String::from) else { continue };
        if delta.new_file().exists() && !odb.exists(delta.new_file().id()) {
            planned.missing.push(path.clone());
        }
        let status = repo.status_file(Path::new(&path)).unwrap_or(git2::Status::empty());
        if !status.is_empty() && status != git2::Status::IGNORED {
            planned.conflicts.push(path.clone());
        }
        planned.unwritable.extend(worktree::unwritable(repo, fs, &target_tree, &path));
        planned.paths.push(path);
    }
    Ok(planned)
}

/// Creates (or reuses) `branch` at `target` and checks it out the way git's
/// own checkout does: only the paths that differ between HEAD and the target
/// are written, so unrelated local changes and deletions stay. With
/// `overwrite` (the caller has kept local changes in the forensics bundle)
/// it is a forced checkout: every local change to a tracked file, staged or
/// not, is replaced too, so the tree equals the target and `git status` is
/// clean. If anything fails, the paths, the index and HEAD are put back as
/// they were, and the error says so. Returns the files it left deleted.
pub fn checkout_new_branch(
    repo: &Repository,
    fs: &RootDir,
    branch: &str,
    target: Oid,
    overwrite: bool,
) -> Result<Vec<String>> {
    let planned = match overwrite {
        true => plan_forced_checkout(repo, fs, target)?,
        false => plan_move(repo, fs, target)?,
    };
    refuse_move(&planned, overwrite)?;
    let commit = repo.find_commit(target)?;
    let mut undo = Undo::take(repo, fs, &planned.paths)?;
    match repo.find_branch(branch, BranchType::Local) {
        Ok(existing) => {
            let at = existing.get().peel_to_commit()?.id();
            if at != target {
                bail!(
                    "branch {branch} already exists at {at}, not at {target}: delete or rename it first"
                );
            }
        }
        Err(_) => {
            repo.branch(branch, &commit, false)?;
            undo.created_branch = Some(branch.to_string());
        }
    }
    let moved = (|| -> Result<()> {
        worktree::write_paths(repo, fs, &commit.tree()?, &planned.paths)?;
        fault_hook()?;
        repo.set_head(&format!("refs/heads/{branch}"))?;
        Ok(())
    })();
    undo_on_error(repo, fs, undo, moved, "the checkout")?;
    Ok(planned.left_deleted)
}

/// A test-only fault: `XTASK_GIT_FAULT=checkout` fails a checkout after it
/// has written the working tree, as a failure half-way would.
fn fault_hook() -> Result<()> {
    if xtask_base::faults::git().is_some_and(|v| v == "checkout") {
        bail!("fault injected after the checkout wrote the working tree");
    }
    Ok(())
}

/// Refuses (exit 4) what would stop a git step half-way, before step 1: an
/// `index.lock` (a git process running, or one that crashed), and a branch
/// of the name the step creates that points elsewhere.
pub fn refuse_unready(repo: &Repository, branch: Option<(&str, Oid)>) -> Result<()> {
    let lock = repo.path().join("index.lock");
    if xtask_fs::outside::exists(&lock) {
        return Err(xtask_base::exit::refused(format!(
            "{} exists: a git command is running in this repository, or one crashed and left it. Wait for it, or remove the file if no git command runs. Nothing was changed",
            lock.display()
        )));
    }
    if let Some((name, target)) = branch
        && let Ok(existing) = repo.find_branch(name, BranchType::Local)
    {
        let at = existing.get().peel_to_commit()?.id();
        if at != target {
            let rename = format!("git branch -m {name} {name}-old");
            return Err(xtask_base::exit::with_next(
                xtask_base::exit::Kind::Unsafe,
                format!(
                    "branch {name} exists already, at {at}, not at {target} (an earlier rollback's?): rename or delete it (`{rename}`), then run again. Nothing was changed"
                ),
                rename,
            ));
        }
    }
    Ok(())
}

/// Refuses a move that cannot finish or would destroy local changes.
pub fn refuse_move(planned: &Move, overwrite: bool) -> Result<()> {
    if !planned.unwritable.is_empty() {
        return Err(xtask_base::exit::refused(format!(
            "the tool will not write these paths: {}. Replace the link with a real folder or file (or move the path aside) and run again. Nothing was changed",
            planned.unwritable.join("; ")
        )));
    }
    if !planned.missing.is_empty() {
        return Err(xtask_base::exit::with_next(
            xtask_base::exit::Kind::Unsafe,
            format!(
                "the repository lacks objects this checkout needs, for {}: `git fsck` names them; fetch them (`git fetch`) or restore them first. Nothing was changed",
                planned.missing.join(", ")
            ),
            "git fsck",
        ));
    }
    if !overwrite && !planned.conflicts.is_empty() {
        return Err(xtask_base::exit::refused(format!(
            "local changes to {} would be overwritten by the checkout: commit, stash or discard them, or use --scenario complete, which keeps them in the forensics bundle. Nothing was changed",
            planned.conflicts.join(", ")
        )));
    }
    Ok(())
}

/// What a hard reset to `target` writes: the paths that differ from it and
/// those with local changes (staged ones included), each checked as a move's.
pub fn plan_reset(repo: &Repository, fs: &RootDir, target: Oid) -> Result<Move> {
    let mut planned = plan_move(repo, fs, target)?;
    let tree = repo.find_commit(target)?.tree()?;
    let odb = repo.odb()?;
    for path in modified_tracked(repo)? {
        if !planned.paths.contains(&path) {
            planned.unwritable.extend(worktree::unwritable(repo, fs, &tree, &path));
            // The blob the reset writes back must be there too.
            if tree.get_path(Path::new(&path)).is_ok_and(|entry| !odb.exists(entry.id())) {
                planned.missing.push(path.clone());
            }
            planned.paths.push(path);
        }
    }
    Ok(planned)
}

/// What a forced checkout of `target` writes: a hard reset's paths, less
/// the locally deleted files whose object is lost and that the target did
/// not change (a plain checkout would not write them either).
pub fn plan_forced_checkout(repo: &Repository, fs: &RootDir, target: Oid) -> Result<Move> {
    let mut planned = plan_reset(repo, fs, target)?;
    let head = repo.head()?.peel_to_tree()?;
    let tree = repo.find_commit(target)?.tree()?;
    let id_in = |tree: &git2::Tree, path: &str| tree.get_path(Path::new(path)).ok().map(|e| e.id());
    let workdir = repo.workdir().context("the repository has no working tree")?;
    let (left, missing): (Vec<String>, Vec<String>) =
        std::mem::take(&mut planned.missing).into_iter().partition(|path| {
            id_in(&head, path) == id_in(&tree, path)
                && fs.kind(&workdir.join(path)).ok().flatten().is_none()
        });
    planned.missing = missing;
    planned.paths.retain(|path| !left.contains(path));
    planned.left_deleted = left;
    Ok(planned)
}

/// Resets HEAD to `target`; `hard` also resets the index and the paths
/// `plan_reset` names. If a hard reset fails, they, the index and the
/// branch are put back.
pub fn reset(repo: &Repository, fs: &RootDir, target: Oid, hard: bool) -> Result<()> {
    let object = repo.find_object(target, None)?;
    if !hard {
        repo.reset(&object, git2::ResetType::Soft, None)?;
        return Ok(());
    }
    let planned = plan_reset(repo, fs, target)?;
    refuse_move(&planned, true)?;
    let undo = Undo::take(repo, fs, &planned.paths)?;
    let reset = (|| -> Result<()> {
        let tree = repo.find_commit(target)?.tree()?;
        let mut index = repo.index()?;
        index.read_tree(&tree)?;
        index.write()?;
        worktree::write_paths(repo, fs, &tree, &planned.paths)?;
        fault_hook()?;
        // Only the branch moves now: the index and the files are written.
        repo.reset(&object, git2::ResetType::Soft, None)?;
        Ok(())
    })();
    undo_on_error(repo, fs, undo, reset, "the hard reset")
}

/// Puts things back when `result` is an error, and says so.
fn undo_on_error(
    repo: &Repository,
    fs: &RootDir,
    undo: Undo,
    result: Result<()>,
    what: &str,
) -> Result<()> {
    let Err(err) = result else { return Ok(()) };
    Err(match undo.apply(repo, fs) {
        Ok(()) => err.context(format!(
            "{what} failed; the working tree, the index and HEAD were put back as they were"
        )),
        Err(undo_err) => err
            .context(format!("{what} failed, and putting the tree back failed too: {undo_err:#}")),
    })
}

/// The paths of commit `from` that `pathspecs` name, each with its object
/// present in the repository: checked before step 1.
pub fn plan_restore(
    repo: &Repository,
    fs: &RootDir,
    from: Oid,
    pathspecs: &[String],
) -> Result<Vec<String>> {
    let tree = repo.find_commit(from)?.tree()?;
    let spec = git2::Pathspec::new(pathspecs.iter())?;
    let matches = spec.match_tree(&tree, git2::PathspecFlags::DEFAULT)?;
    let paths: Vec<String> =
        matches.entries().filter_map(|p| std::str::from_utf8(p).ok().map(String::from)).collect();
    if paths.is_empty() {
        return Err(xtask_base::exit::usage(format!(
            "--paths {} matches no file of commit {}",
            pathspecs.join(" "),
            &from.to_string()[..12]
        )));
    }
    let odb = repo.odb()?;
    let missing: Vec<String> = paths
        .iter()
        .filter(|p| tree.get_path(Path::new(p)).is_ok_and(|e| !odb.exists(e.id())))
        .cloned()
        .collect();
    let unwritable =
        paths.iter().filter_map(|p| worktree::unwritable(repo, fs, &tree, p)).collect();
    refuse_move(&Move { missing, unwritable, ..Move::default() }, true)?;
    Ok(paths)
}

/// Restores paths (or pathspecs like `*.py`) from a commit into the index and
/// working tree.
/// If it fails, the paths and the index are put back as they were.
pub fn restore_paths(
    repo: &Repository,
    fs: &RootDir,
    from: Oid,
    pathspecs: &[String],
) -> Result<()> {
    let paths = plan_restore(repo, fs, from, pathspecs)?;
    let tree = repo.find_commit(from)?.tree()?;
    let undo = Undo::take(repo, fs, &paths)?;
    let restored = (|| -> Result<()> {
        worktree::write_paths(repo, fs, &tree, &paths)?;
        fault_hook()
    })();
    undo_on_error(repo, fs, undo, restored, "restoring the paths")
}
