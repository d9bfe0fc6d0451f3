//! The types state is kept in, each parsed once: backups and their
//! manifests, the journal, the lock, a tree's profile, checks and reports,
//! Alembic's revision graph.
//!
//! This crate names only base and fs: Cargo refuses an import that points up,
//! however it is spelled (an alias of the crate, a macro exported from
//! above, a path in a test module).
//!
//! ```compile_fail,E0432
//! use xtask_adapters::sqlite;
//! ```
//!
//! ```compile_fail,E0433
//! #[cfg(test)]
//! mod tests {}
//! fn upward() { let _ = xtask_adapters::some_macro!(); }
//! ```
pub mod advice;
pub mod backup;
pub mod check;
pub mod database;
pub mod journal;
pub mod label;
pub mod lock;
pub mod manifest;
pub mod migrations;
pub mod ownership;
pub mod profile;
pub mod repository;
pub mod scenario;
pub mod schema;
pub mod sealed;
