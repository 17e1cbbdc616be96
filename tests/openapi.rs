//! The OpenAPI document (`GET /api/v1/openapi.json`) and the server agree:
//!
//! - every documented operation is called on a real server with input built from the
//!   document's examples (a fresh object of the right kind stands in for an `{id}` example
//!   when the call needs one), answers 2xx, and its JSON validates against the documented
//!   schema; called without credentials (and, for admin routes, with a customer's key) or
//!   with a broken JSON body, it answers a documented error status with the documented error
//!   body;
//! - over the rate limit, every documented operation answers the documented 429 with a
//!   `Retry-After` header (the other tests run with the limits off);
//! - every route the router registers under `/api/v1` is documented (read through
//!   `GET /__dev/routes`, so routes added in any file count);
//! - the document keeps to the JSON Schema subset the validator below understands: `type`,
//!   `properties`, `required`, `items`, `nullable`, `enum` and `$ref` (plus the annotations
//!   `description`, `example` and `format`). An object schema with `properties` lists every
//!   field: an answer with an undocumented field fails.

mod common;

use std::collections::BTreeSet;

use serde_json::{json, Value};

use common::{Response, TestServer, PASSWORD};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];
const SCHEMA_KEYWORDS: [&str; 18] = [
    "additionalProperties",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "not",
    "type",
    "properties",
    "required",
    "items",
    "nullable",
    "enum",
    "$ref",
    "description",
    "example",
    "format",
];

// ---------------------------------------------------------------------------------------
// The validator

/// Follows `$ref` (`#/a/b/c`) until a value without one.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..20 {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            return v;
        };
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local $refs are supported: {r}"));
        v = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("$ref {r} points nowhere"));
    }
    panic!("$ref chain too long");
}

/// Checks that `schema` (and every schema inside it) uses only the supported keywords.
fn check_subset(schema: &Value, at: &str, problems: &mut Vec<String>) {
    let Some(map) = schema.as_object() else {
        problems.push(format!("{at}: a schema must be an object"));
        return;
    };
    for (k, v) in map {
        if !SCHEMA_KEYWORDS.contains(&k.as_str()) {
            problems.push(format!(
                "{at}: keyword `{k}` is outside the supported subset"
            ));
        }
        match k.as_str() {
            "properties" => {
                for (name, s) in v.as_object().into_iter().flatten() {
                    check_subset(s, &format!("{at}.{name}"), problems);
                }
            }
            "items" => check_subset(v, &format!("{at}[]"), problems),
            "not" => check_subset(v, &format!("{at}!"), problems),
            "required" => {
                for name in v.as_array().into_iter().flatten() {
                    let name = name.as_str().unwrap_or_default();
                    if map.get("properties").and_then(|p| p.get(name)).is_none() {
                        problems.push(format!("{at}: required `{name}` is not a property"));
                    }
                }
            }
            _ => {}
        }
    }
}

/// Validates `value` against `schema`; every mismatch goes to `errors` with its JSON path.
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            errors.push(format!("{at}: null but not nullable"));
        }
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
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
        Some(other) => {
            errors.push(format!("{at}: unknown type {other}"));
            return;
        }
    };
    if !type_ok {
        errors.push(format!("{at}: expected {}, got {value}", ty.unwrap()));
        return;
    }
    if let (Some(obj), Some(props)) = (
        value.as_object(),
        schema.get("properties").and_then(Value::as_object),
    ) {
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !obj.contains_key(name) {
                errors.push(format!("{at}: required field `{name}` is missing"));
            }
        }
        for (k, v) in obj {
            match props.get(k) {
                Some(s) => validate(doc, s, v, &format!("{at}.{k}"), errors),
                None => errors.push(format!("{at}: field `{k}` is not documented")),
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, v) in list.iter().enumerate() {
            validate(doc, items, v, &format!("{at}[{i}]"), errors);
        }
    }
    if let (Some(min), Some(n)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) {
        if n < min {
            errors.push(format!("{at}: {value} is below the minimum {min}"));
        }
    }
    if let (Some(max), Some(n)) = (
        schema.get("maximum").and_then(Value::as_f64),
        value.as_f64(),
    ) {
        if n > max {
            errors.push(format!("{at}: {value} is above the maximum {max}"));
        }
    }
    if let (Some(min), Some(list)) = (
        schema.get("minItems").and_then(Value::as_u64),
        value.as_array(),
    ) {
        if (list.len() as u64) < min {
            errors.push(format!("{at}: fewer than {min} items"));
        }
    }
    if let Some(not) = schema.get("not") {
        let mut inner = Vec::new();
        validate(doc, not, value, at, &mut inner);
        if inner.is_empty() {
            errors.push(format!("{at}: {value} matches a schema it must not"));
        }
    }
}

