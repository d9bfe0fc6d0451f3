//! Checks and their reports, as data: each check's id, title, status and
//! detail, and a command's report of them (`cli::render` draws them as a
//! table, JSON or JUnit XML).
use std::time::Instant;

use serde::Serialize;

/// The version of the JSON documents this tool prints. Version 2 added the
/// `not_applicable` status and the `interpreter` of a report.
pub const SCHEMA: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Only when the user skipped the check by name.
    Skip,
    /// The check has nothing to look at here (no backup to compare with, no
    /// integration test configured); the detail says why. Not a failure.
    #[serde(rename = "not_applicable")]
    NotApplicable,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
            Status::NotApplicable => "n/a",
        }
    }
}

/// Names a check: its id and its title, fixed together, so that no check is
/// made with an id that does not exist (a typo does not compile).
pub trait CheckId: Copy + 'static {
    /// `database.integrity`: the part before the dot is its group.
    fn id(self) -> &'static str;
    fn title(self) -> &'static str;
}

/// Declares the checks of a command as an enum: each variant with its id and
/// its title, in report order (`ALL`).
#[macro_export]
macro_rules! check_ids {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $id:literal, $title:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            /// Every check, in report order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];
        }

        impl $crate::check::CheckId for $name {
            fn id(self) -> &'static str {
                match self {
                    $($name::$variant => $id,)*
                }
            }

            fn title(self) -> &'static str {
                match self {
                    $($name::$variant => $title,)*
                }
            }
        }
    };
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub title: &'static str,
    pub status: Status,
    pub detail: String,
    pub duration_ms: u64,
}

impl Check {
    pub fn pass(id: impl CheckId, detail: impl Into<String>) -> Check {
        Check::new(id, Status::Pass, detail.into())
    }

    pub fn fail(id: impl CheckId, detail: impl Into<String>) -> Check {
        Check::new(id, Status::Fail, detail.into())
    }

    pub fn skip(id: impl CheckId) -> Check {
        Check::new(id, Status::Skip, "skipped by --skip".into())
    }

    pub fn not_applicable(id: impl CheckId, why: impl Into<String>) -> Check {
        Check::new(id, Status::NotApplicable, format!("not applicable: {}", why.into()))
    }

    /// Pass when `ok`, fail otherwise, with the same detail.
    pub fn from(id: impl CheckId, ok: bool, detail: impl Into<String>) -> Check {
        Check::new(id, if ok { Status::Pass } else { Status::Fail }, detail.into())
    }

    /// Passes with `ok_detail` when there is no problem, else fails with the
    /// problems, one a line.
    pub fn unless(id: impl CheckId, problems: &[String], ok_detail: impl Into<String>) -> Check {
        if problems.is_empty() {
            Check::pass(id, ok_detail)
        } else {
            Check::fail(id, problems.join("\n"))
        }
    }

    /// The outcome of a check that could run or not: its error is the
    /// failure's detail.
    pub fn of(id: impl CheckId, outcome: anyhow::Result<Check>) -> Check {
        outcome.unwrap_or_else(|err| Check::fail(id, format!("{err:#}")))
    }

    fn new(id: impl CheckId, status: Status, detail: String) -> Check {
        Check { id: id.id(), title: id.title(), status, detail, duration_ms: 0 }
    }

    /// Times a check: its duration is the time since `started`.
    pub fn since(mut self, started: Instant) -> Check {
        self.duration_ms = started.elapsed().as_millis() as u64;
        self
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: u32,
    pub command: String,
    pub target: String,
    pub result: Status,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub not_applicable: usize,
    /// The Python interpreter the checks ran, and why it was chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// Where the tree's programs ran: a scratch copy (and what it cost), or
    /// the live tree (`--live`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub programs_ran_on: Option<String>,
    /// What post-check judged: a deploy, the last rollback, or the tree
    /// against its backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judged: Option<String>,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(command: &str, target: String, checks: Vec<Check>) -> Report {
        let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
        let (passed, failed, skipped, not_applicable) = (
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Skip),
            count(Status::NotApplicable),
        );
        let result = if failed == 0 { Status::Pass } else { Status::Fail };
        Report {
            schema: SCHEMA,
            command: command.into(),
            target,
            result,
            passed,
            failed,
            skipped,
            not_applicable,
            interpreter: None,
            programs_ran_on: None,
            judged: None,
            checks,
        }
    }

    pub fn ok(&self) -> bool {
        self.result == Status::Pass
    }

    /// `id: first line of the detail` for each failed check.
    pub fn failures(&self) -> Vec<String> {
        let failed = self.checks.iter().filter(|c| c.status == Status::Fail);
        failed.map(|c| format!("{}: {}", c.id, c.detail.lines().next().unwrap_or(""))).collect()
    }
}
