//! What the bench measures: each workload is one [`Step`] that the load driver repeats, and
//! the set-up it needs (an API key, a signed-in session, gateway devices with SIMs).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use super::client::{form_encode, short, Conn, Fail, Step};
use super::server::cli;
use crate::config::{DEMO_EMAIL, DEMO_PASSWORD};
use crate::domain::Error;

/// Every order of the bench is for this country (Indonesia) …
pub const COUNTRY: i64 = 6;
/// … and, except in the SMS-ingest workload, this service.
const SERVICE: &str = "tg";
/// The ingest workload rotates through services, so each SIM serves a service at most
/// once per `reuse_cooldown`.
const INGEST_SERVICES: &[&str] = &[
    "tg", "wa", "vi", "wb", "go", "fb", "ig", "tw", "ds", "lf", "fu", "me", "kt", "nv",
];
/// Gateway devices the bench registers for the ingest workload, each with 16 SIMs.
const DEVICES: usize = 16;
const SIMS_PER_DEVICE: usize = 16;
const OPERATOR_EMAIL: &str = "bench-operator@example.com";

/// One named workload and the unit one step of it counts.
pub struct Workload {
    pub name: &'static str,
    pub unit: &'static str,
    pub step: Step,
}

fn fail(what: &str, text: &str) -> Fail {
    Fail::Bad(format!("{what}: {}", short(text)))
}

/// The demo account's balance topped up so that no workload runs out of money, and an API
/// key for it.
pub fn demo_key(data: &Path) -> Result<String, Error> {
    cli(
        data,
        &[
            "user", "credit", "--email", DEMO_EMAIL, "--amount", "10000000", "--note", "bench",
        ],
        None,
    )?;
    let key = cli(data, &["key", "create", "--email", DEMO_EMAIL], None)?
        .trim()
        .to_string();
    if key.is_empty() {
        return Err(Error::Internal("cannot create an API key".into()));
    }
    Ok(key)
}

