//! The runbook's functional validation, without its hazards: uvicorn on a
//! loopback port, `/health` polled until it answers (no fixed sleep), then
//! exactly the process group we started is stopped and checked gone.
use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use xshell::Shell;

use super::restart;
use xtask_adapters::{process, python::Python, services};
use xtask_fs::{
    outside,
    sys::{self, Sig},
    unconfined,
};
use xtask_model::check::CheckId;
use xtask_model::{check::Check, profile::Tree};

/// What the server check found, for the checks it feeds.
pub struct Outcome {
    pub start: Check,
    pub health: Check,
    /// What the start did to the database the app started on.
    pub restart: Check,
}

/// A server we started; dropping it stops its whole process group.
struct Server {
    child: Child,
    /// The server's confinement, whose scratch folder it works in: kept
    /// as long as the server runs.
    _confined: process::Confinement,
}

impl Server {
    /// SIGTERM to the group, SIGKILL after a grace period; true when no
    /// process of the group remains. The grace is short: this is post-check's
    /// own server, and one that hangs on a request would make uvicorn's
    /// graceful shutdown wait for it.
    fn stop(&mut self) -> bool {
        let pgid = self.child.id() as i32;
        process::signal_group(pgid, Sig::Term);
        // Whether it went is judged below, by its group, not by this wait.
        let _judged_below = process::wait_or_kill(&mut self.child, Duration::from_secs(2));
        let deadline = Instant::now() + Duration::from_secs(2);
        while sys::group_alive(pgid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        !sys::group_alive(pgid)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        if services::running(pgid) {
            process::signal_group(pgid, Sig::Kill);
            let _reaped = self.child.wait();
        }
        process::forget_group(pgid);
    }
}

/// Picks a free loopback port by letting the kernel choose one.
pub fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("find a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// The server checks: start, health, and what the start did to the
/// database (read before the start and after the server stopped).
pub fn check(sh: &Shell, python: &Python, tree: &Tree, at: &At<'_>) -> Outcome {
    let before = restart::seen(tree);
    let (start, health) = start_and_health(sh, python, tree, at);
    // A server that never started says nothing of what a restart does.
    let restart = match start.status {
        xtask_model::check::Status::Fail => xtask_model::check::Check::fail(
            xtask_model::check::CheckId::ServerRestart,
            "not reached: the server did not start (server.start says why)",
        ),
        _ => restart::judge(before, restart::seen(tree), at.after_deploy),
    };
    Outcome { start, health, restart }
}

/// Where and how the server runs.
pub struct At<'a> {
    pub port: u16,
    /// The revision the health route must report, where it reports one.
    pub expected: Option<&'a str>,
    /// Outside the tree: the server's log.
    pub scratch: &'a Path,
    /// post-check judges a deploy: a start-up migration is expected.
    pub after_deploy: bool,
}

fn start_and_health(sh: &Shell, python: &Python, tree: &Tree, at: &At<'_>) -> (Check, Check) {
    let (port, expected) = (at.port, at.expected);
    let log_path = at.scratch.join("server.log");
    let timeout = Duration::from_secs(tree.profile.server_timeout);
    let started = Instant::now();
    let fail_both = |detail: String| {
        (
            Check::fail(CheckId::ServerStart, detail.clone()),
            Check::fail(
                CheckId::ServerHealth,
                format!("not reached: {}", detail.lines().next().unwrap_or("")),
            ),
        )
    };
    let mut server = match spawn(sh, python, tree, port, &log_path) {
        Ok(server) => server,
        Err(err) => return fail_both(format!("{err:#}")),
    };
    let tail = |n: usize| {
        let text = outside::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    };
    let health_path = &tree.profile.health_path;
    let answer = match wait(&mut server, port, health_path, timeout, started) {
        Waited::Answer(answer) => answer,
        Waited::Exited(status) => {
            return fail_both(format!(
                "the server exited ({status}) before answering (uvicorn exited, or the app could not be served):\n{}",
                tail(8)
            ));
        }
        Waited::Listening => {
            server.stop();
            let start = format!("{} listens on 127.0.0.1:{port}", tree.profile.app);
            let health = format!(
                "{health_path} did not answer within {}s (server_timeout){}:\n{}",
                timeout.as_secs(),
                startup_complete(&log_path),
                tail(8)
            );
            return (
                Check::pass(CheckId::ServerStart, start).since(started),
                Check::fail(CheckId::ServerHealth, health).since(started),
            );
        }
        Waited::Nothing => {
            server.stop();
            return fail_both(format!(
                "no answer on 127.0.0.1:{port} within {}s (server_timeout){}:\n{}",
                timeout.as_secs(),
                startup_complete(&log_path),
                tail(8)
            ));
        }
    };
    let start = Check::pass(
        CheckId::ServerStart,
        format!("{} answered on 127.0.0.1:{port}", tree.profile.app),
    )
    .since(started);
    let health_started = Instant::now();
    let health = judge_health(&answer, tree, expected, &tail(8));
    let stopped = server.stop();
    let health = if stopped {
        health
    } else {
        Check::fail(
            CheckId::ServerHealth,
            format!("{}; and the server's process group did not stop", health.detail),
        )
    };
    (start, health.since(health_started))
}

/// What the server's log says of a start that got no answer: uvicorn
/// logging "Application startup complete" means the app started, and the
/// answer went missing on the way (another host or port in server_args, a
/// route that hangs), not that the app was slow.
fn startup_complete(log: &Path) -> &'static str {
    let text = outside::read_to_string(log).unwrap_or_default();
    match text.contains("Application startup complete") {
        true => {
            ", though its log says \"Application startup complete\": the app started, and nothing answered on this port"
        }
        false => "",
    }
}