#[test]
fn the_validator_knows_its_subset() {
    let doc = json!({"components": {"schemas": {
        "Thing": {"type": "object", "required": ["id", "tags"], "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string", "nullable": true},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "tags": {"type": "array", "items": {"type": "string"}}
        }}
    }}});
    let thing = json!({"$ref": "#/components/schemas/Thing"});
    let errs = |v: Value| {
        let mut e = Vec::new();
        validate(&doc, &thing, &v, "$", &mut e);
        e
    };
    assert!(errs(json!({"id": 1, "name": null, "kind": "a", "tags": ["x"]})).is_empty());
    assert_eq!(errs(json!({"id": 1})).len(), 1, "missing tags");
    assert_eq!(errs(json!({"id": "1", "tags": []})).len(), 1, "string id");
    assert_eq!(errs(json!({"id": 1.5, "tags": []})).len(), 1, "float id");
    assert_eq!(errs(json!({"id": 1, "tags": [2]})).len(), 1, "item type");
    assert_eq!(
        errs(json!({"id": 1, "tags": [], "kind": "c"})).len(),
        1,
        "enum"
    );
    assert_eq!(errs(json!({"id": null, "tags": []})).len(), 1, "null id");
    assert_eq!(
        errs(json!({"id": 1, "tags": [], "extra": 0})).len(),
        1,
        "extra field"
    );
    assert_eq!(errs(json!([1])).len(), 1, "not an object");
    let bounded = json!({"type": "object", "properties": {
        "hours": {"type": "integer", "minimum": 4, "maximum": 1344},
        "amount": {"type": "integer", "not": {"enum": [0]}},
        "events": {"type": "array", "minItems": 1, "items": {"type": "string"}}
    }});
    let errs = |v: Value| {
        let mut e = Vec::new();
        validate(&doc, &bounded, &v, "$", &mut e);
        e
    };
    assert!(errs(json!({"hours": 4, "amount": -1, "events": ["x"]})).is_empty());
    assert!(errs(json!({"hours": 1344, "amount": 1})).is_empty());
    assert_eq!(errs(json!({"hours": 3})).len(), 1, "below the minimum");
    assert_eq!(errs(json!({"hours": 1345})).len(), 1, "above the maximum");
    assert_eq!(errs(json!({"amount": 0})).len(), 1, "not");
    assert_eq!(errs(json!({"events": []})).len(), 1, "minItems");
    let mut problems = Vec::new();
    check_subset(
        &json!({"type": "object", "required": ["x"], "properties": {"y": {"oneOf": []}}}),
        "$",
        &mut problems,
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
}

// ---------------------------------------------------------------------------------------
// The document

struct Op {
    method: String,
    path: String,
    op: Value,
}

impl Op {
    fn name(&self) -> String {
        format!("{} {}", self.method.to_uppercase(), self.path)
    }

    fn is_public(&self) -> bool {
        self.op.get("security") == Some(&json!([]))
    }

    fn is_admin(&self) -> bool {
        self.path.starts_with("/api/v1/admin/")
    }

    fn params<'a>(&'a self, doc: &'a Value, place: &str) -> Vec<&'a Value> {
        self.op
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|p| resolve(doc, p))
            .filter(|p| p["in"] == place)
            .collect()
    }

    fn body_example<'a>(&'a self, doc: &'a Value) -> Option<&'a Value> {
        let body = resolve(doc, self.op.get("requestBody")?);
        Some(
            body.pointer("/content/application~1json/example")
                .unwrap_or_else(|| panic!("{}: the request body has no example", self.name())),
        )
    }
}

fn operations(doc: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                ops.push(Op {
                    method: m.to_string(),
                    path: path.clone(),
                    op: op.clone(),
                });
            }
        }
    }
    ops
}

