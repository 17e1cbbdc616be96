"""One running otpbox for the Python suites (tests/compat, tests/browser): both import this
module, so there is one way to start the server under test.

Builds nothing: it starts the binary that `cargo build` made (`target/debug/otpbox`, or
`$OTPBOX_BIN`) as `otpbox demo` on a free loopback port with a temporary data directory, and
stops it at the end. The dev clock is on, so tests move time instead of sleeping.
"""

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("OTPBOX_BIN") or str(ROOT / "target" / "debug" / "otpbox")
START_TIMEOUT = 20
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"


class Otpbox:
    """A running otpbox: its URLs, its command line, its log and its dev hooks."""

    def __init__(self, base_url, data, env, log_path):
        self.base_url = base_url
        self.data = data
        self.env = env
        self.log_path = log_path

    @property
    def handler_url(self):
        """Where SMS-Activate clients are pointed."""
        return self.base_url + "/stubs/handler_api.php"

    def url(self, path):
        return self.base_url + path

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

    def create_user(self, email, password="compat-suite-password"):
        self.cli("user", "create", "--email", email, "--password-stdin", stdin=password + "\n")

    def create_admin(self, email, password="admin-suite-password"):
        self.cli("admin", "create", "--email", email, "--password-stdin", stdin=password + "\n")

    def log(self):
        """Everything the server wrote so far (mail without SMTP is logged at `info`)."""
        with open(self.log_path) as f:
            return f.read()

    def request(self, method, path, body=None, headers=None):
        """One HTTP request; (status, parsed JSON or text)."""
        if body is not None:
            data = json.dumps(body).encode()
        else:
            data = None if method in ("GET", "HEAD") else b""
        h = {"Content-Type": "application/json"} if body is not None else {}
        h.update(headers or {})
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, raw, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, raw, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        text = raw.decode()
        return status, (json.loads(text) if ctype.startswith("application/json") else text)

    def _post(self, path):
        status, body = self.request("POST", path, body=None)
        assert status == 200, (path, status, body)
        return body

    def advance(self, seconds):
        """Moves the server's clock forward."""
        return self._post(f"/__dev/clock?advance={int(seconds)}")

    def run_jobs(self):
        """Runs every scheduled job now (expiry, the simulator's deliveries)."""
        return self._post("/__dev/jobs")

    def pause_scheduler(self, paused=True):
        """Stops (or resumes) the scheduler's own ticks, so only `run_jobs` runs jobs."""
        return self._post(f"/__dev/scheduler?paused={1 if paused else 0}")


@contextlib.contextmanager
def running(env_overrides, prefix="otpbox-test-"):
    """Starts `otpbox demo` with the dev clock and `env_overrides` (OTPBOX_* variables);
    yields an `Otpbox`; stops it and removes its data directory afterwards."""
    if not os.access(BIN, os.X_OK):
        raise RuntimeError(f"{BIN} does not exist: run `cargo build` first (tests/run.sh does)")
    tmp = tempfile.mkdtemp(prefix=prefix)
    data = os.path.join(tmp, "data")
    log_path = os.path.join(tmp, "server.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTPBOX_")}
    env.update(OTPBOX_DEV_CLOCK="true", OTPBOX_LOG="warn")
    env.update(env_overrides)
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
                        raise RuntimeError(f"otpbox did not start:\n{f.read()}")
                time.sleep(0.05)
        box = Otpbox(base_url, data, env, log_path)
        box.proc = proc
        yield box
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def wait_until(fetch, done, timeout=10.0):
    """Calls `fetch` until `done(result)` holds; the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.1)
