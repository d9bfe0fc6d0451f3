//! The types state is kept in, each parsed once: backups and their
//! manifests, the journal, the lock, a tree's profile, checks and reports,
//! Alembic's revision graph.
pub mod advice;
pub mod backup;
pub mod check;
pub mod database;
pub mod journal;
pub mod label;
pub mod lock;
pub mod manifest;
pub mod migrations;
pub mod profile;
pub mod repository;
pub mod scenario;
pub mod schema;
