//! What a rollback loses is said before step 1, in the summary and in the
//! JSON plan: rows written since the backup, and the tables and columns a
//! downgrade drops with their rows and values.
use predicates::str::contains;

use crate::{assert_code, breakage::*, digest, root, run_in, sandbox, sandbox_variant};

#[test]
fn a_downgrade_names_the_columns_and_tables_it_drops_with_their_data() {
    let dir = sandbox_variant("phase4", "column-migration");
    let root = root(&dir);
    let conn = rusqlite::Connection::open(database_of(&root)).unwrap();
    conn.execute_batch("INSERT INTO learning_feedback (pattern_id, verdict) VALUES (1, 'good')")
        .unwrap();
    drop(conn);
    let before = digest(&root);
    let args = ["rollback", "--scenario", "migration", "--dry-run", "--format", "json"];
    let dry = run_in(&root, &args);
    assert_code(&dry, 0);
    let plan: serde_json::Value = serde_json::from_str(&dry.stdout).unwrap();
    crate::schema::assert_valid("rollback", &plan);
    let losses: Vec<&str> =
        plan["losses"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(
        losses.contains(
            &"column learning_patterns.weight and its 60 non-null values, dropped by the downgrade"
        ),
        "{losses:?}"
    );
    assert!(
        losses.contains(&"table learning_feedback and its 1 rows, dropped by the downgrade"),
        "{losses:?}"
    );
    assert_eq!(digest(&root), before, "the dry run wrote");
    let real = run_in(&root, &["rollback", "--scenario", "migration", "--yes"]);
    assert_code(&real, 0);
    real.stdout_has(contains(
        "  loses: column learning_patterns.weight and its 60 non-null values",
    ));
    real.stdout_has(contains("  lost: column learning_patterns.weight and its 60 non-null values"));
}

#[test]
fn restoring_the_database_names_the_rows_written_since_the_backup() {
    let dir = sandbox("phase4");
    let root = root(&dir);
    let conn = rusqlite::Connection::open(database_of(&root)).unwrap();
    let agents: u64 = conn.query_row("SELECT count(*) FROM agents", [], |r| r.get(0)).unwrap();
    conn.execute_batch(
        "INSERT INTO agents (name, namespace) VALUES ('late-1', 'x'), ('late-2', 'x')",
    )
    .unwrap();
    drop(conn);
    for scenario in ["database", "complete"] {
        let dry = run_in(&root, &["rollback", "--scenario", scenario, "--dry-run"]);
        assert_code(&dry, 0);
        dry.stdout_has(contains(format!(
            "  loses: agents: 2 rows more than at backup time ({} now, {agents} then), discarded",
            agents + 2
        )));
    }
}
