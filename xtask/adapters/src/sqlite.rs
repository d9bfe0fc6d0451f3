//! SQLite through SQLite: read-only opens, the online backup API, integrity
//! checks, and the facts a manifest records about a database.
use std::{
    fs::File,
    io::{Read, Write},
    path::Path,
};

use anyhow::{Context, Result};
use rusqlite::{
    Connection, OpenFlags,
    backup::{Backup, StepResult},
    types::ValueRef,
};

use xtask_fs::RootDir;
pub use xtask_model::manifest::TableCount;
use xtask_model::{
    database,
    manifest::JournalMode,
    profile::Tree,
    schema::{Column, Schema, Table, index_line},
};

/// A connection to a database below a root that SQLite opened through a
/// handle of its folder (`RootDir::anchored`): the file itself, and every
/// file SQLite makes beside it (journal, WAL, index), are in that folder,
/// proven again when it is closed. Closed before the handle.
pub struct Anchored {
    conn: Connection,
    _folder: xtask_fs::root_dir::Anchored,
}

impl std::ops::Deref for Anchored {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Anchored {
    /// Opens `path` read-write (`create`: a new file) through `fs`.
    pub fn open(fs: &xtask_fs::RootDir, path: &Path, create: bool) -> Result<Anchored> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        Anchored::open_with(fs, path, flags)
    }

    fn open_with(fs: &xtask_fs::RootDir, path: &Path, flags: OpenFlags) -> Result<Anchored> {
        let folder = fs.anchored(path)?;
        let conn = Connection::open_with_flags(folder.path(), flags)
            .with_context(|| format!("open {}", path.display()))?;
        Ok(Anchored { conn, _folder: folder })
    }

    /// Closes the connection, saying what went wrong: the last connection's
    /// close checkpoints a WAL and removes the `-wal` and `-shm` files.
    pub fn close(self, fs: &xtask_fs::RootDir) -> Result<()> {
        let shown = self._folder.shown().display().to_string();
        self.conn.close().map_err(|(_, err)| err).with_context(|| format!("close {shown}"))?;
        self._folder.still_in_place(fs)
    }
}

/// Whether an open file starts with SQLite's header.
pub fn has_sqlite_header(mut file: File) -> bool {
    let mut header = [0u8; 16];
    file.read_exact(&mut header).is_ok() && &header == b"SQLite format 3\0"
}

/// Opens a file that nothing writes any more (a backup) without locks and
/// without ever creating `-wal`, `-shm` or journal files beside it.
pub fn open_snapshot(path: &Path) -> Result<Connection> {
    let uri = format!("file:{}?immutable=1", uri_path(path));
    Connection::open_with_flags(uri, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI)
        .with_context(|| format!("open {} read-only", path.display()))
}

/// Opens a database only to read it, without leaving a trace: immutable
/// (nothing created beside it) when it has no WAL content, else read-only
/// through its WAL, whose index then exists already.
pub fn open_to_read(path: &Path) -> Result<Connection> {
    let wal = xtask_fs::files::with_suffix(path, "-wal");
    let wal_empty = xtask_fs::outside::entry(&wal).is_none_or(|m| m.len() == 0);
    if wal_empty { open_snapshot(path) } else { open_live_read_only(path) }
}

/// Opens the tree's database to read it, after refusing what must not be
/// opened: a database or sidecar that is a link or not a regular file, and a
/// hot journal (opening would roll it back, a write).
pub fn open_tree_database(tree: &Tree) -> Result<Connection> {
    let db = tree.database();
    database::check_files(&tree.fs, &db)?;
    if database::hot_journal(&tree.fs, &db) {
        return Err(database::hot_journal_refusal(&tree.profile.database));
    }
    open_to_read(&db)
}

/// Opens a live database read-only; what its WAL holds is visible.
pub fn open_live_read_only(path: &Path) -> Result<Connection> {
    let uri = format!("file:{}?mode=ro", uri_path(path));
    Connection::open_with_flags(uri, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI)
        .with_context(|| format!("open {} read-only", path.display()))
}

/// Percent-encodes the characters that mean something in an SQLite URI.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '?' | '#' | '%' => out.push_str(&format!("%{:02X}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

