//! Faults injected on purpose by the crash tests: abort a rollback between
//! two steps, fail a git step after it wrote, behave as on a kernel without
//! Landlock. Compiled in only with the `fault-injection` feature, which only
//! the tests enable (a dev-dependency's feature): a built or released binary
//! neither reads these variables nor carries their names.

/// `XTASK_ROLLBACK_FAULT`: `after:3` aborts right after step 3 is
/// journaled, `before:N` just before step N starts, `inside:NAME` at that
/// instant inside a step (`inside:copy-halfway`: half-way through the
/// first copy the kernel makes).
pub fn rollback() -> Option<String> {
    armed(
        #[cfg(feature = "fault-injection")]
        "XTASK_ROLLBACK_FAULT",
    )
}

/// `XTASK_GIT_FAULT=checkout` fails a git step after it wrote the working tree.
pub fn git() -> Option<String> {
    armed(
        #[cfg(feature = "fault-injection")]
        "XTASK_GIT_FAULT",
    )
}

/// `XTASK_PRETEND_NO_LANDLOCK=1`: behave as on a kernel without Landlock.
pub fn no_landlock() -> bool {
    armed(
        #[cfg(feature = "fault-injection")]
        "XTASK_PRETEND_NO_LANDLOCK",
    )
    .is_some()
}

#[cfg(feature = "fault-injection")]
fn armed(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Without the feature no fault is ever armed.
#[cfg(not(feature = "fault-injection"))]
fn armed() -> Option<String> {
    None
}
