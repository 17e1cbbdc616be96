"""Schemathesis against the real binary: every operation of /api/v1/openapi.json, generated
from the document, once with a customer's API key and once with an administrator's, with all
of schemathesis' checks. Any failure fails the run.

Started by tests/run.sh with the virtual environment of tests/schemathesis/requirements.txt:

    OTPBOX_BIN=target/debug/otpbox target/compat-venv/bin/python tests/schemathesis/run.py

The server is `otpbox demo` on a free loopback port with a temporary data directory, rate
limits and anomaly flags off (schemathesis sends hundreds of requests a second). Every URL
schemathesis could register is rewritten to a `.invalid` host by hooks.py, so no webhook ever
leaves the machine; the webhook job's sends to such a host fail at the name lookup.

SCHEMATHESIS_EXAMPLES (default 25) bounds the generated cases per operation and phase;
SCHEMATHESIS_SEED fixes the seed (default: a fixed one, so CI runs are reproducible;
`random` draws one and prints it).
"""

import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "pylib"))
from otpbox_server import BIN, running  # noqa: E402

EXAMPLES = os.environ.get("SCHEMATHESIS_EXAMPLES", "25")
# The server under test: rate limits and anomaly flags off (schemathesis sends hundreds of
# requests a second), room for many live orders.
SERVER_ENV = dict(
    OTPBOX_API_RATE="0",
    OTPBOX_API_BURST="0",
    OTPBOX_API_IP_RATE="0",
    OTPBOX_API_IP_BURST="0",
    OTPBOX_FLAG_ORDERS_PER_MINUTE="0",
    OTPBOX_MAX_ACTIVE_ACTIVATIONS="1000",
)


def get(base_url, key, path):
    req = urllib.request.Request(base_url + path, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def account_id(base_url, admin_key, email):
    users = get(base_url, admin_key, f"/api/v1/admin/users?q={email}")["users"]
    return next(u["id"] for u in users if u["email"] == email)


def key_id(base_url, key):
    """The id of `key` (the only key of its account when the run starts)."""
    keys = get(base_url, key, "/api/v1/keys")["keys"]
    return str(keys[0]["id"])


def schemathesis(base_url, key, seed, label, log, *extra, env=None):
    """Starts one schemathesis run writing to `log`; its process."""
    cmd = [
        str(Path(sys.executable).parent / "schemathesis"), "run",
        base_url + "/api/v1/openapi.json",
        "--url", base_url,
        "--checks", "all",
        "--max-examples", EXAMPLES,
        "--seed", str(seed),
        # One worker per run: Python 3.11's ast.parse is not thread-safe, and hypothesis calls
        # it while describing strategies ("AST constructor recursion depth mismatch").
        "--workers", "1",
        "--header", f"Authorization: Bearer {key}",
        "--request-timeout", "20",
        "--generation-database", "none",
        # The key above is the credential; the session cookie and CSRF token of the
        # document's other security scheme are not generated.
        "--generation-with-security-parameters", "false",
        "--no-color",
        *extra,
    ]
    env = dict(os.environ, **(env or {}), SCHEMATHESIS_HOOKS="hooks", PYTHONPATH=str(HERE))
    print(f"== schemathesis as {label} (seed {seed}, {EXAMPLES} examples)", flush=True)
    return subprocess.Popen(cmd, env=env, cwd=HERE, stdout=log, stderr=subprocess.STDOUT)


def main():
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} does not exist: run `cargo build` first (tests/run.sh does)")
    seed = os.environ.get("SCHEMATHESIS_SEED", "17")
    if seed == "random":
        seed = str(random.randrange(1 << 31))
    failed = []
    with running(SERVER_ENV, prefix="otpbox-schemathesis-") as box:
        base_url = box.base_url
        user_key = box.api_key("demo@example.com")
        # Enough money that a valid order, rental or extension is never refused for the
        # balance (402 is not an answer to valid input schemathesis accepts).
        box.cli("user", "credit", "--email", "demo@example.com", "--amount", "1000000000")
        box.cli("admin", "create", "--email", "admin@example.com", "--password-stdin",
                stdin="schemathesis-admin-password\n")
        admin_key = box.api_key("admin@example.com")
        box.cli("user", "create", "--email", "spare@example.com", "--password-stdin",
                stdin="schemathesis-spare-password\n")
        ids = {
            "OTPBOX_SCHEMATHESIS_PROTECTED": ",".join(
                str(account_id(base_url, admin_key, e))
                for e in ("admin@example.com", "demo@example.com")),
            "OTPBOX_SCHEMATHESIS_SPARE": str(account_id(base_url, admin_key, "spare@example.com")),
        }
        # The customer meets every operation (the admin ones answer 403); the administrator
        # the admin operations, which only an administrator gets past. Both at once, one per
        # core; the admin run leaves the customer's account alone (hooks.py).
        runs = (("customer", user_key, ()),
                ("admin", admin_key, ("--include-path-regex", "^/api/v1/admin/")))
        started = time.monotonic()
        procs = []
        for label, key, extra in runs:
            log_file = open(os.path.join(os.path.dirname(box.data), f"{label}.log"), "w+")
            run_env = dict(ids, OTPBOX_SCHEMATHESIS_KEY_ID=key_id(base_url, key),
                           OTPBOX_SCHEMATHESIS_BASE_URL=base_url, OTPBOX_SCHEMATHESIS_KEY=key)
            procs.append((label, log_file, schemathesis(base_url, key, seed, label, log_file,
                                                        *extra, env=run_env)))
        for label, log_file, p in procs:
            rc = p.wait()
            log_file.seek(0)
            print(log_file.read(), flush=True)
            log_file.close()
            print(f"== schemathesis as {label}: exit {rc}", flush=True)
            if rc != 0:
                failed.append(label)
        print(f"== schemathesis: both runs took {time.monotonic() - started:.0f} s", flush=True)
        if box.proc.poll() is not None:
            failed.append("server (it exited)")
        with open(box.log_path) as f:
            panics = [line for line in f if "panicked" in line]
        if panics:
            print("server panics:\n" + "".join(panics), file=sys.stderr)
            failed.append("server panics")
    if failed:
        sys.exit(f"FAILED: schemathesis found failures ({', '.join(failed)})")
    print("schemathesis: 0 failures as customer and as admin")


if __name__ == "__main__":
    main()
