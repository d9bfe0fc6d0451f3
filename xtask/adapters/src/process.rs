//! Running external programs with a timeout, in their own process group, so
//! that a hung tool is stopped whole instead of hanging the xtask.
use std::{
    io::Read,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use xshell::Cmd;

use xtask_base::events;
use xtask_fs::{
    files, outside, programs_owner,
    sys::{self, Sig},
};

/// What a finished (or stopped) program left behind.
#[derive(Debug, Clone)]
pub struct Output {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// The last lines of stderr and stdout, for a check's detail.
    pub fn tail(&self, lines: usize) -> String {
        let text = format!("{}\n{}", self.stdout.trim_end(), self.stderr.trim_end());
        let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn describe_status(&self) -> String {
        match (self.timed_out, self.code) {
            (true, _) => "timed out".to_string(),
            (false, Some(code)) => format!("exit code {code}"),
            (false, None) => "killed by a signal".to_string(),
        }
    }
}

/// Runs a command built with `cmd!`, echoing it on stderr, capturing its
/// output, and killing its whole process group if it outlives `timeout`.
/// A program of the tree runs `confined` (see `Confinement`).
pub fn run(cmd: Cmd<'_>, timeout: Duration, confined: Option<&Confinement>) -> Result<Output> {
    let command: Command = cmd.into();
    xtask_base::events::command(&shown(&command));
    run_command(command, timeout, confined, None, None)
}

/// `run`, with `input` on the program's stdin: what it needs to read is
/// handed to it, so it needs no access to where the tool keeps it.
pub fn run_with_input(
    cmd: Cmd<'_>,
    input: Vec<u8>,
    timeout: Duration,
    confined: Option<&Confinement>,
) -> Result<Output> {
    let command: Command = cmd.into();
    xtask_base::events::command(&shown(&command));
    run_command(command, timeout, confined, None, Some(input))
}

/// What is handed each line of a program's stdout as it comes.
pub type LineWatcher = Box<dyn FnMut(&str) + Send>;

/// Which output of a program a `LineWatcher` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// `run`, handing each line of the program's `stream` to `watch` as it
/// comes (restic's `--json` status on stdout, cargo's `Compiling` lines on
/// stderr, for progress); the whole output is kept too.
pub fn run_watching(
    cmd: Cmd<'_>,
    timeout: Duration,
    stream: Stream,
    watch: LineWatcher,
) -> Result<Output> {
    let command: Command = cmd.into();
    xtask_base::events::command(&shown(&command));
    run_command(command, timeout, None, Some((stream, watch)), None)
}

/// The command line of `command` as a shell reads it back (xshell's own
/// display does not quote).
pub fn shown(command: &Command) -> String {
    xtask_base::shell_words::line(command.get_program(), command.get_args())
}

/// `run`, for a caller that has shown the command its own way.
pub fn run_quiet(
    cmd: Cmd<'_>,
    timeout: Duration,
    confined: Option<&Confinement>,
) -> Result<Output> {
    run_command(cmd.into(), timeout, confined, None, None)
}

fn run_command(
    mut command: Command,
    timeout: Duration,
    confined: Option<&Confinement>,
    watch: Option<(Stream, LineWatcher)>,
    input: Option<Vec<u8>>,
) -> Result<Output> {
    let display = shown(&command);
    let stdin = if input.is_some() { Stdio::piped() } else { Stdio::null() };
    command.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped());
    sys::die_with_parent(&mut command);
    if let Some(confinement) = confined {
        confinement.apply(&mut command);
    }
    let mut child = spawn_ours(&mut command).with_context(|| format!("start `{display}`"))?;
    // Written from a thread of its own, so a program that stops reading
    // (or writes much before it reads) never blocks the tool.
    if let (Some(input), Some(mut pipe)) = (input, child.stdin.take()) {
        std::thread::spawn(move || {
            let _closed_early = std::io::Write::write_all(&mut pipe, &input);
        });
    }
    let (stdout_watch, stderr_watch) = match watch {
        Some((Stream::Stdout, watch)) => (Some(watch), None),
        Some((Stream::Stderr, watch)) => (None, Some(watch)),
        None => (None, None),
    };
    let stdout = drain(child.stdout.take(), stdout_watch);
    let stderr = drain(child.stderr.take(), stderr_watch);
    let waited = wait_or_kill(&mut child, timeout);
    forget_group(child.id() as i32);
    let (status, timed_out) = waited?;
    Ok(Output {
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        timed_out,
    })
}

fn drain<R: Read + Send + 'static>(
    pipe: Option<R>,
    watch: Option<LineWatcher>,
) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = Vec::new();
        match (pipe, watch) {
            (Some(pipe), Some(mut watch)) => {
                use std::io::BufRead;
                let mut lines = std::io::BufReader::new(pipe);
                let mut line = Vec::new();
                // What was read before a failure is kept: it is for a report.
                while lines.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                    watch(String::from_utf8_lossy(&line).trim_end());
                    text.append(&mut line);
                }
            }
            (Some(mut pipe), None) => {
                let _partial = pipe.read_to_end(&mut text);
            }
            (None, _) => {}
        }
        String::from_utf8_lossy(&text).into_owned()
    })
}

