//! Marketplace helpers: customers with a balance and an API key, a stock of manual numbers,
//! the native API (`/api/v1`) as a client uses it, SMS through `otpbox sms inject`, and the
//! ledger queries the money assertions need.

use serde_json::{json, Value};

use super::{Client, Response, TestServer};

/// Indonesia: the seed catalogue prices every service there.
pub const COUNTRY: i64 = 6;

/// A client of the native API: sends `Authorization: Bearer <key>` with every request.
#[derive(Clone)]
pub struct Api {
    pub client: Client,
    pub user_id: i64,
    pub email: String,
}

impl Api {
    pub fn new(server: &TestServer, key: &str, user_id: i64, email: &str) -> Api {
        let mut client = server.client();
        client.always_send("Authorization", &format!("Bearer {key}"));
        Api {
            client,
            user_id,
            email: email.to_string(),
        }
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.client.get(path)
    }

    pub fn post(&mut self, path: &str, body: Value) -> Response {
        self.client.post_json(path, &body)
    }

    /// `POST /api/v1/activations` for `service` in [`COUNTRY`].
    pub fn order(&mut self, service: &str) -> Response {
        self.post(
            "/api/v1/activations",
            json!({"country": COUNTRY, "service": service}),
        )
    }

    /// Orders and asserts the new activation was created (201); its JSON.
    pub fn order_ok(&mut self, service: &str) -> Value {
        let r = self.order(service);
        assert_eq!(r.status, 201, "order {service}: {}", r.text());
        r.json()
    }

    /// `GET /api/v1/activations/{id}`, asserting 200.
    pub fn activation(&mut self, id: i64) -> Value {
        let r = self.get(&format!("/api/v1/activations/{id}"));
        assert_eq!(r.status, 200, "activation {id}: {}", r.text());
        r.json()
    }

    /// `POST /api/v1/activations/{id}/{action}` (cancel, used, complete, retry, ready).
    pub fn act(&mut self, id: i64, action: &str) -> Response {
        self.client
            .post(&format!("/api/v1/activations/{id}/{action}"), b"")
    }

    pub fn balance(&mut self) -> i64 {
        let r = self.get("/api/v1/balance");
        assert_eq!(r.status, 200, "balance: {}", r.text());
        r.json()["balance_minor"].as_i64().expect("balance_minor")
    }
}

/// The `error.code` of an API error answer.
pub fn error_code(r: &Response) -> String {
    r.json()["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an API error: {} {}", r.status, r.text()))
        .to_string()
}

/// The `id` of an activation or rental JSON.
pub fn id_of(v: &Value) -> i64 {
    v["id"].as_i64().unwrap_or_else(|| panic!("no id in {v}"))
}

impl TestServer {
    /// A verified customer credited with `amount` (major units, e.g. "10.00") and an API key
    /// made by `otpbox key create`.
    pub fn customer(&self, email: &str, amount: &str) -> Api {
        let id = self.create_user(email, "user", super::PASSWORD);
        self.cli_ok(&["user", "credit", "--email", email, "--amount", amount]);
        let key = self.cli_ok(&["key", "create", "--email", email]);
        Api::new(self, key.trim(), id, email)
    }

    /// Puts manual numbers on sale (the stock an operator's SIMs would provide).
    pub fn add_numbers(&self, country: i64, phones: &[&str]) {
        let db = self.db();
        for p in phones {
            db.execute(
                "INSERT INTO numbers (phone, country_id, operator, source, created_at) \
                 VALUES (?1, ?2, '', 'manual', strftime('%s','now'))",
                rusqlite::params![p, country],
            )
            .expect("insert a number");
        }
    }

    /// The price of `service` in [`COUNTRY`], as the public catalogue says.
    pub fn price(&self, service: &str) -> i64 {
        let r = self.client().get(&format!(
            "/api/v1/catalogue?country={COUNTRY}&service={service}"
        ));
        assert_eq!(r.status, 200, "catalogue: {}", r.text());
        r.json()["offers"][0]["price_minor"]
            .as_i64()
            .unwrap_or_else(|| panic!("no offer for {service}: {}", r.text()))
    }

    /// Delivers an SMS with `otpbox sms inject`; true when it reached an order. The command's
    /// output must agree with its exit code.
    pub fn inject(&self, to: &str, text: &str) -> bool {
        let out = self.cli(&[
            "sms", "inject", "--to", to, "--from", "Telegram", "--text", text,
        ]);
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        let delivered = out.status.success();
        assert_eq!(
            delivered,
            said.starts_with("delivered to "),
            "sms inject said {said:?} with {}",
            out.status
        );
        if !delivered {
            assert!(said.starts_with("not delivered"), "sms inject: {said:?}");
        }
        delivered
    }

    /// The ledger rows about one order, oldest first: (kind, amount).
    pub fn ledger_of(&self, ref_type: &str, ref_id: i64) -> Vec<(String, i64)> {
        let db = self.db();
        let mut stmt = db
            .prepare(
                "SELECT kind, amount_minor FROM ledger WHERE ref_type = ?1 AND ref_id = ?2 \
                 ORDER BY id",
            )
            .unwrap();
        stmt.query_map(rusqlite::params![ref_type, ref_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    /// Rows of `messages` for an activation (what retention must delete).
    pub fn stored_messages(&self, activation_id: i64) -> i64 {
        self.db()
            .query_row(
                "SELECT COUNT(*) FROM messages WHERE activation_id = ?1",
                [activation_id],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// `otpbox check` passes, and every cached balance equals its ledger sum.
    pub fn assert_books_balance(&self) {
        let out = self.cli(&["check"]);
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "otpbox check: {said}");
        assert!(said.starts_with("ok:"), "otpbox check: {said}");
        let off = self.count(
            "SELECT COUNT(*) FROM users u WHERE u.balance_minor != \
             (SELECT COALESCE(SUM(amount_minor), 0) FROM ledger l WHERE l.user_id = u.id)",
        );
        assert_eq!(off, 0, "accounts whose balance is not their ledger sum");
    }
}
