//! The service's processes: found by what belongs to this root (working
//! directory, a path of the root in the arguments, a file of the root held
//! open), never by a broad name match; stopped by pid after checking each is
//! still the same process, with a grace period, and checked.
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::process;
use xtask_fs::{
    outside,
    sys::{self, Sig},
};
use xtask_model::profile::Tree;

#[derive(Debug, Clone, Serialize)]
pub struct Proc {
    pub pid: i32,
    pub pgid: i32,
    /// Start time in clock ticks since boot: with the pid, it names one process.
    pub started: u64,
    pub cmdline: String,
    /// Why it belongs to the root.
    pub reason: String,
}

/// The service processes of this tree, excluding this process, its
/// ancestors and the programs it started (its Python helper). A process qualifies only when it runs one of the profile's
/// programs *and* belongs to the root: its working directory is inside it, a
/// path of the root is in its arguments, or it holds a file of the root open.
/// A pid file only names which of those it is; it is never enough alone.
pub fn find(tree: &Tree) -> Vec<Proc> {
    let ours = ancestors();
    let started = process::our_groups();
    let pid_file =
        tree.profile.pid_file.as_ref().and_then(|p| tree.fs.read_to_string(&tree.path(p)).ok());
    let pid_from_file: Option<i32> = pid_file.and_then(|t| t.trim().parse().ok());
    let root = tree.root.display().to_string();
    let mut found = Vec::new();
    for pid in pids() {
        if ours.contains(&pid) || zombie(pid) || pgid(pid).is_some_and(|g| started.contains(&g)) {
            continue;
        }
        let Some(args) = cmdline(pid) else { continue };
        let program = args.first().map(|a| file_name(a)).unwrap_or_default();
        let is_service = tree.profile.service_programs.iter().any(|p| program_matches(&program, p));
        if !is_service {
            continue;
        }
        let cwd = outside::read_link(format!("/proc/{pid}/cwd")).ok();
        let mut reason = if cwd.as_deref().is_some_and(|c| c.starts_with(&tree.root)) {
            "working directory inside the root".to_string()
        } else if args.iter().any(|a| mentions_path(a, &root)) {
            "a path of the root in its arguments".to_string()
        } else if holds_file_below(pid, &tree.root) {
            "a file of the root open".to_string()
        } else {
            continue;
        };
        if pid_from_file == Some(pid) {
            reason = format!("pid file, {reason}");
        }
        let Some(started) = start_time(pid) else { continue };
        found.push(Proc {
            pid,
            pgid: pgid(pid).unwrap_or(pid),
            started,
            cmdline: args.join(" "),
            reason,
        });
    }
    found
}

/// A process that runs one of the service's programs but whose working
/// folder or open files this user cannot read: it may be this tree's
/// service, so a rollback does not start (what it cannot see is no proof
/// that nothing is there).
#[derive(Debug, Clone, Serialize)]
pub struct Unseen {
    pub pid: i32,
    pub owner: String,
    pub cmdline: String,
}

/// The processes `find` cannot tell about: service programs, not this
/// run's, whose folder or files are hidden from this user (another user's).
pub fn unseen(tree: &Tree) -> Vec<Unseen> {
    use std::os::unix::fs::MetadataExt;
    let ours = ancestors();
    let started = process::our_groups();
    let root = tree.root.display().to_string();
    let mut hidden = Vec::new();
    for pid in pids() {
        if ours.contains(&pid) || zombie(pid) || pgid(pid).is_some_and(|g| started.contains(&g)) {
            continue;
        }
        let Some(args) = cmdline(pid) else { continue };
        let program = args.first().map(|a| file_name(a)).unwrap_or_default();
        let is_service = tree.profile.service_programs.iter().any(|p| program_matches(&program, p));
        // A path of the root in its arguments is seen: `find` finds it.
        if !is_service || args.iter().any(|a| mentions_path(a, &root)) {
            continue;
        }
        // Hidden is refused to this user: a process that exits meanwhile
        // shows nothing either (no folder, no files), and is no service.
        let cwd = outside::read_link(format!("/proc/{pid}/cwd")).map(|_| ());
        let files = outside::names(format!("/proc/{pid}/fd")).map(|_| ());
        let refused = [cwd, files].into_iter().filter_map(Result::err).any(|err| denied(&err));
        if !refused || !running(pid) {
            continue;
        }
        let uid = outside::entry(format!("/proc/{pid}")).map(|m| m.uid());
        let owner = uid.map_or_else(|| "an unknown user".into(), sys::user_name);
        hidden.push(Unseen { pid, owner, cmdline: args.join(" ") });
    }
    hidden
}

