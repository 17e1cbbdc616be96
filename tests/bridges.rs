//! The gammu-smsd and smstools3 bridge scripts (`packaging/bridges/`), run with python3 the
//! way the daemons run them (sample environments, sample message files) against a real
//! server: the SMS reaches the customer's order through the generic ingestion endpoint, a
//! second run stores nothing twice, and failures exit non-zero so the daemon logs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::gateways::Device;
use common::market::{id_of, Api, COUNTRY};
use common::TestServer;

const SIM_A: &str = "6281200000001";
const SIM_B: &str = "6281200000002";
const OPERATOR: &str = "op@example.com";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging/bridges")
        .join(name)
}

/// A scratch directory for config and message files, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        Scratch(common::scratch_dir(&format!("bridge-{tag}")))
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `python3 SCRIPT ARGS` with only `env` of the bridge's variables set (none inherited
/// from the developer's shell, no system-wide /etc/otpbox/bridge.conf unless `env` names one).
fn run(name: &str, args: &[&str], env: &[(&str, &str)], scratch: &Scratch) -> Output {
    let mut cmd = Command::new("python3");
    cmd.arg(script(name)).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("OTPBOX_")
            || k.starts_with("SMS_")
            || k.starts_with("DECODED_")
            || k == "PHONE_ID"
        {
            cmd.env_remove(k);
        }
    }
    cmd.env("OTPBOX_BRIDGE_CONF", scratch.0.join("no-such-bridge.conf"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .expect("python3 must be installed to test the bridge scripts")
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bridge failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A server with an operator's generic device holding two SIMs (slots 1 and 2) and a
/// customer with a Telegram order on each.
struct World {
    server: TestServer,
    device: Device,
    url: String,
    api: Api,
    /// Orders on SIM_A and SIM_B.
    orders: (i64, i64),
}

fn world() -> World {
    let server = TestServer::builder().env("OTPBOX_DEV_CLOCK", "1").start();
    server.operator(OPERATOR);
    let device = server.add_device(
        OPERATOR,
        "generic",
        &[
            &format!("1:{SIM_A}:{COUNTRY}"),
            &format!("2:{SIM_B}:{COUNTRY}"),
        ],
    );
    let url = format!("http://{}{}", server.addr(), device.path);
    let mut api = server.customer("buyer@example.com", "10.00");
    let a = api.order_ok("tg");
    let b = api.order_ok("tg");
    assert_eq!(
        (a["phone"].as_str(), b["phone"].as_str()),
        (Some(SIM_A), Some(SIM_B))
    );
    World {
        server,
        device,
        url,
        api,
        orders: (id_of(&a), id_of(&b)),
    }
}

/// The code the customer sees on the order.
fn code(api: &mut Api, order: i64) -> Option<String> {
    api.activation(order)["code"].as_str().map(str::to_string)
}

impl World {
    fn messages(&self) -> i64 {
        self.server.count("SELECT COUNT(*) FROM messages")
    }
}

#[test]
fn gammu_bridge_delivers_a_multipart_sms_once_and_fails_loudly() {
    let mut w = world();
    let scratch = Scratch::new("gammu");
    let files = [
        "IN20240622_154611_00_+6281999_00.txt",
        "IN20240622_154611_00_+6281999_01.txt",
    ];
    let env = [
        ("OTPBOX_URL", w.url.as_str()),
        ("OTPBOX_SECRET", w.device.secret.as_str()),
        ("OTPBOX_SLOTS", "modem2=2, modem1=1"),
        ("PHONE_ID", "modem2"),
        ("SMS_MESSAGES", "2"),
        ("SMS_1_CLASS", "-1"),
        ("SMS_1_NUMBER", "+6281999"),
        ("SMS_1_TEXT", "Telegram code: 54"),
        ("SMS_2_CLASS", "-1"),
        ("SMS_2_NUMBER", "+6281999"),
        ("SMS_2_TEXT", "321. Do not give this code to anyone"),
        ("DECODED_PARTS", "1"),
        (
            "DECODED_1_TEXT",
            "Telegram code: 54321. Do not give this code to anyone",
        ),
    ];
    let said = ok(&run("otpbox-gammu", &files, &env, &scratch));
    assert!(said.contains("delivered"), "{said}");
    // PHONE_ID modem2 → slot 2 → SIM_B's order.
    assert_eq!(code(&mut w.api, w.orders.1).as_deref(), Some("54321"));
    assert_eq!(code(&mut w.api, w.orders.0), None);
    // gammu-smsd runs it again for the same files (a restart): stored once.
    let said = ok(&run("otpbox-gammu", &files, &env, &scratch));
    assert!(said.contains("duplicate"), "{said}");
    assert_eq!(w.messages(), 1);

    // Without decoded parts the physical parts are joined; no slot map and two SIMs means
    // the receiving SIM is unknown, which otpbox acknowledges (exit 0, not delivered).
    let plain = [
        ("OTPBOX_URL", w.url.as_str()),
        ("OTPBOX_SECRET", w.device.secret.as_str()),
        ("PHONE_ID", "modem1"),
        ("SMS_MESSAGES", "2"),
        ("SMS_1_NUMBER", "+6281999"),
        ("SMS_1_TEXT", "Telegram code: 1"),
        ("SMS_2_TEXT", "1111"),
    ];
    let said = ok(&run("otpbox-gammu", &["IN_other_00.txt"], &plain, &scratch));
    assert!(said.contains("not_delivered (unknown_number)"), "{said}");
    assert_eq!(w.messages(), 1);

    // The cron heartbeat.
    let said = ok(&run("otpbox-gammu", &["--ping"], &env[..2], &scratch));
    assert!(said.contains("ping"), "{said}");

    // A wrong secret, an unreachable server, a missing setting: non-zero, nothing stored.
    let mut bad = env;
    bad[1] = ("OTPBOX_SECRET", "wrong");
    let out = run("otpbox-gammu", &["IN_x.txt"], &bad, &scratch);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let mut down = env;
    down[0] = ("OTPBOX_URL", "http://127.0.0.1:9/ingest/generic/x");
    assert_eq!(
        run("otpbox-gammu", &["IN_y.txt"], &down, &scratch)
            .status
            .code(),
        Some(1)
    );
    let out = run("otpbox-gammu", &["IN_z.txt"], &env[1..], &scratch);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("OTPBOX_URL is not set"));
    assert_eq!(w.messages(), 1);
}

#[test]
fn smstools_bridge_reads_message_files_with_settings_from_its_config_file() {
    let mut w = world();
    let scratch = Scratch::new("smstools");
    let conf = scratch.write(
        "bridge.conf",
        format!(
            "# otpbox bridge\nOTPBOX_URL = {}\nOTPBOX_SECRET=\"{}\"\nOTPBOX_SLOTS=GSM1=1,GSM2=2\n",
            w.url, w.device.secret
        )
        .as_bytes(),
    );
    let conf_env = [("OTPBOX_BRIDGE_CONF", conf.to_str().unwrap())];
    // smsd writes local times; the test machine runs in UTC. Received a minute ago (otpbox
    // refuses times far from its clock).
    let at = (chrono::Utc::now() - chrono::Duration::minutes(1)).format("%y-%m-%d %H:%M:%S");
    let file = scratch.write(
        "GSM1.aB3dE9",
        format!(
            "From: 6281999\nFrom_TOA: 91 international, ISDN/telephone\nFrom_SMSC: 6281100000\n\
             Sent: {at}\nReceived: {at}\nSubject: GSM1\n\
             Modem: GSM1\nIMSI: 510101234567890\nAlphabet: ISO8859-15\nLength: 20\nUDH: false\n\n\
             Telegram code: 24680\n"
        )
        .as_bytes(),
    );
    let path = file.to_str().unwrap();
    // Events other than RECEIVED are none of its business.
    for event in ["SENT", "FAILED", "REPORT", "CALL"] {
        let out = run("otpbox-smstools", &[event, path], &conf_env, &scratch);
        assert!(out.status.success(), "{event}");
    }
    assert_eq!(w.messages(), 0);

    let said = ok(&run(
        "otpbox-smstools",
        &["RECEIVED", path],
        &conf_env,
        &scratch,
    ));
    assert!(said.contains("delivered"), "{said}");
    assert_eq!(code(&mut w.api, w.orders.0).as_deref(), Some("24680"));
    let said = ok(&run(
        "otpbox-smstools",
        &["RECEIVED", path],
        &conf_env,
        &scratch,
    ));
    assert!(said.contains("duplicate"), "{said}");
    assert_eq!(w.messages(), 1);

    // A UCS-2 message from the second modem (stored as raw big-endian UTF-16).
    let mut ucs2 =
        format!("From: 6281999\nReceived: {at}\nSubject: GSM2\nAlphabet: UCS2\n\n").into_bytes();
    for unit in "Код Telegram: 13579".encode_utf16() {
        ucs2.extend_from_slice(&unit.to_be_bytes());
    }
    let file2 = scratch.write("GSM2.Zx81Qp", &ucs2);
    let said = ok(&run(
        "otpbox-smstools",
        &["RECEIVED", file2.to_str().unwrap()],
        &conf_env,
        &scratch,
    ));
    assert!(said.contains("delivered"), "{said}");
    assert_eq!(code(&mut w.api, w.orders.1).as_deref(), Some("13579"));
    let texts = w.api.activation(w.orders.1)["messages"].clone();
    assert_eq!(texts[0]["text"], "Код Telegram: 13579");

    // The environment overrides the file: a wrong secret there fails, nothing stored.
    let file3 = scratch.write(
        "GSM1.Qq1111",
        b"From: 6281999\nSubject: GSM1\n\nTelegram code: 11111\n",
    );
    let env = [
        ("OTPBOX_BRIDGE_CONF", conf.to_str().unwrap()),
        ("OTPBOX_SECRET", "wrong"),
    ];
    let out = run(
        "otpbox-smstools",
        &["RECEIVED", file3.to_str().unwrap()],
        &env,
        &scratch,
    );
    assert_eq!(out.status.code(), Some(1));
    let missing = run(
        "otpbox-smstools",
        &["RECEIVED", "/nonexistent/GSM1.x"],
        &conf_env,
        &scratch,
    );
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(w.messages(), 2);
}
