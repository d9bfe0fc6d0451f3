//! The programs and libraries the tool works through: SQLite (rusqlite),
//! git (libgit2), Python with alembic, pytest and uvicorn, restic, and the
//! processes of a tree.
pub mod git;
pub mod process;
pub mod python;
pub mod restic;
pub mod services;
pub mod sqlite;