/// Whether `err` is the kernel refusing this user (another user's process),
/// not a process gone or exiting.
fn denied(err: &anyhow::Error) -> bool {
    let io = err.chain().find_map(|cause| cause.downcast_ref::<std::io::Error>());
    io.is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
}

/// Programs an earlier run of the tool started for this root and left
/// running (it was killed before it could stop them: a SIGKILL, a power
/// cut of its terminal): marked with the root, and with the pid of an xtask
/// that no longer runs.
pub fn orphans(tree: &Tree) -> Vec<Proc> {
    let root = tree.root.as_os_str().as_encoded_bytes();
    let mut found = Vec::new();
    for pid in pids() {
        let Ok(environ) = outside::read(format!("/proc/{pid}/environ")) else { continue };
        let value = |name: &str| {
            let prefix = format!("{name}=");
            environ
                .split(|&b| b == 0)
                .find_map(|v| v.strip_prefix(prefix.as_bytes()))
                .map(<[u8]>::to_vec)
        };
        let ours = value(crate::python::ROOT_MARK).is_some_and(|r| r == root);
        let run: Option<i32> = value(process::RUN_MARK)
            .and_then(|r| String::from_utf8(r).ok())
            .and_then(|r| r.parse().ok());
        let Some(run) = run.filter(|_| ours) else { continue };
        if running(run) || zombie(pid) {
            continue;
        }
        let (Some(args), Some(started)) = (cmdline(pid), start_time(pid)) else { continue };
        let reason = format!("left by run {run} of the tool, which no longer runs");
        found.push(Proc {
            pid,
            pgid: pgid(pid).unwrap_or(pid),
            started,
            cmdline: args.join(" "),
            reason,
        });
    }
    found
}

/// A note naming the orphans of the root, if any, and how to stop them.
pub fn orphans_note(tree: &Tree) -> Option<String> {
    let found = orphans(tree);
    if found.is_empty() {
        return None;
    }
    let listed: Vec<String> =
        found.iter().map(|p| format!("pid {} ({})", p.pid, p.cmdline)).collect();
    let pids: Vec<String> = found.iter().map(|p| p.pid.to_string()).collect();
    Some(format!(
        "an earlier run of the tool for {} was killed before it could stop what it started, and left: {}; stop them with `kill {}`",
        tree.root.display(),
        listed.join(", "),
        pids.join(" ")
    ))
}

/// `python` matches `python`, `python3` and `python3.11`, never `pythonista`.
fn program_matches(program: &str, wanted: &str) -> bool {
    program
        .strip_prefix(wanted)
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// Stops processes: SIGTERM, SIGKILL after `grace`, and waits until gone.
/// Each is signalled by pid after checking it is still the process that was
/// found (same start time), so a reused pid is never hit. A process group is
/// signalled only when every member of it was found, so nothing that merely
/// shares a group with the service is touched. Returns the survivors.
pub fn stop(procs: &[Proc], grace: Duration) -> Vec<Proc> {
    let own_group = pgid(std::process::id() as i32);
    let found: BTreeSet<i32> = procs.iter().map(|p| p.pid).collect();
    let whole_groups: BTreeSet<i32> = procs
        .iter()
        .map(|p| p.pgid)
        .filter(|&g| g > 1 && Some(g) != own_group)
        .filter(|&g| members(g).iter().all(|m| found.contains(m)))
        .collect();
    let signal_all = |signal: Sig| {
        for p in procs {
            if !same_process(p) {
                continue;
            }
            if whole_groups.contains(&p.pgid) {
                process::signal_group(p.pgid, signal);
            }
            sys::kill(p.pid, signal);
        }
    };
    let remaining = || procs.iter().filter(|p| same_process(p)).cloned().collect::<Vec<_>>();
    signal_all(Sig::Term);
    if wait_gone(&remaining, grace) {
        return Vec::new();
    }
    signal_all(Sig::Kill);
    wait_gone(&remaining, Duration::from_secs(5));
    remaining()
}

fn wait_gone(remaining: &dyn Fn() -> Vec<Proc>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if remaining().is_empty() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    remaining().is_empty()
}

/// The process is still running, and it is the one that was found.
fn same_process(p: &Proc) -> bool {
    running(p.pid) && start_time(p.pid) == Some(p.started)
}

/// Every process of a group.
fn members(pgid_wanted: i32) -> Vec<i32> {
    pids().into_iter().filter(|&p| pgid(p) == Some(pgid_wanted)).collect()
}

fn holds_file_below(pid: i32, root: &Path) -> bool {
    open_files(pid).is_some_and(|files| files.iter().any(|f| f.starts_with(root)))
}

/// Processes that hold a file open (the database or its WAL).
pub fn holders(files: &[PathBuf]) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for pid in pids().into_iter().filter(|&p| p != me) {
        if open_files(pid).is_some_and(|open| open.iter().any(|f| files.contains(f))) {
            out.push(pid);
        }
    }
    out
}

