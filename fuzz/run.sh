#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer on the stable toolchain and runs them.
#
#   fuzz/run.sh                       every target for FUZZ_SECONDS (default 15) seconds each
#   fuzz/run.sh --runs 10000000 money one target for 10 M executions
#   fuzz/run.sh --time 600 settings   one target for ten minutes
#   fuzz/run.sh --build               only build
#
# No nightly and no cargo-fuzz: libfuzzer-sys builds libFuzzer with the system's C++ compiler,
# and the coverage instrumentation cargo-fuzz would add comes from stable flags (RUSTFLAGS
# below). `--target` keeps those flags off build scripts and proc macros. Inputs found while
# fuzzing go to target/fuzz/corpus/<target>/ (the seeds in fuzz/corpus/ are only read); a crash
# is saved under target/fuzz/artifacts/<target>/ and fails the run. Replay one with
#   target/fuzz/<triple>/release/<target> <file>
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

mode=(-max_total_time="${FUZZ_SECONDS:-15}")
build_only=false
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) mode=(-runs="$2"); shift 2 ;;
        --time) mode=(-max_total_time="$2"); shift 2 ;;
        --build) build_only=true; shift ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
if [ ${#targets[@]} -eq 0 ]; then
    targets=(code_extraction phone_prefix gateway_capcom6 gateway_httpsms gateway_textbee
             gateway_generic gateway_simbank protocol_params form_query_cookie money settings
             payment_notice id_token)
fi

triple="$(rustc -vV | sed -n 's/^host: //p')"
out="${CARGO_TARGET_DIR:-$root/target}/fuzz"
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares"
CARGO_TARGET_DIR="$out" cargo build --release --quiet --manifest-path fuzz/Cargo.toml \
    --target "$triple" --bins
$build_only && exit 0

failed=()
for t in "${targets[@]}"; do
    bin="$out/$triple/release/$t"
    work="$out/corpus/$t"
    artifacts="$out/artifacts/$t/"
    mkdir -p "$work" "$artifacts"
    log="$out/$t.log"
    # -rss_limit_mb: a parser that balloons is a finding too; -timeout: one input may take 10 s.
    if "$bin" "${mode[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts" "$work" "fuzz/corpus/$t" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "fuzz $t: ${runs:-?} executions, 0 crashes"
    else
        echo "fuzz $t: FAILED (see $log and $artifacts)"
        tail -n 40 "$log" >&2
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: fuzz targets with a crash: ${failed[*]}" >&2
    exit 1
fi
