//! What the layers below the command line tell the person at the terminal
//! while they work: the `$ command` line of a program they run, a note, and
//! the progress of long work. They never print; they hand these events to
//! the one sink the command line installs. Without a sink (a unit test, a
//! library caller) the events go nowhere.
use std::{
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Where events go: the command line's terminal.
pub trait Sink: Send + Sync {
    /// The `$ command` line of a program about to run.
    fn command(&self, display: &str);
    /// A line for people (what is happening, a warning).
    fn note(&self, line: &str);
    /// Whether progress lines are shown at all (a terminal, not `-q`).
    fn shows_progress(&self) -> bool;
    /// Draws `line` as the one progress line, replacing the previous one.
    fn progress(&self, line: &str);
    /// Clears the progress line.
    fn clear_progress(&self);
}

static SINK: OnceLock<Box<dyn Sink>> = OnceLock::new();

/// Installs the sink; the first one stays.
pub fn install(sink: Box<dyn Sink>) {
    let _first = SINK.set(sink).is_ok();
}

pub fn command(display: &str) {
    if let Some(sink) = SINK.get() {
        sink.command(display);
    }
}

pub fn note(line: &str) {
    if let Some(sink) = SINK.get() {
        sink.note(line);
    }
}

/// The progress of work that takes a while: bytes done, rate and time
/// left, or the time spent when the total is unknown. Drawn only when the
/// sink shows progress, only once the work has run for a second
/// (`XTASK_PROGRESS_AFTER_MS` changes that, for tests), and at most ten
/// times a second.
pub struct Progress {
    /// Its place among the work drawn at once (two threads of verify).
    id: u64,
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
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Progress {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            what: what.to_string(),
            total,
            started: Instant::now(),
            last: None,
            enabled: SINK.get().is_some_and(|s| s.shows_progress()),
            after,
        }
    }

    /// Names the work anew (the crate a build compiles now); its clock runs on.
    pub fn rename(&mut self, what: &str) {
        self.what = what.to_string();
    }

    /// `done` bytes (ignored by a timer).
    pub fn update(&mut self, done: u64) {
        let elapsed = self.started.elapsed();
        let due = self.last.is_none_or(|l| l.elapsed() >= Duration::from_millis(100));
        if !self.enabled || elapsed < self.after || !due {
            return;
        }
        self.last = Some(Instant::now());
        draw(Some((self.id, line(&self.what, self.total, done, elapsed))), None);
    }

    /// Takes its part off the line (the line is cleared when none is left).
    pub fn finish(self) {
        if self.last.is_some() {
            draw(None, Some(self.id));
        }
    }
}

/// The work drawn now, each with its latest line: several at once share the
/// one progress line instead of drawing over each other in turn.
static DRAWN: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());

fn draw(update: Option<(u64, String)>, gone: Option<u64>) {
    let Some(sink) = SINK.get() else { return };
    let mut drawn = DRAWN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((id, line)) = update {
        match drawn.iter_mut().find(|(i, _)| *i == id) {
            Some(entry) => entry.1 = line,
            None => drawn.push((id, line)),
        }
    }
    drawn.retain(|(i, _)| Some(*i) != gone);
    if drawn.is_empty() {
        sink.clear_progress();
    } else {
        let lines: Vec<&str> = drawn.iter().map(|(_, l)| l.as_str()).collect();
        sink.progress(&lines.join("  |  "));
    }
}

/// `copy: 12.0 MiB of 1.0 GiB, 310.0 MiB/s, 3 s left`, or
/// `integrity_check: 4 s`.
fn line(what: &str, total: Option<u64>, done: u64, elapsed: Duration) -> String {
    use super::units::size;
    match total {
        Some(total) => {
            let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
            let left = (total.saturating_sub(done)) as f64 / rate.max(1.0);
            format!(
                "{what}: {} of {}, {}/s, {:.0} s left",
                size(done),
                size(total),
                size(rate as u64),
                left
            )
        }
        None if done == 0 => format!("{what}: {:.0} s", elapsed.as_secs_f64()),
        // Bytes whose total is not known beforehand (a restore).
        None => format!("{what}: {} so far, {:.0} s", size(done), elapsed.as_secs_f64()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn a_line_says_what_how_far_and_how_long() {
        let line = super::line("copy", Some(1024 << 20), 512 << 20, Duration::from_secs(2));
        assert_eq!(line, "copy: 512.0 MiB of 1.0 GiB, 256.0 MiB/s, 2 s left");
        assert_eq!(
            super::line("integrity_check", None, 0, Duration::from_secs(4)),
            "integrity_check: 4 s"
        );
    }
}
