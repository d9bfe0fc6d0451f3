//! Landlock, the kernel's confinement of a process and its children
//! (Linux 5.13 and later): a ruleset that lets them write only beneath
//! some folders. The ABI is stable; its few structures and rights are
//! declared here, and `sys` makes the calls.

/// The ruleset's attribute; the kernel reads as much of it as its ABI
/// knows (8 bytes before ABI 4, 16 before ABI 6, 24 since).
#[repr(C)]
pub struct RulesetAttr {
    pub handled_access_fs: u64,
    pub handled_access_net: u64,
    pub scoped: u64,
}

#[repr(C, packed)]
pub struct PathBeneathAttr {
    pub allowed_access: u64,
    pub parent_fd: i32,
}

#[repr(C)]
pub struct NetPortAttr {
    pub allowed_access: u64,
    pub port: u64,
}

pub const CREATE_RULESET_VERSION: u32 = 1;
pub const RULE_PATH_BENEATH: u32 = 1;
pub const RULE_NET_PORT: u32 = 2;
/// ioctl on a device file: TIOCSTI on a terminal among them (ABI 5).
pub const IOCTL_DEV: u64 = 1 << 15;
/// Bind a TCP port; connect to one (ABI 4).
pub const BIND_TCP: u64 = 1 << 0;
pub const CONNECT_TCP: u64 = 1 << 1;
/// Reach no abstract UNIX socket and signal no process outside the
/// domain (ABI 6).
pub const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
pub const SCOPE_SIGNAL: u64 = 1 << 1;
pub const WRITE_FILE: u64 = 1 << 1;
/// Remove a folder or a file; make a character device, a folder, a
/// regular file, a socket, a FIFO, a block device, a symbolic link.
pub const MODIFY_TREE: u64 = (1 << 4) | (1 << 5) | (0x7f << 6);
/// Link or rename a file into another folder (ABI 2).
pub const REFER: u64 = 1 << 13;
/// Truncate a file (ABI 3).
pub const TRUNCATE: u64 = 1 << 14;
