//! The rows of the runbook's decision matrix as data: what each one puts
//! back as the backup has it (the plan's steps, post-check's "not
//! applicable" and the drill's breakage read it), and what diagnose
//! recommends.
use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A row of the runbook's decision matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    Database,
    Migration,
    Files,
    Complete,
    Git,
}

/// A part of the tree that a rollback may put back as the backup has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The database's rows.
    Rows,
    /// The database's revision and schema.
    Schema,
    /// The revision files of the migrations folder.
    Migrations,
    /// The config files (pyproject.toml, .env.example, alembic.ini).
    Config,
    /// The critical files.
    Files,
    /// The commit checked out.
    Code,
}

impl Scenario {
    /// What a rollback of this row puts back; the rest stays as it is.
    pub fn restores(self) -> &'static [Part] {
        use Part::*;
        match self {
            Scenario::Database => &[Rows, Schema],
            Scenario::Migration => &[Schema],
            Scenario::Files => &[Files],
            Scenario::Complete => &[Rows, Schema, Migrations, Config, Files, Code],
            // The code moves to the tag's commit: its migrations, config
            // and critical files with it; the database stays.
            Scenario::Git => &[Migrations, Config, Files, Code],
        }
    }

    /// The parts whose damage makes this row the one to take: what it puts
    /// back that no narrower row does (a row whose parts are a strict
    /// subset of its own). `git` puts the critical files back too, but a
    /// broken critical file alone is the `files` row's; `database` puts
    /// the schema back too, but that alone is the `migration` row's. A
    /// row that every narrower row covers (`complete`) takes what each of
    /// them defines at once. The drill breaks a sandbox this way.
    pub fn defining_parts(self) -> Vec<Part> {
        let own = self.restores();
        let narrower: Vec<Scenario> = Scenario::ALL
            .into_iter()
            .filter(|other| {
                let theirs = other.restores();
                *other != self
                    && theirs.len() < own.len()
                    && theirs.iter().all(|part| own.contains(part))
            })
            .collect();
        let alone: Vec<Part> = own
            .iter()
            .copied()
            .filter(|part| !narrower.iter().any(|other| other.puts_back(*part)))
            .collect();
        if !alone.is_empty() {
            return alone;
        }
        let mut parts: Vec<Part> = Vec::new();
        for part in narrower.into_iter().flat_map(Scenario::defining_parts) {
            if !parts.contains(&part) {
                parts.push(part);
            }
        }
        parts
    }

    /// Whether a rollback of this row puts `part` back.
    pub fn puts_back(self, part: Part) -> bool {
        self.restores().contains(&part)
    }

    pub const ALL: [Scenario; 5] = [
        Scenario::Database,
        Scenario::Migration,
        Scenario::Files,
        Scenario::Complete,
        Scenario::Git,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Database => "database",
            Scenario::Migration => "migration",
            Scenario::Files => "files",
            Scenario::Complete => "complete",
            Scenario::Git => "git",
        }
    }

    /// The runbook's estimate for this row, in minutes.
    pub fn runbook_minutes(self) -> u32 {
        match self {
            Scenario::Database => 2,
            Scenario::Migration => 3,
            Scenario::Files => 1,
            Scenario::Complete => 5,
            Scenario::Git => 2,
        }
    }
}

impl std::str::FromStr for Scenario {
    type Err = String;

    fn from_str(text: &str) -> Result<Scenario, String> {
        Scenario::ALL.into_iter().find(|s| s.name() == text).ok_or_else(|| {
            format!("unknown --scenario {text:?}: use database, migration, files, complete or git")
        })
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What diagnose recommends for a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recommendation {
    /// Nothing to roll back.
    Healthy,
    /// This row of the matrix.
    Rollback(Scenario),
    /// The interpreter lacks what unchanged code imports: no row applies.
    Environment,
    /// An earlier rollback is unfinished: resume or abandon it first.
    Resume,
    /// Something is wrong, and no rollback's dry run changes it: the
    /// evidence says what, for a person to mend.
    Manual,
}

impl Recommendation {
    /// The word of the JSON document: `healthy`, a scenario, `environment`,
    /// `resume` or `manual`.
    pub fn word(self) -> &'static str {
        match self {
            Recommendation::Healthy => "healthy",
            Recommendation::Rollback(scenario) => scenario.name(),
            Recommendation::Environment => "environment",
            Recommendation::Resume => "resume",
            Recommendation::Manual => "manual",
        }
    }
}

impl Serialize for Recommendation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.word())
    }
}

/// As it serializes: one of its words.
impl JsonSchema for Recommendation {
    fn schema_name() -> Cow<'static, str> {
        "Recommendation".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let every = [Recommendation::Healthy]
            .into_iter()
            .chain(Scenario::ALL.map(Recommendation::Rollback))
            .chain([Recommendation::Environment, Recommendation::Resume, Recommendation::Manual]);
        let words: Vec<&str> = every.map(Recommendation::word).collect();
        json_schema!({
            "type": "string",
            "enum": words,
            "description": "healthy (nothing to roll back), a row of the decision matrix, environment (the interpreter lacks what unchanged code imports) resume (an earlier rollback is unfinished) or manual (something is wrong that no rollback changes)."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_row_is_defined_by_what_no_narrower_row_puts_back() {
        use Part::*;
        let defining = |s: Scenario| {
            let mut parts = s.defining_parts();
            parts.sort_by_key(|p| *p as u8);
            parts
        };
        assert_eq!(defining(Scenario::Database), [Rows]);
        assert_eq!(defining(Scenario::Migration), [Schema]);
        assert_eq!(defining(Scenario::Files), [Files]);
        assert_eq!(defining(Scenario::Git), [Migrations, Config, Code]);
        assert_eq!(defining(Scenario::Complete), [Rows, Schema, Migrations, Config, Files, Code]);
    }

    #[test]
    fn a_scenario_reads_back_from_its_name() {
        for scenario in Scenario::ALL {
            assert_eq!(scenario.name().parse::<Scenario>(), Ok(scenario));
        }
        let err = "databse".parse::<Scenario>().unwrap_err();
        assert!(err.contains("use database, migration"), "{err}");
    }

    #[test]
    fn a_recommendation_is_one_word() {
        let words = [
            Recommendation::Healthy,
            Recommendation::Rollback(Scenario::Files),
            Recommendation::Environment,
            Recommendation::Resume,
        ]
        .map(|r| serde_json::to_string(&r).unwrap());
        assert_eq!(words, ["\"healthy\"", "\"files\"", "\"environment\"", "\"resume\""]);
    }
}
