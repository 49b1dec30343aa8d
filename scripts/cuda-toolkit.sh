#!/usr/bin/env bash
# Fetch a CUDA toolkit from NVIDIA's Python wheels (no system-wide install, no
# GPU needed) and lay it out like a normal CUDA_HOME, so that
# `cargo build --release --features cuda` works on a machine without CUDA.
#
# Why CUDA 13: the `nvidia-cuda-nvcc-cu12` wheels (every 12.x release) ship only
# ptxas + libnvvm -- no `nvcc` driver, `cicc`, `cudafe++` or `fatbinary` -- so
# they cannot build candle-kernels. The CUDA 13 wheels (`nvidia-cuda-nvcc`,
# `nvidia-nvvm`, `nvidia-cuda-crt`, ...) are a complete compiler and all install
# into one tree, nvidia/cu13/{bin,include,lib,nvvm}.
# Consequence: the built binary needs an NVIDIA driver >= 580 (CUDA 13) on the
# GPU machine (PTX ISA 9.0 JIT, libcudart/libcublas 13).
#
# Usage:
#   export CUDA_ROOT=$(scripts/cuda-toolkit.sh | tail -n1)
#   export CUDA_HOME=$CUDA_ROOT CUDA_PATH=$CUDA_ROOT PATH=$CUDA_ROOT/bin:$PATH
#   export CUDA_COMPUTE_CAP=90               # H100/H200 (-> sm_90a); no nvidia-smi here
#   export RUSTFLAGS="-C target-cpu=x86-64-v3"  # optional: overrides .cargo/config's
#                                            # target-cpu=native so the binary runs on
#                                            # another host CPU (keeps AVX2/FMA)
#   CARGO_TARGET_DIR=/work/cuda-target cargo build --release --features cuda
#
# Build-time needs: PATH (cudarc runs `nvcc --version`; cudaforge looks for nvcc
# on PATH), CUDA_ROOT/CUDA_HOME/CUDA_PATH (cudarc adds $X/lib, $X/lib64,
# $X/lib/stubs to the link search path; no LIBRARY_PATH needed), and
# CUDA_COMPUTE_CAP. Linking uses lib/stubs/libcuda.so, a stub generated here
# from cuda.h (soname libcuda.so.1; the real one comes with the driver).
# Nothing needs LD_LIBRARY_PATH at build time.
#
# Run-time needs (GPU machine: driver only): the binary is dynamically linked
# (candle-core enables cudarc's `dynamic-linking`) to libcuda.so.1 (driver) and
# libcudart.so.13, libcublas.so.13 (+ libcublasLt.so.13, which it NEEDs),
# libcurand.so.10, libnvrtc.so.13 from $CUDA_ROOT/lib:
#   LD_LIBRARY_PATH=$CUDA_ROOT/lib ./longwriter ...
#
# Env knobs: PYTHON (default python3), XDG_CACHE_HOME.
# Idempotent: a second run only prints the root. All progress goes to stderr;
# the LAST line on stdout is the CUDA root.
set -euo pipefail

VERSION=13.0.2 # the `cuda-toolkit` meta-package release these pins come from
PKGS=(
  nvidia-cuda-nvcc==13.0.88    # nvcc, cudafe++, fatbinary, nvlink, ptxas
  nvidia-nvvm==13.0.88         # cicc, libdevice, libnvvm
  nvidia-cuda-crt==13.0.88     # include/crt (nvcc's own headers)
  nvidia-cuda-runtime==13.0.96 # cuda_runtime.h, cuda.h, libcudart
  nvidia-cuda-cccl==13.0.85    # include/cccl (cub, thrust, libcu++)
  nvidia-cublas==13.1.0.3      # libcublas, libcublasLt
  nvidia-curand==10.4.0.35     # libcurand
  nvidia-cuda-nvrtc==13.0.88   # libnvrtc
)

