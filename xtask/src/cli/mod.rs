//! The command line: flags (`flags.rs`, the one definition), help, the
//! rendering of results, and one module per command that parses its flags,
//! calls the operation and prints what it returned. The only layer that
//! prints.
mod args;
pub mod documents;
pub mod flags;
pub mod help;
pub mod render;
pub mod ui;

mod backup;
mod diagnose;
mod forensics;
mod init;
mod list;
mod offsite;
mod post_check;
mod prune;
mod rollback;
mod verify_backup;

use std::{path::PathBuf, process::ExitCode};

use flags::XtaskCmd;
use xshell::Shell;
use xtask_base::exit;

/// Parses the command line, runs the command through `dispatch`, and turns
/// its error into the documented exit code.
pub fn main(dispatch: fn(XtaskCmd, &Shell) -> anyhow::Result<()>) -> ExitCode {
    let args = args::normalize(std::env::args_os().skip(1).collect());
    let json = args::wants_json(&args);
    let _first = JUNIT.set(junit_target(&args));
    let _first = SIGNALLED_DOCUMENT.set(json.then(|| help::command_in(&args)));
    let args = match args::trust_owner(args) {
        Ok(args) => args,
        Err(message) => return stopped(&[], json, exit::Kind::Usage, &message, None),
    };
    if matches!(args.as_slice(), [only] if only == "--version" || only == "-V") {
        ui::line(&help::version());
        return ExitCode::SUCCESS;
    }
    let flags = match flags::Xtask::from_vec(args.clone()) {
        Ok(flags) => flags,
        Err(err) if err.is_help() => {
            ui::out(&as_run(&help::help(&err.to_string(), &args)));
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            let message = as_run(&help::usage_error(&help::full_help(), &args, &err.to_string()));
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            return stopped(&args, json, exit::Kind::Usage, message, None);
        }
    };
    ui::install(verbosity(&flags.subcommand));
    // Before any thread starts: a termination signal stops this run's
    // children (their whole process groups) before the xtask exits.
    xtask_adapters::process::stop_children_on_signals();
    xtask_adapters::process::before_exit_on_signal(on_signal);
    sweep_what_killed_runs_left();
    let result =
        Shell::new().map_err(anyhow::Error::from).and_then(|sh| dispatch(flags.subcommand, &sh));
    // Stopped by a signal: its code, once this run's programs are stopped.
    if let Some(code) = xtask_adapters::process::terminated() {
        on_signal(code);
        return ExitCode::from(code);
    }
    ui::report_peak_memory();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            stopped(&args, json, exit::kind_of(&err), &format!("{err:#}"), exit::next_of(&err))
        }
    }
}

/// A run killed by SIGKILL (or a crash) could not remove its scratch
/// folders: this user's folders of runs that are gone go now, with a note.
fn sweep_what_killed_runs_left() {
    let removed = xtask_fs::leftovers::sweep();
    if let [first, ..] = removed.as_slice() {
        let temp = std::env::temp_dir();
        let more = match removed.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        ui::note(&format!(
            "removed {}{more} from {}: scratch folders that runs killed before they could clean up left",
            first.to_string_lossy(),
            temp.display()
        ));
    }
}

/// A command that stopped before its result: the error on stderr and, with
/// `--format json`, the error document on stdout unless the command printed
/// its own; the exit code of its kind.
fn stopped(
    args: &[std::ffi::OsString],
    json: bool,
    kind: exit::Kind,
    message: &str,
    next: Option<&str>,
) -> ExitCode {
    ui::note(&format!("error: {message}"));
    junit_at_exit(kind as u8, message, false);
    if json && !ui::document_printed() {
        let command = help::command_in(args);
        ui::document(&render::error_document(command.as_deref(), kind, message, next))
            .expect("an error document always serializes");
    }
    ExitCode::from(kind as u8)
}

