//! The file-access layer: the only code that creates, writes, renames,
//! removes or changes the mode of a file. Below a tree's root everything goes
//! through `RootDir` (no link on the way, nothing out of the root); the few
//! writes that are not below a root (a report file the user names, our own
//! scratch and cache folders, a sandbox) go through `unconfined`, so that
//! each one is visible here. libgit2's own writes under `.git/` are the one
//! exception: it takes paths (CONTRIBUTING says why that holds).
//!
//! This crate names only base: Cargo refuses an import that points up,
//! however it is spelled (an alias of the crate, a macro exported from
//! above, a path in a test module).
//!
//! ```compile_fail,E0432
//! use xtask_model::profile::Tree;
//! ```
//!
//! ```compile_fail,E0433
//! #[cfg(test)]
//! mod tests {}
//! fn upward() { let _ = xtask_model::some_macro!(); }
//! ```
pub mod external;
pub mod files;
pub mod handles;
pub mod hash;
mod landlock;
pub mod leftovers;
pub mod outside;
pub mod paths;
pub mod programs_owner;
pub mod root_dir;
pub mod scratch;
pub mod scratch_copy;
pub mod seal;
pub mod sys;
pub mod unconfined;

pub use root_dir::RootDir;
