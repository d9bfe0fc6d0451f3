//! The command line as people meet it, around xflags (the one definition of
//! the flags): the overview with exit codes, one command's help with its
//! examples, `--version`, and a mistyped word answered with the closest
//! valid one and a pointer to `--help`.
use std::ffi::OsString;

use super::flags;

/// Exit codes of every command, as `--help` shows them.
const EXIT_CODES: &str = "EXIT CODES:
    0  done; every check passed
    1  a check failed, or the operation failed (it says what to do next)
    2  usage or configuration error, bad input (nothing was changed)
    3  another run holds the lock
    4  refused as unsafe: an unverified backup, a service still running, no --yes without a terminal
    5  an earlier run was interrupted or failed: --resume it or --abandon it
  130  interrupted by Ctrl-C (the next rollback exits 5 and says how to go on)
";

/// Two or three examples per command.
fn examples(command: &str) -> &'static str {
    match command {
        "sandbox" => {
            "    cargo xtask sandbox --out /tmp/tmws --stage phase4\n    cargo xtask sandbox --out /tmp/tmws --dry-run\n"
        }
        "backup" => {
            "    cargo xtask backup --root /srv/tmws\n    cargo xtask backup --root /srv/tmws --label pre-phase5 --dry-run --format json\n"
        }
        "verify-backup" => {
            "    cargo xtask verify-backup --root /srv/tmws\n    cargo xtask verify-backup --backup /mnt/copy/pre-phase4 --junit verify.xml\n"
        }
        "rollback" => {
            "    cargo xtask rollback --root /srv/tmws --scenario database --dry-run\n    cargo xtask rollback --root /srv/tmws --scenario complete --yes\n    cargo xtask rollback --root /srv/tmws --scenario complete --resume --yes\n"
        }
        "post-check" => {
            "    cargo xtask post-check --root /srv/tmws --junit post-check.xml\n    cargo xtask post-check --expect-revision head --skip forensics\n"
        }
        "forensics" => {
            "    cargo xtask forensics --root /srv/tmws\n    cargo xtask forensics --dry-run --format json\n"
        }
        "diagnose" => {
            "    cargo xtask diagnose --root /srv/tmws\n    cargo xtask diagnose --expect-commit v2.3.0 --format json\n"
        }
        "drill" => {
            "    cargo xtask drill\n    cargo xtask drill --scenario migration --keep /tmp/drill\n"
        }
        "init" => {
            "    cargo xtask init --root /srv/tmws --dry-run\n    cargo xtask init --root /srv/tmws\n"
        }
        "list" => "    cargo xtask list --root /srv/tmws\n    cargo xtask list --format json\n",
        "prune" => {
            "    cargo xtask prune --keep 3 --dry-run                              # backups/\n    cargo xtask prune --keep 3 --repo /mnt/offsite/tmws --yes         # the repository only\n    cargo xtask prune --keep 3 --local --repo /mnt/offsite/tmws --yes # both\n"
        }
        "push" => {
            "    RESTIC_PASSWORD_FILE=~/.restic-pw cargo xtask push --repo /mnt/offsite/tmws\n    cargo xtask push --label pre-phase4 --repo rest:http://127.0.0.1:8000/\n"
        }
        "pull" => {
            "    RESTIC_PASSWORD_FILE=~/.restic-pw cargo xtask pull --repo /mnt/offsite/tmws\n    cargo xtask pull --label pre-phase4 --repo rest:http://127.0.0.1:8000/\n"
        }
        "bench" => {
            "    cargo xtask bench --sizes 1GiB --runs 5\n    cargo xtask bench --sizes 1MiB --runs 1 --out /tmp/bench\n"
        }
        "test" => {
            "    cargo xtask test\n    cargo xtask test --profile ci\n    cargo xtask test rollback::crash\n"
        }
        _ => "",
    }
}

/// The commands and their one-line descriptions, from xflags' help text.
fn commands(help: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = help.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let name = line.strip_prefix("xtask ")?;
            let summary = lines.get(i + 1).map(|l| l.trim().to_string()).unwrap_or_default();
            Some((name.trim().to_string(), summary))
        })
        .collect()
}

/// One command's section of xflags' help text.
fn section<'a>(help: &'a str, command: &str) -> Option<&'a str> {
    let start = help.find(&format!("\nxtask {command}\n"))? + 1;
    let rest = &help[start..];
    let end = rest[1..].find("\nxtask ").map_or(rest.len(), |e| e + 1);
    Some(&rest[..end])
}

