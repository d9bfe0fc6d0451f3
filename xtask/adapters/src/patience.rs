//! Running a program that may go silent for good (restic, on a repository
//! that accepts a connection and never answers): it is stopped once it has
//! gone too long without progress, and the person is told, meanwhile, that
//! it is waiting. Progress is what the caller says it is: each chunk of the
//! program's stdout, or what a watcher of its lines or of its work (the
//! bytes a restore writes) beats the heartbeat for. Its stderr never counts:
//! a program that retries prints there while it gets nowhere.
use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use xshell::Cmd;

use crate::process::{self, LineWatcher, Output};
use xtask_fs::sys::{self, Sig};

/// When a program last made progress: beaten by whoever sees it, read by
/// the loop that waits for the program.
#[derive(Clone)]
pub struct Heartbeat(Arc<Mutex<Instant>>);

impl Default for Heartbeat {
    fn default() -> Heartbeat {
        Heartbeat(Arc::new(Mutex::new(Instant::now())))
    }
}

impl Heartbeat {
    pub fn beat(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn silence(&self) -> Duration {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).elapsed()
    }
}

/// How long a program may go without progress, what is said meanwhile, and
/// how much of its stdout is kept.
pub struct Patience {
    pub heartbeat: Heartbeat,
    /// It is stopped once it has gone this long without a beat.
    pub deadline: Duration,
    /// After this long without a beat, `waiting` is told how long it has
    /// been (once in each silence).
    pub note_after: Duration,
    pub waiting: Box<dyn FnMut(Duration) + Send>,
    /// The most bytes of stdout kept: a program that writes more is
    /// stopped there, and what it wrote is never held whole.
    pub stdout_cap: Option<usize>,
}

/// Why a run was stopped before it ended on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It went the deadline without progress.
    Silent,
    /// It wrote more to stdout than the cap.
    TooMuchOutput,
}

/// Runs a command built with `cmd!`, capturing its output, until it ends,
/// has gone `patience.deadline` without progress, or has written more than
/// `patience.stdout_cap` to stdout; then its process group is stopped,
/// `timed_out` is set and the reason returned. With `watch`, each line of
/// stdout goes to it (and it beats the heartbeat when a line is progress);
/// without, each chunk of stdout is progress. It shows no command line:
/// the caller shows its own, without what must not be shown (a password in
/// a repository's name).
pub fn run(
    cmd: Cmd<'_>,
    mut patience: Patience,
    watch: Option<LineWatcher>,
) -> Result<(Output, Option<Stopped>)> {
    let mut command: Command = cmd.into();
    let program = command.get_program().to_string_lossy().into_owned();
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    sys::die_with_parent(&mut command);
    let mut child =
        process::spawn_ours(&mut command).with_context(|| format!("start {program}"))?;
    let over = Arc::new(AtomicBool::new(false));
    let cap = patience.stdout_cap.map(|cap| (cap, Arc::clone(&over)));
    let stdout = read(child.stdout.take(), watch, Some(patience.heartbeat.clone()), cap);
    let stderr = read(child.stderr.take(), None, None, None);
    let waited = wait(&mut child, &mut patience, &over);
    process::forget_group(child.id() as i32);
    let (status, stopped) = waited?;
    let output = Output {
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        timed_out: stopped.is_some(),
    };
    Ok((output, stopped))
}

/// Reads a pipe to its end on a thread of its own: line by line into
/// `watch`, or chunk by chunk, each a beat of `heartbeat` when given. With
/// a `cap`, it stops reading past that many bytes and raises its flag.
fn read<R: Read + Send + 'static>(
    pipe: Option<R>,
    watch: Option<LineWatcher>,
    heartbeat: Option<Heartbeat>,
    cap: Option<(usize, Arc<AtomicBool>)>,
) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let Some(pipe) = pipe else { return String::new() };
        let mut text = Vec::new();
        let mut reader = BufReader::new(pipe);
        // What was read before a failure is kept: it is for a report.
        match watch {
            Some(mut watch) => {
                let mut line = Vec::new();
                while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                    watch(String::from_utf8_lossy(&line).trim_end());
                    text.append(&mut line);
                }
            }
            None => {
                let mut chunk = [0; 64 * 1024];
                while let Ok(n @ 1..) = reader.read(&mut chunk) {
                    if let Some(heartbeat) = &heartbeat {
                        heartbeat.beat();
                    }
                    text.extend_from_slice(&chunk[..n]);
                    if let Some((cap, over)) = &cap
                        && text.len() > *cap
                    {
                        text.truncate(*cap);
                        over.store(true, Ordering::SeqCst);
                        break;
                    }
                }
            }
        }
        // Valid UTF-8 (the usual case) becomes the String without a copy.
        String::from_utf8(text)
            .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
    })
}

/// Waits for the child, telling `waiting` once in each silence that passes
/// `note_after`; a silence of `deadline`, or stdout `over` its cap, stops
/// it. Why it was stopped, when it was.
fn wait(
    child: &mut Child,
    patience: &mut Patience,
    over: &AtomicBool,
) -> Result<(ExitStatus, Option<Stopped>)> {
    let mut told = false;
    loop {
        if let Some(status) = child.try_wait()? {
            // Ended on its own, perhaps just as its stdout passed the cap.
            let stopped = over.load(Ordering::SeqCst).then_some(Stopped::TooMuchOutput);
            return Ok((status, stopped));
        }
        if over.load(Ordering::SeqCst) {
            stop(child);
            return Ok((child.wait()?, Some(Stopped::TooMuchOutput)));
        }
        let silence = patience.heartbeat.silence();
        if silence >= patience.deadline {
            stop(child);
            return Ok((child.wait()?, Some(Stopped::Silent)));
        }
        match (silence >= patience.note_after, told) {
            (true, false) => {
                (patience.waiting)(silence);
                told = true;
            }
            (false, true) => told = false,
            _ => {}
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM to the child's group first, so that a program that holds a lock
/// (restic's, in the repository) can take it away; SIGKILL two seconds
/// later if it has not ended.
fn stop(child: &mut Child) {
    let group = child.id() as i32;
    process::signal_group(group, Sig::Term);
    let given = Instant::now();
    while given.elapsed() < Duration::from_secs(2) {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    process::signal_group(group, Sig::Kill);
}
