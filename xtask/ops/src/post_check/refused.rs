//! A write the confinement refused, told apart from the program's own
//! failure: the service's programs may write only in their scratch copy
//! and scratch folder, so an app that writes to a fixed path elsewhere
//! (`/app`, `/var/lib/...`) fails with Python's `PermissionError`. When
//! this process, unconfined, could write there, the refusal was the
//! confinement's: the check says so, naming the program and the path.
use std::path::Path;

use xtask_fs::sys;
use xtask_model::check::{Check, CheckId, Status};

/// The program each check runs, for the message.
fn program_of(id: CheckId) -> &'static str {
    match id {
        CheckId::ServerStart | CheckId::ServerHealth | CheckId::ServerRestart => "the app",
        CheckId::TestsUnit | CheckId::TestsIntegration => "pytest",
        CheckId::Imports => "the import check",
        _ => "alembic",
    }
}

/// Rewrites each failed check whose program the confinement refused a
/// write; returns the refusals, one line each.
pub(super) fn name_refusals(checks: &mut [Check]) -> Vec<String> {
    if sys::landlock_abi().is_none() {
        return Vec::new();
    }
    let mut refusals = Vec::new();
    for check in checks.iter_mut().filter(|c| c.status == Status::Fail) {
        let Some(path) = denied_path(&check.detail) else { continue };
        if !writable_unconfined(Path::new(&path)) {
            continue;
        }
        let line = format!(
            "the confinement refused {} a write to {path}: the tool lets the service's programs write only in the scratch copy of the tree they run on and their own scratch folder; a service that writes elsewhere needs that path made relative to its tree, or --live",
            program_of(check.id)
        );
        check.detail = format!("{line}\n{}", check.detail);
        refusals.push(line);
    }
    refusals.dedup();
    refusals
}

/// The path of Python's `PermissionError: [Errno 13] Permission denied:
/// 'PATH'`, when the output holds one.
fn denied_path(detail: &str) -> Option<String> {
    let (_, rest) = detail.split_once("[Errno 13] Permission denied: '")?;
    let path = rest.split_once('\'')?.0;
    path.starts_with('/').then(|| path.to_string())
}

/// Whether this process, which is not confined, may write `path`: the
/// file when it exists, else the nearest folder above it.
fn writable_unconfined(path: &Path) -> bool {
    let mut at = Some(path);
    while let Some(p) = at {
        if xtask_fs::outside::exists(p) {
            let dir = if xtask_fs::outside::is_dir(p) { p } else { p.parent().unwrap_or(p) };
            return sys::writable_dir(dir);
        }
        at = p.parent();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::denied_path;

    #[test]
    fn the_path_of_a_permission_error_is_read() {
        let tail =
            "  File \"x.py\", line 3\nPermissionError: [Errno 13] Permission denied: '/app'\n";
        assert_eq!(denied_path(tail).as_deref(), Some("/app"));
        assert_eq!(denied_path("[Errno 13] Permission denied: 'relative'"), None);
        assert_eq!(denied_path("ValueError: nope"), None);
    }
}
