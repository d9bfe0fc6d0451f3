//! The database checks of verify-backup: the backup's database opened
//! immutable (nothing is ever written beside it), its size, the runbook's
//! query, the full integrity_check, the revision and the tables.
use std::{path::Path, time::Instant};

use xtask_adapters::sqlite;
use xtask_fs::root_dir::RootDir;
use xtask_model::check::Check;
use xtask_model::check::CheckId;
use xtask_model::manifest::{Manifest, table_differences};
use xtask_model::schema::Schema;

/// The database checks, and the revisions the database holds when readable.
pub fn check_database(
    dir: &Path,
    manifest: &Manifest,
    backup_fs: &RootDir,
) -> (Vec<Check>, Option<Vec<String>>) {
    let mut checks = Vec::new();
    match open(dir, manifest, backup_fs, &mut checks) {
        Some(conn) => {
            let revisions = content(&conn, manifest, &mut checks);
            (checks, revisions)
        }
        None => (checks, None),
    }
}

/// The backup's database opened immutable, after its size and header are
/// checked; `None` (with the failed check) when it cannot be.
fn open(
    dir: &Path,
    manifest: &Manifest,
    backup_fs: &RootDir,
    checks: &mut Vec<Check>,
) -> Option<rusqlite::Connection> {
    let Some(entry) = manifest.database() else {
        checks.push(Check::fail(CheckId::Database, "the manifest lists no database"));
        return None;
    };
    let path = dir.join(&entry.backup_path);
    // SQLite opens the file by its path: only a regular file inside the
    // backup (no link out of it) gets that far.
    let size = backup_fs
        .open_read(Path::new(&entry.backup_path))
        .map_err(|e| std::io::Error::other(format!("{e:#}")))
        .and_then(|f| f.metadata())
        .map(|m| m.len());
    checks.push(match &size {
        Ok(size) => Check::from(
            CheckId::DatabaseSize,
            *size == entry.size,
            format!("{size} bytes, manifest {}", entry.size),
        ),
        Err(err) => Check::fail(CheckId::DatabaseSize, format!("{}: {err}", entry.backup_path)),
    });
    size.ok()?;
    let header = backup_fs.open_read(Path::new(&entry.backup_path)).map(sqlite::has_sqlite_header);
    if !header.unwrap_or(false) {
        let detail = format!("{} is not an SQLite database", entry.backup_path);
        checks.push(Check::fail(CheckId::DatabaseOpen, detail));
        return None;
    }
    sqlite::open_snapshot(&path)
        .map_err(|err| checks.push(Check::fail(CheckId::DatabaseOpen, format!("{err:#}"))))
        .ok()
}

/// The runbook's query, the full integrity_check, the revision and the
/// tables; returns the revisions when they can be read.
fn content(
    conn: &rusqlite::Connection,
    manifest: &Manifest,
    checks: &mut Vec<Check>,
) -> Option<Vec<String>> {
    let count: Result<i64, _> =
        conn.query_row("SELECT COUNT(*) FROM alembic_version", [], |r| r.get(0));
    checks.push(match count {
        Ok(n) => Check::pass(CheckId::DatabaseQuery, format!("{n} row(s)")),
        Err(err) => Check::fail(CheckId::DatabaseQuery, err.to_string()),
    });
    let started = Instant::now();
    checks.push(
        match sqlite::integrity_check(conn) {
            Ok(rows) if rows == ["ok"] => Check::pass(CheckId::DatabaseIntegrity, "ok"),
            Ok(rows) => Check::fail(
                CheckId::DatabaseIntegrity,
                rows.into_iter().take(5).collect::<Vec<_>>().join("\n"),
            ),
            Err(err) => Check::fail(CheckId::DatabaseIntegrity, format!("{err:#}")),
        }
        .since(started),
    );
    let revisions = sqlite::alembic_revisions(conn);
    checks.push(match &revisions {
        Ok(revs) => Check::from(
            CheckId::DatabaseRecordedRevision,
            *revs == manifest.database_revision,
            format!("{}, manifest {}", revs.join(" "), manifest.database_revision.join(" ")),
        ),
        Err(err) => Check::fail(CheckId::DatabaseRecordedRevision, format!("{err:#}")),
    });
    checks.push(match sqlite::table_counts(conn) {
        Ok(tables) => {
            let differences = table_differences(&tables, &manifest.tables);
            Check::unless(
                CheckId::DatabaseRowCounts,
                &differences,
                format!("{} tables", tables.len()),
            )
        }
        Err(err) => Check::fail(CheckId::DatabaseRowCounts, format!("{err:#}")),
    });
    checks.push(if manifest.schema.is_empty() {
        let why = format!("the manifest ({}) records no schema", manifest.format);
        Check::not_applicable(CheckId::DatabaseSchema, why)
    } else {
        match sqlite::schema(conn) {
            Ok(schema) => Check::unless(
                CheckId::DatabaseSchema,
                &Schema::differences(&schema, &manifest.schema),
                format!("{} tables' columns and indexes", schema.0.len()),
            ),
            Err(err) => Check::fail(CheckId::DatabaseSchema, format!("{err:#}")),
        }
    });
    revisions.ok()
}
