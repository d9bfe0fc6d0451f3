//! What the tool says on stderr beside its result: the `$ command` echo of
//! each program it runs (in full with `-v`, shortened, or not at all with
//! `-q`), notes, progress on a terminal, and the confirmation prompt. The
//! layers below report these as events (`xtask_base::events`); this is the
//! sink that shows them.
//!
//! Everything the tool prints goes through this file: the workspace's lints
//! refuse `print!`, `eprint!` and `std::io::stdout`/`stderr` everywhere
//! else, and the tidy test keeps these allows here.
#![allow(clippy::disallowed_macros, clippy::disallowed_methods)]
use std::io::IsTerminal;

use xtask_base::{events, exit::refused};
use xtask_fs::{sys, unconfined};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// The terminal: stderr.
struct Terminal {
    verbosity: Verbosity,
}

impl events::Sink for Terminal {
    fn command(&self, display: &str) {
        match self.verbosity {
            Verbosity::Quiet => {}
            Verbosity::Verbose => eprintln!("$ {display}"),
            Verbosity::Normal => eprintln!("$ {}", shortened(display)),
        }
    }

    /// Shown even with `-q`, which only hides command lines and progress.
    fn note(&self, line: &str) {
        eprintln!("{line}");
    }

    fn shows_progress(&self) -> bool {
        self.verbosity != Verbosity::Quiet && std::io::stderr().is_terminal()
    }

    fn progress(&self, line: &str) {
        eprint!("\r\x1b[2K{line}");
    }

    fn clear_progress(&self) {
        eprint!("\r\x1b[2K");
    }
}

/// Installs the terminal as the sink of every event, once per process.
pub fn install(verbosity: Verbosity) {
    events::install(Box::new(Terminal { verbosity }));
}

/// A command line short enough to read is shown whole, so it can be pasted
/// and re-run; a longer one (an inline script, many paths) is named by its
/// program, never cut into something that looks runnable.
fn shortened(display: &str) -> String {
    const READABLE: usize = 200;
    if display.chars().count() <= READABLE && !display.contains('\n') {
        return display.to_string();
    }
    let program = display.split(' ').next().unwrap_or(display);
    format!("{program} [a line of {} characters: -v shows it whole]", display.chars().count())
}

/// Whether this run printed its JSON document: with `--format json`, stdout
/// holds exactly one, and an error that comes before it prints the error's.
static DOCUMENT_PRINTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints the command's JSON document on stdout (once).
pub fn document(value: &impl serde::Serialize) -> anyhow::Result<()> {
    document_text(&serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints an already rendered JSON document on stdout, unless a signal is
/// stopping the run: its error document takes the place of a report whose
/// checks failed because their programs were stopped.
pub fn document_text(text: &str) {
    if xtask_adapters::process::signal_received() {
        return;
    }
    print_once(text);
}

/// The error document of a run stopped by a signal, unless the command's
/// own was printed first: stdout holds exactly one.
pub fn signal_document(value: &impl serde::Serialize) -> anyhow::Result<()> {
    print_once(&serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print_once(text: &str) {
    if !DOCUMENT_PRINTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        println!("{}", text.trim_end());
    }
}

pub fn document_printed() -> bool {
    DOCUMENT_PRINTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// A command's result in its format: the JSON document, or text for people.
pub fn result(format: super::flags::Format, text: &str) {
    match format {
        super::flags::Format::Json => document_text(text),
        super::flags::Format::Human => print!("{text}"),
    }
}

/// The developer tools' results on stdout and lines on stderr: only this
/// layer prints.
pub fn out(text: &str) {
    print!("{text}");
}

pub fn line(text: &str) {
    println!("{text}");
}

pub fn note(line: &str) {
    eprintln!("{line}");
}

/// `yes`, or a person at a terminal who answers yes to `question`; else a
/// refusal (exit 4) that says `nothing`.
pub fn confirm(yes: bool, question: &str, nothing: &str) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(refused(format!("no terminal to confirm on: pass --yes ({nothing})")));
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(refused(format!("not confirmed: {nothing}")))
    }
}

/// Set by whoever measures this process (the bench): the file it writes its
/// own peak resident memory to at exit, from the kernel's accounting.
const PEAK_FILE_ENV: &str = "XTASK_PEAK_RSS_FILE";

/// Writes the process's peak memory where `XTASK_PEAK_RSS_FILE` says;
/// nothing when it is not set.
pub fn report_peak_memory() {
    if let Some(path) = std::env::var_os(PEAK_FILE_ENV)
        && let Some(kib) = sys::own_peak_rss_kib()
        && let Err(err) = unconfined::write(std::path::Path::new(&path), kib.to_string().as_bytes())
    {
        eprintln!("the peak memory could not be written to {}: {err:#}", path.display());
    }
}
