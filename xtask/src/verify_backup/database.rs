//! The database checks of verify-backup: the backup's database opened
//! immutable (nothing is ever written beside it), its size, the runbook's
//! query, the full integrity_check, the revision and the tables.
use std::{collections::BTreeMap, path::Path, time::Instant};

use crate::{confine::RootDir, manifest::Manifest, report::Check, sqlite};

/// The database checks, and the revisions the database holds when readable.
pub fn check_database(
    dir: &Path,
    manifest: &Manifest,
    backup_fs: &RootDir,
) -> (Vec<Check>, Option<Vec<String>>) {
    let Some(entry) = manifest.database() else {
        return (
            vec![Check::fail(
                "database",
                "the backup has a database",
                "the manifest lists no database",
            )],
            None,
        );
    };
    let path = dir.join(&entry.backup_path);
    // SQLite opens the file by its path: only a regular file inside the
    // backup (no link out of it) gets that far.
    let size = backup_fs
        .open_read(Path::new(&entry.backup_path))
        .map_err(|e| std::io::Error::other(format!("{e:#}")))
        .and_then(|f| f.metadata())
        .map(|m| m.len());
    let mut checks = vec![match &size {
        Ok(size) => Check::from(
            "database.size",
            "database size equals the manifest's",
            *size == entry.size,
            format!("{size} bytes, manifest {}", entry.size),
        ),
        Err(err) => Check::fail(
            "database.size",
            "database size equals the manifest's",
            format!("{}: {err}", entry.backup_path),
        ),
    }];
    if size.is_err() {
        return (checks, None);
    }
    if !sqlite::has_sqlite_header(&path) {
        checks.push(Check::fail(
            "database.open",
            "database opens as SQLite",
            format!("{} is not an SQLite database", entry.backup_path),
        ));
        return (checks, None);
    }
    let conn = match sqlite::open_snapshot(&path) {
        Ok(conn) => conn,
        Err(err) => {
            checks.push(Check::fail(
                "database.open",
                "database opens as SQLite",
                format!("{err:#}"),
            ));
            return (checks, None);
        }
    };
    let count: Result<i64, _> =
        conn.query_row("SELECT COUNT(*) FROM alembic_version", [], |r| r.get(0));
    checks.push(match count {
        Ok(n) => Check::pass(
            "database.query",
            "SELECT COUNT(*) FROM alembic_version works",
            format!("{n} row(s)"),
        ),
        Err(err) => Check::fail(
            "database.query",
            "SELECT COUNT(*) FROM alembic_version works",
            err.to_string(),
        ),
    });
    let started = Instant::now();
    checks.push(
        match sqlite::integrity_check(&conn) {
            Ok(rows) if rows == ["ok"] => {
                Check::pass("database.integrity", "PRAGMA integrity_check is ok", "ok")
            }
            Ok(rows) => Check::fail(
                "database.integrity",
                "PRAGMA integrity_check is ok",
                rows.into_iter().take(5).collect::<Vec<_>>().join("\n"),
            ),
            Err(err) => Check::fail(
                "database.integrity",
                "PRAGMA integrity_check is ok",
                format!("{err:#}"),
            ),
        }
        .since(started),
    );
    let revisions = sqlite::alembic_revisions(&conn);
    checks.push(match &revisions {
        Ok(revs) => Check::from(
            "database.revision",
            "alembic_version holds the manifest's revision",
            *revs == manifest.database_revision,
            format!("{}, manifest {}", revs.join(" "), manifest.database_revision.join(" ")),
        ),
        Err(err) => Check::fail(
            "database.revision",
            "alembic_version holds the manifest's revision",
            format!("{err:#}"),
        ),
    });
    checks.push(match sqlite::table_counts(&conn) {
        Ok(tables) => {
            let differences = table_differences(&tables, &manifest.tables);
            Check::unless(
                "database.tables",
                "tables and row counts equal the manifest's",
                &differences,
                format!("{} tables", tables.len()),
            )
        }
        Err(err) => Check::fail(
            "database.tables",
            "tables and row counts equal the manifest's",
            format!("{err:#}"),
        ),
    });
    (checks, revisions.ok())
}

/// Lines that say how two lists of tables differ; empty when they agree.
pub fn table_differences(
    actual: &[sqlite::TableCount],
    expected: &[sqlite::TableCount],
) -> Vec<String> {
    let actual: BTreeMap<&str, u64> = actual.iter().map(|t| (t.name.as_str(), t.rows)).collect();
    let expected: BTreeMap<&str, u64> =
        expected.iter().map(|t| (t.name.as_str(), t.rows)).collect();
    let mut out = Vec::new();
    for (name, rows) in &expected {
        match actual.get(name) {
            None => out.push(format!("table {name} is missing")),
            Some(found) if found != rows => {
                out.push(format!("table {name} has {found} rows, expected {rows}"))
            }
            Some(_) => {}
        }
    }
    for name in actual.keys().filter(|n| !expected.contains_key(*n)) {
        out.push(format!("table {name} is not expected"));
    }
    out
}
