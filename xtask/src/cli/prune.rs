//! `cargo xtask prune`: the plan first, confirmed, then removed.
use anyhow::Result;
use xshell::Shell;
use xtask::{
    model::{lock::Lock, profile::Tree},
    ops::prune,
};

use super::{flags, ui};

impl flags::Prune {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let keep = self.keep as usize;
        let tree = Tree::locate(self.root.as_deref())?;
        let _lock = if self.dry_run { None } else { Some(Lock::acquire(&tree, false)?) };
        let plan = prune::plan(sh, &tree, keep, &self.force, self.repo.as_deref())?;
        println!("prune --keep {keep} in {}:", tree.backups().display());
        for label in &plan.remove {
            println!("  remove backups/{label}");
        }
        for line in &plan.kept_back {
            println!("  keep   {line}");
        }
        if let Some(repo) = &plan.repo {
            println!("prune --keep {keep} in {repo}:");
            for s in &plan.forget {
                println!("  forget snapshot {} ({})", s.id, s.label);
            }
            for line in &plan.kept_in_repo {
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
        prune::execute(sh, &tree, &plan)?;
        println!(
            "removed {} backup(s), forgot {} snapshot(s)",
            plan.remove.len(),
            plan.forget.len()
        );
        Ok(())
    }
}
