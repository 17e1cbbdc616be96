"""Fixtures of the browser suite: real headless Chromium (Debian's `chromium`, driven by
Playwright from PyPI, which never downloads a browser of its own) against one real otpbox in
demo mode, at a desktop width (1280 px) and a phone width (390 px).

- `otpbox`: the running server (tests/pylib/otpbox_server.py, shared with tests/compat), its
  scheduler paused so jobs run only when a test calls `run_jobs` after moving the dev clock;
  no test sleeps to wait for an expiry.
- `browser`: one Chromium for the session (`$CHROMIUM`, default /usr/bin/chromium, with
  `--no-sandbox`). Without Chromium every test is skipped, saying so.
- `width`: each test that uses `tab` runs at 1280 and at 390 px.
- `tab`: a factory of `Tab`s (a page in its own browser context at `width`): each records
  the console's errors and the page's uncaught exceptions and, at every `goto` and at the
  end of the test, asserts that the page is no wider than the viewport
  (`scrollWidth <= innerWidth`) and that nothing went wrong in its console.
"""

import os
import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pylib"))

from otpbox_server import DEMO_EMAIL, DEMO_PASSWORD, running  # noqa: E402,F401

CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
WIDTHS = (1280, 390)
# The simulator answers SIM_DELAY after an order; cancelling opens EARLY_CANCEL after it.
SIM_DELAY = 300
EARLY_CANCEL = 120
PASSWORD = "browser-suite-Pass-1!"


@pytest.fixture(scope="session")
def otpbox():
    env = dict(
        OTPBOX_SIM_DELAY=f"{SIM_DELAY}s",
        OTPBOX_EARLY_CANCEL=f"{EARLY_CANCEL}s",
        # Mail goes to the log at `info` (no SMTP): the tests read verification links there.
        OTPBOX_LOG="info",
        OTPBOX_API_RATE="0",
        OTPBOX_API_BURST="0",
        OTPBOX_API_IP_RATE="0",
        OTPBOX_API_IP_BURST="0",
        OTPBOX_FLAG_ORDERS_PER_MINUTE="0",
    )
    with running(env, prefix="otpbox-browser-") as box:
        box.pause_scheduler(True)
        yield box


@pytest.fixture(scope="session")
def admin_key(otpbox):
    """An administrator's API key (for vouchers)."""
    otpbox.create_admin("browser-admin@example.com")
    return otpbox.api_key("browser-admin@example.com")


@pytest.fixture(scope="session")
def demo_key(otpbox):
    """An API key of the demo customer."""
    return otpbox.api_key(DEMO_EMAIL)


def voucher(otpbox, admin_key, amount_minor=1000):
    """A new voucher code worth `amount_minor`, made through the admin API."""
    status, body = otpbox.request(
        "POST", "/api/v1/admin/vouchers",
        body={"amount_minor": amount_minor, "count": 1, "valid_days": 30},
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert status == 201, body
    return body["codes"][0]


def verify_path(otpbox, email):
    """The path of the newest confirmation link mailed to `email` (mail without SMTP is
    logged at `info`)."""
    log = otpbox.log()
    at = log.rfind(f"to {email}:")
    assert at >= 0, f"no mail to {email} in the log"
    m = re.search(r"/verify/[A-Za-z0-9_\-.~%]+", log[at:])
    assert m, log[at:at + 2000]
    return m.group(0)


@pytest.fixture(scope="session")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"SKIPPED: chromium not installable ({CHROMIUM} missing)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(params=WIDTHS, ids=lambda w: f"{w}px")
def width(request):
    return request.param


class Tab:
    """A page of its own browser context (cookies, permissions) at one width."""

    def __init__(self, otpbox, context, width):
        self.otpbox = otpbox
        self.context = context
        self.width = width
        self.page = context.new_page()
        self.errors = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def goto(self, path):
        """Opens `path` of the server; asserts it answered 2xx and fits the viewport."""
        r = self.page.goto(self.otpbox.url(path))
        assert r is not None and r.ok, f"GET {path}: {r.status if r else 'no response'}"
        self.assert_fits()
        return r

    def assert_fits(self):
        """No horizontal overflow: the page is no wider than the viewport."""
        self.page.wait_for_load_state()
        sw, iw = self.page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert sw <= iw, f"{self.page.url} is {sw} px wide in a {iw} px viewport"

    def assert_clean_console(self):
        assert not self.errors, f"console errors on {self.page.url}: {self.errors}"

    def wait_for(self, expression, timeout=10.0):
        """Polls a JavaScript expression until it is truthy (Playwright's wait_for_function
        evaluates strings in the page, which our Content-Security-Policy forbids)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.page.evaluate(expression)
            if value:
                return value
            assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
            self.page.wait_for_timeout(100)

    def path(self):
        return re.sub(r"^https?://[^/]+", "", self.page.url)

    def flash(self):
        """The text of the page's flash message."""
        return self.page.locator(".flash").first.inner_text()

    def login(self, email, password):
        self.goto("/login")
        self.page.fill("input[name=email]", email)
        self.page.fill("input[name=password]", password)
        with self.page.expect_navigation():
            self.page.click("form[action='/login'] button[type=submit]")
        self.assert_fits()


@pytest.fixture
def tab(otpbox, browser, width):
    """`tab(**context_options)` → a new `Tab` at this test's width."""
    made = []

    def make(**options):
        ctx = browser.new_context(viewport={"width": width, "height": 900}, **options)
        t = Tab(otpbox, ctx, width)
        made.append(t)
        return t

    yield make
    for t in made:
        try:
            if not t.page.is_closed():
                t.assert_fits()
            t.assert_clean_console()
        finally:
            t.context.close()
