//! Reading a manifest's lines back: each kind of line into its place.
use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};

use super::{Absent, FileEntry, Kind, TableCount, WorktreeChange};
use crate::schema::Schema;

/// A manifest's lines, sorted by what they are.
#[derive(Default)]
pub(super) struct Sections {
    /// `key: value` lines, each key once.
    pub(super) fields: BTreeMap<String, String>,
    pub(super) tables: Vec<TableCount>,
    pub(super) schema: Schema,
    pub(super) files: Vec<FileEntry>,
    pub(super) absent: Vec<Absent>,
    pub(super) worktree: Vec<WorktreeChange>,
}

impl Sections {
    pub(super) fn read(text: &str) -> Result<Sections> {
        let mut s = Sections::default();
        for (number, line) in text.lines().enumerate() {
            let line_no = number + 1;
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once(':')
                .with_context(|| format!("line {line_no}: expected `key: value`"))?;
            match key {
                "table" => {
                    let (name, rows) = value
                        .trim()
                        .rsplit_once(' ')
                        .with_context(|| format!("line {line_no}: expected `table: NAME ROWS`"))?;
                    let rows =
                        rows.parse().with_context(|| format!("line {line_no}: row count"))?;
                    s.tables.push(TableCount { name: name.to_string(), rows });
                }
                "schema" => s.schema.read_line(value).with_context(|| format!("line {line_no}"))?,
                "file" => s.files.push(
                    parse_file(value.strip_prefix('\t').unwrap_or(value))
                        .with_context(|| format!("line {line_no}"))?,
                ),
                "absent" => {
                    let (kind, path) =
                        value.strip_prefix('\t').and_then(|v| v.split_once('\t')).with_context(
                            || format!("line {line_no}: expected `absent:\tKIND\tPATH`"),
                        )?;
                    s.absent
                        .push(Absent { kind: Kind::parse(kind)?, source_path: path.to_string() });
                }
                "worktree" => {
                    let (sha, path) =
                        value.strip_prefix('\t').and_then(|v| v.split_once('\t')).with_context(
                            || format!("line {line_no}: expected `worktree:\tSHA256\tPATH`"),
                        )?;
                    let sha256 = (sha != "-").then(|| sha.to_string());
                    s.worktree.push(WorktreeChange { sha256, path: path.to_string() });
                }
                _ => {
                    if s.fields.insert(key.to_string(), value.trim().to_string()).is_some() {
                        bail!("line {line_no}: `{key}` appears twice");
                    }
                }
            }
        }
        Ok(s)
    }
}

fn parse_file(value: &str) -> Result<FileEntry> {
    let parts: Vec<&str> = value.split('\t').collect();
    let [kind, sha256, size, mode, backup_path, source_path] = parts[..] else {
        bail!("expected 6 tab-separated fields after `file:`, found {}", parts.len());
    };
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{sha256:?} is not a sha256");
    }
    Ok(FileEntry {
        kind: Kind::parse(kind)?,
        sha256: sha256.to_string(),
        size: size.parse().context("size")?,
        mode: u32::from_str_radix(mode, 8).context("mode")?,
        backup_path: backup_path.to_string(),
        source_path: source_path.to_string(),
    })
}

/// Parses `SHA256SUMS`: `(sha256, path)` pairs.
pub fn parse_sums(text: &str) -> Result<Vec<(String, String)>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (sha, path) =
                line.split_once("  ").with_context(|| format!("bad line {line:?}"))?;
            Ok((sha.to_string(), path.to_string()))
        })
        .collect()
}