/// The command and the JUnit file of this run, when its command takes
/// `--junit` and one was given: read from the arguments as typed, since a
/// usage error stops the run before its flags are parsed.
static JUNIT: std::sync::OnceLock<Option<(String, PathBuf)>> = std::sync::OnceLock::new();

fn junit_target(args: &[std::ffi::OsString]) -> Option<(String, PathBuf)> {
    let command = help::command_in(args).filter(|c| help::takes_flag(c, "--junit"))?;
    Some((command, args::last_value(args, "--junit")?.into()))
}

/// A run that stops before its report still leaves its JUnit file (CI
/// reads one on every exit): one error that says why. Not when the file
/// itself is the problem: that refusal is the whole answer.
fn junit_at_exit(code: u8, message: &str, signalled: bool) {
    let Some(Some((command, path))) = JUNIT.get() else { return };
    if let Err(refused) = render::check_output_file("--junit", path) {
        // Said once: the command's own refusal of the file is this message.
        if !message.starts_with("--junit ") {
            ui::note(&format!("{refused:#}"));
        }
        return;
    }
    if let Err(err) = render::write_junit_error(path, command, code, message, signalled) {
        ui::note(&format!("the JUnit file could not be written: {err:#}"));
    }
}

/// With `--format json`, the command the error document of a run stopped
/// by a signal names (`None` inside: no command was named).
static SIGNALLED_DOCUMENT: std::sync::OnceLock<Option<Option<String>>> = std::sync::OnceLock::new();

/// The last word before a termination signal ends the run: its JUnit file
/// says so, in place of a report whose checks failed because their
/// programs were stopped; and with `--format json`, stdout still holds one
/// document, the error's, unless the command printed its own.
fn on_signal(code: u8) {
    let signal = code.saturating_sub(128);
    let message = format!("stopped by signal {signal}: the run did not finish");
    junit_at_exit(code, &message, true);
    if let Some(Some(command)) = SIGNALLED_DOCUMENT.get() {
        let document = render::signal_document(command.as_deref(), code, &message);
        let _printed = ui::signal_document(&document);
    }
}

/// Text that names the tool as `cargo xtask`, as this binary is run (the
/// released one is run by its own name).
fn as_run(text: &str) -> String {
    text.replace("cargo xtask", xtask_model::advice::program())
}

/// Runs a command of the product (not a developer tool).
pub fn run(command: XtaskCmd, sh: &Shell) -> anyhow::Result<()> {
    match command {
        XtaskCmd::Backup(cmd) => cmd.run(sh),
        XtaskCmd::VerifyBackup(cmd) => cmd.run(sh),
        XtaskCmd::Rollback(cmd) => cmd.run(sh),
        XtaskCmd::PostCheck(cmd) => cmd.run(sh),
        XtaskCmd::Forensics(cmd) => cmd.run(sh),
        XtaskCmd::Diagnose(cmd) => cmd.run(sh),
        XtaskCmd::Init(cmd) => cmd.run(sh),
        XtaskCmd::List(cmd) => cmd.run(sh),
        XtaskCmd::Prune(cmd) => cmd.run(sh),
        XtaskCmd::Push(cmd) => cmd.run(sh),
        XtaskCmd::Pull(cmd) => cmd.run(sh),
        XtaskCmd::Sandbox(_)
        | XtaskCmd::Drill(_)
        | XtaskCmd::Bench(_)
        | XtaskCmd::Dist(_)
        | XtaskCmd::Test(_) => {
            unreachable!("the developer tools are dispatched by main.rs")
        }
    }
}

/// `-q` and `-v`, which every command accepts.
fn verbosity(command: &XtaskCmd) -> ui::Verbosity {
    use XtaskCmd::*;
    let (quiet, verbose) = match command {
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
        Dist(c) => (c.quiet, c.verbose),
        Test(c) => (c.quiet, c.verbose),
    };
    match (quiet, verbose) {
        (true, _) => ui::Verbosity::Quiet,
        (false, true) => ui::Verbosity::Verbose,
        _ => ui::Verbosity::Normal,
    }
}
