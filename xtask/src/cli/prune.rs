//! `cargo xtask prune`: the plan first, confirmed, then removed.
use anyhow::Result;
use xshell::Shell;
use xtask_base::exit::usage;
use xtask_model::{lock::Lock, profile::Tree, repository::Repository};
use xtask_ops::{
    destination::{self, Bundles, Holder, Local},
    prune,
};

use super::{
    documents::{PruneDocument, Pruning},
    flags::{self, Format},
    ui,
};

/// What one holder of the plan is, for its lines.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Held {
    Backups,
    Bundles,
    Repository,
}

impl flags::Prune {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let keep = self.keep.0 as usize;
        let json = self.format.unwrap_or_default() == Format::Json;
        // With --format json the plan is for people, on stderr.
        let say = |line: String| if json { ui::note(&line) } else { ui::line(&line) };
        let tree = Tree::locate(self.root.as_deref())?;
        let remote = self.repository(&tree)?.map(|r| destination::remote(&r));
        let _lock = if self.dry_run { None } else { Some(Lock::acquire(&tree)?) };
        let (local, bundles) = (Local(&tree), Bundles(&tree));
        let mut held: Vec<(Held, &dyn Holder)> = Vec::new();
        if self.bundles {
            held.push((Held::Bundles, &bundles));
        } else if self.local || remote.is_none() {
            held.push((Held::Backups, &local));
        }
        if let Some(remote) = &remote {
            held.push((Held::Repository, remote.as_ref() as &dyn Holder));
        }
        let holders: Vec<&dyn Holder> = held.iter().map(|(_, h)| *h).collect();
        let plan = prune::plan(sh, &tree, &holders, keep, &self.force)?;
        for ((kind, _), pruned) in held.iter().zip(&plan.holders) {
            say(format!("prune --keep {keep} in {}:", pruned.holder));
            for entry in &pruned.remove {
                match kind {
                    Held::Bundles => say(format!("  remove forensics/{}", entry.label)),
                    Held::Backups => say(format!("  remove backups/{}", entry.label)),
                    Held::Repository => {
                        say(format!("  forget snapshot {} ({})", entry.id, entry.label))
                    }
                }
            }
            for line in &pruned.kept_back {
                say(format!("  keep   {line}"));
            }
        }
        let result = if plan.is_empty() {
            say("nothing to remove".into());
            Pruning::Nothing
        } else if self.dry_run {
            say("dry run: nothing was removed".into());
            Pruning::Planned
        } else {
            let what = if self.bundles { "bundles" } else { "backups" };
            ui::confirm(self.yes, &format!("Remove these {what}?"), "nothing was removed")?;
            prune::execute(sh, &holders, &plan)?;
            say(removed(&held, &plan));
            Pruning::Done
        };
        if json {
            ui::document(&PruneDocument {
                schema: xtask_model::check::Version,
                command: "prune",
                result,
                dry_run: self.dry_run,
                keep,
                bundles: self.bundles,
                holders: plan.holders,
            })?;
        }
        Ok(())
    }

    /// The repository to prune: only the one `--repo` names. One that is
    /// configured (TMWS_BACKUP_REPO, backup_repo) but not named is left
    /// alone, and a note says how to prune it: forgetting snapshots off-site
    /// is asked for by name, never implied by a local prune.
    fn repository(&self, tree: &Tree) -> Result<Option<Repository>> {
        if self.bundles && (self.repo.is_some() || self.local) {
            return Err(usage("--bundles prunes forensics/ only: leave out --repo and --local"));
        }
        match self.repo.as_deref() {
            Some("") => Err(usage("--repo names the restic repository to prune; it was empty")),
            Some(spec) => Ok(Some(Repository::named(spec)?)),
            None => {
                if let (false, Some(configured)) =
                    (self.bundles, Repository::resolve(None, &tree.profile)?)
                {
                    ui::note(&format!(
                        "the configured repository {} is not pruned: pass --repo {} for it (and --local for backups/ as well)",
                        configured,
                        xtask_model::advice::quoted(&configured.to_string())
                    ));
                }
                Ok(None)
            }
        }
    }
}

/// `removed 2 backup(s), forgot 1 snapshot(s)`: what went from each holder.
fn removed(held: &[(Held, &dyn Holder)], plan: &prune::Plan) -> String {
    let parts: Vec<String> = held
        .iter()
        .zip(&plan.holders)
        .map(|((kind, _), pruned)| {
            let n = pruned.remove.len();
            match kind {
                Held::Backups => format!("removed {n} backup(s)"),
                Held::Bundles => format!("removed {n} bundle(s)"),
                Held::Repository => format!("forgot {n} snapshot(s)"),
            }
        })
        .collect();
    parts.join(", ")
}
