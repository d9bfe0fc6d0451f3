//! `cargo xtask prune`: the plan first, confirmed, then removed.
use anyhow::Result;
use xshell::Shell;
use xtask::{
    model::{lock::Lock, profile::Tree, repository::Repository},
    ops::{
        destination::{self, Holder, Local},
        prune,
    },
};

use super::{flags, ui};

impl flags::Prune {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let keep = self.keep as usize;
        let tree = Tree::locate(self.root.as_deref())?;
        let _lock = if self.dry_run { None } else { Some(Lock::acquire(&tree)?) };
        let repository = Repository::resolve(self.repo.as_deref(), &tree.profile);
        let remote = repository.as_ref().map(destination::remote);
        let local = Local(&tree);
        let mut holders: Vec<&dyn Holder> = vec![&local];
        if let Some(remote) = &remote {
            holders.push(remote.as_ref());
        }
        let plan = prune::plan(sh, &tree, &holders, keep, &self.force)?;
        for (i, pruned) in plan.holders.iter().enumerate() {
            println!("prune --keep {keep} in {}:", pruned.holder);
            for entry in &pruned.remove {
                match i {
                    0 => println!("  remove backups/{}", entry.label),
                    _ => println!("  forget snapshot {} ({})", entry.id, entry.label),
                }
            }
            for line in &pruned.kept_back {
                println!("  keep   {line}");
            }
        }
        if plan.is_empty() {
            println!("nothing to remove");
            return Ok(());
        }
        if self.dry_run {
            println!("dry run: nothing was removed");
            return Ok(());
        }
        ui::confirm(self.yes, "Remove these backups?", "nothing was removed")?;
        prune::execute(sh, &holders, &plan)?;
        let count = |i: usize| plan.holders.get(i).map_or(0, |p| p.remove.len());
        println!("removed {} backup(s), forgot {} snapshot(s)", count(0), count(1));
        Ok(())
    }
}