/// Alive and not a zombie.
pub fn running(pid: i32) -> bool {
    process::alive(pid) && !zombie(pid)
}

/// The files a process holds open; `None` when they cannot be read.
fn open_files(pid: i32) -> Option<Vec<PathBuf>> {
    let fd_dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let fds = outside::names(&fd_dir).ok()?;
    Some(fds.into_iter().filter_map(|fd| outside::read_link(fd_dir.join(fd)).ok()).collect())
}

fn pids() -> Vec<i32> {
    let names = outside::names("/proc").unwrap_or_default();
    names.into_iter().filter_map(|name| name.to_str()?.parse().ok()).collect()
}

fn cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = outside::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (!args.is_empty()).then_some(args)
}

/// Fields of /proc/PID/stat after the command name (which may hold spaces).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = outside::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    Some(after.split_whitespace().map(String::from).collect())
}

fn zombie(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().map(String::as_str) == Some("Z"))
}

fn ppid(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

pub fn pgid(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(2)?.parse().ok()
}

/// Field 22 of /proc/PID/stat (the 20th after the command name).
fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// This process and every ancestor: never stopped, whatever they look like.
fn ancestors() -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    let mut pid = std::process::id() as i32;
    while pid > 1 && out.insert(pid) {
        match ppid(pid) {
            Some(parent) => pid = parent,
            None => break,
        }
    }
    out
}

/// Whether an argument names `root` or a path inside it, from the start of
/// the argument or of an option's value: `/srv/tmws` and
/// `--app-dir=/srv/tmws/src` do; `/srv/tmws2` and `/var/srv/tmws/x` (the
/// root's path, but inside another one) do not.
fn mentions_path(arg: &str, root: &str) -> bool {
    let value = arg.split_once('=').map_or(arg, |(_, value)| value);
    [arg, value].iter().any(|candidate| {
        candidate.strip_prefix(root).is_some_and(|after| after.is_empty() || after.starts_with('/'))
    })
}

fn file_name(arg: &str) -> String {
    Path::new(arg).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_refusal_hides_a_process_not_its_exit() {
        use anyhow::Context;
        let refused: anyhow::Result<()> =
            Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied)).context("read cwd");
        let gone: anyhow::Result<()> =
            Err(std::io::Error::from(std::io::ErrorKind::NotFound)).context("read cwd");
        assert!(super::denied(&refused.unwrap_err()));
        assert!(!super::denied(&gone.unwrap_err()));
    }

    #[test]
    fn a_program_matches_its_versioned_names_only() {
        assert!(super::program_matches("python3.11", "python"));
        assert!(super::program_matches("uvicorn", "uvicorn"));
        assert!(!super::program_matches("pythonista", "python"));
    }

    #[test]
    fn an_argument_mentions_the_root_only_on_a_path_boundary() {
        assert!(super::mentions_path("/srv/tmws", "/srv/tmws"));
        assert!(super::mentions_path("--app-dir=/srv/tmws/src", "/srv/tmws"));
        assert!(!super::mentions_path("/srv/tmws2/app.py", "/srv/tmws"));
        assert!(!super::mentions_path("tmws", "/srv/tmws"));
        assert!(!super::mentions_path("/var/srv/tmws/app.py", "/srv/tmws"), "another tree's path");
        assert!(!super::mentions_path("--log=/var/srv/tmws/x", "/srv/tmws"));
    }
}