/// Copies a (possibly live, WAL-mode) database with the online backup API in
/// one step, so the copy is one consistent snapshot that includes every
/// transaction committed before it started. The copy is left in rollback
/// journal mode so that opening it read-only never creates files beside it;
/// the caller fsyncs it.
///
/// Both files are opened through handles of their folders that `from` and
/// `to` opened (see `Anchored`), and proven in place once closed.
pub fn online_backup(from: (&RootDir, &Path), to: (&RootDir, &Path)) -> Result<()> {
    let ((from, source), (to, dest)) = (from, to);
    // The backup API only reads the source (`query_only` makes sure). A
    // read-write connection is used because, when it is the last one to
    // close, SQLite removes the -wal and -shm files it needed: a read-only
    // one would leave them in the tree. Without write access, read-only.
    let src = Anchored::open(from, source, false)
        .and_then(|c| Ok(c.execute_batch("PRAGMA query_only=1").map(|()| c)?))
        .or_else(|_| Anchored::open_with(from, source, OpenFlags::SQLITE_OPEN_READ_ONLY))?;
    src.busy_timeout(std::time::Duration::from_secs(10))?;
    let mut dst = Anchored::open(to, dest, true)?;
    // The copy is a new file that is discarded if anything fails, so SQLite's
    // own journal and fsyncs for it buy nothing: the caller fsyncs it once.
    dst.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")?;
    // One step gives no progress of its own: the copy's pages, as the
    // destination file grows, are watched beside it.
    let total = xtask_fs::files::Identity::of(source).map_or(0, |id| id.size);
    let copying = std::sync::atomic::AtomicBool::new(true);
    std::thread::scope(|scope| -> Result<()> {
        scope.spawn(|| watch_copy(dest, total, &copying));
        let copied = copy_pages(&src, &mut dst.conn, source);
        copying.store(false, std::sync::atomic::Ordering::Relaxed);
        copied
    })?;
    let mode: String = dst.query_row("PRAGMA journal_mode=DELETE", [], |row| row.get(0))?;
    anyhow::ensure!(mode == "delete", "could not switch the copy to rollback journal mode");
    dst.close(to)?;
    src.close(from)
}

/// Shows the pages written to `dest` against the source's size until the
/// copy ends.
fn watch_copy(dest: &Path, total: u64, copying: &std::sync::atomic::AtomicBool) {
    let mut progress = xtask_base::events::Progress::bytes("SQLite copy (pages written)", total);
    while copying.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
        progress.update(xtask_fs::files::Identity::of(dest).map_or(0, |id| id.size));
    }
    progress.finish();
}

/// The backup API's copy of every page, in one step.
fn copy_pages(src: &Connection, dst: &mut Connection, source: &Path) -> Result<()> {
    {
        let backup = Backup::new(src, dst).context("start the online backup")?;
        // One step of all pages: one read transaction, so one consistent
        // snapshot. In WAL mode writers go on meanwhile; only a writer in
        // rollback-journal mode can make the step busy, and then we retry.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let step = backup
                .step(-1)
                .with_context(|| format!("copy {} through SQLite", source.display()))?;
            match step {
                StepResult::Done => break,
                _ if std::time::Instant::now() > deadline => {
                    anyhow::bail!("{} stayed locked for 30 s during the backup", source.display())
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    }
    Ok(())
}

/// Puts a database that nothing else has open into WAL mode. The mode is
/// kept in the file's header and a backup is kept in rollback journal mode
/// (see `online_backup`), so a restored database gets the service's mode
/// back here. Closing the only connection removes the `-wal` and `-shm`
/// files it created.
pub fn switch_to_wal(fs: &RootDir, path: &Path) -> Result<()> {
    let conn = Anchored::open(fs, path, false)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
    anyhow::ensure!(mode == "wal", "{} stayed in journal mode {mode}", path.display());
    conn.close(fs)
}

/// `PRAGMA integrity_check` (the full one): `["ok"]` when the file is sound.
pub fn integrity_check(conn: &Connection) -> Result<Vec<String>> {
    // The check is one statement: a ticker shows the time it has run.
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let ticker = scope.spawn(|| {
            let mut progress = xtask_base::events::Progress::timer("integrity_check");
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                progress.update(0);
                std::thread::park_timeout(std::time::Duration::from_millis(100));
            }
            progress.finish();
        });
        let result = (|| {
            let mut stmt = conn.prepare("PRAGMA integrity_check")?;
            let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
            rows.collect::<Result<Vec<_>, _>>().context("run PRAGMA integrity_check")
        })();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        ticker.thread().unpark();
        result
    })
}

