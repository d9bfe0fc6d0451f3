//! `cargo xtask prune --keep N`: removes the local backups beyond the
//! newest N. Never the pre-deploy one (a `pre-…` label whose tag exists) nor
//! the one an unfinished rollback uses, unless named with `--force`. The plan
//! is made first; nothing is removed that it did not list.
use anyhow::Result;
use xshell::Shell;

use crate::{
    adapters::{git, restic},
    base::exit::usage,
    model::{
        advice::labels_here,
        journal::Journal,
        label::Label,
        profile::{Tree, labels},
    },
    ops::list::list,
};

/// What a prune removes and keeps, locally and in a repository.
pub struct Plan {
    pub keep: usize,
    /// Local backups to remove, by label.
    pub remove: Vec<Label>,
    /// Protected backups beyond the newest `keep`, each with why.
    pub kept_back: Vec<String>,
    pub repo: Option<String>,
    /// The repository's snapshots to forget.
    pub forget: Vec<restic::Stored>,
    pub kept_in_repo: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.forget.is_empty()
    }
}

/// Works out what `--keep keep` removes; `force` names protected labels
/// that go too.
pub fn plan(
    sh: &Shell,
    tree: &Tree,
    keep: usize,
    force: &[Label],
    repo: Option<&str>,
) -> Result<Plan> {
    let listing = list(tree)?;
    let known: Vec<&Label> = listing.backups.iter().map(|b| &b.label).collect();
    for label in force {
        if !known.contains(&label) && repo.is_none() {
            return Err(usage(format!(
                "--force {label}: no such backup{}",
                labels_here(&labels(tree))
            )));
        }
    }
    let git_repo = git::open(&tree.root)?;
    let in_use: Option<Label> = Journal::<serde_json::Value>::load(tree)?.map(|j| j.label);
    // The same policy for the local folders and for the repository's
    // labels: the newest `keep` stay, protected ones need --force.
    let policy = |oldest_first: &[String]| -> (Vec<String>, Vec<String>) {
        let mut remove = Vec::new();
        let mut kept_back = Vec::new();
        for label in oldest_first.iter().rev().skip(keep) {
            let tagged = git_repo.as_ref().is_some_and(|r| git::tag_commit(r, label).is_some());
            let why = if label.starts_with("pre-") && tagged {
                Some("the pre-deploy backup (its tag exists)")
            } else if in_use.as_deref() == Some(label.as_str()) {
                Some("an unfinished rollback uses it")
            } else {
                None
            };
            match why {
                Some(why) if !force.iter().any(|f| f.as_str() == label) => {
                    kept_back.push(format!("{label} ({why}; --force {label} removes it)"))
                }
                _ => remove.push(label.clone()),
            }
        }
        (remove, kept_back)
    };
    let local: Vec<String> = known.iter().map(|l| l.to_string()).collect();
    let (remove, kept_back) = policy(&local);
    // The names came from labels: they read back as labels.
    let remove = remove.iter().filter_map(|l| l.parse().ok()).collect();
    // The repository's snapshots, by label, oldest label first.
    let stored = match repo {
        Some(repo) => restic::stored(sh, repo)?,
        None => Vec::new(),
    };
    let mut stored_labels: Vec<String> = Vec::new();
    for s in &stored {
        stored_labels.retain(|l| l != &s.label);
        stored_labels.push(s.label.clone());
    }
    let (forget_labels, kept_in_repo) = policy(&stored_labels);
    let forget = stored.into_iter().filter(|s| forget_labels.contains(&s.label)).collect();
    Ok(Plan { keep, remove, kept_back, repo: repo.map(String::from), forget, kept_in_repo })
}

/// Removes what the plan lists.
pub fn execute(sh: &Shell, tree: &Tree, plan: &Plan) -> Result<()> {
    for label in &plan.remove {
        tree.fs.remove_dir_all(&tree.backup(label))?;
    }
    if let (Some(repo), false) = (&plan.repo, plan.forget.is_empty()) {
        let ids: Vec<&str> = plan.forget.iter().map(|s| s.id.as_str()).collect();
        restic::forget(sh, repo, &ids)?;
    }
    Ok(())
}
