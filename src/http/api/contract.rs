//! The OpenAPI document as the native API's contract: every request to a documented operation
//! is checked against what `openapi.json` says before its handler runs, so the server refuses
//! exactly what the document forbids and the two cannot drift apart. A refusal is a 400
//! `invalid_request` naming the parameter or field, and changes nothing.
//!
//! Query parameters: an undocumented name, a name given twice, an empty or `null` value where
//! the schema does not allow it, a missing required one, or a value outside its schema. Bodies:
//! a missing required body, JSON that does not parse, or a value outside its schema (request
//! objects are closed: a field the document does not name is refused). Path parameters are
//! left to the handlers (an id that is not an integer finds nothing: 404).
//!
//! The validator knows the subset of JSON Schema the document uses (`type`, `nullable`,
//! `enum`, `not: {enum}`, `minimum`, `maximum`, `minLength`, `maxLength`, `pattern`,
//! `minItems`, `maxItems`, `items`, `properties`, `required`, `$ref`); `tests/openapi.rs`
//! fails on a keyword outside it.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use super::OPENAPI;
use crate::http::request::{Method, Request};
use crate::http::response::Response;

/// One documented operation's inputs.
struct Operation {
    /// (name, required, schema) of each query parameter.
    query: Vec<(String, bool, Value)>,
    /// The body's schema and whether a body is required.
    body: Option<(bool, Value)>,
}

struct Contract {
    doc: Value,
    ops: HashMap<(String, String), Operation>,
    /// Every `pattern` of the document, compiled once.
    patterns: HashMap<String, Regex>,
}

fn collect_patterns(v: &Value, out: &mut HashMap<String, Regex>) {
    match v {
        Value::Object(map) => {
            for (k, inner) in map {
                match (k.as_str(), inner) {
                    ("pattern", Value::String(p)) => {
                        // A unit test proves every pattern compiles.
                        if let Ok(re) = Regex::new(p) {
                            out.insert(p.clone(), re);
                        }
                    }
                    _ => collect_patterns(inner, out),
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|i| collect_patterns(i, out)),
        _ => {}
    }
}

fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        // A unit test proves the embedded document parses.
        let doc: Value = serde_json::from_str(OPENAPI).unwrap_or(Value::Null);
        let mut ops = HashMap::new();
        let paths = doc.get("paths").and_then(Value::as_object);
        for (path, item) in paths.into_iter().flatten() {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                let params = op.get("parameters").and_then(Value::as_array);
                let query = params
                    .into_iter()
                    .flatten()
                    .map(|p| resolve(&doc, p))
                    .filter(|p| p.get("in").and_then(Value::as_str) == Some("query"))
                    .map(|p| {
                        (
                            p["name"].as_str().unwrap_or("").to_string(),
                            p.get("required") == Some(&Value::Bool(true)),
                            p.get("schema").cloned().unwrap_or(Value::Null),
                        )
                    })
                    .collect();
                let body = op.get("requestBody").map(|b| {
                    let b = resolve(&doc, b);
                    (
                        b.get("required") == Some(&Value::Bool(true)),
                        b.pointer("/content/application~1json/schema")
                            .cloned()
                            .unwrap_or(Value::Null),
                    )
                });
                ops.insert(
                    (method.to_ascii_uppercase(), path.clone()),
                    Operation { query, body },
                );
            }
        }
        let mut patterns = HashMap::new();
        collect_patterns(&doc, &mut patterns);
        Contract { doc, ops, patterns }
    })
}

fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(target) = v.get("$ref").and_then(Value::as_str) else {
            break;
        };
        match target.strip_prefix('#').and_then(|p| doc.pointer(p)) {
            Some(t) => v = t,
            None => break,
        }
    }
    v
}

fn refuse(message: &str) -> Response {
    Response::json_error(400, "invalid_request", message)
}

