//! A database's schema as the manifest records it and the checks compare
//! it: per table, its columns (name, declared type, NOT NULL, place in the
//! primary key) and its indexes (name, UNIQUE, columns), normalised so that
//! two databases made by the same migrations read the same. Table names
//! alone say nothing of a leftover column or a half-applied migration.
use std::collections::BTreeMap;

use anyhow::{Context, Result};
use schemars::JsonSchema;
use serde::Serialize;

/// One table's columns and indexes, each as one normalised line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Table {
    /// `name TYPE[ NOT NULL][ PK n]`, in the table's column order.
    pub columns: Vec<String>,
    /// `index NAME[ UNIQUE] (a, b)`, sorted by name.
    pub indexes: Vec<String>,
}

/// Every table of a database, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct Schema(pub BTreeMap<String, Table>);

/// A column as SQLite describes it (`PRAGMA table_info`).
pub struct Column<'a> {
    pub name: &'a str,
    pub declared: &'a str,
    pub not_null: bool,
    pub primary_key: i64,
}

impl Column<'_> {
    /// The column's line: the declared type upper-cased without spaces
    /// (`varchar(100)` and `VARCHAR( 100 )` are one type).
    pub fn line(&self) -> String {
        let declared: String =
            self.declared.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase();
        let mut line =
            format!("{} {}", self.name, if declared.is_empty() { "ANY" } else { &declared });
        if self.not_null {
            line.push_str(" NOT NULL");
        }
        if self.primary_key > 0 {
            line.push_str(&format!(" PK {}", self.primary_key));
        }
        line
    }
}

/// An index's line.
pub fn index_line(name: &str, unique: bool, columns: &[String]) -> String {
    let unique = if unique { " UNIQUE" } else { "" };
    format!("index {name}{unique} ({})", columns.join(", "))
}

impl Table {
    /// The manifest's text for the table: columns, then indexes, `; ` apart.
    pub fn render(&self) -> String {
        self.columns.iter().chain(&self.indexes).cloned().collect::<Vec<_>>().join("; ")
    }

    pub fn parse(text: &str) -> Table {
        let (indexes, columns) = text
            .split("; ")
            .filter(|p| !p.is_empty())
            .map(String::from)
            .partition(|p: &String| p.starts_with("index "));
        Table { columns, indexes }
    }
}

impl Schema {
    /// `schema:` lines of a manifest: `schema:\tTABLE\tcolumns; indexes`.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.0.iter().map(|(name, table)| format!("schema:\t{name}\t{}", table.render()))
    }

    /// Reads one `schema:` line's value (after the colon) into the schema.
    pub fn read_line(&mut self, value: &str) -> Result<()> {
        let (name, table) = value
            .strip_prefix('\t')
            .and_then(|v| v.split_once('\t'))
            .context("expected `schema:\tTABLE\tCOLUMNS; INDEXES`")?;
        self.0.insert(name.to_string(), Table::parse(table));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How `actual` differs from `expected`, one line per table, column or
    /// index; empty when they agree.
    pub fn differences(actual: &Schema, expected: &Schema) -> Vec<String> {
        let mut out = Vec::new();
        for (name, wanted) in &expected.0 {
            let Some(have) = actual.0.get(name) else {
                out.push(format!("table {name} is missing"));
                continue;
            };
            out.extend(lines_differ(name, "column", &have.columns, &wanted.columns));
            out.extend(lines_differ(name, "index", &have.indexes, &wanted.indexes));
        }
        for name in actual.0.keys().filter(|n| !expected.0.contains_key(*n)) {
            out.push(format!("table {name} is extra"));
        }
        out
    }
}

/// The first word of a column line, or the name of an index line.
fn key(line: &str) -> &str {
    let line = line.strip_prefix("index ").unwrap_or(line);
    line.split(' ').next().unwrap_or(line)
}

fn lines_differ(table: &str, what: &str, have: &[String], wanted: &[String]) -> Vec<String> {
    let have_by: BTreeMap<&str, &String> = have.iter().map(|l| (key(l), l)).collect();
    let wanted_by: BTreeMap<&str, &String> = wanted.iter().map(|l| (key(l), l)).collect();
    let mut out = Vec::new();
    for (name, line) in &wanted_by {
        match have_by.get(name) {
            None => out.push(format!("{table}: {what} {name} is missing")),
            Some(got) if got != line => out.push(format!("{table}: {got:?}, expected {line:?}")),
            Some(_) => {}
        }
    }
    for name in have_by.keys().filter(|n| !wanted_by.contains_key(*n)) {
        out.push(format!("{table}: {what} {name} is extra"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(tables: &[(&str, &str)]) -> Schema {
        Schema(tables.iter().map(|(n, t)| (n.to_string(), Table::parse(t))).collect())
    }

    #[test]
    fn a_schema_survives_its_manifest_lines() {
        let original = schema(&[(
            "tools",
            "id INTEGER NOT NULL PK 1; name VARCHAR(100) NOT NULL; index ix_tools_name UNIQUE (name)",
        )]);
        let mut read = Schema::default();
        for line in original.lines() {
            read.read_line(line.strip_prefix("schema:").unwrap()).unwrap();
        }
        assert_eq!(read, original);
    }

    #[test]
    fn a_leftover_column_and_a_missing_index_are_named() {
        let expected = schema(&[("tools", "id INTEGER PK 1; index ix_a (id)")]);
        let actual =
            schema(&[("tools", "id INTEGER PK 1; usage_count INTEGER"), ("stats", "id INTEGER")]);
        assert_eq!(
            Schema::differences(&actual, &expected),
            [
                "tools: column usage_count is extra",
                "tools: index ix_a is missing",
                "table stats is extra"
            ]
        );
        let column =
            Column { name: "n", declared: "varchar( 10 )", not_null: true, primary_key: 0 };
        assert_eq!(column.line(), "n VARCHAR(10) NOT NULL");
    }
}
