//! `cargo xtask push` and `pull`: a backup to and from a restic repository.
use anyhow::Result;
use xshell::Shell;
use xtask::ops::offsite::{pull, push, resolve};

use super::flags;

impl flags::Push {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let (tree, label, repo) =
            resolve(self.root.as_deref(), self.label.clone(), self.repo.as_deref())?;
        println!("{}", push(sh, &tree, &label, &repo, self.python.as_deref())?);
        Ok(())
    }
}

impl flags::Pull {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let (tree, label, repo) =
            resolve(self.root.as_deref(), self.label.clone(), self.repo.as_deref())?;
        println!("{}", pull(sh, &tree, &label, &repo, self.python.as_deref())?);
        Ok(())
    }
}
