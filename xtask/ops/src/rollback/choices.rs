//! What a rollback is asked for, one type per scenario: a flag a scenario
//! does not take has no field to go in, so it cannot reach the plan. The
//! command line's flags are read for one scenario by `Flags::for_scenario`,
//! which refuses every flag that scenario does not take (exit 2), and every
//! combination it cannot run (exit 2, or 4 for a destructive flag alone).
//!
//! ```compile_fail,E0559
//! use xtask_ops::rollback::Choices;
//! // The database row takes no paths: there is nowhere to put them.
//! let _ = Choices::Database { paths: vec![] };
//! ```
use anyhow::Result;

use xtask_base::exit::{refused, usage};
use xtask_model::scenario::Scenario;

/// How far a migration rollback goes down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Down {
    /// To the backup's revision.
    Backup,
    /// `--to REV` (or `base`).
    To(String),
    /// `--steps N`, following single parents.
    Steps(u32),
}

/// How the git row moves the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitMove {
    /// A branch at the backup's tag; `force` moves the code even when the
    /// database is ahead of it.
    Tag { force: bool },
    /// `--commit REV`: a soft reset (changes stay staged).
    Soft { commit: String },
    /// `--commit REV --hard --force`: the discarded HEAD kept as a ref.
    Hard { commit: String },
    /// `--from REV --paths P...`: files restored from a commit.
    Paths { from: String, paths: Vec<String> },
}

/// A scenario with what it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choices {
    Database,
    Migration {
        down: Down,
        allow_data_loss: bool,
    },
    /// `paths` empty: every critical file that changed beside the deploy's
    /// commits (`all`: those the commits changed too).
    Files {
        paths: Vec<String>,
        all: bool,
    },
    /// `external`: the files outside the tree too (`--external`).
    Complete {
        external: bool,
    },
    Git(GitMove),
}

impl Choices {
    pub fn scenario(&self) -> Scenario {
        match self {
            Choices::Database => Scenario::Database,
            Choices::Migration { .. } => Scenario::Migration,
            Choices::Files { .. } => Scenario::Files,
            Choices::Complete { .. } => Scenario::Complete,
            Choices::Git(_) => Scenario::Git,
        }
    }

    /// The choices a scenario has when none is given (a drill's, a resume's).
    pub fn plain(scenario: Scenario) -> Choices {
        Flags::default().for_scenario(scenario).expect("no flag is always a valid choice")
    }
}

/// The rollback flags as the command line gave them, not read yet.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub to: Option<String>,
    pub steps: Option<u32>,
    pub allow_data_loss: bool,
    pub paths: Vec<String>,
    pub all: bool,
    pub commit: Option<String>,
    pub hard: bool,
    pub force: bool,
    pub from: Option<String>,
    pub external: bool,
}

