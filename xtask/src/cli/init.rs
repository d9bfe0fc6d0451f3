//! `cargo xtask init`: shows the profile found for a checkout, and writes it.
use anyhow::Result;
use xshell::Shell;
use xtask::ops::init;

use super::flags;

impl flags::Init {
    pub fn run(self, _sh: &Shell) -> Result<()> {
        let proposal = init::propose(self.root.as_deref())?;
        if proposal.existing {
            eprintln!(
                "{} exists already and agrees with what init found; it is left as it is",
                proposal.target.display()
            );
            return Ok(());
        }
        if self.dry_run {
            print!("{}", proposal.text);
            eprintln!("dry run: {} was not written", proposal.target.display());
            return Ok(());
        }
        init::write(&proposal)?;
        print!("{}", proposal.text);
        eprintln!("wrote {}; commit it with the checkout", proposal.target.display());
        Ok(())
    }
}
