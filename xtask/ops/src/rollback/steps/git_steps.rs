//! The git steps: a branch at the backup's tag, a reset, paths restored
//! from a commit. Nothing here pushes.
use anyhow::{Context, Result};

use super::Ctx;
use xtask_adapters::git;
use xtask_model::manifest::{MANIFEST_FILE, TAG_MANIFEST_FIELD};
use xtask_model::scenario::Scenario;

impl Ctx<'_> {
    /// Makes the backup's tag again at the manifest's commit (the plan found
    /// the commit here and the tag missing). It records the manifest's hash,
    /// as the backup's own tag did, only when the backup passed verification
    /// in this run or earlier: an unverified manifest is vouched for by nothing.
    pub(super) fn recreate_tag(&mut self, tag: &str, commit: &str) -> Result<String> {
        let repo = git::open(&self.tree.root)?.context("the root is no longer a git repository")?;
        let sha = match self.backup_verified {
            true => self.tree.fs.sha256(&self.backup.join(MANIFEST_FILE)).ok().map(|(s, _)| s),
            false => None,
        };
        let message = format!(
            "{} backup {} ({}); tag made again by rollback at the manifest's commit\n{}",
            self.tree.profile.service,
            self.manifest.label,
            self.manifest.created,
            sha.map(|sha| format!("\n{TAG_MANIFEST_FIELD} {sha}\n")).unwrap_or_default()
        );
        let target = git2::Oid::from_str(commit)?;
        match git::tag_at(&repo, tag, target, &message)
            .with_context(|| format!("make tag {tag}"))?
        {
            true => {
                self.changed = true;
                Ok(format!("made tag {tag} again at the manifest's commit {}; ", &commit[..12]))
            }
            false => Ok(format!("tag {tag} is at {} already; ", &commit[..12])),
        }
    }

    pub(super) fn git_branch(&mut self, branch: &str, commit: &str) -> Result<String> {
        let repo = git::open(&self.tree.root)?.context("the root is no longer a git repository")?;
        let target = git2::Oid::from_str(commit)?;
        let (head, current) = git::head(&repo);
        if current.as_deref() == Some(branch)
            && head.as_deref() == Some(commit)
            && git::modified_tracked(&repo)?.is_empty()
        {
            return Ok(format!("already on {branch}"));
        }
        self.changed = true;
        // A complete rollback kept every local change in the bundle first
        // and restores the tree whole; a git rollback leaves them alone.
        let overwrite = self.scenario == Scenario::Complete;
        let left = git::checkout_new_branch(&repo, &self.tree.fs, branch, target, overwrite)?;
        let left = match left.is_empty() {
            true => String::new(),
            false => format!(
                "; left deleted, as the deploy left them and their object is lost (`git fsck` names it): {}",
                left.join(", ")
            ),
        };
        Ok(format!(
            "checked out {branch} at {}{left}{}",
            &commit[..12],
            self.push_hint(&repo, branch)
        ))
    }

    pub(super) fn git_reset(&mut self, commit: &str, keep_ref: Option<&String>) -> Result<String> {
        let repo = git::open(&self.tree.root)?.context("the root is no longer a git repository")?;
        let target = git2::Oid::from_str(commit)?;
        let (head, branch) = git::head(&repo);
        if head.as_deref() == Some(commit)
            && (keep_ref.is_none() || git::modified_tracked(&repo)?.is_empty())
        {
            return Ok(format!("HEAD is already {}", &commit[..12]));
        }
        self.changed = true;
        if let (Some(name), Some(head)) = (keep_ref, &head) {
            git::keep_ref(&repo, name, git2::Oid::from_str(head)?)?;
        }
        git::reset(&repo, &self.tree.fs, target, keep_ref.is_some())?;
        let kept = keep_ref.map(|r| format!("; the old HEAD is kept as {r}")).unwrap_or_default();
        let hint = branch.map(|b| self.push_hint(&repo, &b)).unwrap_or_default();
        Ok(format!("reset to {}{kept}{hint}", &commit[..12]))
    }

    pub(super) fn git_restore_paths(&mut self, from: &str, paths: &[String]) -> Result<String> {
        let repo = git::open(&self.tree.root)?.context("the root is no longer a git repository")?;
        self.changed = true;
        git::restore_paths(&repo, &self.tree.fs, git2::Oid::from_str(from)?, paths)?;
        Ok(format!("restored {} from {}", paths.join(" "), &from[..12]))
    }

    /// Never pushes; says what a person would run when the branch is published.
    pub(super) fn push_hint(&self, repo: &git2::Repository, branch: &str) -> String {
        match git::upstream_remote(repo, branch) {
            Some(remote) => format!(
                "; this tool never pushes: if {branch} was deployed from {remote}, a person runs `git push --force-with-lease {remote} {branch}`"
            ),
            None => String::new(),
        }
    }
}
