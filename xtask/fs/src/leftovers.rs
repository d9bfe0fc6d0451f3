//! What a run killed by SIGKILL (which nothing can catch) left in the
//! temporary folder, and how the next run tells it apart from what a live
//! run is using. A scratch folder is named after its run: the pid, the
//! time that process started (`/proc/PID/stat`, in clock ticks since boot,
//! so a pid the kernel gave again to another process does not pass for
//! the run), and the pid namespace when it is not the machine's own (a
//! run in another namespace is one this run cannot see, so its folders
//! are left alone).
use std::{ffi::OsString, io, path::Path, sync::OnceLock};

use crate::{
    handles,
    sys::{self, FileType, Resolve},
};

/// The pid namespace's inode of the machine's own (`PROC_PID_INIT_INO`).
const INITIAL_PID_NAMESPACE: u64 = 0xEFFF_FFFC;

/// The process that made a scratch folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunId {
    pid: u32,
    /// When the process started, in clock ticks since boot; 0 when unknown.
    start: u64,
    /// The inode of its pid namespace; 0 when unknown.
    namespace: u64,
}

impl RunId {
    /// This process.
    pub fn current() -> RunId {
        static CURRENT: OnceLock<RunId> = OnceLock::new();
        *CURRENT.get_or_init(|| {
            let pid = std::process::id();
            let start = start_time(pid).unwrap_or(0);
            let namespace = std::fs::read_link("/proc/self/ns/pid")
                .ok()
                .and_then(|link| inode_of(&link.to_string_lossy()))
                .unwrap_or(0);
            RunId { pid, start, namespace }
        })
    }

    /// `PID.START`, and `.NAMESPACE` outside the machine's own.
    pub fn tag(&self) -> String {
        match self.namespace {
            INITIAL_PID_NAMESPACE => format!("{}.{}", self.pid, self.start),
            namespace => format!("{}.{}.{namespace}", self.pid, self.start),
        }
    }

    fn parse(tag: &str) -> Option<RunId> {
        let mut numbers = tag.split('.');
        let pid = numbers.next()?.parse().ok()?;
        let start = numbers.next()?.parse().ok()?;
        let namespace = match numbers.next() {
            Some(namespace) => namespace.parse().ok()?,
            None => INITIAL_PID_NAMESPACE,
        };
        numbers.next().is_none().then_some(RunId { pid, start, namespace })
    }

    /// Whether what this run knows of itself is enough to judge others.
    fn known(&self) -> bool {
        self.start != 0 && self.namespace != 0
    }

    /// Whether the run `self` has surely ended, as `me` sees it: its pid
    /// is free, or taken by a process that started at another time. A run
    /// in another pid namespace, or one whose process cannot be read, is
    /// taken as alive.
    fn is_gone(&self, me: &RunId) -> bool {
        if self.namespace != me.namespace {
            return false;
        }
        if self.pid == me.pid {
            return self.start != me.start;
        }
        match start_time(self.pid) {
            Ok(start) => start != self.start,
            Err(err) => err.kind() == io::ErrorKind::NotFound,
        }
    }
}

/// Whether the run a name's `tag` (`RunId::tag`) stands for has surely
/// ended: a folder it left in a tree is this run's to remove.
pub fn run_gone(tag: &str) -> bool {
    let me = RunId::current();
    me.known() && RunId::parse(tag).is_some_and(|run| run.is_gone(&me))
}

/// Field 22 of `/proc/PID/stat`: when the process started.
fn start_time(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command's name (field 2) may hold spaces and parentheses: the
    // fields after it start after its last ')'.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_name
        .split_whitespace()
        .nth(19)
        .and_then(|start| start.parse().ok())
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat has no start time")))
}

/// `pid:[4026531836]` → 4026531836.
fn inode_of(link: &str) -> Option<u64> {
    link.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

/// The run that made a folder named `tmws-KIND-TAG-RANDOM`.
fn maker(name: &str) -> Option<RunId> {
    let rest = name.strip_prefix("tmws-")?;
    let (rest, random) = rest.rsplit_once('-')?;
    if random.len() != 6 || !random.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (kind, tag) = rest.rsplit_once('-')?;
    (!kind.is_empty()).then_some(())?;
    RunId::parse(tag)
}

/// Removes from the temporary folder the scratch folders of this user's
/// runs that have ended, and returns their names. Never a link (nor
/// anything through one), never another user's folder, never one of a run
/// that may be alive; a name of another form is left alone.
pub fn sweep() -> Vec<OsString> {
    sweep_in(&std::env::temp_dir())
}

/// `sweep`, in the folder `temp` (a test run's folder in /dev/shm).
pub fn sweep_in(temp: &Path) -> Vec<OsString> {
    let me = RunId::current();
    let Ok(parent) = handles::open_dir_path(temp) else { return Vec::new() };
    let Ok(entries) = handles::entries(&parent) else { return Vec::new() };
    let mut removed = Vec::new();
    for (name, kind) in entries {
        let gone = name.to_str().and_then(maker).is_some_and(|run| run.is_gone(&me));
        // A link is listed as a link: never followed, never removed.
        if me.known() && kind == FileType::Directory && gone && remove_if_ours(&parent, &name) {
            removed.push(name);
        }
    }
    removed.sort();
    removed
}

/// Removes the folder `name` of `parent` when this user owns it: its
/// owner is read on a handle opened without following a link, and what
/// is below it is removed through that very handle.
fn remove_if_ours(parent: &std::os::fd::OwnedFd, name: &OsString) -> bool {
    let removed = (|| -> io::Result<bool> {
        let handle = sys::open_dir_below(parent, Path::new(name), Resolve::NoLinks)?;
        let stat = handles::stat(&handle)?;
        if stat.st_uid != sys::effective_uid() {
            return Ok(false);
        }
        if stat.st_mode & 0o700 != 0o700 {
            handles::set_dir_mode(&handle, 0o700)?;
        }
        for (entry, _) in handles::entries(&handle)? {
            handles::remove_tree(&handle, Path::new(&entry))?;
        }
        sys::rmdir_in(parent, Path::new(name))?;
        Ok(true)
    })();
    // One that cannot go now is tried again by the next run.
    removed.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_names_the_run_that_made_it() {
        let me = RunId { pid: 41, start: 9000, namespace: INITIAL_PID_NAMESPACE };
        let name = format!("tmws-check-copy-{}-Ab3xYz", me.tag());
        assert_eq!(maker(&name), Some(me));
        let elsewhere = RunId { namespace: 4026532001, ..me };
        assert_eq!(maker(&format!("tmws-program-{}-Ab3xYz", elsewhere.tag())), Some(elsewhere));
        for other in
            ["tmws-check-copy-Ab3xYz", "tmws-xtask", "tmws-program-41.9000-Ab3", "x-1.2-Ab3xYz"]
        {
            assert_eq!(maker(other), None, "{other}");
        }
    }

    #[test]
    fn a_run_is_gone_only_when_its_pid_is_free_or_taken_by_a_later_process() {
        let me = RunId::current();
        assert!(me.known(), "this process reads its own start time and namespace");
        assert!(!me.is_gone(&me));
        assert!(RunId { start: me.start + 1, ..me }.is_gone(&me), "a pid taken again");
        let parent = RunId { pid: std::os::unix::process::parent_id(), start: 0, ..me };
        let parent = RunId { start: start_time(parent.pid).unwrap(), ..parent };
        assert!(!parent.is_gone(&me), "a live process");
        assert!(!RunId { namespace: 1, ..parent }.is_gone(&me), "another namespace");
    }
}
