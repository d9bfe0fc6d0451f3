//! `cargo xtask rollback`: the plan printed first, confirmed, then each
//! step's result as it runs; with `--format json`, one document at the end
//! and the lines for people on stderr.
use std::time::Duration;

use anyhow::Result;
use xshell::Shell;
use xtask_base::exit::usage;
use xtask_model::{profile::Tree, repository::Repository};
use xtask_ops::{
    self,
    rollback::{Flags, Options, Voice},
};

use super::{
    flags::{self, Format},
    ui,
};

impl flags::Rollback {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let format = self.format.unwrap_or_default();
        if self.resume && self.abandon {
            return Err(usage(
                "--resume finishes an unfinished run and --abandon closes it: choose one",
            ));
        }
        if self.scenario.is_none() && !self.resume && !self.abandon {
            return Err(usage(
                "--scenario is required: database, migration, files, complete or git (with --resume or --abandon it comes from the unfinished run's journal)",
            ));
        }
        let flags = Flags {
            to: self.to.clone(),
            steps: self.steps.map(|count| count.0),
            allow_data_loss: self.allow_data_loss,
            paths: self.paths.clone(),
            all: self.all,
            commit: self.commit.clone(),
            hard: self.hard,
            force: self.force,
            from: self.from.clone(),
            external: self.external,
        };
        // The flags are read for the scenario before the tree is looked at.
        let given =
            self.scenario.map(|scenario| flags.clone().for_scenario(scenario)).transpose()?;
        let (tree, label) = Tree::with_label(self.root.as_deref(), self.label.clone())?;
        // --resume and --abandon go on with the unfinished run's backup, as
        // with its scenario: the profile's label may name another.
        let label = match (&self.label, self.resume || self.abandon) {
            (None, true) => xtask_ops::rollback::unfinished_label(&tree).unwrap_or(label),
            _ => label,
        };
        let choices = match given {
            Some(choices) => choices,
            None => flags.for_scenario(xtask_ops::rollback::unfinished_scenario(&tree)?)?,
        };
        // A backup kept off-site only: pulled (verified) under the lock.
        let repo = Repository::resolve(self.repo.as_deref(), &tree.profile)?;
        let options = Options {
            label,
            choices,
            dry_run: self.dry_run,
            resume: self.resume,
            abandon: self.abandon,
            break_lock: self.break_lock,
            skip_verify: self.skip_verify,
            grace: Duration::from_secs(self.grace.unwrap_or(10)),
            python: self.python.clone(),
            repo,
        };
        let json = format == Format::Json;
        let say = |line: String| {
            if json { super::ui::note(&line) } else { super::ui::line(&line) }
        };
        let yes = self.yes;
        let confirm = || ui::confirm(yes, "Run this plan?", "nothing was changed");
        let voice = Voice { say: &say, confirm: &confirm };
        let outcome = xtask_ops::rollback::rollback(sh, &tree, &options, &voice)?;
        if json {
            ui::document(&outcome)?;
        }
        Ok(())
    }
}
