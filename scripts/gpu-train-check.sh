#!/usr/bin/env bash
# Training on a GPU machine that has the NVIDIA driver (>= 580) and the CUDA 13 libraries
# but no Rust toolchain and no network: the CUDA training tests (tests/train_cuda.rs), the
# step-time benchmark with rollouts on the GPU and on the CPU engine (and the CPU alone as
# the same-machine reference), the 30-step demonstration job trained on the GPU, and a
# step of the long example job (gradient checkpointing).
#
# Build here (scripts/cuda-toolkit.sh gives the toolkit; see scripts/gpu-bench.sh):
#   CUDA_HOME=... CUDA_COMPUTE_CAP=90 RUSTFLAGS="-C target-cpu=x86-64-v3" \
#     cargo build --release --features cuda --bin longwriter
#   ... cargo test --release --features cuda --no-run --test train_cuda
# and put under $GPU_DIR (default target/gpu): `lw` (the binary), `train_cuda` (the test
# binary, which reads examples/ from the directory it was built in: give that directory
# as BUILT_IN) and `model.gguf` (the default model). Results go to $OUT (default gpu-out).
set -uo pipefail
G="${GPU_DIR:-target/gpu}"
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
# At most eight files come back from some machines: the logs share log.txt.
L="$OUT/log.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$L"
nproc | tee -a "$L"
export LONGWRITER_CACHE_DIR="$PWD/$G/C" LONGWRITER_DATA_DIR="$PWD/$G/D" LONGWRITER_CONFIG_DIR="$PWD/$G/E"
M="$LONGWRITER_CACHE_DIR/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$(dirname "$M")"
[[ -f "$M" ]] || cp "$G/model.gguf" "$M"
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $M" | sha256sum -c - || exit 4
if [[ -n "${BUILT_IN:-}" && ! -e "$BUILT_IN" ]]; then
    mkdir -p "$(dirname "$BUILT_IN")" && ln -s "$PWD" "$BUILT_IN"
fi
LW="$G/lw"
ldd "$LW" | grep -E "cuda|cublas|curand|not found" >> "$L"
step() { echo "== $1 ($(date +%T))" | tee -a "$L"; }
# Each part gets at most its own cap and what is left of DEADLINE seconds (default 500).
END=$(( $(date +%s) + ${DEADLINE:-500} ))
left() { local l=$(( END - $(date +%s) )); (( l < $1 )) && echo $(( l > 1 ? l : 1 )) || echo "$1"; }

step "tests/train_cuda.rs"
timeout "$(left 150)" "$G/train_cuda" --test-threads 1 --nocapture 2>&1 | tee "$OUT/tests.txt"

# The short demonstration job with rollouts on the CPU engine (all cores), the policy on
# the GPU.
step "demo job on cuda"
J=examples/jobs/.gpu-short.toml
sed '/^\[rollout\]/a device = "cpu"' examples/jobs/short-format-length.toml > "$J"
timeout "$(left 200)" "$LW" --device cuda train --config "$J" --name demo-cuda > /tmp/demo.txt 2>&1
echo "exit $?" >> /tmp/demo.txt
cp "$LONGWRITER_DATA_DIR/runs/demo-cuda/metrics.jsonl" "$OUT/demo-metrics.jsonl"
tail -n 5 /tmp/demo.txt | tee -a "$L"

step "bench --train"
for cfg in "cuda train" "cuda cpu" "cpu train"; do
    set -- $cfg
    timeout "$(left 50)" "$LW" --device "$1" bench --train --rollout-device "$2" --reps 3 --json > "$OUT/bench-train-$1-$2.json" 2>>"$L"
    grep -A5 '"mean"' "$OUT/bench-train-$1-$2.json"
done

step "long job, one step"
J=examples/jobs/.gpu-long.toml
sed -e '/^\[rollout\]/a device = "cpu"' -e 's/^steps = 30/steps = 1/' -e 's/^checkpoint_every = 2/checkpoint_every = 1/' examples/jobs/long-length.toml > "$J"
timeout "$(left 150)" "$LW" --device cuda train --config "$J" --name long-cuda > /tmp/long.txt 2>&1
echo "exit $?" >> /tmp/long.txt
cp "$LONGWRITER_DATA_DIR/runs/long-cuda/metrics.jsonl" "$OUT/long-metrics.jsonl"
tail -n 5 /tmp/long.txt | tee -a "$L"
step done
