"""Fixtures of the compatibility suite: unmodified PyPI client libraries against one real
otpbox in demo mode (simulator on, demo customer with a balance of 50.00).

The server is started by tests/pylib/otpbox_server.py (shared with tests/browser). The dev
clock is on, so tests move time instead of sleeping: the simulator's SMS arrives SIM_DELAY
after an order, and cancelling is allowed EARLY_CANCEL after it.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pylib"))

from otpbox_server import BIN, DEMO_EMAIL, running, wait_until  # noqa: E402,F401

SIM_DELAY = 300
EARLY_CANCEL = 30
# /metrics answers only with this bearer token (tests/compat/test_metrics.py).
METRICS_TOKEN = "compat-metrics-token"


@pytest.fixture(scope="session")
def otpbox():
    env = dict(
        OTPBOX_SIM_DELAY=f"{SIM_DELAY}s",
        OTPBOX_EARLY_CANCEL=f"{EARLY_CANCEL}s",
        OTPBOX_METRICS_TOKEN=METRICS_TOKEN,
    )
    with running(env, prefix="otpbox-compat-") as box:
        yield box


@pytest.fixture(scope="session")
def demo_key(otpbox):
    """An API key of the demo customer."""
    return otpbox.api_key(DEMO_EMAIL)


@pytest.fixture(scope="session")
def broke_key(otpbox):
    """An API key of a verified customer with a zero balance."""
    otpbox.create_user("broke@example.com")
    return otpbox.api_key("broke@example.com")
