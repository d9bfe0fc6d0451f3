//! `FAILURE_REPORT.md`: the runbook's report template, filled with the
//! bundle's facts and linked to its evidence.
use std::fmt::Write as _;

use super::Bundle;

impl Bundle {
    pub(super) fn markdown(&self) -> String {
        let f = &self.facts;
        let mut out = self.heading();
        let _ = writeln!(out, "## Failure Symptoms\n");
        out.push_str(&list(&self.symptoms(), "[Describe what went wrong]"));
        let _ = writeln!(out, "\n## Rollback Actions Taken\n");
        out.push_str(&list(&f.steps, "none: this bundle was taken without a rollback"));
        let _ = writeln!(out, "\n## Evidence\n");
        for file in f.database_files.iter().chain(&f.database_copy) {
            let _ = writeln!(
                out,
                "- [{}]({}) sha256 {} ({} bytes)",
                file.path, file.path, file.sha256, file.size
            );
        }
        out.push_str(&list(&self.evidence(), ""));
        if !f.problems.is_empty() {
            let _ = writeln!(out, "\n## Problems While Collecting Evidence\n");
            out.push_str(&list(&f.problems, ""));
        }
        let _ = writeln!(out, "\n## Root Cause Analysis\n\n- [Detailed analysis of failure]\n");
        let _ = writeln!(out, "## Prevention Measures\n\n- [How to prevent this in future]");
        out
    }

    /// The title and what the report is about: the tree, the run, git.
    fn heading(&self) -> String {
        let f = &self.facts;
        let mut out = String::new();
        let _ = writeln!(out, "# {} Deployment Failure Report\n", self.tree.profile.service);
        let _ = writeln!(out, "**Label**: {}  ", f.label);
        let _ = writeln!(out, "**Tree**: {}  ", f.root);
        let _ = writeln!(
            out,
            "**Scenario**: {}  ",
            f.scenario.as_deref().unwrap_or("none (evidence only)")
        );
        let _ = writeln!(out, "**Date**: {}  ", f.initiated);
        match &f.scenario {
            Some(_) => {
                let _ = writeln!(out, "**Rollback Initiated**: {}  ", f.initiated);
                let completed = f.completed.as_deref().unwrap_or("not completed");
                let _ = writeln!(out, "**Rollback Completed**: {completed}  ");
            }
            None => {
                let _ =
                    writeln!(out, "**Rollback**: none; evidence collected at {}  ", f.initiated);
            }
        }
        let _ = writeln!(
            out,
            "**Git**: {} on {}\n",
            f.git_commit.as_deref().unwrap_or("no repository"),
            f.git_branch.as_deref().unwrap_or("a detached HEAD")
        );
        out
    }

    /// What was wrong, as far as the facts show it.
    fn symptoms(&self) -> Vec<String> {
        let f = &self.facts;
        let mut symptoms = f.symptoms.clone();
        if !f.integrity.is_empty() && f.integrity != ["ok"] {
            symptoms.push(format!(
                "integrity_check: {}",
                f.integrity.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            ));
        }
        if !f.database_revision.is_empty() {
            symptoms.push(format!("database revision: {}", f.database_revision.join(" ")));
        }
        if !f.diffs.is_empty() {
            symptoms.push(format!("{} files differ from the backup (see diffs/)", f.diffs.len()));
        }
        symptoms
    }

    /// Links to the evidence the bundle holds, one a line.
    fn evidence(&self) -> Vec<String> {
        let f = &self.facts;
        let mut links: Vec<String> = Vec::new();
        if let Some(dump) = &f.dump {
            links.push(format!("[SQL dump]({dump})"));
        }
        links.push(format!(
            "integrity_check: {}",
            if f.integrity.is_empty() { "not run".into() } else { f.integrity.join("; ") }
        ));
        if self.tree.fs.is_file(&self.dir.join("alembic-current.txt")) {
            links.push(
                "[alembic current](alembic-current.txt), [alembic history](alembic-history.txt)"
                    .into(),
            );
        }
        links.push(format!("{} migration files in [migrations/](migrations/)", f.migrations.len()));
        links.push(format!("{} config and critical files in [files/](files/)", f.files.len()));
        for diff in &f.diffs {
            links.push(if diff.ends_with(".diff") {
                format!("[{diff}]({diff})")
            } else {
                diff.clone()
            });
        }
        for change in &f.worktree_changes {
            if self.tree.fs.is_file(&self.dir.join("worktree").join(change)) {
                links.push(format!("uncommitted change to {change} (kept in worktree/)"));
            } else {
                links.push(format!("{change} was deleted in the working tree (nothing to keep)"));
            }
        }
        links.push(f.log.clone());
        links
    }
}

/// A Markdown list, or one item saying what is missing.
fn list(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        format!("- {empty}\n")
    } else {
        items.iter().map(|i| format!("- {i}\n")).collect()
    }
}
