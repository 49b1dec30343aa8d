#!/usr/bin/env bash
# Baseline throughput of the llama.cpp reference on this machine, for comparing
# longwriter against: prefill = 128-token prompt, decode = 256 generated tokens,
# 2 threads, llama-bench's default 5 repetitions (averaged).
# Usage: scripts/bench-llama-cpp.sh MODEL.gguf
#   -> {"prefill_tok_s": X, "decode_tok_s": Y} on stdout
set -euo pipefail

MODEL="${1:?usage: $0 MODEL.gguf}"
BIN="$("$(dirname "${BASH_SOURCE[0]}")/llama-cpp.sh" | tail -n1)"

"$BIN/llama-bench" -m "$MODEL" -t 2 -p 128 -n 256 -o json 2>/dev/null | python3 -c '
import json, sys
rows = json.load(sys.stdin)
# llama-bench emits one row per test: prompt-only rows have n_gen == 0.
pp = next(r["avg_ts"] for r in rows if r["n_prompt"] > 0 and r["n_gen"] == 0)
tg = next(r["avg_ts"] for r in rows if r["n_gen"] > 0 and r["n_prompt"] == 0)
print(json.dumps({"prefill_tok_s": round(pp, 2), "decode_tok_s": round(tg, 2)}))
'
