//! Every operating-system call that std does not offer, in one module, on
//! top of rustix. The rest of the crate is `#![deny(unsafe_code)]`; the only
//! `unsafe` here is what rustix does not wrap: the pre-exec hooks (a new
//! session, signals reset, Landlock applied), Landlock's own calls, the
//! signal mask of the xtask's signal thread, and a few calls
//! (`sync_file_range`, `getrusage`, `wait4`).
#![allow(unsafe_code)]

use std::{
    fs::File,
    io,
    os::{
        fd::{AsFd, OwnedFd},
        unix::process::CommandExt,
    },
    path::Path,
    process::Command,
};

use crate::landlock;
use rustix::{
    fs::{AtFlags, Mode, OFlags, RenameFlags, ResolveFlags},
    process::{Pid, Signal},
};

pub use rustix::fs::{FileType, Stat};

/// How a path below a directory may be resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// Writing: no symbolic link anywhere on the way, and never out of the directory.
    NoLinks,
    /// Reading: links are followed only while they stay below the directory.
    Beneath,
}

impl Resolve {
    fn flags(self) -> ResolveFlags {
        let base = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        match self {
            Resolve::NoLinks => base | ResolveFlags::NO_SYMLINKS,
            Resolve::Beneath => base,
        }
    }
}

/// Opens a directory handle usable only as an anchor for `*at` calls.
pub fn open_dir_handle(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )?)
}

/// `openat2` below `dir`: a directory handle for `*at` calls.
pub fn open_dir_below(dir: impl AsFd, relative: &Path, resolve: Resolve) -> io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    Ok(rustix::fs::openat2(dir, relative, flags, Mode::empty(), resolve.flags())?)
}

/// `openat2` below `dir` for reading. Non-blocking, so that opening a FIFO
/// never waits for a writer; callers check the file type before reading.
pub fn open_read_below(dir: impl AsFd, relative: &Path, resolve: Resolve) -> io::Result<File> {
    let mut flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK;
    if resolve == Resolve::NoLinks {
        flags |= OFlags::NOFOLLOW;
    }
    let fd = rustix::fs::openat2(dir, relative, flags, Mode::empty(), resolve.flags())?;
    let file = File::from(fd);
    // Back to blocking reads: a regular file never blocks anyway.
    rustix::fs::fcntl_setfl(&file, OFlags::empty())?;
    Ok(file)
}

/// Opens a path for reading without ever blocking on a FIFO; anything but a
/// regular file is refused before a byte is read.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let fd =
        rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK, Mode::empty())?;
    let file = File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    rustix::fs::fcntl_setfl(&file, OFlags::empty())?;
    Ok(file)
}

/// Creates a new file in `dir` (never an existing one, never through a link).
pub fn create_new_in(dir: impl AsFd, name: &Path, mode: u32) -> io::Result<File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(mode))?;
    Ok(File::from(fd))
}

/// Opens a file of `dir` for reading and writing, creating it when missing,
/// never through a link (a lock file).
pub fn open_or_create_in(dir: impl AsFd, name: &Path, mode: u32) -> io::Result<File> {
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(mode))?;
    Ok(File::from(fd))
}

/// `lstat` of an entry of `dir`; `None` when there is none.
pub fn stat_in(dir: impl AsFd, name: &Path) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

pub fn file_type(stat: &Stat) -> FileType {
    FileType::from_raw_mode(stat.st_mode)
}

/// The target of a symbolic link in `dir`, read, never followed.
pub fn read_link_in(dir: impl AsFd, name: &Path) -> io::Result<std::path::PathBuf> {
    let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
    let bytes = target.into_bytes();
    Ok(std::path::PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(
        bytes,
    )))
}

/// Makes `output` share `input`'s blocks (a reflink, `FICLONE`), where the
/// file system offers it: instant, and no space used until one changes.
pub fn clone_file(input: impl AsFd, output: impl AsFd) -> io::Result<()> {
    Ok(rustix::fs::ioctl_ficlone(output, input)?)
}

pub fn mkdir_in(dir: impl AsFd, name: &Path, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode))?)
}

pub fn unlink_in(dir: impl AsFd, name: &Path) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?)
}