/// The text to print for `--help`, as the arguments asked for it.
pub fn help(full: &str, args: &[OsString]) -> String {
    let list = commands(full);
    let asked =
        args.iter().filter_map(|a| a.to_str()).find(|a| list.iter().any(|(name, _)| name == a));
    match asked.and_then(|command| Some((command, section(full, command)?))) {
        Some((command, text)) => {
            format!("cargo {}\n\nEXAMPLES:\n{}\n{EXIT_CODES}", text.trim_end(), examples(command))
        }
        None => {
            let width = list.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
            let mut out = String::from(
                "cargo xtask: safe, checked commands for the TMWS Phase 4 rollback runbook.\n\nUSAGE:\n    cargo xtask COMMAND [FLAGS]    (cargo xtask help COMMAND for its flags and examples)\n    cargo xtask [-q|-v] [--format json] [--root DIR] COMMAND [FLAGS]\n    cargo xtask --version\n\nThe tree: --root DIR, else TMWS_ROOT, else the current folder or the nearest\nabove it that holds tmws-rollback.toml (else alembic.ini).\n\nCOMMANDS:\n",
            );
            for (name, summary) in &list {
                out.push_str(&format!("    {name:width$}  {summary}\n"));
            }
            out.push('\n');
            out.push_str(EXIT_CODES);
            out
        }
    }
}

/// `--version`: the tool's, the bundled SQLite's and libgit2's, and the
/// kernel's confinement of the programs it runs.
pub fn version() -> String {
    let (major, minor, patch) = git2::Version::get().libgit2_version();
    let landlock = match xtask_fs::sys::landlock_abi() {
        Some(abi) => format!("Landlock ABI {abi}: the programs it runs are confined"),
        None => "no Landlock in this kernel: the programs it runs are not confined".into(),
    };
    format!(
        "{} {} (SQLite {}, libgit2 {major}.{minor}.{patch}; {landlock})",
        xtask_model::advice::program().trim_start_matches("cargo "),
        env!("CARGO_PKG_VERSION"),
        rusqlite::version()
    )
}

/// The command the arguments name, if any.
pub fn command_in(args: &[OsString]) -> Option<String> {
    let list = commands(&full_help());
    args.iter()
        .filter_map(|a| a.to_str())
        .find(|a| list.iter().any(|(name, _)| name == a))
        .map(str::to_string)
}

/// Whether `command` has `flag` (`--junit`), as its help lists its flags.
pub fn takes_flag(command: &str, flag: &str) -> bool {
    let full = full_help();
    section(&full, command).is_some_and(|text| {
        text.lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with('-'))
            .any(|l| l.split([' ', ',']).any(|word| word == flag))
    })
}

/// A usage error, with the closest valid word when there is one.
pub fn usage_error(full: &str, args: &[OsString], err: &str) -> String {
    let list = commands(full);
    let word = err.split(['"', '`']).nth(1).map(str::to_string).unwrap_or_default();
    let command =
        args.iter().filter_map(|a| a.to_str()).find(|a| list.iter().any(|(name, _)| name == a));
    let candidates: Vec<String> = match command {
        Some(command) if word.starts_with('-') => section(full, command)
            .map(|text| {
                text.lines()
                    .filter_map(|l| l.trim().split([' ', ',']).find(|w| w.starts_with("--")))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        _ => list.iter().map(|(name, _)| name.clone()).collect(),
    };
    // Only a word that was not understood gets a suggestion, not a value
    // that a flag could not parse (its message lists the valid values).
    let unknown = err.starts_with("unexpected");
    let closest = candidates
        .iter()
        .filter(|_| unknown)
        .map(|c| (distance(&word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone());
    let hint = match closest {
        Some(c) => format!("\n  did you mean `{c}`?"),
        None => String::new(),
    };
    let more = match command {
        Some(c) => format!("cargo xtask {c} --help"),
        None => "cargo xtask --help".into(),
    };
    format!("error: {err}{hint}\n  try `{more}`")
}

/// Levenshtein distance, for suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb)).min(row[j] + 1).min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

/// xflags' full help text (it is what `--help` makes it return).
pub fn full_help() -> String {
    match flags::Xtask::from_vec(vec!["--help".into()]) {
        Err(err) => err.to_string(),
        Ok(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn suggests_the_closest_command() {
        assert_eq!(super::distance("rolback", "rollback"), 1);
        let help = super::full_help();
        let message =
            super::usage_error(&help, &["rolback".into()], "unexpected argument: \"rolback\"");
        assert!(message.contains("did you mean `rollback`?"), "{message}");
        assert!(message.contains("cargo xtask --help"), "{message}");
    }

    #[test]
    fn the_commands_that_take_junit_are_found_in_the_help() {
        assert!(super::takes_flag("post-check", "--junit"));
        assert!(super::takes_flag("verify-backup", "--junit"));
        assert!(!super::takes_flag("backup", "--junit"));
        assert!(!super::takes_flag("no-such-command", "--junit"));
    }
}
