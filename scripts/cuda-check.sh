#!/usr/bin/env bash
# Type-checks longwriter's `cuda` code paths (`cargo check --features cuda`) on a machine
# with no CUDA toolkit and no GPU, in about the time of a plain `cargo check`.
#
# Why not simply `cargo check --features cuda`: candle-kernels' build script compiles
# candle's CUDA kernels with nvcc (PTX, plus statically linked GGUF matmul kernels) even
# for a check. That needs a 1 GB toolkit and took 13 of CI's minutes on 2 cores, to
# compile code that longwriter does not own and a check never runs. What longwriter's
# cuda paths are checked against is candle's Rust API, so here:
#   - candle-kernels is replaced, for this check only, by a copy of the same release
#     whose build script writes empty PTX strings (same items, same types);
#   - cudarc is told its CUDA version (CUDARC_CUDA_VERSION, 13.0: the toolkit that
#     scripts/cuda-toolkit.sh fetches for real builds) instead of running `nvcc --version`.
# The real kernels are compiled by real builds: scripts/gpu-bench.sh builds the release
# binary with scripts/cuda-toolkit.sh and runs it on a GPU.
#
# The check runs on a copy of the working tree (tracked and untracked, not ignored
# files) so the patch never touches this checkout's Cargo.lock. Copy, patched crate and
# target dir live in the user cache dir, so a second run re-checks only longwriter.
#
# Usage: scripts/cuda-check.sh
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$0")/.."
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/longwriter/cuda-check"
mkdir -p "$CACHE"

# The candle-kernels release this lock file resolves, from cargo's own source cache.
manifest=$(cargo metadata --format-version 1 --locked --features cuda | python3 -c '
import json, sys
m = json.load(sys.stdin)
print(next(p["manifest_path"] for p in m["packages"] if p["name"] == "candle-kernels"))')
real=$(dirname "$manifest")
stub="$CACHE/$(basename "$real")-no-nvcc"
# Made again when this script changes, so a cached stub never outlives the code that wrote it.
stamp=$(sha256sum "$self" | cut -c1-16)
if [[ "$(cat "$stub/.done" 2>/dev/null)" != "$stamp" ]]; then
    rm -rf "$stub"
    mkdir -p "$stub/src"
    cp "$real"/src/*.rs "$stub/src/"
    # The manifest without its build dependency (cudaforge drives nvcc).
    python3 - "$real/Cargo.toml" "$stub/Cargo.toml" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r"\n\[build-dependencies\.cudaforge\][^\[]*", "\n", text)
open(sys.argv[2], "w").write(text)
EOF
    # The PTX modules the real build script writes to $OUT_DIR/ptx.rs: one per top-level
    # .cu file (the GGUF matmul kernels are linked statically, not loaded as PTX).
    mods=()
    for f in "$real"/src/*.cu; do
        name=$(basename "$f" .cu)
        [[ $name == mmvq_gguf || $name == moe_* || $name == mmq_* ]] && continue
        mods+=("$(echo "$name" | tr '[:lower:]' '[:upper:]')")
    done
    {
        echo '// Written by longwriter scripts/cuda-check.sh: empty PTX, for type checks only.'
        echo 'fn main() {'
        echo '    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("ptx.rs");'
        printf '    let mods = ['; printf '"%s", ' "${mods[@]}"; echo '];'
        echo '    let text: String = mods.iter().map(|m| format!("pub const {m}: &str = \"\";\n")).collect();'
        echo '    std::fs::write(out, text).unwrap();'
        echo '}'
    } > "$stub/build.rs"
    echo "$stamp" > "$stub/.done"
fi

# A copy of the working tree; tar keeps modification times, so unchanged files do not
# make cargo re-check.
tree="$CACHE/tree"
rm -rf "$tree.new"
mkdir -p "$tree.new"
git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$tree.new"
rm -rf "$tree"
mv "$tree.new" "$tree"

cd "$tree"
CUDARC_CUDA_VERSION=13000 CARGO_TARGET_DIR="$CACHE/target" \
    cargo check --features cuda --bin longwriter --test train_cuda \
    --config "patch.crates-io.candle-kernels.path=\"$stub\""
