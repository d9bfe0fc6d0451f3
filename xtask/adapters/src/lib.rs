//! The programs and libraries the tool works through: SQLite (rusqlite),
//! git (libgit2), Python with alembic, pytest and uvicorn, restic, and the
//! processes of a tree.
//!
//! This crate names only base, fs and model: Cargo refuses an import that points up,
//! however it is spelled (an alias of the crate, a macro exported from
//! above, a path in a test module).
//!
//! ```compile_fail,E0432
//! use xtask_ops::rollback;
//! ```
//!
//! ```compile_fail,E0433
//! #[cfg(test)]
//! mod tests {}
//! fn upward() { let _ = xtask_ops::some_macro!(); }
//! ```
pub mod git;
pub mod patience;
pub mod process;
pub mod python;
pub mod restic;
pub mod services;
pub mod sqlite;
