//! init proves the profile it found before it writes it: on a scratch copy
//! of the checkout, with that profile, a backup (no tag: the copy has no
//! history), its verification, a migration rollback's dry run and
//! post-check after the deploy must pass. The first that fails is named,
//! with what was tried, and nothing is written.
use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Result;
use xshell::Shell;

use crate::{backup, check_copy::CheckCopy, post_check, rollback, verify};
use xtask_adapters::python::Python;
use xtask_base::exit::failed;
use xtask_fs::RootDir;
use xtask_model::{
    profile::{PROFILE_FILE, Profile, Tree},
    scenario::Scenario,
};

/// What was proven, for the note; an error (exit 1) naming the step that
/// failed otherwise.
pub fn prove(sh: &Shell, python: Option<&Path>, root: &Path, text: &str) -> Result<String> {
    let profile = Profile::from_text(text, &root.join(PROFILE_FILE))?;
    let label = profile.label.clone();
    let fs = Arc::new(RootDir::open(root)?);
    let live = Tree { root: root.to_path_buf(), profile, fs, copy_of: None };
    let copy = CheckCopy::of(&live)?;
    let tree = &copy.tree;
    // The checkout's interpreter (its .venv, or the one chosen), found once
    // on the checkout: the copy holds no virtualenv, and on it each step
    // would fall back to the tool's, without the service's packages.
    let interpreter = Python::find(sh, Some(root), python)?.exe("python");
    let python = Some(interpreter.as_path());
    let tried = "a backup, verify-backup, a migration rollback's dry run and post-check --after deploy (but its git and test checks), on a scratch copy with this profile";
    let step = |name: &str, result: Result<()>| {
        result.map_err(|err| {
            failed(format!(
                "init found a profile but could not prove it: {name} failed on a scratch copy of the checkout: {err:#}\n(it tried {tried}); nothing was written: correct what is named, or write {PROFILE_FILE} by hand"
            ))
        })
    };
    let options = backup::BackupOptions { tag: false, ..backup::BackupOptions::new(label.clone()) };
    step("backup", backup::take(sh, tree, &options).map(|_| ()))?;
    let verified = verify::verify_label(sh, tree, &label, python)?;
    step("verify-backup", verdict(verified.ok(), &verified.failures()))?;
    let dry = rollback::Options {
        label: label.clone(),
        choices: rollback::Choices::plain(Scenario::Migration),
        dry_run: true,
        resume: false,
        abandon: false,
        break_lock: false,
        skip_verify: false,
        grace: Duration::from_secs(10),
        python: python.map(Path::to_path_buf),
        repo: None,
    };
    let quiet = rollback::Voice { say: &|_| {}, confirm: &|| Ok(()) };
    step("a migration rollback's dry run", rollback::rollback(sh, tree, &dry, &quiet).map(|_| ()))?;
    // The copy holds no git history: the git checks judge the live tree.
    // The tests' verdict is the service's, not the profile's (where they
    // are came from pytest's own collection).
    let checks = post_check::Options {
        after: Some(post_check::After::Deploy),
        skip: vec!["git".into(), "tests".into()],
        python: python.map(Path::to_path_buf),
        ..post_check::Options::of(label)
    };
    let report = post_check::post_check(sh, tree, &checks)?;
    step("post-check", verdict(report.ok(), &report.failures()))?;
    Ok(format!("proven on a scratch copy of the checkout: {tried} passed"))
}

fn verdict(ok: bool, failures: &[String]) -> Result<()> {
    match ok {
        true => Ok(()),
        false => Err(anyhow::anyhow!("{}", failures.join("; "))),
    }
}