pub fn rmdir_in(dir: impl AsFd, name: &Path) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// How a rename treats what is at the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rename {
    /// Replace it (plain `rename`).
    Replace,
    /// Fail if there is anything.
    NoReplace,
    /// Swap the two atomically; both must exist.
    Exchange,
}

pub fn rename_in(
    from_dir: impl AsFd,
    from: &Path,
    to_dir: impl AsFd,
    to: &Path,
    how: Rename,
) -> io::Result<()> {
    let flags = match how {
        Rename::Replace => RenameFlags::empty(),
        Rename::NoReplace => RenameFlags::NOREPLACE,
        Rename::Exchange => RenameFlags::EXCHANGE,
    };
    Ok(rustix::fs::renameat_with(from_dir, from, to_dir, to, flags)?)
}

/// Whether this process may create files in `dir`.
pub fn writable_dir(dir: &Path) -> bool {
    rustix::fs::access(dir, rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK).is_ok()
        && dir.is_dir()
}

pub fn fchmod(file: impl AsFd, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::fchmod(file, Mode::from_raw_mode(mode))?)
}

/// The device and inode of an open file or folder (an O_PATH handle too).
pub fn fd_identity(fd: impl AsFd) -> io::Result<(u64, u64)> {
    let stat = rustix::fs::fstat(fd)?;
    Ok((stat.st_dev, stat.st_ino))
}

/// The user this process acts as.
pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// `name (uid N)` for a message, the name from /etc/passwd when it has one.
pub fn user_name(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    });
    match name {
        Some(name) => format!("{name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

/// Gives a file the owner and group given (only root can give another's).
pub fn fchown(file: impl AsFd, uid: u32, gid: u32) -> io::Result<()> {
    let (uid, gid) = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
    Ok(rustix::fs::fchown(file, Some(uid), Some(gid))?)
}

/// Whether this process runs as root (it may then give files to others).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `copy_file_range` at explicit offsets: the kernel moves the bytes, and
/// the files' own positions are left alone (another thread reads the source).
pub fn copy_range(
    input: impl AsFd,
    input_offset: &mut u64,
    output: impl AsFd,
    output_offset: &mut u64,
    len: usize,
) -> io::Result<usize> {
    Ok(rustix::fs::copy_file_range(input, Some(input_offset), output, Some(output_offset), len)?)
}

/// Starts the writeback of a range just written, so a final fsync waits for
/// little. Only a hint: errors surface at the fsync.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range on a descriptor we own; it touches no memory.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as i64,
            len as i64,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
}

/// Whether the error means the kernel cannot `copy_file_range` these files.
pub fn copy_unsupported(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSYS | libc::EXDEV | libc::EINVAL | libc::EOPNOTSUPP))
}

/// Whether a rename failed because it would cross a file system.
pub fn is_cross_device(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::EXDEV)
}

/// Whether an error is openat2's refusal of a path that leads out of its folder.
pub fn is_escape(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::EXDEV)
}

/// Whether an error is openat2's refusal of a link or an escape.
pub fn is_link_refusal(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ELOOP | libc::EXDEV | libc::ENOTDIR))
}

/// The signals the tool sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    Term,
    Kill,
}

impl Sig {
    fn raw(self) -> Signal {
        match self {
            Sig::Term => Signal::TERM,
            Sig::Kill => Signal::KILL,
        }
    }
}

pub fn kill(pid: i32, sig: Sig) -> bool {
    Pid::from_raw(pid).is_some_and(|pid| rustix::process::kill_process(pid, sig.raw()).is_ok())
}

pub fn kill_group(pgid: i32, sig: Sig) -> bool {
    Pid::from_raw(pgid)
        .is_some_and(|pgid| rustix::process::kill_process_group(pgid, sig.raw()).is_ok())
}

/// Whether a process exists (zombies included; one we may not signal too).
pub fn alive(pid: i32) -> bool {
    let Some(pid) = Pid::from_raw(pid) else { return false };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(err) => err == rustix::io::Errno::PERM,
    }
}

/// Whether any process of the group exists.
pub fn group_alive(pgid: i32) -> bool {
    let Some(pgid) = Pid::from_raw(pgid) else { return false };
    rustix::process::test_kill_process_group(pgid).is_ok()
}

