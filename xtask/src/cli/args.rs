//! The command line as people type it, made into the one xflags parses:
//! `help` and `help COMMAND` become `--help`; the flags every command
//! shares (`-q`, `-v`, `--format`, `--root`) may come before the command's
//! name, as with git and cargo; and `--flag=value` is `--flag value`.
use std::ffi::OsString;

/// Flags every command shares, with whether each takes a value.
const SHARED: [(&str, bool); 6] = [
    ("-q", false),
    ("--quiet", false),
    ("-v", false),
    ("--verbose", false),
    ("--format", true),
    ("--root", true),
];

/// The arguments xflags is given for the ones typed.
pub fn normalize(typed: Vec<OsString>) -> Vec<OsString> {
    let args = split_equals(typed);
    let mut leading = Vec::new();
    let mut i = 0;
    while let Some(arg) = args.get(i).and_then(|a| a.to_str()) {
        let Some(&(_, takes_value)) = SHARED.iter().find(|(name, _)| *name == arg) else { break };
        let width = if takes_value { 2 } else { 1 };
        leading.extend(args[i..(i + width).min(args.len())].iter().cloned());
        i += width;
    }
    match args.get(i) {
        // Only shared flags (or nothing), or `--` before any command: xflags
        // says what is missing.
        None => args,
        Some(word) if word == "--" => args,
        // `help`, `help COMMAND`, after shared flags or not.
        Some(word) if word == "help" => match args.get(i + 1).filter(|c| *c != "help") {
            Some(command) => vec![command.clone(), "--help".into()],
            None => vec!["--help".into()],
        },
        Some(command) => {
            let mut out = vec![command.clone()];
            out.extend(leading);
            out.extend(args[i + 1..].iter().cloned());
            out
        }
    }
}

/// `--trust-owner`, which every command that takes `--root` accepts: the
/// tree of that `--root` is trusted for this run whoever owns it
/// (`xtask_model::ownership`). Taken out of the arguments here; without
/// `--root` it is a usage error.
pub fn trust_owner(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
    if !args[..end].iter().any(|a| a == "--trust-owner") {
        return Ok(args);
    }
    let Some(root) = last_value(&args, "--root") else {
        return Err("--trust-owner trusts the tree of --root: pass --root DIR with it".into());
    };
    xtask_model::ownership::trust(std::path::Path::new(&root));
    let mut kept = args;
    let mut i = 0;
    kept.retain(|a| {
        i += 1;
        !(i <= end && a == "--trust-owner")
    });
    Ok(kept)
}

/// `--flag=value` as two arguments, up to a `--` (after which nothing is a flag).
fn split_equals(typed: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(typed.len());
    let mut flags_end = false;
    for arg in typed {
        let text = arg.to_str().unwrap_or_default();
        flags_end |= text == "--";
        match text.strip_prefix("--").and_then(|rest| rest.split_once('=')) {
            Some((name, value))
                if !flags_end
                    && !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_lowercase() || c == '-') =>
            {
                out.push(format!("--{name}").into());
                out.push(value.into());
            }
            _ => out.push(arg),
        }
    }
    out
}

/// The value of `--format` among the normalized arguments, when it is json.
pub fn wants_json(args: &[OsString]) -> bool {
    args.windows(2).any(|pair| pair[0] == "--format" && pair[1] == "json")
}

/// The value of the last `flag` among the normalized arguments, up to a
/// `--`, when they have not parsed (or not yet): a value that looks like a
/// flag is none, never a file name.
pub fn last_value(args: &[OsString], flag: &str) -> Option<OsString> {
    let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let args = &args[..end];
    let at = args.iter().rposition(|a| a == flag)?;
    args.get(at + 1).filter(|v| !v.is_empty() && !v.to_string_lossy().starts_with('-')).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(line: &str) -> Vec<String> {
        let typed = line.split_whitespace().map(OsString::from).collect();
        normalize(typed).into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn shared_flags_move_after_the_command() {
        assert_eq!(norm("-q sandbox --out x"), ["sandbox", "-q", "--out", "x"]);
        assert_eq!(
            norm("--root /t --format json list -v"),
            ["list", "--root", "/t", "--format", "json", "-v"]
        );
        assert_eq!(norm("--format=json backup"), ["backup", "--format", "json"]);
        assert_eq!(norm("-q"), ["-q"]);
        // A flag of one command only stays where it is, for xflags to refuse.
        assert_eq!(norm("--yes rollback"), ["--yes", "rollback"]);
    }

    #[test]
    fn help_is_the_help_flag() {
        assert_eq!(norm("help"), ["--help"]);
        assert_eq!(norm("help backup"), ["backup", "--help"]);
        assert_eq!(norm("-q --format json help backup"), ["backup", "--help"]);
        assert_eq!(norm("help help"), ["--help"]);
        assert_eq!(norm("--format json -- list"), ["--format", "json", "--", "list"]);
    }

    #[test]
    fn equals_splits_only_flags() {
        assert_eq!(
            norm("rollback --to=abc --paths a=b"),
            ["rollback", "--to", "abc", "--paths", "a=b"]
        );
        assert!(wants_json(&normalize(vec!["--format=json".into(), "list".into()])));
    }

    #[test]
    fn a_flags_last_value_is_found_before_any_parse() {
        let value = |line: &str| {
            let typed = line.split_whitespace().map(OsString::from).collect();
            last_value(&normalize(typed), "--junit").map(|v| v.into_string().unwrap())
        };
        assert_eq!(value("post-check --bogus --junit x.xml").as_deref(), Some("x.xml"));
        assert_eq!(value("post-check --junit=a.xml --junit b.xml").as_deref(), Some("b.xml"));
        assert_eq!(value("post-check --junit --bogus"), None, "a flag is no file name");
        assert_eq!(value("post-check --junit"), None);
        assert_eq!(value("post-check -- --junit x.xml"), None, "after --, nothing is a flag");
    }
}
