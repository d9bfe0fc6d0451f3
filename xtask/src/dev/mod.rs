//! Tools for this repository, off the product path: the sandbox (a fake
//! TMWS tree), the drill (rehearse every row of the decision matrix), the
//! bench (our commands against the runbook's shell commands) and dist (the
//! release tarball). They need the workspace; the released binary says so.
pub mod bench;
pub mod dist;
pub mod drill;
pub mod sandbox;
// Only its test runs it: it compares docs/schema/ with the documents' types.
#[cfg(test)]
mod schemas;
pub mod seed;
pub mod test;
pub mod variant;

use std::path::PathBuf;

/// The workspace a developer tool works in (its fixtures, scripts and
/// `target/`): the one this binary was built from, when it is run as
/// `cargo xtask` and that folder is still there. The released binary
/// carries the product's commands only.
pub fn workspace(tool: &str) -> anyhow::Result<PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let in_workspace = xtask_model::advice::program() == "cargo xtask";
    if in_workspace && xtask_fs::outside::is_dir(dir.join("fixtures")) {
        return Ok(xtask_fs::outside::canonicalize(&dir).unwrap_or(dir));
    }
    let there = format!("cargo xtask {tool}");
    Err(xtask_base::exit::with_next(
        xtask_base::exit::Kind::Usage,
        format!(
            "{tool} is a developer tool: it needs this tool's workspace (its fixtures/ and target/), which {} does not carry; run `{there}` in a clone of the workspace",
            xtask_model::advice::program()
        ),
        there,
    ))
}
