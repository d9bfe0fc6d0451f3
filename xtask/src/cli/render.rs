//! Reports for people and machines: the human table, the JSON document of
//! the command-line contract, and JUnit XML for CI systems.
use std::{fmt::Write as _, path::Path};

use anyhow::{Context, Result};
use xtask_base::exit::{Kind, usage};
use xtask_fs::unconfined;
use xtask_model::check::{Check, Report, Status};

use super::{documents::ErrorDocument, flags::Format};

/// The report's table, then its counts and what the checks ran with.
pub fn human(report: &Report, with_time: bool) -> String {
    let mut out = table(&report.checks, with_time);
    let _ = writeln!(
        out,
        "\n{}: {} passed, {} failed, {} skipped{}",
        if report.ok() { "ok" } else { "FAILED" },
        report.passed,
        report.failed,
        report.skipped,
        if report.not_applicable > 0 {
            format!(", {} not applicable", report.not_applicable)
        } else {
            String::new()
        }
    );
    if let Some(interpreter) = &report.interpreter {
        let _ = writeln!(out, "python: {interpreter}");
    }
    if let Some(judged) = &report.judged {
        let _ = writeln!(out, "judged: {judged}");
    }
    if let Some(on) = &report.programs_ran_on {
        let _ = writeln!(out, "programs ran on: {on}");
    }
    out
}

/// `check  status  time  detail`, one row per check, detail lines indented.
pub fn table(checks: &[Check], with_time: bool) -> String {
    let id_width = checks.iter().map(|c| c.id.id().len()).max().unwrap_or(5).max(5);
    let mut out = String::new();
    let header = if with_time { "status  time     detail" } else { "status  detail" };
    let _ = writeln!(out, "{:id_width$}  {header}", "check");
    for check in checks {
        let time = if with_time { format!("{:>6}ms ", check.duration_ms) } else { String::new() };
        let mut lines = check.detail.lines();
        let first = lines.next().unwrap_or("");
        let _ = writeln!(out, "{:id_width$}  {:<6}  {time}{first}", check.id, check.status.word());
        let indent = id_width + 10 + time.len();
        for line in lines {
            let _ = writeln!(out, "{:indent$}{line}", "");
        }
    }
    out
}

/// The document of a command that stopped before its result (exit 1 to 5),
/// so that `--format json` always puts one document on stdout.
pub fn error_document(
    command: Option<&str>,
    kind: Kind,
    message: &str,
    next: Option<&str>,
) -> ErrorDocument {
    ErrorDocument {
        schema: xtask_model::check::Version,
        command: command.map(str::to_string),
        result: "error",
        exit: kind as u8,
        message: message.to_string(),
        next: next.map(str::to_string).or_else(|| next_by_kind(command, kind)),
    }
}

/// The error document of a run a termination signal stopped (exit 128 +
/// the signal: 130 for Ctrl-C).
pub fn signal_document(command: Option<&str>, code: u8, message: &str) -> ErrorDocument {
    ErrorDocument {
        schema: xtask_model::check::Version,
        command: command.map(str::to_string),
        result: "error",
        exit: code,
        message: message.to_string(),
        next: None,
    }
}

/// The way on from an error that names none: what its exit code calls for.
fn next_by_kind(command: Option<&str>, kind: Kind) -> Option<String> {
    let program = xtask_model::advice::program();
    match kind {
        Kind::Usage => Some(match command {
            Some(c) => format!("{program} {c} --help"),
            None => format!("{program} --help"),
        }),
        Kind::Locked => {
            Some("wait for the run that holds the lock to end, then run this again".into())
        }
        _ => None,
    }
}

pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report always serializes")
}

