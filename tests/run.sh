#!/usr/bin/env bash
# The one command that runs the whole test suite. CI runs it from .ci/run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== cargo test --all-targets"
cargo test --all-targets

# == Python compatibility suite ==
# The SMS-Activate / 5sim protocol compatibility suite (Python) will run here, after the Rust
# tests, once it exists.
