//! Git through libgit2: the facts a manifest records, the backup tag, and the
//! rollback moves. Nothing here pushes.
use std::path::Path;

use anyhow::{Context, Result, bail};
use git2::{BranchType, Oid, Repository, StatusOptions, build::CheckoutBuilder};

use crate::fs::{RootDir, files, sys::FileType};

/// Opens the repository whose working tree is exactly `root`: `None` when
/// there is none, an error when there is one that cannot be opened (a
/// corrupt `.git` is not "no repository").
pub fn open(root: &Path) -> Result<Option<Repository>> {
    if std::fs::symlink_metadata(root.join(".git")).is_err() {
        return Ok(None);
    }
    Repository::open(root)
        .map(Some)
        .with_context(|| format!("{} has a .git that git cannot open", root.display()))
}

/// The message of an annotated tag (`None` for a lightweight tag).
pub fn tag_message(repo: &Repository, tag: &str) -> Option<String> {
    let reference = repo.find_reference(&format!("refs/tags/{tag}")).ok()?;
    let tag = repo.find_tag(reference.target()?).ok()?;
    tag.message().ok().flatten().map(str::to_string)
}

/// HEAD's commit id and branch name (`None` when detached or unborn).
pub fn head(repo: &Repository) -> (Option<String>, Option<String>) {
    let Ok(head) = repo.head() else { return (None, None) };
    let commit = head.peel_to_commit().ok().map(|c| c.id().to_string());
    let branch = head.is_branch().then(|| head.shorthand().ok().map(String::from)).flatten();
    (commit, branch)
}

/// HEAD as `head`, but a HEAD that cannot be read is an error (only an
/// unborn branch, a repository without commits, is "no commit").
pub fn head_checked(repo: &Repository) -> Result<(Option<String>, Option<String>)> {
    match repo.head() {
        Ok(_) => Ok(head(repo)),
        Err(err) if err.code() == git2::ErrorCode::UnbornBranch => Ok((None, None)),
        Err(err) => Err(err).context("git cannot read HEAD"),
    }
}

/// The commit a tag points at.
pub fn tag_commit(repo: &Repository, tag: &str) -> Option<Oid> {
    let reference = repo.find_reference(&format!("refs/tags/{tag}")).ok()?;
    reference.peel_to_commit().ok().map(|c| c.id())
}

/// Tags HEAD with an annotated tag; a tag of that name elsewhere is an error,
/// the same tag on HEAD already is fine (a resumed or repeated backup).
pub fn tag_head(repo: &Repository, tag: &str, message: &str) -> Result<Oid> {
    let head = repo.head()?.peel_to_commit().context("HEAD has no commit to tag")?;
    if let Some(existing) = tag_commit(repo, tag) {
        if existing == head.id() {
            return Ok(existing);
        }
        bail!(
            "git tag {tag} already points at {existing}, not at HEAD {}: choose another --label or pass --no-tag",
            head.id()
        );
    }
    let signature =
        repo.signature().or_else(|_| git2::Signature::now("tmws xtask", "xtask@localhost"))?;
    repo.tag(tag, head.as_object(), &signature, message, false).context("create the git tag")?;
    Ok(head.id())
}

/// What the tool itself keeps in a tree: never a reason for an unclean
/// `git status` while untracked.
pub const TOOL_PATHS: [&str; 4] =
    ["backups/", "forensics/", ".tmws-rollback/", "tmws-rollback.toml"];

/// Paths that make `git status` unclean (changes and untracked files; ignored
/// files and the tool's own untracked files do not count).
pub fn dirty_paths(repo: &Repository) -> Result<Vec<String>> {
    let mut options = StatusOptions::new();
    options.include_untracked(true).recurse_untracked_dirs(true).include_ignored(false);
    let statuses = repo.statuses(Some(&mut options))?;
    Ok(statuses
        .iter()
        .filter(|s| {
            let ours = s.path().is_ok_and(|p| {
                TOOL_PATHS.iter().any(|t| p == *t || (t.ends_with('/') && p.starts_with(t)))
            });
            !(ours && s.status() == git2::Status::WT_NEW)
        })
        .filter_map(|s| s.path().ok().map(String::from))
        .collect())
}

/// Tracked paths whose working-tree content differs from HEAD.
pub fn modified_tracked(repo: &Repository) -> Result<Vec<String>> {
    let mut options = StatusOptions::new();
    options.include_untracked(false).include_ignored(false);
    let statuses = repo.statuses(Some(&mut options))?;
    Ok(statuses.iter().filter_map(|s| s.path().ok().map(String::from)).collect())
}

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
}

