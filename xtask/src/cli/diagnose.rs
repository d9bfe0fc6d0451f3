//! `cargo xtask diagnose`: the evidence as a table and the recommended row,
//! or one JSON document; exit 1 when a rollback (or something else) is due.
use anyhow::Result;
use xshell::Shell;
use xtask_adapters::git;
use xtask_base::exit::{failed, usage};
use xtask_model::{profile::Tree, scenario::Recommendation};
use xtask_ops::diagnose::{Diagnosis, diagnose};

use super::{
    flags::{self, Format},
    render, ui,
};

impl flags::Diagnose {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let format = self.format.unwrap_or_default();
        let (tree, label) = Tree::with_label(self.root.as_deref(), self.label.clone())?;
        if self.label.is_some() {
            xtask_model::backup::Backup::folder(&tree, &label)?;
        }
        // A commit that does not resolve is a typo, not a diagnosis.
        if let (Some(rev), Some(repo)) = (&self.expect_commit, git::open(&tree.root)?) {
            git::resolve(&repo, rev).map_err(|e| usage(format!("--expect-commit: {e:#}")))?;
        }
        let diagnosis =
            diagnose(sh, &tree, &label, self.expect_commit.as_deref(), self.python.as_deref())?;
        match format {
            Format::Json => ui::document(&diagnosis)?,
            Format::Human => super::ui::out(&human(&tree, &diagnosis)),
        }
        match diagnosis.recommendation {
            Recommendation::Healthy => Ok(()),
            Recommendation::Environment => {
                Err(failed("the environment is at fault, not the deploy: no rollback row applies"))
            }
            Recommendation::Resume => {
                Err(failed("an earlier rollback is unfinished: resume or abandon it first"))
            }
            Recommendation::Manual => Err(failed(
                "no rollback changes what the checks found: the evidence says what to mend",
            )),
            Recommendation::Rollback(row) => {
                let command = diagnosis.command_line.clone().unwrap_or_else(|| {
                    xtask_model::advice::xtask(&format!("rollback --scenario {row}"), &tree.root)
                });
                let message = format!("a rollback is recommended: `{command}`");
                Err(xtask_base::exit::with_next(xtask_base::exit::Kind::Failed, message, command))
            }
        }
    }
}

/// The evidence table, the interpreter, and what to do.
fn human(tree: &Tree, diagnosis: &Diagnosis) -> String {
    let mut out = render::table(&diagnosis.checks, false);
    out.push_str(&format!("python: {}\n", diagnosis.interpreter));
    out.push_str(&format!("programs ran on: {}\n", diagnosis.programs_ran_on));
    match (&diagnosis.recommendation, &diagnosis.next) {
        (Recommendation::Healthy, _) => out.push_str("\nhealthy: nothing to roll back\n"),
        (_, Some(next)) => out.push_str(&format!("\nrecommendation: {next}\n")),
        (recommendation, None) => {
            let estimate = match recommendation {
                Recommendation::Rollback(row) if row.runbook_minutes() == 1 => "1 minute".into(),
                Recommendation::Rollback(row) => format!("{} minutes", row.runbook_minutes()),
                _ => "unknown".into(),
            };
            let command = diagnosis.command_line.clone().unwrap_or_else(|| {
                xtask_model::advice::xtask(
                    &format!("rollback --scenario {}", recommendation.word()),
                    &tree.root,
                )
            });
            out.push_str(&format!("\nrecommendation: {command} (runbook estimate {estimate})\n"));
        }
    }
    if let Some(why) = &diagnosis.why {
        out.push_str(&format!("  why: {why}\n"));
    }
    if let Some(then) = &diagnosis.then {
        out.push_str(&format!("  then: {then}\n"));
    }
    for passed in &diagnosis.passed_over {
        out.push_str(&format!("  passed over: {passed}\n"));
    }
    out
}
