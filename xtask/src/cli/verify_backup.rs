//! `cargo xtask verify-backup`: runs every check on a backup (the tree's, a
//! folder of its own, or a repository's newest snapshot) and reports them.
use anyhow::Result;
use xshell::Shell;
use xtask_base::exit::failed;
use xtask_model::{profile::Tree, repository::Repository};
use xtask_ops::verify;

use super::{flags, render, ui};

impl flags::VerifyBackup {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let format = self.format.unwrap_or_default();
        if let Some(junit) = &self.junit {
            render::check_output_file("--junit", junit)?;
        }
        let python = self.python.as_deref();
        let report = (|| match (&self.repo, &self.backup) {
            // Only `--repo` itself makes the repository's copy the one
            // verified: a repository in the environment or the profile does
            // not change what verify-backup checks.
            (Some(flag), _) => {
                let (tree, label) = Tree::with_label(self.root.as_deref(), self.label.clone())?;
                let repo = Repository::required(Some(flag), &tree.profile)?;
                verify::verify_repository(sh, &tree, &label, &repo, python)
            }
            // A folder of its own (a copy elsewhere) may have any name; a
            // tree's backup must be the one its folder names.
            (None, Some(dir)) => verify::verify(sh, dir, None, None, python),
            (None, None) => {
                let (tree, label) = Tree::with_label(self.root.as_deref(), self.label.clone())?;
                verify::verify_label(sh, &tree, &label, python)
            }
        })();
        // An error here still leaves a JUnit file: `cli::stopped` writes one
        // that says why no check ran.
        let report = report?;
        ui::result(format, &render::emit(&report, format, self.junit.as_deref(), false)?);
        if !report.ok() {
            return Err(failed(format!("{} of the backup's checks failed", report.failed)));
        }
        Ok(())
    }
}
