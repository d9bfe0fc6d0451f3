//! The database's revision against the code's migrations, and whether a
//! migration is half-applied: its schema changes made while
//! `alembic_version` still names the revision before it.
use std::collections::BTreeSet;

use rusqlite::Connection;

use xtask_adapters::{python::OnFirstUse, sqlite};
use xtask_model::check::CheckId;
use xtask_model::{
    check::Check, manifest::Manifest, migrations::Graph, profile::Tree, schema::Schema,
};

/// What the migration checks need beyond the tree.
pub(super) struct Evidence<'a> {
    /// The Python helper, on a scratch copy of the tree.
    pub helper: &'a OnFirstUse<'a>,
    pub manifest: Option<&'a Manifest>,
    /// The database failed its integrity check: what it says of its
    /// revision follows from that, and is no second finding.
    pub corrupt: bool,
}

pub(super) fn checks(tree: &Tree, e: &Evidence<'_>) -> Vec<Check> {
    let graph = match tree.graph() {
        Ok(graph) => graph,
        Err(err) => {
            let why = format!("the migrations do not parse: {err:#}");
            return vec![Check::fail(CheckId::MigrationRevision, why)];
        }
    };
    let conn = sqlite::open_tree_database(tree);
    let revisions = conn
        .as_ref()
        .map_err(|e| format!("{e:#}"))
        .and_then(|c| sqlite::alembic_revisions(c).map_err(|e| format!("{e:#}")));
    let revisions = match (revisions, e.corrupt) {
        (Ok(r), _) => r,
        (Err(err), true) => {
            let why = format!(
                "unknown: the database fails its integrity check, so alembic_version says nothing of its own ({err})"
            );
            return vec![Check::not_applicable(CheckId::MigrationRevision, why)];
        }
        (Err(err), false) => {
            let why = format!("alembic_version cannot be read: {err}");
            return vec![Check::fail(CheckId::MigrationRevision, why)];
        }
    };
    let mut checks = vec![revision(tree, &graph, &revisions)];
    if let ([current], Ok(conn)) = (revisions.as_slice(), &conn) {
        checks.push(half_applied(conn, &graph, current, e));
    }
    checks
}

fn revision(tree: &Tree, graph: &Graph, revisions: &[String]) -> Check {
    let heads = graph.heads();
    let unknown = revisions.iter().any(|r| !graph.contains(r));
    if unknown {
        let why =
            format!("revision {} is unknown to {}", revisions.join(" "), tree.profile.migrations);
        Check::fail(CheckId::MigrationRevision, why)
    } else if revisions.iter().collect::<BTreeSet<_>>() != heads.iter().collect::<BTreeSet<_>>() {
        let why = format!("database at {}, code head {}", revisions.join(" "), heads.join(" "));
        Check::fail(CheckId::MigrationRevision, why)
    } else {
        Check::pass(CheckId::MigrationRevision, format!("{} is the head", heads.join(" ")))
    }
}

/// When the stamp is the backup's revision and the backup recorded its
/// schema, the live schema must be that one. Otherwise each next
/// revision's offline SQL names the tables, columns and indexes it makes,
/// none of which may exist yet; a probe that fails says "unknown" and why.
fn half_applied(conn: &Connection, graph: &Graph, current: &str, e: &Evidence<'_>) -> Check {
    let id = CheckId::MigrationHalfApplied;
    if let Some(manifest) = e.manifest.filter(|m| !m.schema.is_empty())
        && manifest.database_revision == [current]
    {
        return match sqlite::schema(conn) {
            Ok(live) => {
                let differences = Schema::differences(&live, &manifest.schema);
                let ok = format!("the schema equals the backup's, recorded at {current}");
                let mut check = Check::unless(id, &differences, ok);
                if !differences.is_empty() {
                    check.detail = format!(
                        "alembic_version says {current}, the backup's revision, but the schema is not the backup's:\n{}",
                        check.detail
                    );
                }
                check
            }
            Err(err) => {
                Check::not_applicable(id, format!("unknown: the schema cannot be read ({err:#})"))
            }
        };
    }
    let schema = match sqlite::schema(conn) {
        Ok(schema) => schema,
        Err(err) => {
            return Check::not_applicable(
                id,
                format!("unknown: the schema cannot be read ({err:#})"),
            );
        }
    };
    let mut half = Vec::new();
    for child in graph.children(current) {
        match e.helper.ask(|session| session.made_by(current, &child)) {
            Ok(made) => {
                let present = made.present_in(&schema);
                if !present.is_empty() {
                    half.push(format!(
                        "{child} made {} but alembic_version still says {current}",
                        present.join(", ")
                    ));
                }
            }
            Err(err) => {
                let first = format!("{err:#}");
                let first = first.lines().next().unwrap_or("").to_string();
                return Check::not_applicable(
                    id,
                    format!(
                        "unknown: the probe of {child} failed, and no backup records the schema at {current}: {first}"
                    ),
                );
            }
        }
    }
    let none = format!("no table, column or index of a revision after {current} exists");
    Check::from(id, half.is_empty(), if half.is_empty() { none } else { half.join("\n") })
}