/// Checks `req` against the documented operation `method pattern` (the route's pattern); an
/// undocumented operation passes (`tests/openapi.rs` fails on one).
pub fn check(method: Method, pattern: &str, req: &Request) -> Result<(), Response> {
    let c = contract();
    let Some(op) = c
        .ops
        .get(&(method.as_str().to_string(), pattern.to_string()))
    else {
        return Ok(());
    };
    check_query(&c.doc, op, req)?;
    if let Some((required, schema)) = &op.body {
        check_body(&c.doc, *required, schema, &req.body)?;
    }
    Ok(())
}

fn check_query(doc: &Value, op: &Operation, req: &Request) -> Result<(), Response> {
    let pairs = req.query_pairs();
    for (i, (name, value)) in pairs.iter().enumerate() {
        let Some((_, _, schema)) = op.query.iter().find(|(n, _, _)| n == name) else {
            return Err(refuse(&format!(
                "`{}` is not a parameter of this operation.",
                shown(name)
            )));
        };
        if pairs[..i].iter().any(|(n, _)| n == name) {
            return Err(refuse(&format!("`{name}` is given more than once.")));
        }
        let value = query_value(resolve(doc, schema), value);
        let mut errors = Vec::new();
        validate(doc, schema, &value, name, &mut errors);
        if let Some(first) = errors.first() {
            return Err(refuse(first));
        }
    }
    for (name, required, _) in &op.query {
        if *required && !pairs.iter().any(|(n, _)| n == name) {
            return Err(refuse(&format!("`{name}` is required.")));
        }
    }
    Ok(())
}

/// A query string value as the JSON value its schema reads: integers and booleans parsed
/// (anything else stays a string, which the type check then refuses), arrays split on commas
/// (`style: form, explode: false`), `null` only where the schema is nullable.
fn query_value(schema: &Value, text: &str) -> Value {
    match schema.get("type").and_then(Value::as_str) {
        Some("integer") => text
            .parse::<i64>()
            .ok()
            .filter(|_| !text.starts_with('+'))
            .map(Value::from)
            .unwrap_or_else(|| Value::String(text.to_string())),
        Some("boolean") => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(text.to_string()),
        },
        Some("array") => {
            let items = schema.get("items").unwrap_or(&Value::Null);
            Value::Array(text.split(',').map(|t| query_value(items, t)).collect())
        }
        _ => Value::String(text.to_string()),
    }
}

fn check_body(doc: &Value, required: bool, schema: &Value, body: &[u8]) -> Result<(), Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return if required {
            Err(refuse("A JSON body is required (`{}` for the defaults)."))
        } else {
            Ok(())
        };
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| refuse(&format!("The JSON body is not valid: {e}")))?;
    let mut errors = Vec::new();
    validate(doc, schema, &value, "body", &mut errors);
    match errors.first() {
        Some(first) => Err(refuse(first)),
        None => Ok(()),
    }
}

/// A name as it may be shown back: at most 40 characters.
fn shown(name: &str) -> String {
    name.chars().take(40).collect()
}

