//! `cargo xtask prune --keep N`: removes the local backups beyond the
//! newest N. Never the pre-deploy one (a `pre-…` label whose tag exists) nor
//! the one an unfinished rollback uses, unless named with `--force`. The plan
//! is printed first; it removes nothing it did not list.
use anyhow::Result;
use xshell::Shell;

use crate::{exit::usage, flags, git, journal::Journal, list::list, lock::Lock, profile::Tree};

impl flags::Prune {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let keep = self.keep as usize;
        let tree = Tree::locate(self.root.as_deref())?;
        let _lock = if self.dry_run { None } else { Some(Lock::acquire(&tree, false)?) };
        let listing = list(&tree)?;
        let known: Vec<&str> = listing.backups.iter().map(|b| b.label.as_str()).collect();
        for label in &self.force {
            if !known.contains(&label.as_str()) && self.repo.is_none() {
                return Err(usage(format!(
                    "--force {label}: no such backup{}",
                    crate::profile::labels_hint(&crate::profile::labels(&tree))
                )));
            }
        }
        let repo = git::open(&tree.root)?;
        let in_use: Option<String> = Journal::<serde_json::Value>::load(&tree)?.map(|j| j.label);
        // The same policy for the local folders and for the repository's
        // labels: the newest `keep` stay, protected ones need --force.
        let policy = |oldest_first: &[String]| -> (Vec<String>, Vec<String>) {
            let mut remove = Vec::new();
            let mut kept_back = Vec::new();
            for label in oldest_first.iter().rev().skip(keep) {
                let tagged = repo.as_ref().is_some_and(|r| git::tag_commit(r, label).is_some());
                let why = if label.starts_with("pre-") && tagged {
                    Some("the pre-deploy backup (its tag exists)")
                } else if in_use.as_deref() == Some(label.as_str()) {
                    Some("an unfinished rollback uses it")
                } else {
                    None
                };
                match why {
                    Some(why) if !self.force.iter().any(|f| f == label) => {
                        kept_back.push(format!("{label} ({why}; --force {label} removes it)"))
                    }
                    _ => remove.push(label.clone()),
                }
            }
            (remove, kept_back)
        };
        let local: Vec<String> = known.iter().map(|l| l.to_string()).collect();
        let (remove, kept_back) = policy(&local);
        // The repository's snapshots, by label, oldest label first.
        let stored = match &self.repo {
            Some(repo) => crate::restic::stored(sh, repo)?,
            None => Vec::new(),
        };
        let mut stored_labels: Vec<String> = Vec::new();
        for s in &stored {
            stored_labels.retain(|l| l != &s.label);
            stored_labels.push(s.label.clone());
        }
        let (forget_labels, kept_in_repo) = policy(&stored_labels);
        let forget: Vec<&crate::restic::Stored> =
            stored.iter().filter(|s| forget_labels.contains(&s.label)).collect();
        println!("prune --keep {keep} in {}:", tree.backups().display());
        for label in &remove {
            println!("  remove backups/{label}");
        }
        for line in &kept_back {
            println!("  keep   {line}");
        }
        if let Some(repo) = &self.repo {
            println!("prune --keep {keep} in {repo}:");
            for s in &forget {
                println!("  forget snapshot {} ({})", s.id, s.label);
            }
            for line in &kept_in_repo {
                println!("  keep   {line}");
            }
        }
        if remove.is_empty() && forget.is_empty() {
            println!("nothing to remove");
            return Ok(());
        }
        if self.dry_run {
            println!("dry run: nothing was removed");
            return Ok(());
        }
        crate::ui::confirm(self.yes, "Remove these backups?", "nothing was removed")?;
        for label in &remove {
            tree.fs.remove_dir_all(&tree.backup(label))?;
        }
        if let (Some(repo), false) = (&self.repo, forget.is_empty()) {
            let ids: Vec<&str> = forget.iter().map(|s| s.id.as_str()).collect();
            crate::restic::forget(sh, repo, &ids)?;
        }
        println!("removed {} backup(s), forgot {} snapshot(s)", remove.len(), forget.len());
        Ok(())
    }
}
