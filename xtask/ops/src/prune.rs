//! `cargo xtask prune --keep N`: removes the backups beyond the newest N, in
//! every holder it is given alike (`backups/`, a repository, or both; or
//! `forensics/`'s bundles).
//! Never the pre-deploy one (a `pre-…` label whose tag exists) nor the one an
//! unfinished rollback uses, unless named with `--force`. The plan is made
//! first; nothing is removed that it did not list.
use anyhow::Result;
use serde::Serialize;
use xshell::Shell;

use crate::destination::Holder;
use xtask_adapters::git;
use xtask_base::exit::usage;
use xtask_model::{journal::Journal, label::Label, profile::Tree, repository::Entry};

/// What a prune removes from one holder and what it keeps back.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Pruned {
    /// The backups/ or forensics/ folder, or the restic repository.
    pub holder: String,
    /// The entries to remove (a label may have several in a repository).
    pub remove: Vec<Entry>,
    /// Protected labels beyond the newest `keep`, each with why.
    pub kept_back: Vec<String>,
}

/// What a prune removes, per holder, in the order the holders were given.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub keep: usize,
    pub holders: Vec<Pruned>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.holders.iter().all(|h| h.remove.is_empty())
    }
}

/// Why a label is kept back whatever `--keep` says, if it is.
struct Protection {
    git: Option<git2::Repository>,
    in_use: Option<Label>,
    /// The bundle folder of an unfinished rollback.
    bundle_in_use: Option<String>,
    /// The profile's pre-deploy label.
    pre_deploy: String,
}

impl Protection {
    fn of(tree: &Tree) -> Result<Protection> {
        let journal = Journal::<crate::rollback::Step>::load(tree)?;
        let bundle_in_use = journal
            .as_ref()
            .and_then(|j| j.bundle.file_name().map(|n| n.to_string_lossy().into_owned()));
        let in_use = journal.map(|j| j.label);
        let pre_deploy = tree.profile.label.to_string();
        Ok(Protection { git: git::open(&tree.root)?, in_use, bundle_in_use, pre_deploy })
    }

    fn why(&self, label: &str) -> Option<&'static str> {
        let tagged = self.git.as_ref().is_some_and(|r| git::tag_commit(r, label).is_some());
        if (label.starts_with("pre-") || label == self.pre_deploy) && tagged {
            Some("the pre-deploy backup (its tag exists)")
        } else if self.in_use.as_deref() == Some(label) {
            Some("an unfinished rollback uses it")
        } else if self.bundle_in_use.as_deref() == Some(label) {
            Some("the bundle of an unfinished rollback")
        } else {
            None
        }
    }
}

/// Works out what `--keep keep` removes from each holder; `force` names
/// protected labels that go too, each of which must be held by one of the
/// holders (a typo removes nothing and names what there is).
pub fn plan(
    sh: &Shell,
    tree: &Tree,
    holders: &[&dyn Holder],
    keep: usize,
    force: &[Label],
) -> Result<Plan> {
    let held: Vec<Vec<Entry>> = holders.iter().map(|h| h.entries(sh)).collect::<Result<_>>()?;
    let mut labels: Vec<&str> = held.iter().flatten().map(|e| e.label.as_str()).collect();
    labels.sort();
    labels.dedup();
    if let Some(label) = force.iter().find(|f| !labels.contains(&f.as_str())) {
        let kind = match holders {
            [only] if only.name().ends_with("forensics") => "bundle",
            _ => "backup",
        };
        let here = if labels.is_empty() { "none".to_string() } else { labels.join(", ") };
        return Err(usage(format!(
            "--force {label}: no such {kind}; the {kind}s here are: {here}"
        )));
    }
    let protection = Protection::of(tree)?;
    let mut pruned = Vec::new();
    for (holder, entries) in holders.iter().zip(&held) {
        // The labels, oldest first by their newest entry.
        let mut oldest_first: Vec<&str> = Vec::new();
        for entry in entries {
            oldest_first.retain(|l| *l != entry.label);
            oldest_first.push(&entry.label);
        }
        let mut remove = Vec::new();
        let mut kept_back = Vec::new();
        for label in oldest_first.iter().rev().skip(keep) {
            match protection.why(label) {
                Some(why) if !force.iter().any(|f| f.as_str() == *label) => {
                    kept_back.push(format!("{label} ({why}; --force {label} removes it)"));
                }
                _ => remove.extend(entries.iter().filter(|e| e.label == *label).cloned()),
            }
        }
        pruned.push(Pruned { holder: holder.name(), remove, kept_back });
    }
    Ok(Plan { keep, holders: pruned })
}

/// Removes what the plan lists, holder by holder.
pub fn execute(sh: &Shell, holders: &[&dyn Holder], plan: &Plan) -> Result<()> {
    for (holder, pruned) in holders.iter().zip(&plan.holders) {
        if !pruned.remove.is_empty() {
            holder.forget(sh, &pruned.remove.iter().collect::<Vec<_>>())?;
        }
    }
    Ok(())
}