/// Works out, without touching anything, what a checkout of `target` from
/// HEAD would change, which local changes it would meet, and whether every
/// object it needs is present.
pub fn plan_move(repo: &Repository, target: Oid) -> Result<Move> {
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
        planned.paths.push(path);
    }
    Ok(planned)
}

/// What HEAD was, to put it back: a branch (and the commit it pointed at,
/// which a hard reset moves) or a detached commit.
enum HeadWas {
    Branch(String, Oid),
    Detached(Oid),
}

/// A working-tree file's bytes and mode.
type Kept = (Vec<u8>, u32);

/// The state a move may change, kept so a failed move can be undone.
struct Undo {
    head: HeadWas,
    index: Option<Vec<u8>>,
    /// Each moved path's bytes and mode in the working tree (`None`: absent).
    files: Vec<(String, Option<Kept>)>,
    created_branch: Option<String>,
}

impl Undo {
    fn take(repo: &Repository, fs: &RootDir, paths: &[String]) -> Result<Undo> {
        let head = repo.head()?;
        let at = head.peel_to_commit()?.id();
        let head = match head.name() {
            Ok(name) if head.is_branch() => HeadWas::Branch(name.to_string(), at),
            _ => HeadWas::Detached(at),
        };
        let workdir = repo.workdir().context("the repository has no working tree")?;
        let files = paths.iter().map(|p| (p.clone(), kept(fs, &workdir.join(p)))).collect();
        let index = kept(fs, &repo.path().join("index")).map(|(bytes, _)| bytes);
        Ok(Undo { head, index, files, created_branch: None })
    }

    /// Puts the paths, the index and HEAD back as they were.
    fn apply(self, repo: &Repository, fs: &RootDir) -> Result<()> {
        let workdir = repo.workdir().context("the repository has no working tree")?;
        for (path, kept) in &self.files {
            let full = workdir.join(path);
            match kept {
                Some((bytes, mode)) => {
                    if let Some(parent) = full.parent() {
                        fs.create_dir_all(parent)?;
                    }
                    files::write_atomic(fs, &full, bytes)?;
                    fs.set_mode(&full, *mode)?;
                }
                None if fs.kind(&full)?.is_some() => fs.remove_file(&full)?,
                None => {}
            }
        }
        if let Some(index) = &self.index {
            files::write_atomic(fs, &repo.path().join("index"), index)?;
        }
        match &self.head {
            HeadWas::Branch(name, at) => {
                repo.reference(name, *at, true, "tmws rollback: put the branch back")?;
                repo.set_head(name)?
            }
            HeadWas::Detached(oid) => repo.set_head_detached(*oid)?,
        }
        if let Some(branch) = &self.created_branch
            && let Ok(mut created) = repo.find_branch(branch, BranchType::Local)
        {
            created.delete()?;
        }
        Ok(())
    }
}

/// A regular file's bytes and mode, read through the file-access layer;
/// `None` for anything else (nothing, a link, a folder).
fn kept(fs: &RootDir, path: &Path) -> Option<Kept> {
    use std::{io::Read, os::unix::fs::PermissionsExt};
    if fs.kind(path).ok()?? != FileType::RegularFile {
        return None;
    }
    let mut file = fs.open_read(path).ok()?;
    let mode = file.metadata().ok()?.permissions().mode() & 0o7777;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    Some((bytes, mode))
}

/// Creates (or reuses) `branch` at `target` and checks it out the way git's
/// own checkout does: only the paths that differ between HEAD and the target
/// are written, so unrelated local changes and deletions stay. Local changes
/// to those paths are overwritten only with `overwrite` (the caller has kept
/// them in the forensics bundle). If anything fails, the paths, the index
/// and HEAD are put back as they were, and the error says so.
pub fn checkout_new_branch(
    repo: &Repository,
    fs: &RootDir,
    branch: &str,
    target: Oid,
    overwrite: bool,
) -> Result<()> {
    let planned = plan_move(repo, target)?;
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
        if !planned.paths.is_empty() {
            let mut checkout = CheckoutBuilder::new();
            checkout.force().disable_pathspec_match(true);
            for path in &planned.paths {
                checkout.path(path);
            }
            repo.checkout_tree(commit.as_object(), Some(&mut checkout))?;
        }
        fault_hook()?;
        repo.set_head(&format!("refs/heads/{branch}"))?;
        Ok(())
    })();
    undo_on_error(repo, fs, undo, moved, "the checkout")
}

