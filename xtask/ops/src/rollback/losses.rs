//! What a plan will lose, said before step 1 and in the summary: the rows
//! written since the backup that restoring its database discards, and the
//! tables and columns (with their rows and values) that a downgrade to the
//! backup's revision drops. Read without touching the live files: opening
//! the database would rewrite its -shm before the preserve step keeps it.
use anyhow::{Context, Result};
use rusqlite::Connection;

use super::plan::Step;
use xtask_adapters::sqlite;
use xtask_fs::{RootDir, files, outside};
use xtask_model::{database, manifest::Manifest, profile::Tree};

/// One line per loss; empty when the plan loses nothing it can see. A
/// database that cannot be read (a corrupt one, the database row's reason)
/// is one line saying so: it never stops the rollback.
pub fn losses(tree: &Tree, manifest: &Manifest, steps: &[Step]) -> Vec<String> {
    measured(tree, manifest, steps).unwrap_or_else(|err| {
        let why = format!("{err:#}");
        vec![format!(
            "what the plan discards cannot be measured: {}",
            why.lines().next().unwrap_or_default()
        )]
    })
}

fn measured(tree: &Tree, manifest: &Manifest, steps: &[Step]) -> Result<Vec<String>> {
    let restores = steps.contains(&Step::RestoreDatabase);
    let downgrade = steps.iter().find_map(|step| match step {
        Step::MigrateCopy { target, up: false, .. } => Some(target.as_str()),
        _ => None,
    });
    if !restores && downgrade.is_none() {
        return Ok(Vec::new());
    }
    if !tree.fs.exists(&tree.database()) {
        return Ok(Vec::new());
    }
    let (conn, _scratch) = untouched(tree)?;
    let mut lines = Vec::new();
    if restores {
        lines.extend(rows_since_the_backup(&conn, manifest)?);
        lines.push(
            "rows changed in place or replaced since the backup are not counted: the failed database is kept in the bundle to compare".into(),
        );
        if !manifest.schema.is_empty() {
            let columns = beyond_the_backups_schema(&conn, manifest, "the backup's database")?;
            lines.extend(columns.into_iter().filter(|l| l.starts_with("column ")));
        }
    }
    if let Some(target) = downgrade {
        if manifest.revision() != Some(target) || manifest.schema.is_empty() {
            lines.push(format!(
                "what the downgrade to {target} drops is not known beforehand: the backup records the schema at {} only",
                manifest.revision().unwrap_or("no single revision")
            ));
        } else {
            lines.extend(beyond_the_backups_schema(&conn, manifest, "the downgrade")?);
        }
    }
    Ok(lines)
}

/// Per table, the rows it holds beyond the backup's count (all of them for
/// a table the backup lacks).
fn rows_since_the_backup(conn: &Connection, manifest: &Manifest) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for now in sqlite::table_counts(conn)? {
        let then = manifest.tables.iter().find(|t| t.name == now.name).map(|t| t.rows);
        match then {
            Some(then) if now.rows > then => lines.push(format!(
                "{}: {} rows more than at backup time ({} now, {then} then), discarded",
                now.name,
                now.rows - then,
                now.rows
            )),
            None if now.rows > 0 && now.name != "alembic_version" => lines.push(format!(
                "{}: all {} rows (the table did not exist at backup time), discarded",
                now.name, now.rows
            )),
            _ => {}
        }
    }
    Ok(lines)
}

/// Tables and columns the live database has beyond the backup's recorded
/// schema, with their rows and non-null values: what `by` (a downgrade to
/// the backup's revision, or its database) drops.
fn beyond_the_backups_schema(
    conn: &Connection,
    manifest: &Manifest,
    by: &str,
) -> Result<Vec<String>> {
    let live = sqlite::schema(conn)?;
    let mut lines = Vec::new();
    for (name, table) in &live.0 {
        let Some(kept) = manifest.schema.0.get(name) else {
            let rows = count(conn, &format!("SELECT count(*) FROM \"{}\"", quote(name)))?;
            if name != "alembic_version" {
                lines.push(format!("table {name} and its {rows} rows, dropped by {by}"));
            }
            continue;
        };
        for column in table.columns.iter().filter_map(|c| c.split(' ').next()) {
            if kept.columns.iter().any(|c| c.split(' ').next() == Some(column)) {
                continue;
            }
            let sql = format!(
                "SELECT count(\"{c}\") FROM \"{t}\" WHERE \"{c}\" IS NOT NULL",
                c = quote(column),
                t = quote(name)
            );
            let values = count(conn, &sql)?;
            lines.push(format!(
                "column {name}.{column} and its {values} non-null values, dropped by {by}"
            ));
        }
    }
    Ok(lines)
}

fn count(conn: &Connection, sql: &str) -> Result<u64> {
    let n: i64 = conn.query_row(sql, [], |r| r.get(0)).with_context(|| sql.to_string())?;
    Ok(n as u64)
}

fn quote(name: &str) -> String {
    name.replace('"', "\"\"")
}

/// The live database opened without writing a byte to it: immutable when
/// its WAL is empty, else a scratch copy of the database and its WAL.
fn untouched(tree: &Tree) -> Result<(Connection, Option<files::Scratch>)> {
    let db = tree.database();
    database::check_files(&tree.fs, &db)?;
    let wal = files::with_suffix(&db, "-wal");
    if outside::entry(&wal).is_none_or(|m| m.len() == 0) {
        return Ok((sqlite::open_snapshot(&db)?, None));
    }
    let scratch = files::scratch_dir("tmws-losses")?;
    let to = RootDir::open(scratch.path())?;
    let name = db.file_name().context("the database has no file name")?;
    for (from, suffix) in [(&db, ""), (&wal, "-wal")] {
        let copy = scratch.path().join(format!("{}{suffix}", name.to_string_lossy()));
        files::copy_new(&tree.fs, from, &to, &copy)?;
    }
    let copy = scratch.path().join(name);
    Ok((sqlite::open_live_read_only(&copy)?, Some(scratch)))
}
