//! `cargo xtask post-check`: the checks as a table or a JSON document, JUnit
//! XML on every exit, and the runbook's checklist ticked from the results.
use anyhow::{Context, Result};
use xshell::Shell;
use xtask_base::exit::failed;
use xtask_fs::unconfined;
use xtask_model::{backup::Backup, profile::Tree};
use xtask_ops::post_check::{Options, checklist, post_check};

use super::{flags, render, ui};

impl flags::PostCheck {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let format = self.format.unwrap_or_default();
        for (flag, path) in [("--junit", &self.junit), ("--checklist", &self.checklist)] {
            if let Some(path) = path {
                render::check_output_file(flag, path)?;
            }
        }
        // `--only a,b` is `--only a --only b`.
        let split = |ids: Vec<String>| -> Vec<String> {
            ids.iter()
                .flat_map(|i| i.split(','))
                .map(|i| i.trim().to_string())
                .filter(|i| !i.is_empty())
                .collect()
        };
        let junit = self.junit.clone();
        let report = (|| {
            let tree = Tree::locate(self.root.as_deref())?;
            // A label given by name must be a backup of this tree (a typo
            // would turn every comparison into "not applicable").
            if let Some(label) = &self.label {
                Backup::folder(&tree, label)?;
            }
            let options = Options {
                label: self.label.unwrap_or_else(|| tree.profile.label.clone()),
                after: self.after,
                only: split(self.only),
                skip: split(self.skip),
                expect_revision: self.expect_revision,
                port: self.port,
                python: self.python,
                require_backup: self.require_backup,
                live: self.live,
            };
            post_check(sh, &tree, &options).map(|report| (tree, report))
        })();
        // An error here still leaves a JUnit file: `cli::stopped` writes one
        // that says why no check ran.
        let (tree, report) = report?;
        ui::result(format, &render::emit(&report, format, junit.as_deref(), true)?);
        if let Some(path) = &self.checklist {
            unconfined::write_report(path, checklist(&tree, &report).as_bytes())
                .with_context(|| format!("write the checklist to {}", path.display()))?;
        }
        if let Some(first) = report.confinement_refused.first() {
            return Err(xtask_base::exit::refused(format!(
                "{} of the post-rollback checks failed; {first}",
                report.failed
            )));
        }
        if !report.ok() {
            return Err(failed(format!("{} of the post-rollback checks failed", report.failed)));
        }
        Ok(())
    }
}
