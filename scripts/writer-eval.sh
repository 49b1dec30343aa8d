#!/usr/bin/env bash
# The writer's acceptance measurements (issue 15): the held-out split
# (data/eval/writer-heldout.jsonl, 48 requests of 100-2,000 words / 字, English and
# Chinese) written by each configuration with two seeds, then one table per length bucket.
#
#   scripts/writer-eval.sh [CONFIG...]      # default: base-chat base-agentwrite
#
# CONFIG is NAME, or MODEL:TEMPLATE for any registry model, e.g.
#   base-chat        the base model on its best single-pass template (chat)
#   base-agentwrite  AgentWrite on the base model (plan, then write paragraph by paragraph)
#   writer:longwriter-primed   a trained model registered as "writer"
# Evals go to <data dir>/evals/writer-<config>-s<seed>/ and resume where they stopped.
# LONGWRITER_BIN picks the binary (default: target/release/longwriter).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${LONGWRITER_BIN:-$root/target/release/longwriter}
data=${LONGWRITER_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/longwriter}
heldout=$root/data/eval/writer-heldout.jsonl
[ $# -gt 0 ] || set -- base-chat base-agentwrite

dirs=()
for cfg in "$@"; do
  case $cfg in
    base-chat) model=smollm2-135m; template=chat ;;
    base-agentwrite) model=smollm2-135m; template=agentwrite ;;
    *:*) model=${cfg%%:*}; template=${cfg#*:} ;;
    *) echo "error: unknown config '$cfg' (NAME or MODEL:TEMPLATE)" >&2; exit 2 ;;
  esac
  for seed in 1 2; do
    out=$data/evals/writer-${cfg//[:\/]/_}-s$seed
    "$bin" eval longbench --data "$heldout" --model "$model" --template "$template" --seed "$seed" --out "$out" >&2
    dirs+=("$cfg=$out")
  done
done

# One row per configuration and bucket, both seeds pooled.
python3 - "${dirs[@]}" <<'EOF'
import json, sys, collections
buckets = [(0, 499, "100-499"), (500, 999, "500-999"), (1000, 10**9, "1000-2000")]
def bucket(r):
    # Chinese lengths are characters: about 1.5 per English word.
    n = r["required"] / (1.5 if r["type"].endswith("(zh)") else 1.0)
    return next(name for lo, hi, name in buckets if n <= hi)
rows = collections.defaultdict(list)
sem = collections.defaultdict(list)
for arg in sys.argv[1:]:
    cfg, path = arg.split("=", 1)
    for line in open(f"{path}/results.jsonl"):
        r = json.loads(line)
        rows[(cfg, bucket(r))].append(r)
        rows[(cfg, "all")].append(r)
    s = json.load(open(f"{path}/summary.json"))
    if s.get("semantic"):
        sem[cfg].append(s["semantic"])
print("| config | bucket | answers | S_l | strict format | natural stops | mean words |")
print("|---|---|---:|---:|---:|---:|---:|")
for (cfg, b), rs in sorted(rows.items()):
    f = [r["format_ok"] for r in rs if "format_ok" in r]
    fmt = f"{100 * sum(f) / len(f):.0f}%" if f else "n/a"
    print(f"| {cfg} | {b} | {len(rs)} | {sum(r['s_l'] for r in rs) / len(rs):.1f} | {fmt} | {100 * sum(not r['truncated'] for r in rs) / len(rs):.0f}% | {sum(r['words'] for r in rs) / len(rs):.0f} |")
print()
print("| config | request-answer cosine | answer-answer cosine | fluency |")
print("|---|---:|---:|---:|")
mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
for cfg, ss in sorted(sem.items()):
    print(f"| {cfg} | {mean([s['request_cosine'] for s in ss]):.3f} | {mean([s['answer_cosine'] for s in ss if s['answer_cosine'] is not None]):.3f} | {mean([s['fluency'] for s in ss if s['fluency'] is not None]):.3f} |")
EOF
