//! Deterministic data for sandbox databases: the same rows every run, so a
//! sandbox's database has the same content (and size) on every machine.
use anyhow::Result;
use rusqlite::{Connection, params};

/// A small linear congruential generator: reproducible, no dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 =
            self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn words(&mut self, count: usize) -> String {
        const WORDS: [&str; 16] = [
            "agent", "memory", "verified", "tool", "pattern", "trust", "workflow", "latency",
            "schema", "claim", "observed", "context", "session", "learning", "category", "result",
        ];
        (0..count).map(|_| WORDS[self.below(16) as usize]).collect::<Vec<_>>().join(" ")
    }
}

const CATEGORIES: [&str; 5] =
    ["data_processing", "api_integration", "file_management", "security", "monitoring"];

/// Fills a database at the pre-Phase-4 head with the fixture's seed rows,
/// about 850 KB in all, like the runbook's database.
pub fn fixture(conn: &mut Connection) -> Result<()> {
    let mut rng = Lcg(0x05ee_d7a5);
    let tx = conn.transaction()?;
    for (i, code) in CATEGORIES.iter().enumerate() {
        tx.execute(
            "INSERT INTO categories (id, code, label) VALUES (?1, ?2, ?3)",
            params![i as i64 + 1, code, code.replace('_', " ")],
        )?;
    }
    for i in 1..=40i64 {
        tx.execute(
            "INSERT INTO tools (id, name, created_at, category_id) VALUES (?1, ?2, ?3, ?4)",
            params![i, format!("tool-{i:03}"), stamp(i), (i % 5) + 1],
        )?;
    }
    for i in 1..=12i64 {
        tx.execute(
            "INSERT INTO agents (id, name, namespace) VALUES (?1, ?2, ?3)",
            params![i, format!("agent-{i:02}"), ["trinitas", "ops", "research"][(i % 3) as usize]],
        )?;
        tx.execute(
            "INSERT INTO trust_scores (agent, score) VALUES (?1, ?2)",
            params![format!("agent-{i:02}"), 0.5 + (rng.below(50) as f64) / 100.0],
        )?;
    }
    for i in 1..=60i64 {
        tx.execute(
            "INSERT INTO learning_patterns (name, success_count, failure_count) VALUES (?1, ?2, ?3)",
            params![format!("pattern-{i:03}"), rng.below(500) as i64, rng.below(50) as i64],
        )?;
    }
    for i in 1..=1500i64 {
        tx.execute(
            "INSERT INTO verifications (tool_id, claim, verified, created_at, confidence) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![rng.below(40) as i64 + 1, rng.words(6), rng.below(10) < 8, stamp(i), 0.8],
        )?;
    }
    for i in 1..=400i64 {
        tx.execute(
            "INSERT INTO audit_log (event, detail) VALUES (?1, ?2)",
            params![
                ["login", "verify", "rollback-drill", "deploy"][(i % 4) as usize],
                rng.words(8)
            ],
        )?;
    }
    memory_rows(&tx, &mut rng, 2600, 24)?;
    tx.commit()?;
    Ok(())
}

/// Adds `count` memory entries of about `words * 7` bytes of text each.
fn memory_rows(conn: &Connection, rng: &mut Lcg, count: u64, words: usize) -> Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO memory_entries (agent_id, content, importance, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for i in 0..count {
        insert.execute(params![
            rng.below(12) as i64 + 1,
            rng.words(words),
            rng.below(1000) as f64 / 1000.0,
            stamp(i as i64)
        ])?;
    }
    Ok(())
}

/// The shape of a grown database: many small indexed rows, or few large blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Rows,
    Blobs,
}

/// Grows a seeded database until its pages reach `target` bytes, with
/// realistic rows (`Rows`) or large text values (`Blobs`).
pub fn grow(conn: &mut Connection, target: u64, shape: Shape) -> Result<()> {
    let mut rng = Lcg(target ^ 0x9e37);
    let blob = rng.words(4000);
    loop {
        let size: i64 = conn.query_row(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            [],
            |row| row.get(0),
        )?;
        if size as u64 >= target {
            return Ok(());
        }
        // Batches of about 1/50 of what is missing, so small targets are not overshot.
        let missing = target - size as u64;
        let tx = conn.transaction()?;
        match shape {
            Shape::Rows => memory_rows(&tx, &mut rng, (missing / 50 / 120).clamp(50, 50_000), 12)?,
            Shape::Blobs => {
                let mut insert =
                    tx.prepare_cached("INSERT INTO audit_log (event, detail) VALUES ('bulk', ?1)")?;
                for _ in 0..(missing / 50 / 28_000).clamp(1, 500) {
                    insert.execute(params![blob])?;
                }
            }
        }
        tx.commit()?;
    }
}

fn stamp(i: i64) -> String {
    format!("2025-11-{:02}T{:02}:{:02}:00+00:00", 1 + i % 20, i % 24, i % 60)
}
