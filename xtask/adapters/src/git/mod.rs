//! Git through libgit2: the facts a manifest records, the backup tag, and the
//! rollback moves. Nothing here pushes.
mod copied;
mod moves;
mod undo;
mod worktree;

use std::path::Path;

use anyhow::{Context, Result, bail};
use git2::{Oid, Repository, StatusOptions};

pub use self::copied::files_for_checks;
pub use self::moves::{
    Move, checkout_new_branch, plan_forced_checkout, plan_move, plan_reset, plan_restore,
    refuse_move, refuse_unready, reset, restore_paths,
};
use xtask_fs::{RootDir, files};

/// Opens the repository whose working tree is exactly `root`: `None` when
/// there is none, an error when there is one that cannot be opened (a
/// corrupt `.git` is not "no repository").
pub fn open(root: &Path) -> Result<Option<Repository>> {
    if !xtask_fs::outside::exists(root.join(".git")) {
        return Ok(None);
    }
    refuse_special_files(root, &root.join(".git"))?;
    trust_the_tree_s_owner(root);
    let repo = Repository::open(root)
        .with_context(|| format!("{} has a .git that git cannot open", root.display()))?;
    refuse_special_files(root, repo.path())?;
    Ok(Some(repo))
}

/// A tree reaches git only once the tool trusts it (`xtask_model::ownership`
/// checks every tree it locates: the user's own, or one they named safe), so
/// libgit2's own refusal of a repository another user owns would only stop
/// a tree the user trusted. It is a process-wide option: switched off once,
/// before the first repository another user owns is opened.
fn trust_the_tree_s_owner(root: &Path) {
    use std::os::unix::fs::MetadataExt;
    static SWITCHED: std::sync::Once = std::sync::Once::new();
    let theirs = xtask_fs::outside::entry(root)
        .is_some_and(|meta| meta.uid() != xtask_fs::sys::effective_uid());
    if theirs {
        SWITCHED.call_once(|| {
            // SAFETY: libgit2's options are read when a repository opens;
            // the Once makes this one write, before that open.
            #[allow(unsafe_code)]
            let switched = unsafe { git2::opts::set_verify_owner_validation(false) };
            let _ = switched;
        });
    }
}

/// libgit2 opens these files as it needs them and would wait forever on a
/// FIFO (or read a device): anything but a regular file there, or a link to
/// one, is refused before git reads anything (exit 4, naming it).
fn refuse_special_files(root: &Path, git_dir: &Path) -> Result<()> {
    let in_git = ["config", "HEAD", "index", "packed-refs", "info/exclude", "info/attributes"];
    let in_tree = [".gitignore", ".gitattributes"].map(|name| root.join(name));
    for path in in_git.iter().map(|name| git_dir.join(name)).chain(in_tree) {
        // Followed on purpose: a link to a FIFO is as bad as a FIFO.
        let Some(meta) = xtask_fs::outside::followed(&path) else { continue };
        if !meta.is_file() && !meta.is_dir() {
            return Err(xtask_base::exit::refused(format!(
                "{} is a FIFO, socket or device (or a link to one): git would wait on it or read it; replace it with a regular file. Nothing was read or changed",
                path.display()
            )));
        }
    }
    Ok(())
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
    if let Some(existing) = tag_commit(repo, tag)
        && existing != head.id()
    {
        bail!(
            "git tag {tag} already points at {existing}, not at HEAD {}: choose another --label or pass --no-tag",
            head.id()
        );
    }
    tag_at(repo, tag, head.id(), message)?;
    Ok(head.id())
}

/// Whether the repository holds `commit` (a clone may lack it: a history
/// rewritten or fetched only in part).
pub fn has_commit(repo: &Repository, commit: Oid) -> bool {
    repo.find_commit(commit).is_ok()
}

