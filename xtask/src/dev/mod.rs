//! Tools for this repository, off the product path: the sandbox (a fake
//! TMWS tree), the drill (rehearse every row of the decision matrix) and the
//! bench (our commands against the runbook's shell commands).
pub mod bench;
pub mod drill;
pub mod sandbox;
pub mod seed;
pub mod variant;
