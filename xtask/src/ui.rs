//! How much the tool says on stderr beside its result: the `$ command`
//! echo of each program it runs, in full or shortened, or nothing (`-q`).
//! Set once by `main` from the command's flags.
use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Quiet = 0,
    Normal = 1,
    Verbose = 2,
}

static LEVEL: AtomicU8 = AtomicU8::new(Verbosity::Normal as u8);

pub fn set(verbosity: Verbosity) {
    LEVEL.store(verbosity as u8, Ordering::Relaxed);
}

pub fn verbosity() -> Verbosity {
    match LEVEL.load(Ordering::Relaxed) {
        0 => Verbosity::Quiet,
        2 => Verbosity::Verbose,
        _ => Verbosity::Normal,
    }
}

/// The `$ command` line of a program about to run: nothing with `-q`, the
/// full arguments with `-v`, else one line with inline scripts shortened.
pub fn command(display: &str) {
    match verbosity() {
        Verbosity::Quiet => {}
        Verbosity::Verbose => eprintln!("$ {display}"),
        Verbosity::Normal => eprintln!("$ {}", shortened(display)),
    }
}

fn shortened(display: &str) -> String {
    let line = display.replace('\n', "; ");
    if line.chars().count() > 160 {
        format!("{}…", line.chars().take(160).collect::<String>())
    } else {
        line
    }
}
