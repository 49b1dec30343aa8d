#!/usr/bin/env bash
# The writer run (examples/jobs/writer.toml) across machines. A run lives in the data dir
# of the machine that trains it; this script carries its newest checkpoint through the
# repository, so the run goes on where the last machine stopped.
#
#   scripts/writer-run.sh resume   # put training/writer/ into the data dir if it has no
#                                  # newer copy, then `train --resume writer` in the
#                                  # background (log: <data dir>/runs/writer/train.log)
#   scripts/writer-run.sh save     # copy the run's newest checkpoint, metrics and samples
#                                  # into training/writer/ (to commit)
#
# LONGWRITER_BIN picks the binary (default: target/release/longwriter, built if missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${LONGWRITER_BIN:-$root/target/release/longwriter}
data=${LONGWRITER_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/longwriter}
run=$data/runs/writer
saved=$root/training/writer

newest() { ls -d "$1"/checkpoints/step-* 2>/dev/null | sort | tail -n 1; }
step_of() { basename "${1:-step-000000}" | sed 's/^step-0*//; s/^$/0/'; }

case ${1:-} in
save)
  ck=$(newest "$run")
  [ -n "$ck" ] || { echo "error: $run has no checkpoint yet" >&2; exit 1; }
  mkdir -p "$root/training"
  tmp=$(mktemp -d "$root/training/.writer-XXXXXX")
  chmod 755 "$tmp"
  mkdir -p "$tmp/checkpoints"
  cp -r "$ck" "$tmp/checkpoints/"
  cp "$run/job.toml" "$tmp/"
  # The lines a resume keeps: those up to the checkpoint's step.
  k=$(step_of "$ck")
  for f in metrics.jsonl samples.jsonl; do
    python3 -c 'import json,sys; k=int(sys.argv[1]); [print(l, end="") for l in open(sys.argv[2]) if l.strip() and json.loads(l)["step"] <= k]' "$k" "$run/$f" > "$tmp/$f"
  done
  rm -rf "$saved.old"; [ -d "$saved" ] && mv "$saved" "$saved.old"
  mv "$tmp" "$saved"; rm -rf "$saved.old"
  echo "saved step $k of $run to $saved"
  ;;
resume)
  [ -x "$bin" ] || (cd "$root" && cargo build --release --bin longwriter)
  have=$(step_of "$(newest "$run")")
  got=$(step_of "$(newest "$saved")")
  if [ "$got" -gt "$have" ]; then
    rm -rf "$run"; mkdir -p "$data/runs"
    cp -r "$saved" "$run"
    # The job's prompt path is absolute: point it at this checkout.
    sed -i "s|^prompts = .*|prompts = \"$root/data/prompts/writer.jsonl\"|" "$run/job.toml"
    echo "restored step $got into $run"
  fi
  nohup "$bin" train --resume writer >> "$run/train.log" 2>&1 &
  echo "training in the background (pid $!); watch: $bin runs watch writer"
  ;;
*)
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
  ;;
esac
