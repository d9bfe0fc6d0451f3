//! The JSON documents the tool prints, checked against their schemas in
//! `docs/schema/`, which are generated from the documents' types
//! (`dev/schemas.rs`): a document that fails here is a type whose output
//! disagrees with it. A small validator of the keywords schemas use (type,
//! const, enum, required, properties, additionalProperties, items, anyOf,
//! oneOf, allOf, $ref, minimum, maximum; format is an annotation), so that
//! a schema and the output that disagree fail a test.
use std::path::Path;

use serde_json::{Value, json};

/// Asserts that `document` satisfies `docs/schema/<name>.schema.json`.
#[track_caller]
pub fn assert_valid(name: &str, document: &Value) {
    let problems = problems(&schema_of(name), document);
    assert!(problems.is_empty(), "{name}: {}\n{document:#}", problems.join("\n"));
}

fn schema_of(name: &str) -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../docs/schema/{name}.schema.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// What is wrong with `value` by `schema`, one line each.
fn problems(schema: &Value, value: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    Validator { root: schema }.check(schema, value, "$", &mut problems);
    problems
}

/// Checks values against a schema; `$ref`s resolve within `root`.
struct Validator<'a> {
    root: &'a Value,
}

impl Validator<'_> {
    fn check(&self, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        if let Some(Value::String(pointer)) = schema.get("$ref") {
            match pointer.strip_prefix('#').and_then(|p| self.root.pointer(p)) {
                Some(target) => self.check(target, value, at, problems),
                None => problems.push(format!("{at}: $ref {pointer} resolves to nothing")),
            }
        }
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
        self.bounds(schema, value, at, problems);
        self.alternatives(schema, value, at, problems);
        if let Value::Object(object) = value {
            self.object(schema, object, at, problems);
        }
        if let (Value::Array(items), Some(sub)) = (value, schema.get("items")) {
            for (i, item) in items.iter().enumerate() {
                self.check(sub, item, &format!("{at}[{i}]"), problems);
            }
        }
    }

    fn bounds(&self, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        let Some(number) = value.as_f64() else { return };
        if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
            && number < minimum
        {
            problems.push(format!("{at}: {value} is below the minimum {minimum}"));
        }
        if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64)
            && number > maximum
        {
            problems.push(format!("{at}: {value} is above the maximum {maximum}"));
        }
    }

    /// allOf: every one; anyOf: at least one; oneOf: exactly one.
    fn alternatives(&self, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        let passing = |key: &str| -> Option<(usize, usize, Vec<String>)> {
            let Some(Value::Array(options)) = schema.get(key) else { return None };
            let mut theirs = Vec::new();
            let mut passed = 0;
            for option in options {
                let mut found = Vec::new();
                self.check(option, value, at, &mut found);
                passed += usize::from(found.is_empty());
                theirs.extend(found);
            }
            Some((passed, options.len(), theirs))
        };
        if let Some((passed, all, theirs)) = passing("allOf")
            && passed < all
        {
            problems.extend(theirs);
        }
        if let Some((0, _, theirs)) = passing("anyOf") {
            problems.push(format!("{at}: {value} matches none of anyOf: {}", theirs.join("; ")));
        }
        match passing("oneOf") {
            Some((0, _, theirs)) => {
                problems.push(format!("{at}: {value} matches none of oneOf: {}", theirs.join("; ")))
            }
            Some((passed, ..)) if passed > 1 => {
                problems.push(format!("{at}: {value} matches {passed} of oneOf, not one"))
            }
            _ => {}
        }
    }

    fn object(
        &self,
        schema: &Value,
        object: &serde_json::Map<String, Value>,
        at: &str,
        problems: &mut Vec<String>,
    ) {
        if let Some(Value::Array(required)) = schema.get("required") {
            for key in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(key) {
                    problems.push(format!("{at}: missing {key}"));
                }
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, item) in object {
            match (properties.and_then(|p| p.get(key)), schema.get("additionalProperties")) {
                (Some(sub), _) => self.check(sub, item, &format!("{at}.{key}"), problems),
                (None, Some(Value::Bool(false))) => {
                    problems.push(format!("{at}: {key} is not in the schema"))
                }
                (None, Some(other @ Value::Object(_))) => {
                    self.check(other, item, &format!("{at}.{key}"), problems)
                }
                (None, _) => {}
            }
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

/// A document with an unknown field, one with a field of the wrong type
/// and one without a required field each fail its schema, and say why.
#[test]
fn the_validator_rejects_what_the_schema_forbids() {
    let good = json!({"schema": 2, "command": "list", "result": "error", "exit": 2,
        "message": "unknown flag", "next": null});
    assert_valid("error", &good);
    let wrong = |change: &dyn Fn(&mut Value)| {
        let mut document = good.clone();
        change(&mut document);
        problems(&schema_of("error"), &document)
    };
    let unknown = wrong(&|d| d["extra"] = json!(1));
    assert_eq!(unknown, ["$: extra is not in the schema"]);
    let mistyped = wrong(&|d| d["message"] = json!(7));
    assert_eq!(mistyped, ["$.message: 7 is not of type [\"string\"]"]);
    let missing = wrong(&|d| {
        d.as_object_mut().unwrap().remove("next");
    });
    assert_eq!(missing, ["$: missing next"]);
    let not_a_code = wrong(&|d| d["exit"] = json!(7));
    assert_eq!(not_a_code.len(), 1, "{not_a_code:?}");
    // A nested object of a generated schema is closed too.
    let mut report = json!({"schema": 2, "command": "post-check", "target": "/t", "result": "pass",
        "passed": 1, "failed": 0, "skipped": 0, "not_applicable": 0, "checks": [{"id": "imports",
        "title": "t", "status": "pass", "detail": "", "duration_ms": 0}]});
    assert_valid("report", &report);
    report["checks"][0]["status"] = json!("maybe");
    report["checks"][0]["extra"] = json!(true);
    assert_eq!(problems(&schema_of("report"), &report).len(), 2);
}

/// The keywords the generated schemas use beyond the basic ones.
#[test]
fn the_validator_knows_alternatives_references_and_bounds() {
    let schema = json!({
        "$defs": {"word": {"type": "string", "enum": ["a", "b"]}},
        "type": "object",
        "properties": {
            "one": {"oneOf": [{"enum": ["a", "b"]}, {"const": "b"}, {"const": "c"}]},
            "any": {"anyOf": [{"$ref": "#/$defs/word"}, {"type": "null"}]},
            "count": {"type": "integer", "minimum": 0, "maximum": 9},
            "map": {"type": "object", "additionalProperties": {"type": "boolean"}},
            "all": {"allOf": [{"type": "integer"}, {"minimum": 3}]}
        }
    });
    let fine = json!({"one": "a", "any": null, "count": 0, "map": {"x": true}, "all": 3});
    assert_eq!(problems(&schema, &fine), Vec::<String>::new());
    let cases = [
        json!({"one": "b"}),
        json!({"one": "d"}),
        json!({"any": "c"}),
        json!({"count": -1}),
        json!({"count": 10}),
        json!({"map": {"x": 1}}),
        json!({"all": 2}),
    ];
    for case in cases {
        assert_eq!(problems(&schema, &case).len(), 1, "{case}: {:?}", problems(&schema, &case));
    }
    let dangling = json!({"$ref": "#/$defs/nothing"});
    assert_eq!(problems(&dangling, &json!(1)).len(), 1);
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
    // The sandbox's, from a dry run: nothing is built.
    let out = dir.path().join("another");
    let planned = crate::run(
        crate::xtask()
            .args(["sandbox", "--dry-run", "--stage", "backed-up", "--format", "json", "--out"])
            .arg(&out),
    );
    crate::assert_code(&planned, 0);
    assert_valid("sandbox", &serde_json::from_str(&planned.stdout).unwrap());
}
