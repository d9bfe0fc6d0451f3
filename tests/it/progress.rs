//! Progress on a terminal for every step that can take over a second (here
//! drawn after 0 ms instead of a second): the SQLite page copy of a backup,
//! restic's backup (its own `--json` status, relayed) and restore (the bytes
//! written), in binary units, one line at a time.
use predicates::{prelude::*, str::contains};

use crate::{
    offsite::{PASSWORD, fresh_repository},
    on_a_terminal, root, sandbox,
};

#[test]
fn backup_push_and_pull_show_their_progress_on_a_terminal() {
    let dir = sandbox("backed-up");
    let root = root(&dir);
    // Enough pages that the copy and restic take a moment.
    let conn = rusqlite::Connection::open(root.join("data/tmws.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE ballast(b BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12)
         INSERT INTO ballast SELECT randomblob(4 << 20) FROM n;",
    )
    .unwrap();
    drop(conn);
    let repo = dir.path().join("offsite");
    fresh_repository(&repo);
    let repo = repo.display().to_string();
    let env = format!("XTASK_PROGRESS_AFTER_MS=0 RESTIC_PASSWORD={PASSWORD}");
    let backup = on_a_terminal(&root, "backup --label big --no-tag", "", &env);
    backup.stdout_has(contains("SQLite copy (pages written): ").and(contains(" MiB of ")));
    let push = on_a_terminal(&root, &format!("push --label big --repo {repo}"), "", &env);
    push.stdout_has(contains("restic backup: ").and(contains("pushed backups/big")));
    std::fs::remove_dir_all(root.join("backups/big")).unwrap();
    let pull = on_a_terminal(&root, &format!("pull --label big --repo {repo}"), "", &env);
    pull.stdout_has(contains("restic restore: ").and(contains("pulled backup big")));
}
