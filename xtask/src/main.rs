//! `cargo xtask`: the TMWS Phase 4 rollback runbook as safe, checked commands.
//!
//! This file only hands the command line to `cli` and dispatches each
//! command: the product's to `cli`, the developer tools' to `dev`.

mod cli;
mod dev;

use std::process::ExitCode;

use cli::flags::XtaskCmd;
use xshell::Shell;

fn main() -> ExitCode {
    cli::main(run)
}

fn run(command: XtaskCmd, sh: &Shell) -> anyhow::Result<()> {
    match command {
        XtaskCmd::Sandbox(cmd) => cmd.run(sh),
        XtaskCmd::Drill(cmd) => cmd.run(sh),
        XtaskCmd::Bench(cmd) => cmd.run(sh),
        XtaskCmd::Dist(cmd) => cmd.run(sh),
        XtaskCmd::Test(cmd) => cmd.run(sh),
        product => cli::run(product, sh),
    }
}
