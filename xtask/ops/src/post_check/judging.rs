//! What post-check judges: a deploy (the migrations' head, nothing compared
//! with the backup), the last rollback (what its scenario restored; the
//! checks of what it keeps are not applicable), or, with neither, the tree
//! against its backup.
use crate::rollback::Step;
use xtask_model::check::CheckId;
use xtask_model::{
    journal::Journal,
    profile::Tree,
    scenario::{Part, Scenario},
};

/// `--after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Deploy,
    Rollback,
}

impl std::str::FromStr for After {
    type Err = String;

    fn from_str(text: &str) -> Result<After, String> {
        match text {
            "deploy" => Ok(After::Deploy),
            "rollback" => Ok(After::Rollback),
            other => Err(format!("unknown --after {other:?}: use deploy or rollback")),
        }
    }
}

/// What the checks judge, and so which of them apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judging {
    Deploy,
    /// A finished rollback of this scenario (`None`: `--after rollback`
    /// with no finished rollback on record: everything applies).
    Rollback(Option<Scenario>),
    /// Neither said nor on record: the tree against its backup.
    Backup,
}

impl Judging {
    pub fn of(tree: &Tree, after: Option<After>) -> Judging {
        match after {
            Some(After::Deploy) => Judging::Deploy,
            Some(After::Rollback) => Judging::Rollback(Journal::<Step>::last_done(tree)),
            None => Journal::<Step>::last_done(tree)
                .map_or(Judging::Backup, |s| Judging::Rollback(Some(s))),
        }
    }

    /// Why check `id` does not apply to what is judged, if it does not.
    pub fn not_judged(&self, id: CheckId) -> Option<String> {
        use CheckId::*;
        match self {
            Judging::Deploy => matches!(
                id,
                DatabaseTables
                    | MigrationsCount
                    | FilesRestored
                    | FilesExternal
                    | GitHead
                    | Forensics
            )
            .then(|| "after a deploy (--after deploy) nothing is compared with the backup".into()),
            Judging::Rollback(Some(scenario)) => {
                let judged = match id {
                    DatabaseTables | DatabaseRevision => Some(Part::Schema),
                    MigrationsCount => Some(Part::Migrations),
                    FilesRestored => Some(Part::Files),
                    GitHead => Some(Part::Code),
                    _ => None,
                };
                judged.filter(|part| !scenario.puts_back(*part)).map(|_| {
                    format!("the last rollback was --scenario {scenario}, which keeps what this check judges")
                })
            }
            Judging::Rollback(None) | Judging::Backup => None,
        }
    }

    /// For the report.
    pub fn describe(&self) -> String {
        match self {
            Judging::Deploy => "a deploy".into(),
            Judging::Rollback(Some(s)) => format!("the last rollback (--scenario {s})"),
            Judging::Rollback(None) => "a rollback (none on record: every check applies)".into(),
            Judging::Backup => "the tree against its backup".into(),
        }
    }
}