PYTHON=${PYTHON:-python3}
BASE="${XDG_CACHE_HOME:-$HOME/.cache}/longwriter/cuda-toolkit/$VERSION"
ROOT="$BASE/pkgs/nvidia/cu13"
STAMP="$BASE/.complete"
WANT="${PKGS[*]}"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -x "$ROOT/bin/nvcc" ]]; then
  echo "$ROOT"
  exit 0
fi

log() { echo "cuda-toolkit: $*" >&2; }

log "installing CUDA $VERSION wheels into $BASE"
mkdir -p "$BASE"
rm -rf "$BASE/pkgs" "$BASE/pkgs.tmp" "$STAMP"
"$PYTHON" -m pip install --quiet --no-deps --no-compile --disable-pip-version-check --root-user-action=ignore \
  --target "$BASE/pkgs.tmp" "${PKGS[@]}" >&2
mv "$BASE/pkgs.tmp" "$BASE/pkgs"

[[ -x "$ROOT/bin/nvcc" ]] || { log "no nvcc in $ROOT/bin"; exit 1; }
rm -rf "$ROOT/.metadata" "$ROOT/lib/cmake" \
  "$ROOT"/lib/libnvrtc.alt.so.* "$ROOT"/lib/libnvrtc-builtins.alt.so.* \
  "$BASE"/pkgs/nvidia/__init__.py "$BASE"/pkgs/nvidia/__pycache__

# The classic toolkit layout that nvcc.profile, cudarc and cudaforge expect.
(
  cd "$ROOT"
  ln -sfn lib lib64
  mkdir -p targets/x86_64-linux
  ln -sfn ../../include targets/x86_64-linux/include
  ln -sfn ../../lib targets/x86_64-linux/lib
  mkdir -p nvvm/lib64
  ln -sfn ../../lib/libnvvm.so.4 nvvm/lib64/libnvvm.so
  cd lib
  # Development symlinks (what `-lcudart` etc. look for).
  for so in lib*.so.*; do
    dev=${so%%.so.*}.so
    [[ -e "$dev" ]] || ln -s "$so" "$dev"
  done
)

# libcuda.so is the driver's, never in a wheel: link against a stub exporting
# every cu* entry point named in cuda.h (incl. _v2/_ptds/_ptsz variants).
log "generating stub libcuda.so"
stubdir="$ROOT/lib/stubs"
mkdir -p "$stubdir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
  grep -ohE '\bcu[A-Z][A-Za-z0-9_]*\b' "$ROOT/include/cuda.h"
  for defs in "" "-DCUDA_API_PER_THREAD_DEFAULT_STREAM=1"; do
    # shellcheck disable=SC2086
    echo '#include <cuda.h>' | gcc -E -P $defs -I"$ROOT/include" -x c - |
      grep -ohE '\bcu[A-Z][A-Za-z0-9_]*\b'
  done
} | sort -u | sed 's/.*/void &(void) {}/' >"$tmp/cuda_stub.c"
gcc -shared -fPIC -o "$stubdir/libcuda.so" -Wl,-soname,libcuda.so.1 "$tmp/cuda_stub.c"

# Smoke test: nvcc runs, emits PTX for sm_90a, and does a full host+device compile.
log "checking nvcc"
export PATH="$ROOT/bin:$PATH"
nvcc --version >&2
cat >"$tmp/t.cu" <<'EOF'
#include <cuda_fp16.h>
__global__ void axpy(float a, const float *x, float *y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
void launch(float a, const float *x, float *y, int n) { axpy<<<(n + 255) / 256, 256>>>(a, x, y, n); }
EOF
nvcc -gencode=arch=compute_90a,code=sm_90a --ptx -std=c++17 -O3 -o "$tmp/t.ptx" "$tmp/t.cu"
grep -q '^\.target sm_90a' "$tmp/t.ptx"
nvcc -gencode=arch=compute_90a,code=sm_90a -c -std=c++17 -Xcompiler -fPIC -o "$tmp/t.o" "$tmp/t.cu"
g++ -shared -o "$tmp/t.so" "$tmp/t.o" -L"$ROOT/lib" -lcudart

echo "$WANT" >"$STAMP"
log "ready"
echo "$ROOT"