/// Makes a child die with the thread that spawns it (PR_SET_PDEATHSIG): a
/// killed or interrupted xtask never leaves alembic, pytest or a server
/// behind. Every program is spawned from a thread that waits for it, so the
/// signal fires only when the xtask itself goes.
pub fn die_with_parent(command: &mut Command) {
    // SAFETY: the hook runs in the child between fork and exec; prctl is
    // async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            Ok(())
        });
    }
}

pub fn hostname() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}

/// Peak resident memory of this process, in KiB.
pub fn own_peak_rss_kib() -> Option<u64> {
    // SAFETY: rusage is plain data that getrusage fills.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    (unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0)
        .then_some(usage.ru_maxrss as u64)
}

/// Waits for a child and returns (exited with 0, peak resident memory in KiB
/// of it and everything it waited for), from the kernel's `wait4`.
pub fn wait_with_usage(pid: i32) -> io::Result<(bool, u64)> {
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        return Err(io::Error::last_os_error());
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok((ok, usage.ru_maxrss as u64))
}

/// Flushes every file system (the bench, between runs).
pub fn sync_all_filesystems() {
    rustix::fs::sync();
}

/// The kernel's Landlock ABI version; `None` where it offers none.
pub fn landlock_abi() -> Option<u32> {
    // The tests behave as on a kernel without Landlock, to prove the warning
    // and the checks that hold without it.
    if xtask_base::faults::no_landlock() {
        return None;
    }
    // SAFETY: the documented query form: no attribute, size 0, the version flag.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<landlock::RulesetAttr>(),
            0usize,
            landlock::CREATE_RULESET_VERSION,
        )
    };
    (abi >= 1).then_some(abi as u32)
}

/// What a confined program may do on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// As it likes (pytest, pip).
    Any,
    /// Neither bind nor connect a TCP port (alembic, the import check).
    Nothing,
    /// Bind this port alone (the app); connect as it likes.
    Bind(u16),
}

/// A Landlock ruleset that denies every kind of write (writing, truncating,
/// creating, removing, renaming, linking) except beneath `writable` folders
/// (a file among them is writable in place) and into the `files` given (`/dev/null`), every ioctl on a device (ABI 5:
/// no TIOCSTI into a terminal), the network beyond `net` (ABI 4), and,
/// outside the program's own domain, every signal and abstract UNIX socket
/// (ABI 6); reads are not restricted. `None` where the kernel offers no
/// Landlock; what an older kernel lacks is left out.
pub fn write_ruleset(writable: &[&Path], files: &[&Path], net: Net) -> io::Result<Option<OwnedFd>> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let Some(abi) = landlock_abi() else { return Ok(None) };
    let mut handled = landlock::WRITE_FILE | landlock::MODIFY_TREE;
    if abi >= 2 {
        handled |= landlock::REFER;
    }
    if abi >= 3 {
        handled |= landlock::TRUNCATE;
    }
    if abi >= 5 {
        handled |= landlock::IOCTL_DEV;
    }
    let handled_net = match (abi >= 4, net) {
        (false, _) | (true, Net::Any) => 0,
        (true, Net::Nothing) => landlock::BIND_TCP | landlock::CONNECT_TCP,
        (true, Net::Bind(_)) => landlock::BIND_TCP,
    };
    let scoped =
        if abi >= 6 { landlock::SCOPE_ABSTRACT_UNIX_SOCKET | landlock::SCOPE_SIGNAL } else { 0 };
    let attr = landlock::RulesetAttr {
        handled_access_fs: handled,
        handled_access_net: handled_net,
        scoped,
    };
    let size = match abi {
        1..=3 => 8,
        4 | 5 => 16,
        _ => std::mem::size_of::<landlock::RulesetAttr>(),
    };
    // SAFETY: a valid attribute of at least the size given; the kernel
    // returns an fd.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const landlock::RulesetAttr,
            size,
            0u32,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor, owned by nobody else.
    let ruleset = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let file_rights = handled & (landlock::WRITE_FILE | landlock::TRUNCATE);
    let folder_rights = handled & !landlock::IOCTL_DEV;
    let rules =
        writable.iter().map(|p| (p, folder_rights)).chain(files.iter().map(|p| (p, file_rights)));
    for (path, allowed) in rules {
        add_path_rule(&ruleset, path, allowed, file_rights)?;
    }
    if let (Net::Bind(port), true) = (net, handled_net != 0) {
        let rule = landlock::NetPortAttr { allowed_access: landlock::BIND_TCP, port: port.into() };
        // SAFETY: a valid rule; nothing of it outlives the call.
        let added = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset.as_raw_fd(),
                landlock::RULE_NET_PORT,
                &rule as *const landlock::NetPortAttr,
                0u32,
            )
        };
        if added < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(Some(ruleset))
}