/// How waiting for the server's answer ended.
enum Waited {
    Answer((u16, String)),
    /// The server exited first.
    Exited(std::process::ExitStatus),
    /// It accepted connections but did not answer in time: it started.
    Listening,
    /// Nothing listened in time.
    Nothing,
}

/// Polls `path` until it answers, the server exits, or `timeout` passes
/// since `started`.
fn wait(server: &mut Server, port: u16, path: &str, timeout: Duration, started: Instant) -> Waited {
    // On a terminal, how long it has waited, and for how long it may.
    let mut waiting = xtask_base::events::Progress::timer(&format!(
        "waiting for {path} on 127.0.0.1:{port} (server_timeout {}s)",
        timeout.as_secs()
    ));
    let mut listening = false;
    let waited = loop {
        waiting.update(0);
        if let Ok(Some(status)) = server.child.try_wait() {
            break Waited::Exited(status);
        }
        // A GET waits no longer than what is left of the timeout.
        let left = timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(100));
        match get(port, path, left) {
            Reply::Answer(answer) => break Waited::Answer(answer),
            Reply::Silent => listening = true,
            Reply::NotListening => {}
        }
        if started.elapsed() > timeout {
            break if listening { Waited::Listening } else { Waited::Nothing };
        }
        thread::sleep(Duration::from_millis(25));
    };
    waiting.finish();
    waited
}

fn spawn(sh: &Shell, python: &Python, tree: &Tree, port: u16, log: &Path) -> Result<Server> {
    let _d = sh.push_dir(&tree.root);
    let bind = sys::Net::Bind(port);
    let port = port.to_string();
    // With no uvicorn arguments of its own, the app is served by the
    // tool's launcher in the service's interpreter: an ASGI or WSGI app, or
    // a factory (`module:create_app()`), through uvicorn when it is there,
    // else a WSGI app through the standard library's server.
    let cmd = match tree.profile.server_args.is_empty() {
        true => python
            .tool(sh, tree, "python")
            .arg("-c")
            .arg(xtask_adapters::python::SERVE)
            .args([tree.profile.app.as_str(), "127.0.0.1", port.as_str()]),
        false => python
            .tool(sh, tree, "uvicorn")
            .arg(&tree.profile.app)
            .args(["--host", "127.0.0.1", "--port", &port, "--no-access-log"])
            .args(&tree.profile.server_args),
    }
    .env("TMWS_ENVIRONMENT", "development");
    let mut command: Command = cmd.into();
    xtask_base::events::command(&xtask_adapters::process::shown(&command));
    let log_file = unconfined::create(log).context("create the server log")?;
    command.stdin(Stdio::null()).stdout(log_file.try_clone()?).stderr(log_file);
    sys::die_with_parent(&mut command);
    // The app may write beneath the tree (not in the tool's own folders)
    // and post-check's scratch folder, and bind its own port alone.
    let scratch = log.parent().unwrap_or(&tree.root);
    let mut writable = tree.writable_by_programs()?;
    writable.push(scratch.to_path_buf());
    let writable: Vec<&Path> = writable.iter().map(PathBuf::as_path).collect();
    let confined = process::Confinement::with_network(&writable, bind)?;
    confined.apply(&mut command);
    let child = process::spawn_ours(&mut command).context("start the server")?;
    Ok(Server { child, _confined: confined })
}

