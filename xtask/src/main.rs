//! `cargo xtask`: the TMWS Phase 4 rollback runbook as safe, checked commands.
//!
//! This file only parses the flags, builds the one `Shell`, dispatches to the
//! command's module and turns errors into the documented exit codes.
#![deny(unsafe_code)]

mod backup;
mod bench;
mod cli;
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
mod list;
mod lock;
mod manifest;
mod migrations;
mod offsite;
mod post_check;
mod process;
mod profile;
mod prune;
mod python;
mod report;
mod restic;
mod rollback;
mod sandbox;
mod seed;
mod services;
mod sqlite;
mod sys;
mod ui;
mod verify_backup;

use std::process::ExitCode;

use xshell::Shell;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if matches!(args.as_slice(), [only] if only == "--version" || only == "-V") {
        println!("{}", cli::version());
        return ExitCode::SUCCESS;
    }
    let flags = match flags::Xtask::from_vec(args.clone()) {
        Ok(flags) => flags,
        Err(err) if err.is_help() => {
            print!("{}", cli::help(&err.to_string(), &args));
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("{}", cli::usage_error(&cli::full_help(), &args, &err.to_string()));
            return ExitCode::from(exit::Kind::Usage as u8);
        }
    };
    ui::set(verbosity(&flags));
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

/// `-q` and `-v`, which every command accepts.
fn verbosity(flags: &flags::Xtask) -> ui::Verbosity {
    use flags::XtaskCmd::*;
    let (quiet, verbose) = match &flags.subcommand {
        Sandbox(c) => (c.quiet, c.verbose),
        Backup(c) => (c.quiet, c.verbose),
        VerifyBackup(c) => (c.quiet, c.verbose),
        Rollback(c) => (c.quiet, c.verbose),
        PostCheck(c) => (c.quiet, c.verbose),
        Forensics(c) => (c.quiet, c.verbose),
        Diagnose(c) => (c.quiet, c.verbose),
        Drill(c) => (c.quiet, c.verbose),
        Init(c) => (c.quiet, c.verbose),
        List(c) => (c.quiet, c.verbose),
        Prune(c) => (c.quiet, c.verbose),
        Push(c) => (c.quiet, c.verbose),
        Pull(c) => (c.quiet, c.verbose),
        Bench(c) => (c.quiet, c.verbose),
    };
    match (quiet, verbose) {
        (true, _) => ui::Verbosity::Quiet,
        (false, true) => ui::Verbosity::Verbose,
        _ => ui::Verbosity::Normal,
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
        flags::XtaskCmd::List(cmd) => cmd.run(sh),
        flags::XtaskCmd::Prune(cmd) => cmd.run(sh),
        flags::XtaskCmd::Push(cmd) => cmd.run(sh),
        flags::XtaskCmd::Pull(cmd) => cmd.run(sh),
        flags::XtaskCmd::Bench(cmd) => cmd.run(sh),
    }
}
