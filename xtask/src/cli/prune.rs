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
        let repository = Repository::resolve(self.repo.as_deref(), &tree.profile);
        let remote = repository.as_ref().map(destination::remote);
        let local = Local(&tree);
        let mut holders: Vec<&dyn Holder> = vec![&local];
        if let Some(remote) = &remote {
            holders.push(remote.as_ref());
        }
        let plan = prune::plan(sh, &tree, &holders, keep, &self.force)?;
        for (i, pruned) in plan.holders.iter().enumerate() {
            say(format!("prune --keep {keep} in {}:", pruned.holder));
            for entry in &pruned.remove {
                match i {
                    0 => say(format!("  remove backups/{}", entry.label)),
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
            ui::confirm(self.yes, "Remove these backups?", "nothing was removed")?;
            prune::execute(sh, &holders, &plan)?;
            let count = |i: usize| plan.holders.get(i).map_or(0, |p| p.remove.len());
            match remote {
                Some(_) => {
                    say(format!("removed {} backup(s), forgot {} snapshot(s)", count(0), count(1)))
                }
                None => say(format!("removed {} backup(s)", count(0))),
            }
            "done"
        };
        if json {
            ui::document(&serde_json::json!({
                "schema": xtask::model::check::SCHEMA,
                "command": "prune",
                "result": result,
                "dry_run": self.dry_run,
                "keep": keep,
                "holders": plan.holders,
            }))?;
        }
        Ok(())
    }
}
