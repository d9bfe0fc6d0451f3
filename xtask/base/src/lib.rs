//! The bottom layer: what every other layer needs and that needs nothing of
//! theirs: the exit kinds errors carry, the clock, sizes for people, and the events the layers
//! above report to the person at the terminal.
//!
//! This crate names only nothing: Cargo refuses an import that points up,
//! however it is spelled (an alias of the crate, a macro exported from
//! above, a path in a test module).
//!
//! ```compile_fail,E0432
//! use xtask_fs::RootDir;
//! ```
//!
//! ```compile_fail,E0433
//! #[cfg(test)]
//! mod tests {}
//! fn upward() { let _ = xtask_fs::some_macro!(); }
//! ```
pub mod clock;
pub mod events;
pub mod exit;
pub mod faults;
pub mod shell_words;
pub mod units;
