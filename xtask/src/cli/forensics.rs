//! `cargo xtask forensics`: a bundle of the current state, or its plan.
use anyhow::Result;
use xshell::Shell;
use xtask_model::{check::Version, profile::Tree};
use xtask_ops::forensics;

use super::{
    documents::{Effect, ForensicsDocument},
    flags::{self, Format},
    ui,
};

impl flags::Forensics {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let format = self.format.unwrap_or_default();
        let (tree, label) = Tree::with_label(self.root.as_deref(), self.label.clone())?;
        if self.dry_run {
            let dir = forensics::new_bundle_path(&tree, &label);
            let plan = forensics::plan(&tree, &label);
            match format {
                Format::Json => ui::document(&ForensicsDocument {
                    schema: Version,
                    command: "forensics",
                    result: Effect::Planned,
                    dry_run: true,
                    bundle: dir,
                    plan: Some(plan),
                    facts: None,
                })?,
                Format::Human => {
                    super::ui::line(&format!(
                        "dry run: nothing is written. The bundle would be {} (mode 0700):",
                        dir.display()
                    ));
                    for line in plan {
                        super::ui::line(&format!("  {line}"));
                    }
                }
            }
            return Ok(());
        }
        let bundle = forensics::collect(sh, &tree, &label, self.python.as_deref())?;
        match format {
            Format::Json => ui::document(&ForensicsDocument {
                schema: Version,
                command: "forensics",
                result: Effect::Done,
                dry_run: false,
                bundle: bundle.dir,
                plan: None,
                facts: Some(bundle.facts),
            })?,
            Format::Human => super::ui::line(&format!(
                "forensics bundle written to {} ({} database files, {} diffs{})",
                bundle.dir.display(),
                bundle.facts.database_files.len()
                    + usize::from(bundle.facts.database_copy.is_some()),
                bundle.facts.diffs.len(),
                if bundle.facts.problems.is_empty() {
                    String::new()
                } else {
                    format!("; {} problems noted in FAILURE_REPORT.md", bundle.facts.problems.len())
                }
            )),
        }
        Ok(())
    }
}
