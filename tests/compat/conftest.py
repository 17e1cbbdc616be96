"""Fixtures of the compatibility suite: unmodified PyPI clients against one real otpbox in
demo mode (simulator on, demo customer demo@example.com with a balance).

Starts the binary `cargo build` made (`target/debug/otpbox`, or `$OTPBOX_BIN`) on a free
port with a temporary data directory and the dev clock on, so tests move time instead of
sleeping, and stops it at the end.

The fixture `otpbox` is an object with `base_url` (http://127.0.0.1:PORT), `api_key` (a key
of the demo customer), `cli(*args)` (the command line on the server's data directory; its
standard output), `advance(seconds)` and `run_jobs()` (the /__dev hooks).
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

# The simulator's SMS arrives this long after an order; cancelling is allowed this long
# after it (both in server-clock seconds).
SIM_DELAY = 300
EARLY_CANCEL = 30
DEMO_EMAIL = "demo@example.com"
START_TIMEOUT = 20


class Otpbox:
    def __init__(self, base_url, data, env):
        self.base_url = base_url
        self.data = data
        self.env = env
        self.api_key = self.cli("key", "create", "--email", DEMO_EMAIL).strip()

    def cli(self, *args):
        out = subprocess.run(
            [BIN, *args, "--data", self.data],
            capture_output=True, text=True, env=self.env, timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert out.returncode == 0, f"otpbox {args}: {out.stdout}{out.stderr}"
        return out.stdout

    def _post(self, path):
        req = urllib.request.Request(self.base_url + path, data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
            return json.loads(r.read())

    def advance(self, seconds):
        return self._post(f"/__dev/clock?advance={int(seconds)}")

    def run_jobs(self):
        return self._post("/__dev/jobs")


@pytest.fixture(scope="session")
def otpbox():
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"{BIN} does not exist: run `cargo build` first")
    tmp = tempfile.mkdtemp(prefix="otpbox-compat-")
    data = os.path.join(tmp, "data")
    log_path = os.path.join(tmp, "server.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTPBOX_")}
    env.update(
        OTPBOX_DEV_CLOCK="true",
        OTPBOX_SIM_DELAY=f"{SIM_DELAY}s",
        OTPBOX_EARLY_CANCEL=f"{EARLY_CANCEL}s",
        OTPBOX_LOG="warn",
    )
    with open(log_path, "w") as log:
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
            shutil.rmtree(tmp, ignore_errors=True)