/// A test-only fault: `XTASK_GIT_FAULT=checkout` fails a checkout after it
/// has written the working tree, as a failure half-way would.
fn fault_hook() -> Result<()> {
    if std::env::var("XTASK_GIT_FAULT").is_ok_and(|v| v == "checkout") {
        bail!("fault injected after the checkout wrote the working tree");
    }
    Ok(())
}

/// Refuses (exit 4) what would stop a git step half-way, before step 1: an
/// `index.lock` (a git process running, or one that crashed), and a branch
/// of the name the step creates that points elsewhere.
pub fn refuse_unready(repo: &Repository, branch: Option<(&str, Oid)>) -> Result<()> {
    let lock = repo.path().join("index.lock");
    if std::fs::symlink_metadata(&lock).is_ok() {
        return Err(crate::base::exit::refused(format!(
            "{} exists: a git command is running in this repository, or one crashed and left it. Wait for it, or remove the file if no git command runs. Nothing was changed",
            lock.display()
        )));
    }
    if let Some((name, target)) = branch
        && let Ok(existing) = repo.find_branch(name, BranchType::Local)
    {
        let at = existing.get().peel_to_commit()?.id();
        if at != target {
            return Err(crate::base::exit::refused(format!(
                "branch {name} exists already, at {at}, not at {target} (an earlier rollback's?): rename or delete it (`git branch -m {name} {name}-old`), then run again. Nothing was changed"
            )));
        }
    }
    Ok(())
}

/// Refuses a move that cannot finish or would destroy local changes.
pub fn refuse_move(planned: &Move, overwrite: bool) -> Result<()> {
    if !planned.missing.is_empty() {
        return Err(crate::base::exit::refused(format!(
            "the repository lacks objects this checkout needs, for {}: `git fsck` names them; fetch them (`git fetch`) or restore them first. Nothing was changed",
            planned.missing.join(", ")
        )));
    }
    if !overwrite && !planned.conflicts.is_empty() {
        return Err(crate::base::exit::refused(format!(
            "local changes to {} would be overwritten by the checkout: commit, stash or discard them, or use --scenario complete, which keeps them in the forensics bundle. Nothing was changed",
            planned.conflicts.join(", ")
        )));
    }
    Ok(())
}

