//! The file-access layer: the only code that creates, writes, renames,
//! removes or changes the mode of a file. Below a tree's root everything goes
//! through `RootDir` (no link on the way, nothing out of the root); the few
//! writes that are not below a root (a report file the user names, our own
//! scratch and cache folders, a sandbox) go through `unconfined`, so that
//! each one is visible here.
pub mod files;
pub mod hash;
pub mod paths;
pub mod root_dir;
pub mod scratch_copy;
pub mod sys;
pub mod unconfined;

pub use root_dir::RootDir;
