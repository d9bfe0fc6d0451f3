//! The TMWS rollback tool as a library: every layer but the command line
//! and the developer tools, so that its logic has unit tests beside it.
//!
//! The layers, lowest first; a module imports only from its own layer and
//! the layers below it (`tests/it/house.rs` keeps it so):
//!
//! - `base`: exit kinds, the clock, and the events that reach the terminal.
//! - `fs`: the file-access layer; the only one that writes below a root.
//! - `model`: the types state is kept in (labels, manifests, backups,
//!   journals, profiles, checks), each parsed once.
//! - `adapters`: SQLite, git, Python and alembic, processes, restic.
//! - `ops`: what the commands do; they return values and never print.
//!
//! The binary adds `cli` (flags, rendering, the only layer that prints) and,
//! on top, `dev` (sandbox, drill, bench).
#![deny(unsafe_code)]

pub mod adapters;
pub mod base;
pub mod fs;
pub mod model;
pub mod ops;
