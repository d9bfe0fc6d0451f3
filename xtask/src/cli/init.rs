//! `cargo xtask init`: shows the profile found for a checkout, and writes it.
use anyhow::Result;
use xshell::Shell;
use xtask_ops::init;

use super::{
    documents::{InitDocument, Profiled},
    flags::{self, Format},
    ui,
};

impl flags::Init {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let ask = init::Ask { sh, python: None };
        let proposal = init::propose(self.root.as_deref(), Some(&ask))?;
        let (result, note) = if proposal.existing {
            (
                Profiled::Agrees,
                "exists already and agrees with what init found; it is left as it is",
            )
        } else if self.dry_run {
            (Profiled::Planned, "was not written (dry run)")
        } else {
            // Written only once it is proven on a scratch copy.
            let proven = init::prove(sh, None, &proposal.root, &proposal.text)?;
            // A signal during the proof stopped its programs: what they
            // answered after it proves nothing, so nothing is written.
            if xtask_adapters::process::signal_received() {
                return Err(xtask_base::exit::interrupted(
                    "init was stopped by a signal before it wrote the profile",
                ));
            }
            ui::note(&proven);
            init::write(&proposal)?;
            (Profiled::Written, "was written; commit it with the checkout")
        };
        ui::note(&format!("{} {note}", proposal.target.display()));
        match self.format.unwrap_or_default() {
            Format::Json => ui::document(&InitDocument {
                schema: xtask_model::check::Version,
                command: "init",
                result,
                dry_run: self.dry_run,
                profile: proposal.target,
                text: proposal.text,
            })?,
            Format::Human if proposal.existing => {}
            Format::Human => ui::out(&proposal.text),
        }
        Ok(())
    }
}