pub fn junit(report: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total_ms: u64 = report.checks.iter().map(|c| c.duration_ms).sum();
    let _ = writeln!(
        out,
        "<testsuites><testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\">",
        xml(report.command.name()),
        report.checks.len(),
        report.failed,
        // Not applicable checks are written as <skipped> too: counted so.
        report.skipped + report.not_applicable,
        total_ms as f64 / 1000.0
    );
    for check in &report.checks {
        let _ = write!(
            out,
            "  <testcase classname=\"{}\" name=\"{}: {}\" time=\"{:.3}\">",
            xml(report.command.name()),
            xml(check.id.id()),
            xml(check.title),
            check.duration_ms as f64 / 1000.0
        );
        match check.status {
            Status::Pass => {}
            Status::Fail => {
                let first = check.detail.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
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
pub fn emit(
    report: &Report,
    format: Format,
    junit_file: Option<&Path>,
    with_time: bool,
) -> Result<String> {
    if let Some(path) = junit_file {
        write_junit(path, &junit(report))?;
    }
    Ok(match format {
        Format::Human => human(report, with_time),
        Format::Json => format!("{}\n", json(report)),
    })
}

/// This run's JUnit file, held while one is written so that the file a
/// signal's last word writes never interleaves with the report's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Junit {
    NotYet,
    Written,
    /// Written for a termination signal: whatever the run still finishes
    /// (checks that failed because their programs were stopped) is not the
    /// truth of this exit.
    Signalled,
}

static JUNIT: std::sync::Mutex<Junit> = std::sync::Mutex::new(Junit::NotYet);

/// Writes the JUnit file of a report, unless a signal already ended the run.
pub fn write_junit(path: &Path, xml: &str) -> Result<()> {
    let mut state = JUNIT.lock().unwrap_or_else(|e| e.into_inner());
    if *state != Junit::Signalled {
        unconfined::write_report(path, xml.as_bytes())
            .with_context(|| format!("write JUnit XML to {}", path.display()))?;
        *state = Junit::Written;
    }
    Ok(())
}

/// Writes the JUnit file of a run that stopped before its report (a usage
/// error, even one xflags found, the lock, an interrupted run) unless the
/// run wrote one; for a termination signal (`signalled`), in any case: one
/// testcase whose `<error>` says why, with the exit code.
pub fn write_junit_error(
    path: &Path,
    command: &str,
    code: u8,
    message: &str,
    signalled: bool,
) -> Result<()> {
    let mut state = JUNIT.lock().unwrap_or_else(|e| e.into_inner());
    let wanted = match *state {
        Junit::NotYet => true,
        Junit::Written => signalled,
        Junit::Signalled => false,
    };
    if wanted {
        unconfined::write_report(path, junit_error(command, code, message).as_bytes())
            .with_context(|| format!("write JUnit XML to {}", path.display()))?;
        *state = if signalled { Junit::Signalled } else { Junit::Written };
    }
    Ok(())
}

/// The JUnit XML of a run that stopped before any check ran.
pub fn junit_error(command: &str, code: u8, message: &str) -> String {
    let first = message.lines().next().unwrap_or("");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites><testsuite name=\"{c}\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\" time=\"0.000\">\n  <testcase classname=\"{c}\" name=\"{c}: no check ran\" time=\"0.000\"><error message=\"{}\" type=\"exit {code}\">{}</error></testcase>\n</testsuite></testsuites>\n",
        xml(first),
        xml(message),
        c = xml(command)
    )
}

/// Checks, before anything runs, that a report file (`--junit`,
/// `--checklist`) can be written: its folder exists and is writable.
pub fn check_output_file(flag: &str, path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if xtask_fs::outside::is_dir(path) || !xtask_fs::sys::writable_dir(parent) {
        return Err(usage(format!(
            "{flag} {}: its folder {} does not exist or cannot be written (nothing was run)",
            path.display(),
            parent.display()
        )));
    }
    if let Some(theirs) = unconfined::foreign_owner(path) {
        return Err(usage(format!(
            "{flag} {}: that name belongs to {theirs}, and a report is never written over another user's file or link: name another path (nothing was run)",
            path.display()
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

#[cfg(test)]
mod tests {
    use xtask_model::check::{Check, CheckId, Report};

    use super::junit;

    /// Every count in the XML agrees with its elements, a failure's message
    /// is its reason's first meaningful line, and its body the whole detail.
    #[test]
    fn junit_counts_agree_with_its_elements() {
        let checks = vec![
            Check::pass(CheckId::DatabaseTables, "fine"),
            Check::fail(CheckId::DatabaseRevision, "\n  \nthe reason <here>\nmore & more"),
            Check::skip(CheckId::TestsUnit),
            Check::not_applicable(CheckId::Forensics, "no backup to compare with"),
        ];
        let xml =
            junit(&Report::new(xtask_model::check::Checker::PostCheck, "/srv/tmws".into(), checks));
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let suite = doc.descendants().find(|n| n.has_tag_name("testsuite")).unwrap();
        let count = |tag: &str| doc.descendants().filter(|n| n.has_tag_name(tag)).count();
        let attr = |name: &str| suite.attribute(name).unwrap().parse::<usize>().unwrap();
        assert_eq!(attr("tests"), count("testcase"));
        assert_eq!(attr("failures"), count("failure"));
        assert_eq!(attr("skipped"), count("skipped"));
        assert_eq!((attr("tests"), attr("failures"), attr("skipped")), (4, 1, 2));
        let failure = doc.descendants().find(|n| n.has_tag_name("failure")).unwrap();
        assert_eq!(failure.attribute("message"), Some("the reason <here>"));
        assert_eq!(failure.text(), Some("\n  \nthe reason <here>\nmore & more"));
        let case = doc.descendants().find(|n| n.has_tag_name("testcase")).unwrap();
        let name = "database.tables: tables, columns and indexes equal the backup's";
        assert_eq!(case.attribute("name"), Some(name));
    }
}