/// The process groups of the programs running for this xtask: what a
/// termination signal stops before the xtask exits.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// The variable that marks every program the tool starts with the pid of
/// the xtask that started it, so a later run can tell its orphans.
pub const RUN_MARK: &str = "TMWS_XTASK_RUN";

/// Spawns a command in a process group of its own, marked as this run's,
/// and remembers the group until `forget_group`.
pub fn spawn_ours(command: &mut Command) -> std::io::Result<Child> {
    sys::alone_on_exec(command);
    command.env(RUN_MARK, std::process::id().to_string());
    let child = command.spawn()?;
    GROUPS.lock().unwrap_or_else(|e| e.into_inner()).push(child.id() as i32);
    Ok(child)
}

/// The process groups of the programs this xtask started and still runs.
pub fn our_groups() -> Vec<i32> {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The group has ended (or is being stopped by its owner).
pub fn forget_group(pgid: i32) {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner()).retain(|g| *g != pgid);
}

/// Ctrl-C, SIGTERM and SIGHUP stop every group this xtask started (SIGTERM,
/// then SIGKILL after two seconds), the workers of a server included,
/// remove the run's scratch folders, and then end the xtask with 128 + the
/// signal's number (130 for Ctrl-C). Call once, before any other thread
/// starts.
pub fn stop_children_on_signals() {
    if sys::block_termination_signals().is_err() {
        return;
    }
    thread::spawn(|| {
        let signal = sys::wait_termination_signal();
        // Held until the groups are gone: the main thread, done meanwhile,
        // waits on it in `terminated` instead of exiting with its own code.
        let _stopping = STOPPING.lock().unwrap_or_else(|e| e.into_inner());
        TERMINATED.store(signal, Ordering::SeqCst);
        let groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for &group in &groups {
            signal_group(group, Sig::Term);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while groups.iter().any(|g| sys::group_alive(*g)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        for &group in &groups {
            signal_group(group, Sig::Kill);
        }
        // No destructor runs past `exit`: the scratch folders (copies of
        // the tree, the programs' homes, a restore, a pull's stage) go
        // now, their programs stopped.
        xtask_fs::scratch::remove_all_on_signal();
        if let Some(last_word) = LAST_WORD.get() {
            last_word((128 + signal) as u8);
        }
        std::process::exit(128 + signal);
    });
}

/// What the command line does before a termination signal ends the xtask
/// (its JUnit file: CI must have one on every exit), given the exit code.
static LAST_WORD: std::sync::OnceLock<fn(u8)> = std::sync::OnceLock::new();

/// Sets the last word (once): called on the signal's thread after every
/// group is stopped, just before the xtask exits.
pub fn before_exit_on_signal(last_word: fn(u8)) {
    let _first_only = LAST_WORD.set(last_word);
}

/// The termination signal received, 0 before one.
static TERMINATED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
static STOPPING: Mutex<()> = Mutex::new(());

/// Whether a termination signal has arrived (the run is being stopped):
/// asked without waiting, by what would otherwise print a result the
/// signal made meaningless.
pub fn signal_received() -> bool {
    TERMINATED.load(Ordering::SeqCst) != 0
}

/// When a termination signal arrived: the exit code it means (128 + its
/// number), once every group is stopped. The caller exits with it, saying
/// nothing more.
pub fn terminated() -> Option<u8> {
    let _stopped = STOPPING.lock().unwrap_or_else(|e| e.into_inner());
    match TERMINATED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some((128 + signal) as u8),
    }
}

/// Where a program we start may write: beneath the folders given and its
/// own scratch folder (its `HOME` and `TMPDIR`), and into `/dev/null`;
/// nowhere else. The kernel enforces it (Landlock) where it offers it;
/// elsewhere the tool says so once, and the checks before step 1 (the
/// database alembic would open, the paths a plan writes) still hold.
pub struct Confinement {
    ruleset: Option<OwnedFd>,
    /// The program's scratch folder, removed when the confinement goes.
    _scratch: files::Scratch,
    /// The program's `HOME` and `TMPDIR`: the scratch folder, or the
    /// owner's folder inside it.
    home: PathBuf,
    /// The user and group the program runs as: the tree's owner when root
    /// runs the tool on another's tree; `None` runs it as the tool runs.
    run_as: Option<(u32, u32)>,
}

impl Confinement {
    pub fn beneath(writable: &[&Path]) -> Result<Confinement> {
        Confinement::with_network(writable, sys::Net::Any)
    }

    /// `beneath`, for a program of the tool's own (pip building its
    /// virtualenv), which runs as the tool runs whoever owns the tree.
    pub fn ours_beneath(writable: &[&Path]) -> Result<Confinement> {
        Confinement::made(writable, sys::Net::Any, None)
    }

    /// `beneath`, and on the network only what `net` lets it do.
    pub fn with_network(writable: &[&Path], net: sys::Net) -> Result<Confinement> {
        Confinement::made(writable, net, programs_owner::programs_owner())
    }

    fn made(writable: &[&Path], net: sys::Net, run_as: Option<(u32, u32)>) -> Result<Confinement> {
        let scratch = files::scratch_dir("tmws-program")?;
        let home = match run_as {
            Some(_) => programs_owner::folder_for_programs(scratch.path())?,
            None => scratch.path().to_path_buf(),
        };
        let mut folders = writable.to_vec();
        folders.push(scratch.path());
        let devices: Vec<&Path> = ["/dev/null", "/dev/zero"]
            .into_iter()
            .map(Path::new)
            .filter(|p| outside::exists(p))
            .collect();
        let ruleset =
            sys::write_ruleset(&folders, &devices, net).context("build the Landlock ruleset")?;
        if ruleset.is_none() && !UNCONFINED_SAID.swap(true, Ordering::Relaxed) {
            events::note(
                "this kernel offers no Landlock: the programs the tool runs (alembic, pytest, uvicorn, pip) are not confined by the kernel; every check before step 1 still holds",
            );
        }
        Ok(Confinement { ruleset, _scratch: scratch, home, run_as })
    }

    /// The scratch folder the program gets as `HOME` and `TMPDIR`.
    pub fn scratch(&self) -> &Path {
        &self.home
    }

    pub fn apply(&self, command: &mut Command) {
        let scratch = self.home.as_path();
        command.env("HOME", scratch).env("TMPDIR", scratch);
        for (variable, folder) in
            [("XDG_CACHE_HOME", "cache"), ("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data")]
        {
            command.env(variable, scratch.join(folder));
        }
        // std switches the user (groups dropped) before the hooks run, so
        // the confinement below is the owner's own.
        if let Some((uid, gid)) = self.run_as {
            use std::os::unix::process::CommandExt;
            command.uid(uid).gid(gid);
        }
        if let Some(ruleset) = &self.ruleset {
            sys::confine_on_exec(command, ruleset);
        }
    }
}

/// Whether the missing Landlock has been said already.
static UNCONFINED_SAID: AtomicBool = AtomicBool::new(false);

/// Waits for a child; past the deadline its process group gets SIGKILL.
pub fn wait_or_kill(
    child: &mut Child,
    timeout: Duration,
) -> Result<(std::process::ExitStatus, bool)> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((status, false));
        }
        if Instant::now() >= deadline {
            signal_group(child.id() as i32, Sig::Kill);
            return Ok((child.wait()?, true));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sends a signal to a process group (the negative pid of its leader).
pub fn signal_group(pgid: i32, signal: Sig) -> bool {
    sys::kill_group(pgid, signal)
}

/// Whether a process with this pid exists (zombies included).
pub fn alive(pid: i32) -> bool {
    sys::alive(pid)
}
