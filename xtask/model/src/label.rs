//! A backup's name: its folder under `backups/`, its git tag, and its tag in
//! a restic repository (`label=NAME`). Checked once, when it is made, so a
//! label can never carry a `/` into a path, a `,` into restic's tag list, or
//! a name git would refuse.
use std::{borrow::Cow, fmt, ops::Deref, str::FromStr};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use xtask_base::exit::usage;

/// The label when none is given: the runbook's pre-deploy backup.
pub const PRE_DEPLOY: &str = "pre-phase4";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Label(String);

impl Label {
    /// The longest label: well below any file system's name limit, with room
    /// for the suffixes the tool adds (`.partial-PID`, `-failure-TIME-PID`).
    pub const MAX: usize = 100;

    /// A label from text, or a usage error (exit 2) that says what a label
    /// may hold.
    pub fn new(text: &str) -> anyhow::Result<Label> {
        text.parse().map_err(usage)
    }

    /// `pre-phase4`.
    pub fn pre_deploy() -> Label {
        Label(PRE_DEPLOY.to_string())
    }

    /// The given label, or the pre-deploy one.
    pub fn or_default(given: Option<&str>) -> anyhow::Result<Label> {
        given.map_or_else(|| Ok(Label::pre_deploy()), Label::new)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `text` is not a label, if it is not.
fn problem(text: &str) -> Option<&'static str> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if text.is_empty() {
        Some("it is empty")
    } else if text.chars().count() > Label::MAX {
        Some("it is longer than 100 characters")
    } else if !text.chars().all(allowed) {
        Some("it holds a character other than letters, digits, '-', '_' and '.'")
    } else if text.starts_with(['.', '-']) {
        Some("it starts with '.' or '-'")
    } else if text.contains("..") {
        Some("it contains '..'")
    } else if text.ends_with('.') || text.ends_with(".lock") {
        Some("it ends with '.' or '.lock'")
    } else {
        None
    }
}

impl FromStr for Label {
    type Err = String;

    fn from_str(text: &str) -> Result<Label, String> {
        match problem(text) {
            None => Ok(Label(text.to_string())),
            Some(why) => Err(format!(
                "invalid label {text:?}: {why}. A label names a folder under backups/ and is a valid git tag name and restic tag: letters, digits, '-', '_' and '.', at most {} characters, not starting with '.' or '-', without '..', not ending in '.' or '.lock'",
                Label::MAX
            )),
        }
    }
}

impl TryFrom<String> for Label {
    type Error = String;

    fn try_from(text: String) -> Result<Label, String> {
        text.parse()
    }
}

impl From<Label> for String {
    fn from(label: Label) -> String {
        label.0
    }
}

/// As it serializes: a string (checked when it was made).
impl JsonSchema for Label {
    fn schema_name() -> Cow<'static, str> {
        "Label".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A backup's label: its folder under backups/ and its git tag."
        })
    }
}

impl Deref for Label {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_letters_digits_dashes_underscores_and_dots() {
        for good in ["pre-phase4", "nightly", "v2.3.0", "a_b", "x".repeat(100).as_str()] {
            assert_eq!(good.parse::<Label>().map(String::from), Ok(good.to_string()));
        }
        let bad = [
            "",
            ".hidden",
            "-flag",
            "a..b",
            "a/b",
            "a\\b",
            "x.lock",
            "end.",
            "evil,label=pre-phase4",
            "sp ace",
            "tab\t",
            "ünï",
            "a@{b}",
            "a:b",
            "a~b",
            "a^b",
            "a?b",
            "a*b",
            "a[b",
        ];
        for text in bad.iter().copied().chain([&*"x".repeat(101)]) {
            let err = text.parse::<Label>().unwrap_err();
            assert!(err.starts_with("invalid label"), "{text:?}: {err}");
        }
    }

    /// Every label is a name git accepts for a tag and a name of one folder:
    /// checked over every short string of the allowed characters and a few
    /// others.
    #[test]
    fn every_label_is_a_git_tag_and_a_folder_name() {
        let alphabet = ['a', 'Z', '0', '-', '_', '.', '/', ',', '@', '{'];
        let mut texts = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = texts
                .iter()
                .flat_map(|t| alphabet.iter().map(move |c| format!("{t}{c}")))
                .collect();
            texts.extend(longer);
            texts.dedup();
        }
        let mut accepted = 0;
        for text in &texts {
            if let Ok(label) = text.parse::<Label>() {
                accepted += 1;
                let tag = format!("refs/tags/{label}");
                assert!(git2::Reference::is_valid_name(&tag), "{label:?} is no git tag name");
                assert!(!label.contains(['/', ',', '=']) && !matches!(label.as_str(), "." | ".."));
            }
        }
        assert!(accepted > 1000, "only {accepted} labels accepted");
    }

    #[test]
    fn a_label_reads_back_from_json_and_refuses_what_it_would_refuse_as_text() {
        let label: Label = serde_json::from_str("\"nightly\"").unwrap();
        assert_eq!(serde_json::to_string(&label).unwrap(), "\"nightly\"");
        assert!(serde_json::from_str::<Label>("\"a,b\"").is_err());
        assert_eq!(Label::or_default(None).unwrap().as_str(), PRE_DEPLOY);
        let err = Label::or_default(Some("a/b")).unwrap_err();
        assert_eq!(xtask_base::exit::kind_of(&err), xtask_base::exit::Kind::Usage);
    }
}
