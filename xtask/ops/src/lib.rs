//! What the commands do: take and verify backups, roll back, collect
//! evidence, check and diagnose a tree, list and prune backups, push and
//! pull them. Each returns values for the command line to render; none
//! prints or parses flags.
pub mod backup;
pub mod check_copy;
pub mod destination;
pub mod diagnose;
pub mod evidence;
pub mod external;
pub mod forensics;
pub mod git_clean;
pub mod identity;
pub mod init;
pub mod list;
pub mod offsite;
pub mod post_check;
pub mod prune;
pub mod rollback;
pub mod verify;
