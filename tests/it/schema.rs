//! The JSON documents the tool prints, checked against their schemas in
//! `docs/schema/`. A small validator of the keywords those schemas use
//! (type, const, enum, required, properties, additionalProperties, items),
//! so that a schema that drifts from the output fails a test.
use std::path::Path;

use serde_json::Value;

/// Asserts that `document` satisfies `docs/schema/<name>.schema.json`.
#[track_caller]
pub fn assert_valid(name: &str, document: &Value) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../docs/schema/{name}.schema.json"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut problems = Vec::new();
    check(&schema, document, "$", &mut problems);
    assert!(problems.is_empty(), "{name}: {}\n{document:#}", problems.join("\n"));
}

fn check(schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !allowed.iter().any(|t| type_matches(t, value)) {
            problems.push(format!("{at}: {value} is not of type {allowed:?}"));
            return;
        }
    }
    if let Some(expected) = schema.get("const")
        && expected != value
    {
        problems.push(format!("{at}: {value} is not {expected}"));
    }
    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.contains(value)
    {
        problems.push(format!("{at}: {value} is not one of {options:?}"));
    }
    if let Value::Object(object) = value {
        if let Some(Value::Array(required)) = schema.get("required") {
            for key in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(key) {
                    problems.push(format!("{at}: missing {key}"));
                }
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, item) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(sub) => check(sub, item, &format!("{at}.{key}"), problems),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    problems.push(format!("{at}: {key} is not in the schema"))
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(sub)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(sub, item, &format!("{at}[{i}]"), problems);
        }
    }
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    }
}

#[test]
fn the_validator_rejects_what_the_schema_forbids() {
    let good =
        serde_json::json!({"schema": 2, "command": "drill", "result": "pass", "scenarios": []});
    assert_valid("drill", &good);
    let mut problems = Vec::new();
    let schema: Value = serde_json::json!({"type": "object", "required": ["a"], "additionalProperties": false, "properties": {"b": {"enum": [1]}}});
    check(&schema, &serde_json::json!({"b": 2, "c": 0}), "$", &mut problems);
    assert_eq!(problems.len(), 3, "{problems:?}");
}

/// Every command that takes `--format json` prints exactly one document on
/// stdout in every mode, dry runs included, and it satisfies its schema.
#[test]
fn every_json_document_is_one_document_of_its_schema() {
    let dir = crate::sandbox("phase4");
    let root = crate::root(&dir);
    let cases: [(&[&str], &str); 8] = [
        (&["backup", "--label", "again", "--dry-run"], "backup"),
        (&["backup", "--label", "again", "--no-tag"], "backup"),
        (&["forensics", "--dry-run"], "forensics"),
        (&["forensics"], "forensics"),
        (&["rollback", "--scenario", "complete", "--dry-run"], "rollback"),
        (&["rollback", "--scenario", "migration", "--dry-run"], "rollback"),
        (&["rollback", "--scenario", "files", "--yes"], "rollback"),
        (&["diagnose"], "diagnose"),
    ];
    for (args, schema) in cases {
        let result = crate::run_in(&root, &[args, &["--format", "json"]].concat());
        let document: Value = serde_json::from_str(&result.stdout).unwrap_or_else(|e| {
            panic!("{args:?}: stdout is not one JSON document ({e}):\n{result:?}")
        });
        assert_valid(schema, &document);
    }
}
