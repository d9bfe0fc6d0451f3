//! Git through libgit2: the facts a manifest records, the backup tag, and the
//! rollback moves. Nothing here pushes.
use std::path::Path;

use anyhow::{Context, Result, bail};
use git2::{BranchType, Oid, Repository, StatusOptions, build::CheckoutBuilder};

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

/// Paths that make `git status` unclean (changes and untracked files; ignored
/// files do not count).
pub fn dirty_paths(repo: &Repository) -> Result<Vec<String>> {
    let mut options = StatusOptions::new();
    options.include_untracked(true).recurse_untracked_dirs(true).include_ignored(false);
    let statuses = repo.statuses(Some(&mut options))?;
    Ok(statuses.iter().filter_map(|s| s.path().ok().map(String::from)).collect())
}

/// Tracked paths whose working-tree content differs from HEAD.
pub fn modified_tracked(repo: &Repository) -> Result<Vec<String>> {
    let mut options = StatusOptions::new();
    options.include_untracked(false).include_ignored(false);
    let statuses = repo.statuses(Some(&mut options))?;
    Ok(statuses.iter().filter_map(|s| s.path().ok().map(String::from)).collect())
}

/// Creates (or reuses) `branch` at `target` and checks it out, forcing the
/// working tree to the target: the caller preserves what would be lost first.
pub fn checkout_new_branch(repo: &Repository, branch: &str, target: Oid) -> Result<()> {
    let commit = repo.find_commit(target)?;
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
        }
    }
    repo.checkout_tree(commit.as_object(), Some(CheckoutBuilder::new().force()))?;
    repo.set_head(&format!("refs/heads/{branch}"))?;
    Ok(())
}

/// Resets HEAD to `target`; `hard` also resets the index and working tree.
pub fn reset(repo: &Repository, target: Oid, hard: bool) -> Result<()> {
    let object = repo.find_object(target, None)?;
    let kind = if hard { git2::ResetType::Hard } else { git2::ResetType::Soft };
    repo.reset(&object, kind, Some(CheckoutBuilder::new().force()))?;
    Ok(())
}

/// Keeps a commit reachable under a ref so that a hard reset can be undone.
pub fn keep_ref(repo: &Repository, name: &str, target: Oid) -> Result<()> {
    repo.reference(name, target, true, "tmws rollback: keep the discarded HEAD")?;
    Ok(())
}

/// Restores paths (or pathspecs like `*.py`) from a commit into the index and
/// working tree.
pub fn restore_paths(repo: &Repository, from: Oid, paths: &[String]) -> Result<()> {
    let commit = repo.find_commit(from)?;
    let mut checkout = CheckoutBuilder::new();
    checkout.force();
    for path in paths {
        checkout.path(path);
    }
    repo.checkout_tree(commit.as_object(), Some(&mut checkout))?;
    Ok(())
}

pub fn resolve(repo: &Repository, spec: &str) -> Result<Oid> {
    let object = repo.revparse_single(spec).with_context(|| format!("no git revision {spec:?}"))?;
    Ok(object.peel_to_commit()?.id())
}

/// The remote a branch tracks, if any, for the push command a person may need.
pub fn upstream_remote(repo: &Repository, branch: &str) -> Option<String> {
    let config = repo.config().ok()?;
    config.get_string(&format!("branch.{branch}.remote")).ok()
}

/// The folders the tool writes into a tree, kept out of `git status` through
/// the repository's local exclude file (never a tracked file of the project).
pub fn exclude_tool_dirs(repo: &Repository) -> Result<()> {
    let exclude = repo.path().join("info/exclude");
    // An exclude file that exists but cannot be read is never overwritten.
    let current = match std::fs::read_to_string(&exclude) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err).with_context(|| format!("read {}", exclude.display())),
    };
    let missing: Vec<&str> = ["/backups/", "/forensics/", "/.tmws-rollback/"]
        .into_iter()
        .filter(|line| !current.lines().any(|l| l.trim() == *line))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(exclude.parent().context("exclude file has a parent")?)?;
    let mut text = current;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("# written by the TMWS rollback xtask: its own folders\n");
    for line in missing {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(&exclude, text).with_context(|| format!("write {}", exclude.display()))
}

/// Writes `content` to `path` and commits it on the current branch (the
/// drill's "bad commit").
pub fn commit_file(
    repo: &Repository,
    root: &Path,
    path: &str,
    content: &str,
    message: &str,
) -> Result<Oid> {
    std::fs::write(root.join(path), content)?;
    let mut index = repo.index()?;
    index.add_path(Path::new(path))?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let signature =
        repo.signature().or_else(|_| git2::Signature::now("tmws drill", "drill@localhost"))?;
    let parent = repo.head()?.peel_to_commit()?;
    Ok(repo.commit(Some("HEAD"), &signature, &signature, message, &tree, &[&parent])?)
}