/// Structural rules: the schema subset, examples for every body and path parameter, every
/// `{param}` declared, at least one 2xx answer, errors in the error schema, unique ids.
fn check_document(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..4]), Some("3.0."));
    for (name, s) in doc["components"]["schemas"].as_object().expect("schemas") {
        check_subset(s, &format!("schema {name}"), &mut problems);
    }
    let error_ref = json!({"$ref": "#/components/schemas/Error"});
    let mut ids = BTreeSet::new();
    for op in operations(doc) {
        let name = op.name();
        if let Some(id) = op.op.get("operationId").and_then(Value::as_str) {
            if !ids.insert(id.to_string()) {
                problems.push(format!("{name}: operationId {id} used twice"));
            }
        }
        let declared: Vec<&str> = op
            .params(doc, "path")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for seg in op.path.split('/') {
            if let Some(p) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if !declared.contains(&p) {
                    problems.push(format!("{name}: path parameter {p} is not declared"));
                }
            }
        }
        for p in op.params(doc, "path") {
            if p.get("example").is_none() {
                problems.push(format!(
                    "{name}: path parameter {} has no example",
                    p["name"]
                ));
            }
        }
        for p in op
            .params(doc, "path")
            .iter()
            .chain(op.params(doc, "query").iter())
        {
            check_subset(&p["schema"], &format!("{name} parameter"), &mut problems);
        }
        if let Some(body) = op.op.get("requestBody") {
            let body = resolve(doc, body);
            match body.pointer("/content/application~1json") {
                Some(media) => {
                    check_subset(&media["schema"], &format!("{name} body"), &mut problems);
                    match media.get("example") {
                        None => problems.push(format!("{name}: the request body has no example")),
                        Some(ex) => {
                            let mut errs = Vec::new();
                            validate(doc, &media["schema"], ex, "example", &mut errs);
                            problems.extend(errs.into_iter().map(|e| format!("{name}: {e}")));
                        }
                    }
                }
                None => problems.push(format!("{name}: the request body is not JSON")),
            }
        }
        let responses = op.op["responses"].as_object().expect("responses");
        if !responses.keys().any(|s| s.starts_with('2')) {
            problems.push(format!("{name}: no 2xx answer documented"));
        }
        for (status, r) in responses {
            let r = resolve(doc, r);
            if let Some(schema) = r.pointer("/content/application~1json/schema") {
                check_subset(schema, &format!("{name} {status}"), &mut problems);
                if !status.starts_with('2') && resolve(doc, schema) != resolve(doc, &error_ref) {
                    problems.push(format!("{name}: {status} does not use the Error schema"));
                }
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------
// The server

struct World {
    server: TestServer,
    doc: Value,
    admin_key: String,
    customer_key: String,
    customer_id: i64,
    users_made: usize,
}

impl World {
    /// A demo server (simulator on, demo customer) whose simulated SMS do not arrive on their
    /// own during the test, cancellable at once, with an admin; no rate limits (the test sends
    /// many requests at once), and webhooks may call this machine (the delivery log fixture).
    /// Top-ups go to a local fake of Stripe (`common::payments`).
    fn start() -> World {
        let stripe = common::payments::FakeStripe::start();
        let server = TestServer::start_with(&[
            ("OTPBOX_STRIPE_SECRET_KEY", common::payments::STRIPE_KEY),
            (
                "OTPBOX_STRIPE_WEBHOOK_SECRET",
                common::payments::STRIPE_WHSEC,
            ),
            ("OTPBOX_STRIPE_API_BASE", &stripe.url),
            ("OTPBOX_DEMO", "true"),
            ("OTPBOX_DEV_CLOCK", "true"),
            ("OTPBOX_SIM_DELAY", "1h"),
            ("OTPBOX_EARLY_CANCEL", "0"),
            ("OTPBOX_API_RATE", "0"),
            ("OTPBOX_API_IP_RATE", "0"),
            ("OTPBOX_WEBHOOK_ALLOW_PRIVATE", "true"),
            // Telegram channels can be added; the bot's API is a closed local port, so
            // nothing leaves the machine.
            ("OTPBOX_TELEGRAM_BOT_TOKEN", "1:openapi-test"),
            ("OTPBOX_TELEGRAM_API", "http://127.0.0.1:9"),
        ]);
        server.create_user("root@example.com", "admin", PASSWORD);
        let admin_key = server.api_key("root@example.com");
        let customer_key = server.api_key("demo@example.com");
        let customer_id = server.user_id("demo@example.com").expect("demo customer");
        let r = server.client().get("/api/v1/openapi.json");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let doc = r.json();
        let w = World {
            server,
            doc,
            admin_key,
            customer_key,
            customer_id,
            users_made: 0,
        };
        // Enough money for every order the fixtures place.
        let r = w.call(
            "POST",
            &format!("/api/v1/admin/users/{}/credit", w.customer_id),
            Some(&w.admin_key),
            Some(&json!({"amount_minor": 100_000, "note": "test money"})),
        );
        assert_eq!(r.status, 200, "credit: {}", r.text());
        w
    }

    fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<&Value>) -> Response {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        self.server
            .client()
            .request(method, path, &headers, bytes.as_bytes())
    }

    fn key_for(&self, op: &Op) -> Option<String> {
        if op.is_public() {
            None
        } else if op.is_admin() {
            Some(self.admin_key.clone())
        } else {
            Some(self.customer_key.clone())
        }
    }

    /// The documented operation `method path`.
    fn op(&self, method: &str, path: &str) -> Option<Op> {
        self.doc["paths"][path].get(method).map(|op| Op {
            method: method.to_string(),
            path: path.to_string(),
            op: op.clone(),
        })
    }

    /// Creates a fresh object through the collection's documented POST (with its example
    /// body) and returns its id.
    fn create_through(&mut self, collection: &str) -> Option<i64> {
        let op = self.op("post", collection)?;
        let body = op.body_example(&self.doc).cloned();
        let key = self.key_for(&op);
        let r = self.call("POST", collection, key.as_deref(), body.as_ref());
        assert!(
            r.status == 201 || r.status == 200,
            "fixture POST {collection}: {} {}",
            r.status,
            r.text()
        );
        r.json()["id"].as_i64()
    }

    /// The value for path parameter `name` of `op`: a fresh object where the call needs one
    /// of its own, else the documented example.
    fn path_value(&mut self, op: &Op, name: &str, example: &Value) -> String {
        let template = format!("{{{name}}}");
        let collection = op.path[..op.path.find(&template).unwrap()].trim_end_matches('/');
        if collection == "/api/v1/admin/users" {
            self.users_made += 1;
            let email = format!("target{}@example.com", self.users_made);
            return self
                .server
                .create_user(&email, "user", PASSWORD)
                .to_string();
        }
        if name == "id" && op.path == "/api/v1/webhooks/{id}/deliveries" {
            return self.webhook_with_a_delivery().to_string();
        }
        // Notification channels are added one kind per operation: the e-mail one needs no
        // outside service.
        if name == "id" && collection == "/api/v1/notifications/channels" {
            return self
                .create_through("/api/v1/notifications/email")
                .expect("a channel")
                .to_string();
        }
        if name == "id" {
            if let Some(id) = self.create_through(collection) {
                if collection == "/api/v1/activations"
                    && (op.path.ends_with("/complete") || op.path.ends_with("/retry"))
                {
                    self.deliver_sms(id);
                }
                return id.to_string();
            }
        }
        example_text(example)
    }

    /// A webhook (the documented POST's example, pointed at a closed port of this machine)
    /// with one test delivery that has been attempted once, so its log has an entry.
    fn webhook_with_a_delivery(&mut self) -> i64 {
        let op = self
            .op("post", "/api/v1/webhooks")
            .expect("POST /api/v1/webhooks");
        let mut body = op.body_example(&self.doc).cloned().unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        body["url"] = json!(format!("http://{}/hook", closed.local_addr().unwrap()));
        drop(closed);
        let key = self.customer_key.clone();
        let r = self.call("POST", "/api/v1/webhooks", Some(&key), Some(&body));
        assert_eq!(r.status, 201, "webhook fixture: {}", r.text());
        let id = r.json()["id"].as_i64().unwrap();
        let r = self.call(
            "POST",
            &format!("/api/v1/webhooks/{id}/test"),
            Some(&key),
            None,
        );
        assert_eq!(r.status, 202, "test delivery: {}", r.text());
        self.server.run_jobs();
        let attempts = self.server.count(&format!(
            "SELECT COUNT(*) FROM webhook_attempts a JOIN webhook_deliveries d \
             ON d.id = a.delivery_id WHERE d.webhook_id = {id}"
        ));
        assert_eq!(attempts, 1, "the test delivery was attempted once");
        id
    }

    /// What `op` reads must exist: the SMS-Activate URL is set through its documented PUT.
    fn prepare(&mut self, op: &Op) {
        if op.method == "get" && op.path == "/api/v1/webhooks/sms-activate" {
            let put = self
                .op("put", &op.path)
                .expect("PUT /api/v1/webhooks/sms-activate");
            let body = put.body_example(&self.doc).cloned();
            let key = self.customer_key.clone();
            let r = self.call("PUT", &op.path, Some(&key), body.as_ref());
            assert_eq!(r.status, 200, "SMS-Activate URL fixture: {}", r.text());
        }
    }

    /// An SMS with a code for activation `id`, through `otpbox sms inject`.
    fn deliver_sms(&mut self, id: i64) {
        let key = self.customer_key.clone();
        let r = self.call(
            "GET",
            &format!("/api/v1/activations/{id}"),
            Some(&key),
            None,
        );
        let phone = r.json()["phone"].as_str().unwrap().to_string();
        self.server.cli_ok(&[
            "sms",
            "inject",
            "--to",
            &phone,
            "--from",
            "Telegram",
            "--text",
            "Telegram code: 53127",
        ]);
        let r = self.call(
            "GET",
            &format!("/api/v1/activations/{id}"),
            Some(&key),
            None,
        );
        assert_eq!(r.json()["status"], "received", "{}", r.text());
    }

    /// The request body for `op`: its example, except that a voucher to redeem must exist.
    fn body_for(&mut self, op: &Op) -> Option<Value> {
        let mut body = op.body_example(&self.doc).cloned()?;
        if op.path == "/api/v1/vouchers/redeem" {
            let key = self.admin_key.clone();
            let r = self.call(
                "POST",
                "/api/v1/admin/vouchers",
                Some(&key),
                Some(&json!({"amount_minor": 100, "count": 1, "valid_days": 1})),
            );
            assert_eq!(r.status, 201, "voucher fixture: {}", r.text());
            body["code"] = r.json()["codes"][0].clone();
        }
        Some(body)
    }

    /// `op`'s path with its parameters filled in and the query parameters that have examples.
    fn url_for(&mut self, op: &Op, fresh: bool) -> String {
        let doc = self.doc.clone();
        if !fresh {
            return example_url(&doc, op);
        }
        let mut path = op.path.clone();
        for p in op.params(&doc, "path") {
            let name = p["name"].as_str().unwrap();
            let value = self.path_value(op, name, &p["example"]);
            path = path.replace(&format!("{{{name}}}"), &common::url_encode(&value));
        }
        with_query(&doc, op, path)
    }

    /// Checks an answer against `op`'s documentation; problems are returned.
    fn check_answer(&self, op: &Op, url: &str, r: &Response) -> Vec<String> {
        check_answer(&self.doc, op, url, r)
    }
}

/// The value of an example as it goes into a URL.
fn example_text(example: &Value) -> String {
    match example {
        Value::String(s) => s.clone(),
        // `style: form, explode: false`: the items, comma-separated.
        Value::Array(items) => items.iter().map(example_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// `op`'s URL built from the documented examples alone.
fn example_url(doc: &Value, op: &Op) -> String {
    let mut path = op.path.clone();
    for p in op.params(doc, "path") {
        let name = p["name"].as_str().unwrap();
        let value = example_text(&p["example"]);
        path = path.replace(&format!("{{{name}}}"), &common::url_encode(&value));
    }
    with_query(doc, op, path)
}

/// `path` followed by `op`'s query parameters that have examples.
fn with_query(doc: &Value, op: &Op, path: String) -> String {
    let query: Vec<String> = op
        .params(doc, "query")
        .iter()
        .filter_map(|p| {
            let v = example_text(p.get("example")?);
            Some(format!(
                "{}={}",
                p["name"].as_str()?,
                common::url_encode(&v)
            ))
        })
        .collect();
    if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// Checks an answer against `op`'s documentation; problems are returned.
fn check_answer(doc: &Value, op: &Op, url: &str, r: &Response) -> Vec<String> {
    let name = format!("{} {url}", op.method.to_uppercase());
    let Some(documented) = op.op["responses"].get(r.status.to_string()) else {
        return vec![format!(
            "{name}: status {} is not documented ({})",
            r.status,
            r.text()
        )];
    };
    let documented = resolve(doc, documented);
    let Some(schema) = documented.pointer("/content/application~1json/schema") else {
        if r.body.is_empty() {
            return vec![];
        }
        return vec![format!(
            "{name}: {} has a body, none is documented",
            r.status
        )];
    };
    if !r
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return vec![format!("{name}: {} is not JSON", r.status)];
    }
    let Ok(value) = serde_json::from_slice::<Value>(&r.body) else {
        return vec![format!(
            "{name}: {} body is not JSON: {}",
            r.status,
            r.text()
        )];
    };
    let mut errors = Vec::new();
    validate(doc, schema, &value, "$", &mut errors);
    errors
        .into_iter()
        .map(|e| format!("{name} → {}: {e}", r.status))
        .collect()
}

#[test]
fn the_document_follows_its_own_rules() {
    let doc: Value =
        serde_json::from_str(include_str!("../src/http/api/openapi.json")).expect("valid JSON");
    let problems = check_document(&doc);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(operations(&doc).len() >= 30);
}

#[test]
fn every_documented_operation_answers_as_documented() {
    let mut w = World::start();
    let problems = check_document(&w.doc);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let doc = w.doc.clone();
    // Creating calls first, so that the lists read afterwards have items to validate.
    let mut ops = operations(&doc);
    ops.sort_by_key(|op| op.method != "post" || op.path.contains('{'));
    let mut problems = Vec::new();

    for op in &ops {
        // Success with valid input.
        w.prepare(op);
        let url = w.url_for(op, true);
        let body = w.body_for(op);
        let key = w.key_for(op);
        let r = w.call(
            &op.method.to_uppercase(),
            &url,
            key.as_deref(),
            body.as_ref(),
        );
        eprintln!("{} {url} → {}", op.method.to_uppercase(), r.status);
        if !(200..300).contains(&r.status) {
            problems.push(format!(
                "{} {url}: expected success, got {} {}",
                op.method.to_uppercase(),
                r.status,
                r.text()
            ));
        }
        problems.extend(w.check_answer(op, &url, &r));

        let url = w.url_for(op, false);
        let method = op.method.to_uppercase();
        if !op.is_public() {
            // Without credentials.
            let r = w.call(&method, &url, None, body.as_ref());
            if r.status != 401 {
                problems.push(format!("{method} {url} without a key: {}", r.status));
            }
            problems.extend(w.check_answer(op, &url, &r));
        }
        if op.is_admin() {
            // A customer's key on an admin route.
            let key = w.customer_key.clone();
            let r = w.call(&method, &url, Some(&key), body.as_ref());
            if r.status != 403 {
                problems.push(format!("{method} {url} as a customer: {}", r.status));
            }
            problems.extend(w.check_answer(op, &url, &r));
        }
        if body.is_some() {
            // A broken body.
            let auth = key.map(|k| format!("Bearer {k}"));
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(a) = &auth {
                headers.push(("Authorization", a.as_str()));
            }
            let r = w
                .server
                .client()
                .request(&method, &url, &headers, b"{\"oops");
            if r.status != 400 {
                problems.push(format!("{method} {url} with a broken body: {}", r.status));
            }
            problems.extend(w.check_answer(op, &url, &r));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_operation_documents_the_rate_limit() {
    // One request per second per address, no burst to speak of; keys unlimited, so the
    // address's bucket is the one that refuses.
    let s = TestServer::start_with(&[
        ("OTPBOX_API_RATE", "0"),
        ("OTPBOX_API_IP_RATE", "1"),
        ("OTPBOX_API_IP_BURST", "1"),
    ]);
    let doc: Value =
        serde_json::from_str(include_str!("../src/http/api/openapi.json")).expect("valid JSON");
    let mut problems = Vec::new();
    for op in operations(&doc) {
        let method = op.method.to_uppercase();
        let url = example_url(&doc, &op);
        let body = op.body_example(&doc).map(Value::to_string);
        let headers: &[(&str, &str)] = if body.is_some() {
            &[("Content-Type", "application/json")]
        } else {
            &[]
        };
        let bytes = body.unwrap_or_default();
        // Without a key nothing changes; a token refilled in between lets one through.
        let refused = (0..5)
            .map(|_| s.client().request(&method, &url, headers, bytes.as_bytes()))
            .find(|r| r.status == 429);
        let Some(r) = refused else {
            problems.push(format!("{method} {url}: never refused"));
            continue;
        };
        problems.extend(check_answer(&doc, &op, &url, &r));
        if r.json()["error"]["code"] != "rate_limited" {
            problems.push(format!("{method} {url}: 429 {}", r.text()));
        }
        let retry_after = r.header("retry-after").and_then(|v| v.parse::<u64>().ok());
        if retry_after.unwrap_or(0) < 1 {
            problems.push(format!("{method} {url}: no Retry-After in whole seconds"));
        }
        let documented = resolve(&doc, &op.op["responses"]["429"]);
        if documented.pointer("/headers/Retry-After").is_none() {
            problems.push(format!("{method} {}: 429 without Retry-After", op.path));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_api_route_is_documented() {
    let s = TestServer::start_with(&[("OTPBOX_DEV_CLOCK", "true")]);
    let mut c = s.client();
    let doc = c.get("/api/v1/openapi.json").json();
    let routes = c.get("/__dev/routes").json();
    let routes = routes.as_array().expect("a list of routes");
    let mut registered = BTreeSet::new();
    let mut missing = Vec::new();
    for r in routes {
        let (method, path) = (r["method"].as_str().unwrap(), r["path"].as_str().unwrap());
        if !path.starts_with("/api/v1/") && path != "/api/v1" {
            continue;
        }
        let m = method.to_ascii_lowercase();
        registered.insert((m.clone(), path.to_string()));
        if doc["paths"][path].get(&m).is_none() {
            missing.push(format!("{method} {path}"));
        }
    }
    assert!(
        missing.is_empty(),
        "registered but not in openapi.json:\n{}",
        missing.join("\n")
    );
    let ghosts: Vec<String> = operations(&doc)
        .into_iter()
        .filter(|op| !registered.contains(&(op.method.clone(), op.path.clone())))
        .map(|op| op.name())
        .collect();
    assert!(
        ghosts.is_empty(),
        "documented but not routed:\n{}",
        ghosts.join("\n")
    );
    assert!(registered.len() >= 30, "{registered:?}");
}

/// What the document forbids, the server refuses with a documented 400 in the API's JSON error
/// form (issue 17, item 7): query parameters given twice, `null`, not integers or outside the
/// stated range; a missing body where the body is required; `null` where an array is typed;
/// values outside the stated minimum and maximum, and the one value a `not` excludes. Each
/// case's valid neighbour is accepted, so the boundary is where the document puts it.
#[test]
fn what_the_document_forbids_is_refused_with_400() {
    let w = World::start();
    let customer = w.customer_key.clone();
    let admin = w.admin_key.clone();
    let mut problems = Vec::new();
    let mut expect =
        |method: &str, path: &str, url: &str, key: &str, body: Option<&Value>, status: u16| {
            let op = w
                .op(method, path)
                .unwrap_or_else(|| panic!("{method} {path} is not documented"));
            let r = w.call(&method.to_uppercase(), url, Some(key), body);
            if r.status != status {
                problems.push(format!(
                    "{method} {url} {body:?}: expected {status}, got {} {}",
                    r.status,
                    r.text()
                ));
            }
            if status == 400 && r.json()["error"]["code"] != "invalid_request" {
                problems.push(format!(
                    "{method} {url}: not the JSON error form: {}",
                    r.text()
                ));
            }
            problems.extend(w.check_answer(&op, url, &r));
        };

    // Integer query parameters: once, an integer, within the documented range.
    for (path, key, name, lo, hi) in [
        ("/api/v1/ledger", &customer, "limit", 1, Some(500)),
        ("/api/v1/ledger", &customer, "before", 0, Some(i64::MAX)),
        ("/api/v1/activations", &customer, "limit", 1, Some(200)),
        ("/api/v1/activations", &customer, "offset", 0, Some(10_000)),
        (
            "/api/v1/activations",
            &customer,
            "before",
            0,
            Some(i64::MAX),
        ),
        ("/api/v1/admin/users", &admin, "limit", 1, Some(200)),
        ("/api/v1/admin/users", &admin, "offset", 0, Some(10_000)),
        ("/api/v1/admin/users", &admin, "before", 0, Some(i64::MAX)),
        ("/api/v1/admin/vouchers", &admin, "limit", 1, Some(1000)),
    ] {
        let doc_schema = &w.doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["schema"];
        assert_eq!(
            doc_schema["minimum"], lo,
            "{path} {name}: documented minimum"
        );
        assert_eq!(
            doc_schema.get("maximum").and_then(Value::as_i64),
            hi,
            "{path} {name}: documented maximum"
        );
        let get = |q: &str| format!("{path}?{q}");
        for bad in [
            format!("{name}=null&{name}=null"),
            format!("{name}={lo}&{name}={lo}"),
            format!("{name}=null"),
            format!("{name}="),
            format!("{name}=1.5"),
            format!("{name}={}", lo - 1),
        ] {
            expect("get", path, &get(&bad), key, None, 400);
        }
        expect("get", path, &get(&format!("{name}={lo}")), key, None, 200);
        if let Some(hi) = hi {
            expect("get", path, &get(&format!("{name}={hi}")), key, None, 200);
            expect(
                "get",
                path,
                &get(&format!("{name}={}", i128::from(hi) + 1)),
                key,
                None,
                400,
            );
        }
    }
    // The document is the contract: an undocumented parameter, a body that is not the
    // documented object or names an undocumented field, a value outside a `pattern`.
    expect(
        "get",
        "/api/v1/activations",
        "/api/v1/activations?limt=5",
        &customer,
        None,
        400,
    );
    expect(
        "get",
        "/api/v1/catalogue",
        "/api/v1/catalogue?country=6&x=1",
        &customer,
        None,
        400,
    );
    expect(
        "get",
        "/api/v1/rentals",
        "/api/v1/rentals?status=done",
        &customer,
        None,
        400,
    );
    for body in [json!([]), json!({"nmae": "bot"}), json!({"name": 5})] {
        expect(
            "post",
            "/api/v1/keys",
            "/api/v1/keys",
            &customer,
            Some(&body),
            400,
        );
    }
    for url in [
        "ftp://hooks.example.invalid/x",
        "https://hooks example.invalid/",
        "",
    ] {
        let body = json!({"url": url});
        expect(
            "post",
            "/api/v1/webhooks",
            "/api/v1/webhooks",
            &customer,
            Some(&body),
            400,
        );
    }
    let body = json!({"country": 6, "service": "tg", "exclude_prefixes": ["62a"]});
    expect(
        "post",
        "/api/v1/activations",
        "/api/v1/activations",
        &customer,
        Some(&body),
        400,
    );
    // What does not exist is looked for in vain: 404 with the protocol's code.
    let r = w.call(
        "POST",
        "/api/v1/activations",
        Some(&customer),
        Some(&json!({"country": 6, "service": "nosuch"})),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "bad_service");
    let r = w.call(
        "POST",
        "/api/v1/vouchers/redeem",
        Some(&customer),
        Some(&json!({"code": "AAAA-BBBB-CCCC-DDDD"})),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    // The webhook deliveries' limit (a webhook to list them of).
    let r = w.call(
        "POST",
        "/api/v1/webhooks",
        Some(&customer),
        Some(&json!({"url": "https://hooks.example.invalid/otp"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let hook = r.json()["id"].as_i64().unwrap();
    let deliveries = format!("/api/v1/webhooks/{hook}/deliveries");
    for (q, status) in [
        ("limit=null&limit=null", 400),
        ("limit=0", 400),
        ("limit=201", 400),
        ("limit=1", 200),
        ("limit=200", 200),
    ] {
        expect(
            "get",
            "/api/v1/webhooks/{id}/deliveries",
            &format!("{deliveries}?{q}"),
            &customer,
            None,
            status,
        );
    }

    // A required body is required: nothing at all is refused, `{}` takes the defaults.
    expect("post", "/api/v1/keys", "/api/v1/keys", &customer, None, 400);
    expect(
        "post",
        "/api/v1/keys",
        "/api/v1/keys",
        &customer,
        Some(&json!({})),
        201,
    );

    // `events`: omitted means every event; `null` and an empty list are refused.
    for (events, status) in [
        (json!(null), 400),
        (json!([]), 400),
        (json!(["sms.received"]), 201),
    ] {
        expect(
            "post",
            "/api/v1/webhooks",
            "/api/v1/webhooks",
            &customer,
            Some(&json!({"url": "https://hooks.example.invalid/e", "events": events})),
            status,
        );
    }

    // Body fields outside the documented minimum, maximum or `not`: the example body with one
    // field changed.
    let credit = format!("/api/v1/admin/users/{}/credit", w.customer_id);
    for (path, url, key, field, values) in [
        (
            "/api/v1/rentals",
            "/api/v1/rentals",
            &customer,
            "hours",
            vec![3, 1345],
        ),
        (
            "/api/v1/admin/users/{id}/credit",
            credit.as_str(),
            &admin,
            "amount_minor",
            vec![0],
        ),
        (
            "/api/v1/admin/prices",
            "/api/v1/admin/prices",
            &admin,
            "price_minor",
            vec![-1],
        ),
        (
            "/api/v1/admin/prices",
            "/api/v1/admin/prices",
            &admin,
            "rent_hour_minor",
            vec![-1],
        ),
        (
            "/api/v1/admin/vouchers",
            "/api/v1/admin/vouchers",
            &admin,
            "amount_minor",
            vec![0, -5],
        ),
    ] {
        let op = w.op("post", path).unwrap();
        let example = op.body_example(&w.doc).cloned().expect("an example body");
        for v in values {
            let mut body = example.clone();
            body[field] = json!(v);
            expect("post", path, url, key, Some(&body), 400);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
