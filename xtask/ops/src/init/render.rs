//! The profile init proposes, as text: each value with a comment saying
//! where it came from, in TOML that the profile loader reads back.
use std::fmt::Write as _;

use super::Found;
use xtask_model::profile::PROFILE_FILE;

/// A TOML basic string: quoted, with backslash, quote and every control
/// character escaped as TOML spells them (Rust's `{:?}` spells `\u{7}`,
/// which TOML does not read).
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A comment's text on one line.
fn comment(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

pub(super) fn render(f: &Found) -> String {
    let list = |items: &[String]| {
        let quoted: Vec<String> = items.iter().map(|i| toml_string(i)).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut out = String::new();
    let _ =
        writeln!(out, "# {PROFILE_FILE}: where this checkout keeps what the TMWS rollback tool");
    let _ = writeln!(
        out,
        "# works on. Written by `{} init`; every path is relative to",
        xtask_model::advice::program()
    );
    let _ = writeln!(out, "# this folder. Commit it with the checkout.\n");
    let _ = writeln!(
        out,
        "# The service's name in reports and bundles, from {}.",
        comment(&f.service.1)
    );
    let _ = writeln!(out, "service = {}", toml_string(&f.service.0));
    let _ = writeln!(out, "# The pre-deploy backup's label: {}.", comment(&f.label.1));
    let _ = writeln!(out, "label = {}", toml_string(&f.label.0));
    let _ = writeln!(out, "# From {}.", comment(&f.database.1));
    let _ = writeln!(out, "database = {}", toml_string(&f.database.0));
    let _ = writeln!(
        out,
        "# Set for alembic, pytest and the server to this database: {}.",
        comment(&f.url_env.1)
    );
    let _ = writeln!(out, "database_url_env = {}", toml_string(&f.url_env.0));
    let _ = writeln!(out, "alembic_ini = {}", toml_string(&f.alembic_ini));
    let _ = writeln!(out, "# From {}.", comment(&f.migrations.1));
    let folders: Vec<String> = f.migrations.0.iter().map(String::from).collect();
    let value = if f.migrations.0.several() { list(&folders) } else { toml_string(&folders[0]) };
    let _ = writeln!(out, "migrations = {value}");
    let _ = writeln!(out, "config_files = {}", list(&f.config_files));
    let _ = writeln!(out, "# The runbook's critical files that exist in this checkout.");
    let _ = writeln!(out, "critical_files = {}", list(&f.critical_files));
    let _ = writeln!(out, "critical_modules = {}", list(&f.critical_modules));
    let _ = writeln!(
        out,
        "# The runbook's test files that exist, else the test folders; a test under a\n# folder named like *integration* counts as an integration test."
    );
    let _ = writeln!(out, "test_files = {}", list(&f.test_files));
    let _ = writeln!(out, "# From {}.", comment(&f.app.1));
    let _ = writeln!(out, "app = {}", toml_string(&f.app.0));
    let _ = writeln!(out, "# From {}.", comment(&f.health.1));
    let _ = writeln!(out, "health_path = {}", toml_string(&f.health.0));
    let outside = &f.external;
    if !outside.named.is_empty() {
        let _ = writeln!(
            out,
            "# Files outside the tree, backed up and kept; restored with --external."
        );
        let _ = writeln!(out, "# {}.", comment(&outside.from));
        let _ = writeln!(out, "external_files = {}", list(&outside.named));
    }
    for (path, why) in &outside.left_out {
        let _ = writeln!(
            out,
            "# Also read as the app started, not named in external_files: {}",
            comment(path)
        );
        let _ = writeln!(out, "# ({}).", comment(why));
    }
    out
}