impl Flags {
    /// The names of the flags given, for a refusal.
    fn given(&self) -> Vec<&'static str> {
        let named = [
            ("--to", self.to.is_some()),
            ("--steps", self.steps.is_some()),
            ("--allow-data-loss", self.allow_data_loss),
            ("--paths", !self.paths.is_empty()),
            ("--all", self.all),
            ("--commit", self.commit.is_some()),
            ("--hard", self.hard),
            ("--force", self.force),
            ("--from", self.from.is_some()),
            ("--external", self.external),
        ];
        named.into_iter().filter(|(_, given)| *given).map(|(name, _)| name).collect()
    }

    /// Refuses every flag given that is not in `takes`, naming the scenario
    /// and what it does take.
    fn only(&self, scenario: Scenario, takes: &[&str]) -> Result<()> {
        let stray: Vec<&str> = self.given().into_iter().filter(|f| !takes.contains(f)).collect();
        if stray.is_empty() {
            return Ok(());
        }
        let takes =
            if takes.is_empty() { "no flag of its own".to_string() } else { takes.join(", ") };
        Err(usage(format!(
            "--scenario {scenario} does not take {}: it takes {takes}",
            stray.join(", ")
        )))
    }

    /// The choices of `scenario`, checked before anything else is looked at.
    pub fn for_scenario(self, scenario: Scenario) -> Result<Choices> {
        for path in &self.paths {
            xtask_fs::files::check_relative(path).map_err(|e| usage(format!("--paths: {e:#}")))?;
        }
        match scenario {
            Scenario::Database => self.only(scenario, &[]).map(|()| Choices::Database),
            Scenario::Complete => self
                .only(scenario, &["--external"])
                .map(|()| Choices::Complete { external: self.external }),
            Scenario::Files => {
                self.only(scenario, &["--paths", "--all"])?;
                Ok(Choices::Files { paths: self.paths, all: self.all })
            }
            Scenario::Migration => {
                self.only(scenario, &["--to", "--steps", "--allow-data-loss"])?;
                self.migration()
            }
            Scenario::Git => {
                self.only(scenario, &["--commit", "--hard", "--force", "--from", "--paths"])?;
                self.git().map(Choices::Git)
            }
        }
    }

    fn migration(self) -> Result<Choices> {
        let down = match (self.to, self.steps) {
            (Some(_), Some(_)) => {
                return Err(usage("--to and --steps are alternatives: give one"));
            }
            (_, Some(0)) => return Err(usage("--steps must be at least 1")),
            (Some(to), None) => Down::To(to),
            (None, Some(steps)) => Down::Steps(steps),
            (None, None) => Down::Backup,
        };
        if down == Down::To("base".into()) && !self.allow_data_loss {
            return Err(refused(
                "downgrading to base drops every table and destroys all data: it needs --allow-data-loss",
            ));
        }
        Ok(Choices::Migration { down, allow_data_loss: self.allow_data_loss })
    }

    fn git(self) -> Result<GitMove> {
        match (self.from, self.commit, self.hard) {
            (Some(_), Some(_), _) | (Some(_), _, true) => {
                Err(usage("--from restores files; --commit and --hard move HEAD: give one of them"))
            }
            (Some(_), None, false) if self.paths.is_empty() => {
                Err(usage("--from needs --paths: which files to restore from that commit"))
            }
            (Some(from), None, false) => Ok(GitMove::Paths { from, paths: self.paths }),
            (None, _, _) if !self.paths.is_empty() => Err(usage(
                "--paths with --scenario git needs --from REV: the commit to restore them from",
            )),
            (None, None, true) => Err(usage("--hard needs --commit REV: the commit to reset to")),
            (None, Some(_), true) if !self.force => Err(refused(
                "--hard discards commits and uncommitted changes: it needs --force as well",
            )),
            (None, Some(commit), true) => Ok(GitMove::Hard { commit }),
            (None, Some(_), false) if self.force => Err(usage(
                "--force goes with --hard, or alone to move only the code to the tag: not with a soft reset",
            )),
            (None, Some(commit), false) => Ok(GitMove::Soft { commit }),
            (None, None, false) => Ok(GitMove::Tag { force: self.force }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xtask_base::exit::{Kind, kind_of};

    fn read(scenario: Scenario, flags: Flags) -> Result<Choices, Kind> {
        flags.for_scenario(scenario).map_err(|e| kind_of(&e))
    }

    #[test]
    fn a_flag_a_scenario_does_not_take_is_refused() {
        let force_all = Flags { force: true, all: true, ..Default::default() };
        assert_eq!(read(Scenario::Database, force_all.clone()), Err(Kind::Usage));
        assert_eq!(read(Scenario::Complete, force_all), Err(Kind::Usage));
        let external = Flags { external: true, ..Default::default() };
        assert_eq!(read(Scenario::Files, external.clone()), Err(Kind::Usage));
        assert_eq!(read(Scenario::Complete, external), Ok(Choices::Complete { external: true }));
        let to = Flags { to: Some("x".into()), ..Default::default() };
        assert_eq!(read(Scenario::Files, to.clone()), Err(Kind::Usage));
        let paths = Flags { paths: vec!["src/x.py".into()], ..Default::default() };
        assert_eq!(read(Scenario::Database, paths.clone()), Err(Kind::Usage));
        assert_eq!(read(Scenario::Git, paths), Err(Kind::Usage), "--paths without --from");
        let err = Flags { all: true, ..Default::default() }.for_scenario(Scenario::Migration);
        let message = format!("{:#}", err.unwrap_err());
        assert!(message.contains("does not take --all: it takes --to, --steps"), "{message}");
    }

    #[test]
    fn each_scenario_reads_its_own_flags() {
        assert_eq!(
            read(Scenario::Migration, Flags::default()),
            Ok(Choices::plain(Scenario::Migration))
        );
        let both = Flags { to: Some("x".into()), steps: Some(1), ..Default::default() };
        assert_eq!(read(Scenario::Migration, both), Err(Kind::Usage));
        let zero = Flags { steps: Some(0), ..Default::default() };
        assert_eq!(read(Scenario::Migration, zero), Err(Kind::Usage));
        let base = Flags { to: Some("base".into()), ..Default::default() };
        assert_eq!(read(Scenario::Migration, base.clone()), Err(Kind::Unsafe));
        let allowed = Flags { allow_data_loss: true, ..base };
        assert!(read(Scenario::Migration, allowed).is_ok());
        let hard = Flags { hard: true, commit: Some("HEAD".into()), ..Default::default() };
        assert_eq!(read(Scenario::Git, hard.clone()), Err(Kind::Unsafe), "--hard without --force");
        let forced = Flags { force: true, ..hard };
        assert_eq!(
            read(Scenario::Git, forced),
            Ok(Choices::Git(GitMove::Hard { commit: "HEAD".into() }))
        );
        let from = Flags { from: Some("HEAD".into()), ..Default::default() };
        assert_eq!(read(Scenario::Git, from), Err(Kind::Usage), "--from without --paths");
        let climbs = Flags { paths: vec!["../x".into()], ..Default::default() };
        assert_eq!(read(Scenario::Files, climbs), Err(Kind::Usage));
        let tag = Flags { force: true, ..Default::default() };
        assert_eq!(read(Scenario::Git, tag), Ok(Choices::Git(GitMove::Tag { force: true })));
    }
}