/// Checks `value` against `schema`, pushing one sentence per problem (`at` names the place).
pub fn validate(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            errors.push(format!("`{at}` must not be null."));
        }
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str);
    let type_ok = match ty {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some(_) => false,
    };
    if !type_ok {
        let ty = ty.unwrap_or("");
        let article = if ty.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        errors.push(format!("`{at}` must be {article} {ty}."));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            errors.push(format!("`{at}` must be one of {}.", list.join(", ")));
        }
    }
    if let Some(banned) = schema.pointer("/not/enum").and_then(Value::as_array) {
        if banned.contains(value) {
            errors.push(format!("`{at}` must not be {value}."));
        }
    }
    if let Some(n) = value.as_i64().map(|n| n as f64).or_else(|| value.as_f64()) {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            if n < min {
                errors.push(format!("`{at}` must be at least {min}."));
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            if n > max {
                errors.push(format!("`{at}` must be at most {max}."));
            }
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
            if len < min {
                errors.push(format!("`{at}` must be at least {min} characters long."));
            }
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
            if len > max {
                errors.push(format!("`{at}` must be at most {max} characters long."));
            }
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
            if !contract().patterns.get(p).is_some_and(|re| re.is_match(s)) {
                errors.push(format!("`{at}` is not in the documented form."));
            }
        }
    }
    if let Some(list) = value.as_array() {
        let n = list.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
            if n < min {
                errors.push(format!("`{at}` needs at least {min} items."));
            }
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
            if n > max {
                errors.push(format!("`{at}` takes at most {max} items."));
            }
        }
        if let Some(items) = schema.get("items") {
            for (i, v) in list.iter().enumerate() {
                validate(doc, items, v, &format!("{at}[{i}]"), errors);
            }
        }
    }
    if let Some(obj) = value.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        let required = schema.get("required").and_then(Value::as_array);
        for name in required.into_iter().flatten().filter_map(Value::as_str) {
            if !obj.contains_key(name) {
                errors.push(format!("`{at}.{name}` is required."));
            }
        }
        for (k, v) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(doc, s, v, &format!("{at}.{k}"), errors),
                None => errors.push(format!("`{at}` has no field `{}`.", shown(k))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(method: Method, pattern: &str, url: &str, body: &str) -> u16 {
        let req = Request::fake(method, url, body.as_bytes());
        match check(method, pattern, &req) {
            Ok(()) => 200,
            Err(r) => r.status,
        }
    }

    #[test]
    fn the_document_parses_and_names_its_operations() {
        assert!(contract().ops.len() > 30);
        fn strings(v: &Value, out: &mut std::collections::BTreeSet<String>) {
            match v {
                Value::Object(m) => m.iter().for_each(|(k, i)| match (k.as_str(), i) {
                    ("pattern", Value::String(p)) => drop(out.insert(p.clone())),
                    _ => strings(i, out),
                }),
                Value::Array(l) => l.iter().for_each(|i| strings(i, out)),
                _ => {}
            }
        }
        let mut all = std::collections::BTreeSet::new();
        strings(&contract().doc, &mut all);
        assert!(!all.is_empty());
        assert_eq!(
            all.len(),
            contract().patterns.len(),
            "every pattern compiles"
        );
        assert!(contract()
            .ops
            .contains_key(&("POST".into(), "/api/v1/keys".into())));
    }

    #[test]
    fn query_parameters_are_checked_against_the_document() {
        let list = "/api/v1/activations";
        for (url, want) in [
            ("/api/v1/activations", 200),
            ("/api/v1/activations?limit=200&offset=0", 200),
            ("/api/v1/activations?limit=201", 400),
            ("/api/v1/activations?limit=0", 400),
            ("/api/v1/activations?limit=", 400),
            ("/api/v1/activations?limit=null", 400),
            ("/api/v1/activations?limit=%2B5", 400),
            ("/api/v1/activations?limit=5&limit=5", 400),
            ("/api/v1/activations?limt=5", 400),
            ("/api/v1/activations?status=live", 200),
            ("/api/v1/activations?status=waiting,completed", 200),
            ("/api/v1/activations?status=waiting,nosuch", 400),
            ("/api/v1/activations?status=", 400),
        ] {
            assert_eq!(status(Method::Get, list, url, ""), want, "{url}");
        }
    }

    #[test]
    fn bodies_are_checked_against_the_document() {
        let keys = "/api/v1/keys";
        for (body, want) in [
            ("{}", 200),
            (r#"{"name": "bot"}"#, 200),
            ("", 400),
            ("  ", 400),
            ("[]", 400),
            ("null", 400),
            ("{", 400),
            (r#"{"name": null}"#, 400),
            (r#"{"name": 5}"#, 400),
            (r#"{"nmae": "bot"}"#, 400),
        ] {
            assert_eq!(status(Method::Post, keys, keys, body), want, "{body}");
        }
        let credit = "/api/v1/admin/users/{id}/credit";
        let url = "/api/v1/admin/users/1/credit";
        assert_eq!(
            status(Method::Post, credit, url, r#"{"amount_minor": 0}"#),
            400
        );
        assert_eq!(
            status(Method::Post, credit, url, r#"{"amount_minor": -5}"#),
            200
        );
    }
}
