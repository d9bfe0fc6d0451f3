//! The JSON Schema of every `--format json` document, generated from the
//! Rust type that prints it. `docs/schema/NAME.schema.json` holds each one;
//! the test below fails when a file and its type disagree, and
//! `UPDATE_SCHEMAS=1 cargo test -p xtask --bin xtask schemas` rewrites the
//! files from the types.
use schemars::{JsonSchema, Schema, generate::SchemaSettings, transform::RecursiveTransform};
use serde_json::Value;

use crate::{
    cli::documents::{
        BackupDocument, ErrorDocument, ForensicsDocument, InitDocument, PruneDocument,
        PullDocument, PushDocument,
    },
    dev::{dist::DistDocument, drill::DrillDocument, sandbox::SandboxDocument},
};
use xtask_model::check::Report;
use xtask_ops::{diagnose::Diagnosis, list::Listing, rollback::Outcome};

/// A document: the name of its schema's file, and how its schema is made.
type Document = (&'static str, fn() -> Schema);

/// Every document: one per command, the report of post-check and
/// verify-backup, and the error document of any command that stopped
/// before its result.
pub const DOCUMENTS: [Document; 14] = [
    ("backup", schema::<BackupDocument>),
    ("diagnose", schema::<Diagnosis>),
    ("dist", schema::<DistDocument>),
    ("drill", schema::<DrillDocument>),
    ("error", schema::<ErrorDocument>),
    ("forensics", schema::<ForensicsDocument>),
    ("init", schema::<InitDocument>),
    ("list", schema::<Listing>),
    ("prune", schema::<PruneDocument>),
    ("pull", schema::<PullDocument>),
    ("push", schema::<PushDocument>),
    ("report", schema::<Report>),
    ("rollback", schema::<Outcome>),
    ("sandbox", schema::<SandboxDocument>),
];

/// The schema of `T` as serde prints it (draft 2020-12), every subschema
/// inline so that a reader needs no `$ref`, and every object closed.
pub fn schema<T: JsonSchema>() -> Schema {
    let settings = SchemaSettings::draft2020_12()
        .for_serialize()
        .with(|s| s.inline_subschemas = true)
        .with_transform(RecursiveTransform(closed as fn(&mut Schema)));
    settings.into_generator().into_root_schema_for::<T>()
}

/// serde prints a struct's fields and nothing else, so a field the type
/// lacks is a document that disagrees with its type: refused.
fn closed(schema: &mut Schema) {
    if let Some(object) = schema.as_object_mut()
        && object.contains_key("properties")
    {
        object.entry("additionalProperties").or_insert(Value::Bool(false));
    }
}

/// The file a document's schema is kept in.
pub fn file_name(name: &str) -> String {
    format!("{name}.schema.json")
}

/// A document's schema as its file holds it: the generated schema with
/// its file's name as `$id`, pretty-printed.
pub fn file_text(name: &str, generate: fn() -> Schema) -> String {
    let mut schema = generate().to_value();
    if let Value::Object(object) = &mut schema {
        object.insert("$id".into(), file_name(name).into());
    }
    let text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    format!("{text}\n")
}

/// The first place where two JSON values differ, as a JSON pointer.
pub fn first_difference(ours: &Value, theirs: &Value, at: &str) -> Option<String> {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|key| match (a.get(key), b.get(key)) {
                (Some(x), Some(y)) => first_difference(x, y, &format!("{at}/{key}")),
                _ => Some(format!("{at}/{key}")),
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &format!("{at}/{i}"))),
        _ if ours == theirs => None,
        _ => Some(if at.is_empty() { "/".into() } else { at.into() }),
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn schema_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schema")
    }

    /// docs/schema/ holds exactly the schemas the types generate; with
    /// `UPDATE_SCHEMAS=1` the files are rewritten from the types first.
    #[test]
    fn the_schemas_in_docs_are_generated_from_the_types() {
        let dir = schema_dir();
        let update = std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v == "1");
        let mut wrong = Vec::new();
        for (name, generate) in DOCUMENTS {
            let path = dir.join(file_name(name));
            let text = file_text(name, generate);
            if update {
                xtask_fs::unconfined::write(&path, &text).unwrap();
            }
            let ours: Value = serde_json::from_str(&text).unwrap();
            let theirs = xtask_fs::outside::read_to_string(&path)
                .map_err(|e| format!("{e:#}"))
                .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()));
            match theirs {
                Ok(theirs) => {
                    if let Some(at) = first_difference(&ours, &theirs, "") {
                        wrong.push(format!("{}: differs from its type at {at}", file_name(name)));
                    }
                }
                Err(err) => wrong.push(format!("{}: {err}", file_name(name))),
            }
        }
        let listed: Vec<String> = DOCUMENTS.iter().map(|(name, _)| file_name(name)).collect();
        for found in xtask_fs::outside::names(&dir).unwrap() {
            let found = found.to_string_lossy().into_owned();
            if !listed.contains(&found) {
                wrong.push(format!("{found}: no document of schemas::DOCUMENTS has this file"));
            }
        }
        assert!(
            wrong.is_empty(),
            "docs/schema/ disagrees with the documents' types:\n  {}\n\
             Regenerate the files from the types with\n  \
             UPDATE_SCHEMAS=1 cargo test -p xtask --bin xtask schemas\n\
             and read `git diff docs/schema/` before committing them.",
            wrong.join("\n  ")
        );
    }

    #[test]
    fn a_difference_is_named_by_where_it_is() {
        let a = serde_json::json!({"p": {"x": [1, 2]}, "q": true});
        let b = serde_json::json!({"p": {"x": [1, 3]}, "q": true});
        assert_eq!(first_difference(&a, &a, ""), None);
        assert_eq!(first_difference(&a, &b, "").as_deref(), Some("/p/x/1"));
        let c = serde_json::json!({"p": {"x": [1, 2]}});
        assert_eq!(first_difference(&a, &c, "").as_deref(), Some("/q"));
    }

    /// Every object of every schema is closed, no schema needs `$ref`, and
    /// each says its draft and its file.
    #[test]
    fn every_schema_is_closed_and_inline() {
        fn objects_closed(value: &Value, at: &str, open: &mut Vec<String>) {
            match value {
                Value::Object(object) => {
                    if object.contains_key("properties")
                        && object.get("additionalProperties") != Some(&Value::Bool(false))
                    {
                        open.push(at.to_string());
                    }
                    if object.contains_key("$ref") || object.contains_key("$defs") {
                        open.push(format!("{at} ($ref)"));
                    }
                    for (key, item) in object {
                        objects_closed(item, &format!("{at}/{key}"), open);
                    }
                }
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        objects_closed(item, &format!("{at}/{i}"), open);
                    }
                }
                _ => {}
            }
        }
        for (name, generate) in DOCUMENTS {
            let schema: Value = serde_json::from_str(&file_text(name, generate)).unwrap();
            assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
            assert_eq!(schema["$id"], file_name(name).as_str());
            let mut open = Vec::new();
            objects_closed(&schema, "", &mut open);
            assert!(open.is_empty(), "{name}: open or referenced at {open:?}");
        }
    }
}
