"""Fixtures of the compatibility suite: unmodified PyPI client libraries against one real
otpbox in demo mode (simulator on, demo customer with a balance of 50.00).

Builds nothing: it starts the binary that `cargo build` made (`target/debug/otpbox`, or
`$OTPBOX_BIN`) on a free port with a temporary data directory, and stops it at the end.
The dev clock is on, so tests move time instead of sleeping: the simulator's SMS arrives
SIM_DELAY after an order, and cancelling is allowed EARLY_CANCEL after it.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("OTPBOX_BIN") or str(ROOT / "target" / "debug" / "otpbox")

SIM_DELAY = 300
EARLY_CANCEL = 30
DEMO_EMAIL = "demo@example.com"
START_TIMEOUT = 20
# /metrics answers only with this bearer token (tests/compat/test_metrics.py).
METRICS_TOKEN = "compat-metrics-token"


class Otpbox:
    """A running otpbox: its URLs, its command line and its dev hooks."""

    def __init__(self, base_url, data, env):
        self.base_url = base_url
        self.data = data
        self.env = env

    @property
    def handler_url(self):
        """Where SMS-Activate clients are pointed."""
        return self.base_url + "/stubs/handler_api.php"

    def cli(self, *args, stdin=None):
        """Runs an otpbox subcommand on the server's data directory; its standard output."""
        out = subprocess.run(
            [BIN, *args, "--data", self.data],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
        )
        assert out.returncode == 0, f"otpbox {args}: {out.stdout}{out.stderr}"
        return out.stdout

    def api_key(self, email):
        return self.cli("key", "create", "--email", email).strip()

    def create_user(self, email):
        self.cli("user", "create", "--email", email, "--password-stdin",
                 stdin="compat-suite-password\n")

    def _post(self, path):
        req = urllib.request.Request(self.base_url + path, data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
            return json.loads(r.read())

    def advance(self, seconds):
        """Moves the server's clock forward."""
        return self._post(f"/__dev/clock?advance={int(seconds)}")

    def run_jobs(self):
        """Runs every scheduled job now (expiry, the simulator's deliveries)."""
        return self._post("/__dev/jobs")


@pytest.fixture(scope="session")
def otpbox():
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"{BIN} does not exist: run `cargo build` first (tests/run.sh does)")
    tmp = tempfile.mkdtemp(prefix="otpbox-compat-")
    data = os.path.join(tmp, "data")
    log_path = os.path.join(tmp, "server.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTPBOX_")}
    env.update(
        OTPBOX_DEV_CLOCK="true",
        OTPBOX_SIM_DELAY=f"{SIM_DELAY}s",
        OTPBOX_EARLY_CANCEL=f"{EARLY_CANCEL}s",
        OTPBOX_LOG="warn",
        OTPBOX_METRICS_TOKEN=METRICS_TOKEN,
    )
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [BIN, "demo", "--data", data, "--listen", "127.0.0.1:0"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
    )
    try:
        base_url = None
        deadline = time.monotonic() + START_TIMEOUT
        while base_url is None:
            with open(log_path) as f:
                for line in f:
                    if line.startswith("otpbox listening on http://"):
                        base_url = line.split(" on ", 1)[1].strip()
            if base_url is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    with open(log_path) as f:
                        pytest.fail(f"otpbox did not start:\n{f.read()}")
                time.sleep(0.05)
        yield Otpbox(base_url, data, env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def demo_key(otpbox):
    """An API key of the demo customer."""
    return otpbox.api_key(DEMO_EMAIL)


@pytest.fixture(scope="session")
def broke_key(otpbox):
    """An API key of a verified customer with a zero balance."""
    otpbox.create_user("broke@example.com")
    return otpbox.api_key("broke@example.com")


def wait_until(fetch, done, timeout=10.0):
    """Calls `fetch` until `done(result)` holds; the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.1)
