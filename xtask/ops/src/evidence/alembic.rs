//! alembic's view of the failed state in the bundle: `alembic current` and
//! `alembic history`, run in one Python process beside the other work.
use std::path::Path;

use xshell::Shell;

use super::Bundle;
use xtask_adapters::python::Python;
use xtask_fs::files;
use xtask_model::{migrations::revisions_in, profile::Tree};

/// What one alembic call left: the text kept in the bundle, and alembic's
/// stdout when it succeeded.
type AlembicAnswer = (String, Option<String>);

/// `alembic current` and `alembic history`, running in one Python process.
pub struct AlembicRuns {
    /// Each file's name, text, and alembic's stdout when it succeeded.
    runs: std::thread::JoinHandle<Vec<(&'static str, AlembicAnswer)>>,
    /// `alembic current` reads the preserved database, not the tree's.
    preserved: bool,
}

impl Bundle {
    /// Starts `alembic current` and `alembic history` in the background
    /// (each is mostly Python start-up); `finish_alembic` keeps their output.
    /// Without `preserved`, they read the tree's database, so they must finish
    /// before it is moved. With `preserved` (a moved database in this bundle)
    /// `alembic current` reads that file, read-only, through the URL variable
    /// of the profile, and may run while the tree's database is restored.
    pub fn start_alembic(
        &self,
        python: &Python,
        tree: &Tree,
        preserved: Option<&Path>,
    ) -> AlembicRuns {
        let url_env = &tree.profile.database_url_env;
        let current_env: Vec<(String, String)> = match preserved {
            Some(db) if !url_env.is_empty() => {
                vec![(url_env.clone(), format!("sqlite:///file:{}?mode=ro&uri=true", db.display()))]
            }
            _ => Vec::new(),
        };
        const FILES: [(&str, &str); 2] =
            [("alembic-current.txt", "current"), ("alembic-history.txt", "history")];
        let (python, tree) = (python.clone(), tree.clone());
        let runs = std::thread::spawn(move || {
            let no_env = Vec::new();
            let commands: [xtask_adapters::python::AlembicCommand<'_>; 2] =
                [(&["current"], &current_env), (&["history"], &no_env)];
            let outs = Shell::new()
                .map_err(anyhow::Error::from)
                .and_then(|sh| python.alembic_each(&sh, &tree, &commands));
            FILES
                .iter()
                .enumerate()
                .map(|(i, (name, arg))| {
                    let answer = match &outs {
                        Ok(outs) => (
                            format!(
                                "$ alembic {arg}\n({})\n{}{}",
                                outs[i].describe_status(),
                                outs[i].stdout,
                                outs[i].stderr
                            ),
                            outs[i].success().then(|| outs[i].stdout.clone()),
                        ),
                        Err(err) => (format!("alembic {arg} could not run: {err:#}\n"), None),
                    };
                    (*name, answer)
                })
                .collect()
        });
        AlembicRuns { runs, preserved: preserved.is_some() }
    }

    pub fn finish_alembic(&mut self, runs: AlembicRuns) {
        let answers = runs.runs.join().unwrap_or_else(|_| {
            let lost = || ("alembic could not run\n".to_string(), None);
            vec![("alembic-current.txt", lost()), ("alembic-history.txt", lost())]
        });
        for (name, (text, stdout)) in answers {
            if name == "alembic-current.txt" && runs.preserved {
                // It must have read the preserved database, not the restored one.
                let graph = self.tree.graph().unwrap_or_default();
                let said = revisions_in(stdout.as_deref().unwrap_or(""), &graph);
                let mut expected = self.facts.database_revision.clone();
                expected.sort();
                if said != expected {
                    self.facts.problems.push(format!(
                        "alembic current reported {said:?} for the preserved database at {expected:?}: check that migrations/env.py reads its URL from the profile's database_url_env"
                    ));
                }
            }
            if let Err(err) =
                files::write_atomic(&self.tree.fs, &self.dir.join(name), text.as_bytes())
            {
                self.facts.problems.push(format!("{name}: {err:#}"));
            }
        }
    }
}