/// Makes the annotated tag `tag` at `commit`; `false` when it is already
/// there (a resumed run), an error when a tag of that name points elsewhere.
pub fn tag_at(repo: &Repository, tag: &str, commit: Oid, message: &str) -> Result<bool> {
    match tag_commit(repo, tag) {
        Some(existing) if existing == commit => return Ok(false),
        Some(existing) => bail!("git tag {tag} already points at {existing}, not at {commit}"),
        None => {}
    }
    let target = repo
        .find_commit(commit)
        .with_context(|| format!("commit {commit} is not in this repository"))?;
    let signature =
        repo.signature().or_else(|_| git2::Signature::now("tmws xtask", "xtask@localhost"))?;
    repo.tag(tag, target.as_object(), &signature, message, false).context("create the git tag")?;
    Ok(true)
}

/// What the tool itself keeps in a tree: never a reason for an unclean
/// `git status` while untracked.
pub const TOOL_PATHS: [&str; 4] =
    ["backups/", "forensics/", ".tmws-rollback/", "tmws-rollback.toml"];

/// A path that makes `git status` unclean, and whether git tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirty {
    pub path: String,
    /// Untracked (and not ignored), rather than a change to a tracked file.
    pub untracked: bool,
}

/// Paths that make `git status` unclean (changes and untracked files; ignored
/// files and the tool's own untracked files do not count).
pub fn dirty(repo: &Repository) -> Result<Vec<Dirty>> {
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
        .filter_map(|s| {
            let untracked = s.status() == git2::Status::WT_NEW;
            s.path().ok().map(|path| Dirty { path: path.to_string(), untracked })
        })
        .collect())
}

/// Tracked paths whose working-tree content differs from HEAD.
pub fn modified_tracked(repo: &Repository) -> Result<Vec<String>> {
    let mut options = StatusOptions::new();
    options.include_untracked(false).include_ignored(false);
    let statuses = repo.statuses(Some(&mut options))?;
    Ok(statuses.iter().filter_map(|s| s.path().ok().map(String::from)).collect())
}

/// The alembic revisions the migration files of `commit` define (its
/// `migrations` folders, read from git's objects, not the working tree).
pub fn revisions_defined_at<'a>(
    repo: &Repository,
    commit: Oid,
    migrations: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>> {
    let tree = repo.find_commit(commit)?.tree()?;
    let mut defined = Vec::new();
    for folder in migrations {
        let Ok(entry) = tree.get_path(Path::new(folder)) else { continue };
        let Some(files) = entry.to_object(repo).ok().and_then(|o| o.into_tree().ok()) else {
            continue;
        };
        for file in files.iter() {
            if let Ok(blob) = file.to_object(repo).and_then(|o| o.peel_to_blob())
                && let Some(id) =
                    xtask_model::migrations::revision_of(&String::from_utf8_lossy(blob.content()))
            {
                defined.push(id);
            }
        }
    }
    Ok(defined)
}

/// Keeps a commit reachable under a ref so that a hard reset can be undone.
pub fn keep_ref(repo: &Repository, name: &str, target: Oid) -> Result<()> {
    repo.reference(name, target, true, "tmws rollback: keep the discarded HEAD")?;
    Ok(())
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
    let oid = last_change(repo, path, since)?;
    Some(describe_commit(repo, oid))
}

/// `abc123def456 (its summary)`.
pub fn describe_commit(repo: &Repository, oid: Oid) -> String {
    let summary = repo.find_commit(oid).ok();
    let summary = summary.as_ref().and_then(|c| c.summary().ok().flatten()).unwrap_or("");
    format!("{} ({summary})", &oid.to_string()[..12])
}

/// The newest commit of HEAD's history (after `since`, when this repository
/// has it) whose first parent held `path` otherwise.
pub fn last_change(repo: &Repository, path: &str, since: Option<&str>) -> Option<Oid> {
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
            return Some(oid);
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
    // The folders only: the profile is meant to be committed, and while it
    // is not, `dirty` leaves it out by itself.
    let folders = TOOL_PATHS.iter().filter(|p| p.ends_with('/'));
    let lines: Vec<String> = folders.map(|p| format!("/{p}")).collect();
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