/// The revisions in `alembic_version`, sorted.
pub fn alembic_revisions(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT version_num FROM alembic_version ORDER BY version_num")?;
    let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
    rows.collect::<Result<Vec<_>, _>>().context("read alembic_version")
}

/// User tables with their row counts, by name.
pub fn table_counts(conn: &Connection) -> Result<Vec<TableCount>> {
    let names = table_names(conn)?;
    names
        .into_iter()
        .map(|name| {
            let sql = format!("SELECT COUNT(*) FROM \"{}\"", name.replace('"', "\"\""));
            let rows: i64 = conn.query_row(&sql, [], |row| row.get(0))?;
            Ok(TableCount { name, rows: rows as u64 })
        })
        .collect()
}

/// Every table's columns and indexes, from SQLite's own description of them.
pub fn schema(conn: &Connection) -> Result<Schema> {
    let mut tables = std::collections::BTreeMap::new();
    for name in table_names(conn)? {
        let quoted = name.replace('"', "\"\"");
        let mut info = conn.prepare(&format!("PRAGMA table_info(\"{quoted}\")"))?;
        let columns = info
            .query_map([], |row| {
                let (name, declared): (String, String) = (row.get(1)?, row.get(2)?);
                let (not_null, primary_key): (bool, i64) = (row.get(3)?, row.get(5)?);
                Ok(Column { name: &name, declared: &declared, not_null, primary_key }.line())
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut list = conn.prepare(&format!("PRAGMA index_list(\"{quoted}\")"))?;
        let listed: Vec<(String, bool)> =
            list.query_map([], |row| Ok((row.get(1)?, row.get(2)?)))?.collect::<Result<_, _>>()?;
        let mut indexes = Vec::new();
        for (index, unique) in listed {
            let mut info =
                conn.prepare(&format!("PRAGMA index_info(\"{}\")", index.replace('"', "\"\"")))?;
            let named: Vec<Option<String>> =
                info.query_map([], |row| row.get(2))?.collect::<Result<_, _>>()?;
            let named: Vec<String> =
                named.into_iter().map(|c| c.unwrap_or_else(|| "(expression)".into())).collect();
            indexes.push(index_line(&index, unique, &named));
        }
        indexes.sort();
        tables.insert(name, Table { columns, indexes });
    }
    Ok(Schema(tables))
}

pub fn table_names(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
    rows.collect::<Result<Vec<_>, _>>().context("list tables")
}

/// `wal` or `delete`, from the file's header (bytes 18 and 19 are 2 in WAL
/// mode): no connection, so nothing is created beside the file.
pub fn journal_mode_of(mut file: File) -> Result<JournalMode> {
    let mut header = [0u8; 20];
    file.read_exact(&mut header).context("read the database's header")?;
    Ok(if header[18] == 2 && header[19] == 2 { JournalMode::Wal } else { JournalMode::Delete })
}

pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}

/// Writes an SQL dump (schema, then rows as INSERTs) that recreates the database.
pub fn dump(conn: &Connection, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;")?;
    let mut stmt = conn.prepare(
        "SELECT type, name, sql FROM sqlite_master WHERE sql NOT NULL AND name NOT LIKE 'sqlite_%' \
         ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, name",
    )?;
    let objects: Vec<(String, String, String)> = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (kind, name, sql) in &objects {
        writeln!(out, "{sql};")?;
        if kind != "table" {
            continue;
        }
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let mut rows = conn.prepare(&format!("SELECT * FROM {quoted}"))?;
        let columns = rows.column_count();
        let mut cursor = rows.query([])?;
        while let Some(row) = cursor.next()? {
            let values: Vec<String> =
                (0..columns).map(|i| row.get_ref(i).map(sql_literal)).collect::<Result<_, _>>()?;
            writeln!(out, "INSERT INTO {quoted} VALUES({});", values.join(","))?;
        }
    }
    writeln!(out, "COMMIT;")?;
    Ok(())
}

fn sql_literal(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format!("{f:?}"),
        ValueRef::Text(t) => format!("'{}'", String::from_utf8_lossy(t).replace('\'', "''")),
        ValueRef::Blob(b) => {
            format!("X'{}'", b.iter().map(|x| format!("{x:02X}")).collect::<String>())
        }
    }
}