/// Orders one number through the native API (the id the read workloads ask about).
pub fn order_one(addr: SocketAddr, key: &str) -> Result<i64, Error> {
    let mut c = Conn::open(addr).map_err(|e| Error::Internal(e.to_string()))?;
    let body = format!(r#"{{"country": {COUNTRY}, "service": "{SERVICE}"}}"#);
    let bearer = format!("Bearer {key}");
    let r = c
        .request(
            "POST",
            "/api/v1/activations",
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
        .map_err(|e| Error::Internal(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    match (r.status, v["id"].as_i64()) {
        (201, Some(id)) => Ok(id),
        _ => Err(Error::Internal(format!(
            "ordering a number failed: {} {}",
            r.status,
            r.text()
        ))),
    }
}

/// Signs in as the demo customer through the login form; returns the session cookie
/// (`name=value`).
pub fn login(addr: SocketAddr) -> Result<String, Error> {
    let err = |e: std::io::Error| Error::Internal(format!("login: {e}"));
    let mut c = Conn::open(addr).map_err(err)?;
    let page = c.request("GET", "/login", &[], b"").map_err(err)?;
    let cookie = |r: &super::client::Reply| {
        r.header("set-cookie")
            .and_then(|v| v.split(';').next())
            .map(str::to_string)
    };
    let anonymous = cookie(&page).ok_or_else(|| Error::Internal("login: no cookie".into()))?;
    let html = page.text();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or_else(|| Error::Internal("login: no csrf field".into()))?;
    let body = format!(
        "email={}&password={}&csrf={}",
        form_encode(DEMO_EMAIL),
        form_encode(DEMO_PASSWORD),
        form_encode(csrf)
    );
    let r = c
        .request(
            "POST",
            "/login",
            &[
                ("Cookie", &anonymous),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        )
        .map_err(err)?;
    let session = cookie(&r).unwrap_or(anonymous);
    let dash = c
        .request("GET", "/dashboard", &[("Cookie", &session)], b"")
        .map_err(err)?;
    if r.status != 303 || dash.status != 200 {
        return Err(Error::Internal(format!(
            "login as {DEMO_EMAIL} failed: {} then {}",
            r.status, dash.status
        )));
    }
    Ok(session)
}

/// A GET that must answer 200, with the key as a Bearer header or not.
pub fn get(name: &'static str, path: String, bearer: Option<&str>) -> Workload {
    let auth = bearer.map(|k| format!("Bearer {k}"));
    Workload {
        name,
        unit: "req",
        step: Arc::new(move |c, _, _| {
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| vec![("Authorization", a)])
                .unwrap_or_default();
            c.get_ok(&path, &headers).map(drop)
        }),
    }
}

/// The signed-in dashboard page.
pub fn dashboard(cookie: String) -> Workload {
    Workload {
        name: "GET /dashboard (signed in)",
        unit: "req",
        step: Arc::new(move |c, _, _| {
            let r = c.get_ok("/dashboard", &[("Cookie", &cookie)])?;
            if !r.text().contains(DEMO_EMAIL) {
                return Err(Fail::Bad("/dashboard: not signed in".into()));
            }
            Ok(())
        }),
    }
}

/// A handler_api call that must answer 200; returns the text.
fn api(c: &mut Conn, key: &str, query: &str) -> Result<String, Fail> {
    let r = c.get_ok(
        &format!("/stubs/handler_api.php?api_key={key}&{query}"),
        &[],
    )?;
    Ok(r.text())
}

/// `getNumber` → (activation id, phone digits).
fn get_number(c: &mut Conn, key: &str, service: &str) -> Result<(String, String), Fail> {
    let t = api(
        c,
        key,
        &format!("action=getNumber&service={service}&country={COUNTRY}"),
    )?;
    t.strip_prefix("ACCESS_NUMBER:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(id, phone)| (id.to_string(), phone.trim().to_string()))
        .ok_or_else(|| fail("getNumber", &t))
}

fn expect(c: &mut Conn, key: &str, query: &str, want: &str) -> Result<(), Fail> {
    let t = api(c, key, query)?;
    if t.trim() != want {
        return Err(fail(query.split('&').next().unwrap_or(query), &t));
    }
    Ok(())
}

/// handler_api `getNumber`, then `setStatus&status=8` (cancel) at once.
pub fn order_cancel(key: &str, name: &'static str) -> Workload {
    let key = key.to_string();
    Workload {
        name,
        unit: "orders",
        step: Arc::new(move |c, _, _| {
            let (id, _) = get_number(c, &key, SERVICE)?;
            expect(
                c,
                &key,
                &format!("action=setStatus&status=8&id={id}"),
                "ACCESS_CANCEL",
            )
        }),
    }
}

/// handler_api `getRentNumber`, then `setRentStatus&status=1` (finish).
pub fn rent_finish(key: &str) -> Workload {
    let key = key.to_string();
    Workload {
        name: "rent→finish (handler_api)",
        unit: "rentals",
        step: Arc::new(move |c, _, _| {
            let t = api(
                c,
                &key,
                &format!("action=getRentNumber&service={SERVICE}&country={COUNTRY}"),
            )?;
            let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
            let id = v["phone"]["id"]
                .as_i64()
                .ok_or_else(|| fail("getRentNumber", &t))?;
            let t = api(c, &key, &format!("action=setRentStatus&status=1&id={id}"))?;
            let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
            if v["status"] != "success" {
                return Err(fail("setRentStatus", &t));
            }
            Ok(())
        }),
    }
}

/// A gateway device the bench registered: its ingestion path and Bearer secret.
struct Device {
    path: String,
    auth: String,
}

/// The bench's gateway SIMs: phone digits → the device that holds the SIM.
#[derive(Clone)]
pub struct Gateways {
    sims: HashMap<String, Arc<Device>>,
}

/// Registers an operator and [`DEVICES`] generic devices with [`SIMS_PER_DEVICE`] SIMs each
/// in `COUNTRY`, through the command line (the server may be stopped).
pub fn add_gateways(data: &Path) -> Result<Gateways, Error> {
    cli(
        data,
        &[
            "user",
            "create",
            "--email",
            OPERATOR_EMAIL,
            "--role",
            "operator",
        ],
        None,
    )?;
    let mut sims = HashMap::new();
    for d in 0..DEVICES {
        let phones: Vec<String> = (0..SIMS_PER_DEVICE)
            .map(|s| format!("628990{:03}{:04}", d, s))
            .collect();
        let specs: Vec<String> = phones
            .iter()
            .enumerate()
            .map(|(s, p)| format!("{}:+{p}:{COUNTRY}", s + 1))
            .collect();
        let mut args = vec![
            "device",
            "add",
            "--operator",
            OPERATOR_EMAIL,
            "--kind",
            "generic",
        ];
        for s in &specs {
            args.push("--sim");
            args.push(s);
        }
        let out = cli(data, &args, None)?;
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .map(str::to_string)
                .ok_or_else(|| Error::Internal(format!("device add printed no {name}=")))
        };
        let device = Arc::new(Device {
            path: format!("/ingest/generic/{}", field("device_id")?),
            auth: format!("Bearer {}", field("secret")?),
        });
        for p in phones {
            sims.insert(p, device.clone());
        }
    }
    Ok(Gateways { sims })
}

/// Turns the simulator off (the server stopped), so that orders go to the bench's SIMs.
pub fn simulator_off(data: &Path) -> Result<(), Error> {
    use crate::domain::market::simulator;
    let conn = crate::db::open(data, crate::db::Synchronous::Normal)?;
    simulator::set_on(&conn, false)
}

/// handler_api `getNumber` (served by one of the bench's SIMs), the SMS posted to that SIM's
/// device through the signed generic `/ingest` endpoint, `getStatus` until the code shows,
/// then `setStatus&status=6` (finish).
pub fn ingest(key: &str, gateways: Gateways) -> Workload {
    let key = key.to_string();
    let run = std::process::id();
    Workload {
        name: INGEST,
        unit: "SMS",
        step: Arc::new(move |c, conn, n| {
            let service = INGEST_SERVICES[(n as usize + conn) % INGEST_SERVICES.len()];
            let (id, phone) = get_number(c, &key, service)?;
            let device = gateways.sims.get(&phone).ok_or_else(|| {
                Fail::Bad(format!(
                    "order {id} got {phone}, not one of the bench's SIMs"
                ))
            })?;
            let code = post_sms(
                c,
                device,
                &phone,
                &format!("bench-{run}-{conn}-{n}"),
                conn,
                n,
            )?;
            expect(
                c,
                &key,
                &format!("action=getStatus&id={id}"),
                &format!("STATUS_OK:{code}"),
            )?;
            expect(
                c,
                &key,
                &format!("action=setStatus&status=6&id={id}"),
                "ACCESS_ACTIVATION",
            )
        }),
    }
}

/// Posts an SMS with a code to `phone`'s device through its signed `/ingest` endpoint and
/// checks that it reached an order; returns the code.
fn post_sms(
    c: &mut Conn,
    device: &Device,
    phone: &str,
    id: &str,
    conn: usize,
    n: u64,
) -> Result<String, Fail> {
    let code = (100_000 + (n * 7919 + conn as u64) % 900_000).to_string();
    let body = serde_json::json!({
        "id": id,
        "to": format!("+{phone}"),
        "from": "Verify",
        "text": format!("Your verification code is {code}"),
    })
    .to_string();
    let r = c.request(
        "POST",
        &device.path,
        &[
            ("Authorization", &device.auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    if r.status != 200 || v["delivered"] != 1 {
        return Err(fail(&format!("ingest {}", r.status), &r.text()));
    }
    Ok(code)
}

/// The name of [`ingest_only`]'s workload.
pub const INGEST: &str = "order→SMS via /ingest→finish";

pub const INGEST_ONLY: &str = "SMS via /ingest to live orders";

/// SMS posted through the signed generic `/ingest` endpoint to orders placed beforehand (one
/// on every bench SIM, not timed): one request per SMS, each reaching its order, so the rate
/// is the gateway path's own. Run after [`ingest`], on the same server.
pub fn ingest_only(addr: SocketAddr, key: &str, gateways: &Gateways) -> Result<Workload, Error> {
    let err = |e: Fail| Error::Internal(format!("placing the orders SMS go to: {e}"));
    let mut c = Conn::open(addr).map_err(|e| Error::Internal(e.to_string()))?;
    let mut live = Vec::new();
    for i in 0..gateways.sims.len() {
        // A SIM that served this service within the cooldown is not offered again: enough
        // orders are enough.
        let (_, phone) = match get_number(&mut c, key, INGEST_SERVICES[i % INGEST_SERVICES.len()]) {
            Ok(placed) => placed,
            Err(_) if live.len() >= 16 => break,
            Err(e) => return Err(err(e)),
        };
        let device = gateways.sims.get(&phone).cloned().ok_or_else(|| {
            Error::Internal(format!("an order got {phone}, not one of the bench's SIMs"))
        })?;
        live.push((phone, device));
    }
    let live = Arc::new(live);
    let run = std::process::id();
    Ok(Workload {
        name: INGEST_ONLY,
        unit: "SMS",
        step: Arc::new(move |c, conn, n| {
            let (phone, device) = &live[(n as usize * 7 + conn) % live.len()];
            post_sms(
                c,
                device,
                phone,
                &format!("bench-only-{run}-{conn}-{n}"),
                conn,
                n,
            )?;
            Ok(())
        }),
    })
}