/// What one GET met.
enum Reply {
    Answer((u16, String)),
    /// Something accepted the connection and did not answer in time.
    Silent,
    NotListening,
}

/// One HTTP/1.0 GET on loopback, waiting at most `wait` (and 5 s) for the
/// answer: the status code and the body.
fn get(port: u16, path: &str, wait: Duration) -> Reply {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return Reply::NotListening;
    };
    let answer = (|| {
        stream.set_read_timeout(Some(wait.min(Duration::from_secs(5)))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Some((status, body))
    })();
    answer.map_or(Reply::Silent, Reply::Answer)
}

/// Healthy as the profile defines it: the status code, the JSON values it
/// names, and the revision where it says the answer holds one.
fn judge_health(
    (status, body): &(u16, String),
    tree: &Tree,
    expected: Option<&str>,
    log: &str,
) -> Check {
    let id = CheckId::ServerHealth;
    let profile = &tree.profile;
    if *status != profile.health_status {
        let wanted = profile.health_status;
        return Check::fail(
            id,
            format!("HTTP {status}, expected {wanted}: {}\n{log}", body.trim()),
        );
    }
    let mut seen = vec![format!("HTTP {status}")];
    let pointers = !profile.health_json.is_empty() || !profile.health_revision.is_empty();
    if !pointers {
        return Check::pass(id, seen.join(", "));
    }
    let json: serde_json::Value = match serde_json::from_str(body) {
        Ok(json) => json,
        Err(err) => return Check::fail(id, format!("not JSON ({err}): {}", body.trim())),
    };
    let text = |pointer: &str| match json.pointer(pointer) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
        None => None,
    };
    for (pointer, wanted) in &profile.health_json {
        match text(pointer) {
            Some(value) if value == *wanted => seen.push(format!("{pointer} {value:?}")),
            Some(value) => {
                return Check::fail(
                    id,
                    format!("{pointer} is {value:?}, expected {wanted:?}: {}", body.trim()),
                );
            }
            None => return Check::fail(id, format!("no {pointer} in the answer: {}", body.trim())),
        }
    }
    if let (false, Some(expected)) = (profile.health_revision.is_empty(), expected) {
        let pointer = &profile.health_revision;
        match text(pointer) {
            Some(revision) if revision == expected => seen.push(format!("revision {revision}")),
            Some(revision) => {
                let shown = seen.join(", ");
                return Check::fail(
                    id,
                    format!("{shown}, but at revision {revision}, expected {expected}"),
                );
            }
            None => {
                return Check::fail(
                    id,
                    format!("no revision at {pointer} in the answer: {}", body.trim()),
                );
            }
        }
    }
    Check::pass(id, seen.join(", "))
}

#[cfg(test)]
mod tests {
    use super::startup_complete;

    #[test]
    fn a_start_logged_complete_without_an_answer_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        xtask_fs::unconfined::write(&log, b"INFO:     Waiting for application startup.\n").unwrap();
        assert_eq!(startup_complete(&log), "");
        xtask_fs::unconfined::write(&log, b"INFO:     Application startup complete.\n").unwrap();
        assert!(startup_complete(&log).contains("the app started, and nothing answered"));
    }
}