/// Grants `allowed` beneath `path`: a folder and all it holds, or a file
/// alone (granted on its own, as a file at the top of a tree whose root is
/// not granted, it takes only the rights that apply to a file).
fn add_path_rule(ruleset: &OwnedFd, path: &Path, allowed: u64, file_rights: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let parent = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?;
    let allowed = match rustix::fs::fstat(&parent)?.st_mode & libc::S_IFMT {
        libc::S_IFDIR => allowed,
        _ => allowed & file_rights,
    };
    let rule = landlock::PathBeneathAttr { allowed_access: allowed, parent_fd: parent.as_raw_fd() };
    // SAFETY: a valid rule whose descriptor lives until the call returns.
    let added = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            landlock::RULE_PATH_BENEATH,
            &rule as *const landlock::PathBeneathAttr,
            0u32,
        )
    };
    if added < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Makes the child a session of its own, between fork and exec: it has no
/// controlling terminal (it can open no `/dev/tty` to type into the
/// operator's shell) and is the leader of a process group of its own (the
/// one the run stops); and every descriptor it inherited beyond 0-2 closes
/// at exec (the kernel marks them; std's own pipe is marked already). It
/// starts with no signal blocked and the termination signals and SIGPIPE
/// at their default action: it inherits neither the mask that keeps them
/// for the xtask's signal thread (with it, a stopped run's programs lived
/// on until SIGKILL) nor a shell's ignored SIGINT.
pub fn alone_on_exec(command: &mut Command) {
    // SAFETY: setsid, sigprocmask, sigaction and close_range are
    // async-signal-safe system calls; the sets and actions are built on the
    // child's own stack and touch no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            for signal in TERMINATION.into_iter().chain([libc::SIGPIPE]) {
                if libc::sigaction(signal, &default, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
            let marked = libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC);
            // Before Linux 5.11 there is no such flag: the descriptors std
            // opens are close-on-exec anyway; ours too.
            let _ = marked;
            Ok(())
        });
    }
}

/// Makes the child confine itself with `ruleset` between fork and exec:
/// `no_new_privs` (which Landlock requires of an unprivileged process, and
/// which keeps a setuid program from escaping), then the ruleset, which its
/// own children inherit. Only two system calls run in the child.
pub fn confine_on_exec(command: &mut Command, ruleset: &OwnedFd) {
    use std::os::fd::AsRawFd;
    let fd = ruleset.as_raw_fd();
    // SAFETY: the hook runs in the child between fork and exec; prctl and
    // the raw syscall are async-signal-safe and touch no memory of the
    // parent. The descriptor stays open in the parent until `spawn` returns.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The signals that end the xtask on a person's or a supervisor's request.
const TERMINATION: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

fn termination_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, filled by sigemptyset and sigaddset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in TERMINATION {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and every thread
/// it starts afterwards, so that only `wait_termination_signal` receives
/// them. The children the tool spawns unblock them (`alone_on_exec`).
pub fn block_termination_signals() -> io::Result<()> {
    let set = termination_set();
    // SAFETY: a valid set; the old mask is not wanted.
    let status = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if status == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(status)) }
}

/// Waits for one of the blocked termination signals; returns its number.
pub fn wait_termination_signal() -> i32 {
    let set = termination_set();
    let mut signal = 0;
    // SAFETY: a valid set and a place for the signal number.
    unsafe { libc::sigwait(&set, &mut signal) };
    signal
}
