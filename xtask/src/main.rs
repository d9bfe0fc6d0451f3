//! `cargo xtask`: the TMWS Phase 4 rollback runbook as safe, checked commands.
//!
//! This file only parses the flags, builds the one `Shell`, dispatches to the
//! command's module and turns errors into the documented exit codes.
#![deny(unsafe_code)]

mod backup;
mod bench;
mod clock;
mod confine;
mod diagnose;
mod drill;
mod evidence;
mod exit;
mod flags;
mod forensics;
mod fsutil;
mod git;
mod init;
mod journal;
mod lock;
mod manifest;
mod migrations;
mod post_check;
mod process;
mod profile;
mod python;
mod report;
mod rollback;
mod sandbox;
mod seed;
mod services;
mod sqlite;
mod sys;
mod verify_backup;

use std::process::ExitCode;

use xshell::Shell;

fn main() -> ExitCode {
    let flags = flags::Xtask::from_env_or_exit();
    let result = Shell::new().map_err(anyhow::Error::from).and_then(|sh| run(flags, &sh));
    bench::report_own_peak_memory();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit::code_of(&err) as u8)
        }
    }
}

fn run(flags: flags::Xtask, sh: &Shell) -> anyhow::Result<()> {
    match flags.subcommand {
        flags::XtaskCmd::Sandbox(cmd) => cmd.run(sh),
        flags::XtaskCmd::Backup(cmd) => cmd.run(sh),
        flags::XtaskCmd::VerifyBackup(cmd) => cmd.run(sh),
        flags::XtaskCmd::Rollback(cmd) => cmd.run(sh),
        flags::XtaskCmd::PostCheck(cmd) => cmd.run(sh),
        flags::XtaskCmd::Forensics(cmd) => cmd.run(sh),
        flags::XtaskCmd::Diagnose(cmd) => cmd.run(sh),
        flags::XtaskCmd::Drill(cmd) => cmd.run(sh),
        flags::XtaskCmd::Init(cmd) => cmd.run(sh),
        flags::XtaskCmd::Bench(cmd) => cmd.run(sh),
    }
}
