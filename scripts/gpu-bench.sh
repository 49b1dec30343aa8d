#!/usr/bin/env bash
# Runs longwriter's CUDA build on a GPU machine that has the NVIDIA driver (>= 580) and the
# CUDA 13 runtime libraries but no Rust toolchain and no network: checks the driver, writes
# a short text on the GPU, then measures decode speed for the default model and for a
# synthetic 7B-class model (random Q4_0 weights in Llama-2-7B's shape; speed depends on
# shapes, not values), with the default model on the CPU as the same-machine reference.
#
# Build here (see scripts/cuda-toolkit.sh for the toolkit from the package index):
#   export CUDA_ROOT=$(scripts/cuda-toolkit.sh | tail -n1)
#   CUDA_HOME=$CUDA_ROOT PATH=$CUDA_ROOT/bin:$PATH CUDA_COMPUTE_CAP=90 \
#     RUSTFLAGS="-C target-cpu=x86-64-v3" CARGO_TARGET_DIR=target/cuda \
#     cargo build --release --features cuda --bin longwriter
# Then put under $GPU_DIR (default target/gpu), in pieces if a transfer limit requires:
#   longwriter.gz     the stripped binary, gzipped (about 21 MB)
#   model.gguf.NN     the default GGUF split with `split -b 37M -d FILE model.gguf.`
#   lib/              only if the machine lacks them: libcudart.so.13, libcublas.so.13,
#                     libcublasLt.so.13, libcurand.so.10 (from the same wheels; ~730 MB)
# Results go to $OUT (default gpu-out).
set -uo pipefail
G="${GPU_DIR:-target/gpu}"
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n1)
if [[ "${driver%%.*}" -lt 580 ]]; then
    echo "the CUDA 13 build needs driver >= 580, this one is $driver" >&2
    exit 3
fi
[[ -d "$G/lib" ]] && export LD_LIBRARY_PATH="$PWD/$G/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LONGWRITER_CACHE_DIR="$PWD/$G/C" LONGWRITER_DATA_DIR="$PWD/$G/D" LONGWRITER_CONFIG_DIR="$PWD/$G/E"
M="$LONGWRITER_CACHE_DIR/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$(dirname "$M")"
[[ -f "$M" ]] || cat "$G"/model.gguf.* > "$M"
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $M" | sha256sum -c - || exit 4
[[ -x "$G/lw" ]] || { gzip -dc "$G/longwriter.gz" > "$G/lw" && chmod +x "$G/lw"; }
LW="$G/lw"
ldd "$LW" | grep -E "cuda|cublas|curand|not found" | tee "$OUT/ldd.txt"
"$LW" --device cuda write --max-tokens 40 --temperature 0 --template chat "Write a 100-word story about a lighthouse keeper." 2>&1 | tee "$OUT/write-cuda.txt"
"$LW" --device cuda bench --reps 5 --json > "$OUT/bench-default-cuda.json"
"$LW" --device cuda bench --synthetic 7b --reps 5 --json > "$OUT/bench-7b-cuda.json"
"$LW" --device cpu bench --reps 5 --json > "$OUT/bench-default-cpu.json"
grep -h -E '"(model|backend|decode_tok_s|prefill_tok_s)"' "$OUT"/bench-*.json
