//! Running external programs with a timeout, in their own process group, so
//! that a hung tool is stopped whole instead of hanging the xtask.
use std::{
    io::Read,
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use xshell::Cmd;

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
pub fn run(cmd: Cmd<'_>, timeout: Duration) -> Result<Output> {
    let display = cmd.to_string();
    eprintln!("$ {}", echo_line(&display));
    let mut command: Command = cmd.into();
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = command.spawn().with_context(|| format!("start `{display}`"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let (status, timed_out) = wait_or_kill(&mut child, timeout)?;
    Ok(Output {
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        timed_out,
    })
}

/// The `$ cmd` echo on one line: inline scripts are shortened.
fn echo_line(display: &str) -> String {
    let line = display.replace('\n', "; ");
    if line.chars().count() > 160 {
        format!("{}…", line.chars().take(160).collect::<String>())
    } else {
        line
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).into_owned()
    })
}

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
            signal_group(child.id() as i32, libc::SIGKILL);
            return Ok((child.wait()?, true));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sends a signal to a process group (the negative pid of its leader).
pub fn signal_group(pgid: i32, signal: i32) -> bool {
    // SAFETY: kill(2) with a negative pid only sends a signal; no memory is touched.
    unsafe { libc::kill(-pgid, signal) == 0 }
}

/// Sends a signal to one process.
pub fn signal(pid: i32, signal: i32) -> bool {
    // SAFETY: as above.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// Whether a process with this pid exists (zombies included).
pub fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 checks for existence without sending anything.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

pub fn hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length and gethostname NUL-terminates within it.
    let ok = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(0);
    if ok { String::from_utf8_lossy(&buffer[..end]).into_owned() } else { "unknown".into() }
}
