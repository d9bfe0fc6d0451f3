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
    flags::{self, Format},
    ui,
};

impl flags::Prune {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let keep = self.keep.0 as usize;
        let json = self.format.unwrap_or_default() == Format::Json;
        // With --format json the plan is for people, on stderr.
        let say = |line: String| if json { ui::note(&line) } else { ui::line(&line) };
        let tree = Tree::locate(self.root.as_deref())?;
        let _lock = if self.dry_run { None } else { Some(Lock::acquire(&tree)?) };
        if self.bundles && self.repo.is_some() {
            return Err(usage("--bundles prunes forensics/ only: leave out --repo"));
        }
        // With --bundles, forensics/ alone; else backups/ and the repository.
        let repository =
            Repository::resolve(self.repo.as_deref(), &tree.profile).filter(|_| !self.bundles);
        let remote = repository.as_ref().map(destination::remote);
        let (local, bundles) = (Local(&tree), Bundles(&tree));
        let mut holders: Vec<&dyn Holder> = vec![if self.bundles { &bundles } else { &local }];
        if let Some(remote) = &remote {
            holders.push(remote.as_ref());
        }
        let plan = prune::plan(sh, &tree, &holders, keep, &self.force)?;
        for (i, pruned) in plan.holders.iter().enumerate() {
            say(format!("prune --keep {keep} in {}:", pruned.holder));
            for entry in &pruned.remove {
                match (i, self.bundles) {
                    (0, true) => say(format!("  remove forensics/{}", entry.label)),
                    (0, false) => say(format!("  remove backups/{}", entry.label)),
                    _ => say(format!("  forget snapshot {} ({})", entry.id, entry.label)),
                }
            }
            for line in &pruned.kept_back {
                say(format!("  keep   {line}"));
            }
        }
        let result = if plan.is_empty() {
            say("nothing to remove".into());
            "nothing"
        } else if self.dry_run {
            say("dry run: nothing was removed".into());
            "planned"
        } else {
            let what = if self.bundles { "bundles" } else { "backups" };
            ui::confirm(self.yes, &format!("Remove these {what}?"), "nothing was removed")?;
            prune::execute(sh, &holders, &plan)?;
            let count = |i: usize| plan.holders.get(i).map_or(0, |p| p.remove.len());
            match remote {
                Some(_) => {
                    say(format!("removed {} backup(s), forgot {} snapshot(s)", count(0), count(1)))
                }
                None if self.bundles => say(format!("removed {} bundle(s)", count(0))),
                None => say(format!("removed {} backup(s)", count(0))),
            }
            "done"
        };
        if json {
            ui::document(&serde_json::json!({
                "schema": xtask_model::check::SCHEMA,
                "command": "prune",
                "result": result,
                "dry_run": self.dry_run,
                "keep": keep,
                "bundles": self.bundles,
                "holders": plan.holders,
            }))?;
        }
        Ok(())
    }
}
