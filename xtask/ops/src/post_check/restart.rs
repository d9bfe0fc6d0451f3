//! What starting the service does to its database. An app that migrates
//! when it starts passes its server checks on a scratch copy it has just
//! re-migrated: the rollback looks fine, and the next restart of the real
//! service undoes it. The server check reads the database the app starts
//! on before the start and after the answer, and this says what changed.
use xtask_adapters::sqlite;
use xtask_model::{
    check::{Check, CheckId},
    profile::Tree,
    schema::Schema,
};

/// A database as the checks compare it: its revisions and its schema.
#[derive(Debug, PartialEq)]
pub struct Seen {
    revisions: Vec<String>,
    schema: Schema,
}

/// The database the app is about to start on (or has started on), read
/// without writing; `None` when there is none to read.
pub fn seen(tree: &Tree) -> Option<Seen> {
    let conn = sqlite::open_tree_database(tree).ok()?;
    Some(Seen {
        revisions: sqlite::alembic_revisions(&conn).ok()?,
        schema: sqlite::schema(&conn).ok()?,
    })
}

/// The verdict: the database as it was, or what the start applied. After
/// a deploy the start-up migration is the deploy's own: reported, not
/// failed.
pub fn judge(before: Option<Seen>, after: Option<Seen>, after_deploy: bool) -> Check {
    let id = CheckId::ServerRestart;
    let (Some(before), Some(after)) = (before, after) else {
        return Check::not_applicable(
            id,
            "the database could not be read before and after the start",
        );
    };
    let shown = |s: &Seen| match s.revisions.as_slice() {
        [] => "no revision".to_string(),
        revisions => revisions.join(" "),
    };
    if before == after {
        return Check::pass(
            id,
            format!("starting the service left the database at {} as it was", shown(&before)),
        );
    }
    let mut applied =
        format!("starting the service applies {} → {}", shown(&before), shown(&after));
    let changes = Schema::differences(&after.schema, &before.schema);
    if !changes.is_empty() {
        let first: Vec<&str> = changes.iter().take(5).map(String::as_str).collect();
        let more = changes.len().saturating_sub(first.len());
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        applied.push_str(&format!(" ({}{more})", first.join("; ")));
    }
    match after_deploy {
        true => Check::pass(id, format!("{applied}: the deploy's own start-up migration")),
        false => Check::fail(id, format!("{applied}: a restart undoes this rollback")),
    }
}
