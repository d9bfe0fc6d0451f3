//! Checks and their reports: the human table, the JSON document of the
//! command-line contract, and JUnit XML for CI systems.
use std::{fmt::Write as _, path::Path, time::Instant};

use anyhow::{Context, Result};
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

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: String,
    pub title: String,
    pub status: Status,
    pub detail: String,
    pub duration_ms: u64,
}

impl Check {
    pub fn pass(id: &str, title: &str, detail: impl Into<String>) -> Check {
        Check::new(id, title, Status::Pass, detail.into())
    }

    pub fn fail(id: &str, title: &str, detail: impl Into<String>) -> Check {
        Check::new(id, title, Status::Fail, detail.into())
    }

    pub fn skip(id: &str, title: &str) -> Check {
        Check::new(id, title, Status::Skip, "skipped by --skip".into())
    }

    pub fn not_applicable(id: &str, title: &str, why: impl Into<String>) -> Check {
        Check::new(id, title, Status::NotApplicable, format!("not applicable: {}", why.into()))
    }

    /// Pass when `ok`, fail otherwise, with the same detail.
    pub fn from(id: &str, title: &str, ok: bool, detail: impl Into<String>) -> Check {
        Check::new(id, title, if ok { Status::Pass } else { Status::Fail }, detail.into())
    }

    fn new(id: &str, title: &str, status: Status, detail: String) -> Check {
        Check { id: id.into(), title: title.into(), status, detail, duration_ms: 0 }
    }

    /// Passes with `ok_detail` when there is no problem, else fails with the
    /// problems, one a line.
    pub fn unless(
        id: &str,
        title: &str,
        problems: &[String],
        ok_detail: impl Into<String>,
    ) -> Check {
        if problems.is_empty() {
            Check::pass(id, title, ok_detail)
        } else {
            Check::fail(id, title, problems.join("\n"))
        }
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

    /// `check  status  time  detail`, one row per check, detail lines indented.
    pub fn human(&self, with_time: bool) -> String {
        let id_width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(5).max(5);
        let mut out = String::new();
        let header = if with_time { "status  time     detail" } else { "status  detail" };
        let _ = writeln!(out, "{:id_width$}  {header}", "check");
        for check in &self.checks {
            let time =
                if with_time { format!("{:>6}ms ", check.duration_ms) } else { String::new() };
            let mut lines = check.detail.lines();
            let first = lines.next().unwrap_or("");
            let _ =
                writeln!(out, "{:id_width$}  {:<6}  {time}{first}", check.id, check.status.word());
            let indent = id_width + 10 + time.len();
            for line in lines {
                let _ = writeln!(out, "{:indent$}{line}", "");
            }
        }
        let _ = writeln!(
            out,
            "\n{}: {} passed, {} failed, {} skipped{}",
            if self.ok() { "ok" } else { "FAILED" },
            self.passed,
            self.failed,
            self.skipped,
            if self.not_applicable > 0 {
                format!(", {} not applicable", self.not_applicable)
            } else {
                String::new()
            }
        );
        if let Some(interpreter) = &self.interpreter {
            let _ = writeln!(out, "python: {interpreter}");
        }
        out
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    pub fn junit(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let total_ms: u64 = self.checks.iter().map(|c| c.duration_ms).sum();
        let _ = writeln!(
            out,
            "<testsuites><testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\">",
            xml(&self.command),
            self.checks.len(),
            self.failed,
            self.skipped,
            total_ms as f64 / 1000.0
        );
        for check in &self.checks {
            let _ = write!(
                out,
                "  <testcase classname=\"{}\" name=\"{}: {}\" time=\"{:.3}\">",
                xml(&self.command),
                xml(&check.id),
                xml(&check.title),
                check.duration_ms as f64 / 1000.0
            );
            match check.status {
                Status::Pass => {}
                Status::Fail => {
                    let first = check.detail.lines().next().unwrap_or("");
                    let _ = write!(
                        out,
                        "<failure message=\"{}\">{}</failure>",
                        xml(first),
                        xml(&check.detail)
                    );
                }
                Status::Skip | Status::NotApplicable => {
                    let _ = write!(out, "<skipped message=\"{}\"/>", xml(&check.detail));
                }
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("</testsuite></testsuites>\n");
        out
    }

    /// Writes the JUnit file and returns the text for stdout in the chosen
    /// format; the command prints it.
    pub fn emit(&self, format: Format, junit: Option<&Path>, with_time: bool) -> Result<String> {
        if let Some(path) = junit {
            std::fs::write(path, self.junit())
                .with_context(|| format!("write JUnit XML to {}", path.display()))?;
        }
        Ok(match format {
            Format::Human => self.human(with_time),
            Format::Json => format!("{}\n", self.json()),
        })
    }
}

/// Passes a result through; when it is an error and `--junit` was given,
/// first writes a JUnit file with one `<error>` that says why no check ran
/// (a usage error, the lock, an interrupted run), so CI always has a file.
pub fn or_junit_error<T>(result: Result<T>, command: &str, junit: Option<&Path>) -> Result<T> {
    let (err, path) = match (result, junit) {
        (Err(err), Some(path)) => (err, path),
        (result, _) => return result,
    };
    {
        let message = format!("{err:#}");
        let first = message.lines().next().unwrap_or("");
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites><testsuite name=\"{c}\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\" time=\"0.000\">\n  <testcase classname=\"{c}\" name=\"{c}: no check ran\" time=\"0.000\"><error message=\"{}\" type=\"exit {}\">{}</error></testcase>\n</testsuite></testsuites>\n",
            xml(first),
            crate::exit::code_of(&err),
            xml(&message),
            c = xml(command)
        );
        if let Err(write) = std::fs::write(path, xml) {
            let note = format!("the JUnit file {} could not be written: {write}", path.display());
            return Err(err.context(note));
        }
    }
    Err(err)
}

/// Checks, before anything runs, that a report file (`--junit`,
/// `--checklist`) can be written: its folder exists and is writable.
pub fn check_output_file(flag: &str, path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if path.is_dir() || !crate::sys::writable_dir(parent) {
        return Err(crate::exit::usage(format!(
            "{flag} {}: its folder {} does not exist or cannot be written (nothing was run)",
            path.display(),
            parent.display()
        )));
    }
    Ok(())
}

pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// `--format`: a table for people, or one JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Human,
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Format, String> {
        match text {
            "human" => Ok(Format::Human),
            "json" => Ok(Format::Json),
            other => Err(format!("unknown --format {other:?}: use human or json")),
        }
    }
}
