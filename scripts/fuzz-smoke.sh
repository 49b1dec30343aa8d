#!/usr/bin/env bash
# Builds the fuzz targets (cargo-fuzz, libFuzzer, nightly toolchain) and runs each one for
# a bounded time from its committed seed corpus (fuzz/corpus/TARGET). A crash fails the
# run and leaves its input in fuzz/artifacts/TARGET/; turn it into a regression test.
#
# Usage: scripts/fuzz-smoke.sh [SECONDS per target, default 20] [TARGET...]
# Longer runs: scripts/fuzz-smoke.sh 600 think_parser   (new inputs go to a temp corpus)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-20}"
shift || true
TARGET_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/longwriter/fuzz-target"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# -O: optimised with coverage instrumentation; no sanitizer (the crate is safe Rust, and
# panics, aborts and hangs are what these targets look for).
FUZZ=(cargo +nightly fuzz)
OPTS=(-O -s none --target-dir "$TARGET_DIR")
"${FUZZ[@]}" build "${OPTS[@]}" >&2
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || mapfile -t targets < <("${FUZZ[@]}" list)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '%-16s %12s %10s %8s\n' target executions exec/s corpus
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    max_len=4096
    [[ $t == gguf_header ]] && max_len=1048576
    if ! "${FUZZ[@]}" run "${OPTS[@]}" "$t" "$work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECS" -max_len="$max_len" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 > "$work/$t.log" 2>&1; then
        tail -n 40 "$work/$t.log" >&2
        echo "fuzz target $t failed; its input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$')
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$')
    printf '%-16s %12s %10s %8s\n' "$t" "$execs" "$rate" "$(ls "$work/$t" | wc -l)"
done
