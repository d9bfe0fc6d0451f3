//! How much the tool says on stderr beside its result: the `$ command`
//! echo of each program it runs, in full or shortened, or nothing (`-q`).
//! Set once by `main` from the command's flags.
use std::{
    io::IsTerminal,
    sync::atomic::{AtomicU8, Ordering},
    time::{Duration, Instant},
};

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

/// A line for people on stderr (what is happening, a warning): shown even
/// with `-q`, which only hides command lines and progress.
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
        return Err(crate::exit::refused(format!(
            "no terminal to confirm on: pass --yes ({nothing})"
        )));
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(crate::exit::refused(format!("not confirmed: {nothing}")))
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

/// A progress line on stderr for work that takes a while: bytes done, rate
/// and time left, or the time spent when the total is unknown. Shown only
/// when stderr is a terminal, not with `-q`, and only once the work has run
/// for a second (`XTASK_PROGRESS_AFTER_MS` changes that, for tests).
pub struct Progress {
    what: String,
    total: Option<u64>,
    started: Instant,
    last: Option<Instant>,
    enabled: bool,
    after: Duration,
}

impl Progress {
    pub fn bytes(what: &str, total: u64) -> Progress {
        Progress::new(what, Some(total))
    }

    /// Work whose size is unknown (an integrity check): the time it has run.
    pub fn timer(what: &str) -> Progress {
        Progress::new(what, None)
    }

    fn new(what: &str, total: Option<u64>) -> Progress {
        let after = std::env::var("XTASK_PROGRESS_AFTER_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(1), Duration::from_millis);
        Progress {
            what: what.to_string(),
            total,
            started: Instant::now(),
            last: None,
            enabled: verbosity() != Verbosity::Quiet && std::io::stderr().is_terminal(),
            after,
        }
    }

    /// `done` bytes (ignored by a timer); redraws at most ten times a second.
    pub fn update(&mut self, done: u64) {
        let elapsed = self.started.elapsed();
        let due = self.last.is_none_or(|l| l.elapsed() >= Duration::from_millis(100));
        if !self.enabled || elapsed < self.after || !due {
            return;
        }
        self.last = Some(Instant::now());
        let line = match self.total {
            Some(total) => {
                let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
                let left = (total.saturating_sub(done)) as f64 / rate.max(1.0);
                format!(
                    "{}: {} of {} MiB, {:.0} MiB/s, {:.0} s left",
                    self.what,
                    done >> 20,
                    total >> 20,
                    rate / f64::from(1 << 20),
                    left
                )
            }
            None => format!("{}: {:.0} s", self.what, elapsed.as_secs_f64()),
        };
        eprint!("\r\x1b[2K{line}");
    }

    /// Clears the line, if one was drawn.
    pub fn finish(self) {
        if self.last.is_some() {
            eprint!("\r\x1b[2K");
        }
    }
}