/// Resets HEAD to `target`; `hard` also resets the index and working tree.
/// A hard reset writes the paths that differ from the target and those with
/// local changes; if it fails, they, the index and the branch are put back.
pub fn reset(repo: &Repository, fs: &RootDir, target: Oid, hard: bool) -> Result<()> {
    let object = repo.find_object(target, None)?;
    if !hard {
        repo.reset(&object, git2::ResetType::Soft, None)?;
        return Ok(());
    }
    let mut paths = plan_move(repo, target)?.paths;
    for path in modified_tracked(repo)? {
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    let undo = Undo::take(repo, fs, &paths)?;
    let reset = (|| -> Result<()> {
        repo.reset(&object, git2::ResetType::Hard, Some(CheckoutBuilder::new().force()))?;
        fault_hook()
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
pub fn plan_restore(repo: &Repository, from: Oid, pathspecs: &[String]) -> Result<Vec<String>> {
    let tree = repo.find_commit(from)?.tree()?;
    let spec = git2::Pathspec::new(pathspecs.iter())?;
    let matches = spec.match_tree(&tree, git2::PathspecFlags::DEFAULT)?;
    let paths: Vec<String> =
        matches.entries().filter_map(|p| std::str::from_utf8(p).ok().map(String::from)).collect();
    if paths.is_empty() {
        return Err(crate::base::exit::usage(format!(
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
    refuse_move(&Move { missing, ..Move::default() }, true)?;
    Ok(paths)
}

/// Keeps a commit reachable under a ref so that a hard reset can be undone.
pub fn keep_ref(repo: &Repository, name: &str, target: Oid) -> Result<()> {
    repo.reference(name, target, true, "tmws rollback: keep the discarded HEAD")?;
    Ok(())
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
    let paths = plan_restore(repo, from, pathspecs)?;
    let commit = repo.find_commit(from)?;
    let undo = Undo::take(repo, fs, &paths)?;
    let restored = (|| -> Result<()> {
        let mut checkout = CheckoutBuilder::new();
        checkout.force().disable_pathspec_match(true);
        for path in &paths {
            checkout.path(path);
        }
        repo.checkout_tree(commit.as_object(), Some(&mut checkout))?;
        fault_hook()
    })();
    undo_on_error(repo, fs, undo, restored, "restoring the paths")
}

pub fn resolve(repo: &Repository, spec: &str) -> Result<Oid> {
    let object = repo.revparse_single(spec).with_context(|| format!("no git revision {spec:?}"))?;
    Ok(object.peel_to_commit()?.id())
}

/// The newest commit since `since` (or in all of HEAD's history) that
/// changed `path`, as `abc123456789 (summary)`, when the working tree's
/// file is the committed one; `None` when the change is uncommitted.
pub fn committed_in(repo: &Repository, path: &str, since: Option<&str>) -> Option<String> {
    let status = repo.status_file(Path::new(path)).ok()?;
    if !(status.is_empty() || status == git2::Status::IGNORED) {
        return None;
    }
    let mut walk = repo.revwalk().ok()?;
    walk.push_head().ok()?;
    if let Some(base) = since.and_then(|s| Oid::from_str(s).ok()) {
        // A base this repository lacks (a backup from another checkout):
        // then the newest change in all of HEAD's history is the answer.
        let _whole_history = walk.hide(base);
    }
    let entry_of =
        |commit: &git2::Commit| commit.tree().ok()?.get_path(Path::new(path)).ok().map(|e| e.id());
    for oid in walk.flatten() {
        let commit = repo.find_commit(oid).ok()?;
        let parent = commit.parent(0).ok();
        if entry_of(&commit) != parent.as_ref().and_then(entry_of) {
            let short = &oid.to_string()[..12];
            return Some(format!("{short} ({})", commit.summary().ok().flatten().unwrap_or("")));
        }
    }
    None
}

/// The repository's first remote, for a push command a person may run.
pub fn first_remote(repo: &Repository) -> Option<String> {
    let remotes = repo.remotes().ok()?;
    remotes.iter().flatten().flatten().next().map(str::to_string)
}

/// The remote a branch tracks, if any, for the push command a person may need.
pub fn upstream_remote(repo: &Repository, branch: &str) -> Option<String> {
    let config = repo.config().ok()?;
    config.get_string(&format!("branch.{branch}.remote")).ok()
}

/// The folders the tool writes into a tree, kept out of `git status` through
/// the repository's local exclude file (never a tracked file of the project).
pub fn exclude_tool_dirs(repo: &Repository, fs: &RootDir) -> Result<()> {
    use std::io::Read;
    let exclude = repo.path().join("info/exclude");
    // An exclude file that exists but cannot be read (a link out of the
    // root, a FIFO) is never written through or overwritten.
    let mut current = String::new();
    if fs.kind(&exclude)?.is_some() {
        fs.open_read(&exclude)?
            .read_to_string(&mut current)
            .with_context(|| format!("read {}", exclude.display()))?;
    }
    let lines: Vec<String> = TOOL_PATHS.iter().map(|p| format!("/{p}")).collect();
    let missing: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|line| !current.lines().any(|l| l.trim() == *line))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    fs.create_dir_all(exclude.parent().context("exclude file has a parent")?)?;
    let mut text = current;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("# written by the TMWS rollback xtask: its own folders\n");
    for line in missing {
        text.push_str(line);
        text.push('\n');
    }
    files::write_atomic(fs, &exclude, text.as_bytes())
        .with_context(|| format!("write {}", exclude.display()))
}

/// Writes `content` to `path` and commits it on the current branch (the
/// drill's "bad commit").
pub fn commit_file(
    repo: &Repository,
    fs: &RootDir,
    path: &str,
    content: &str,
    message: &str,
) -> Result<Oid> {
    let workdir = repo.workdir().context("the repository has no working tree")?;
    files::write_atomic(fs, &workdir.join(path), content.as_bytes())?;
    let mut index = repo.index()?;
    index.add_path(Path::new(path))?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let signature =
        repo.signature().or_else(|_| git2::Signature::now("tmws drill", "drill@localhost"))?;
    let parent = repo.head()?.peel_to_commit()?;
    Ok(repo.commit(Some("HEAD"), &signature, &signature, message, &tree, &[&parent])?)
}
