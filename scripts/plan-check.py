#!/usr/bin/env python3
"""How a part-per-hundred-words writer followed its plans, from `eval longbench` results.

usage: scripts/plan-check.py EVAL_DIR [EVAL_DIR ...]

For each eval directory: S_l overall and by length bucket, strict format, natural stops
and median words; then per request the asked and written length, the plan's part count
("in K parts"), how many numbered lines the plan has, and how many paragraphs the answer
has (docs/writer-history-2.md, "A part per hundred words"; `--template longwriter-parts`).
"""
import json, re, statistics as st, sys


def bucket(n):
    return "100-499" if n < 500 else "500-999" if n < 1000 else "1000-2000"


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for d in sys.argv[1:]:
        rows = [json.loads(l) for l in open(f"{d}/results.jsonl", encoding="utf-8") if l.strip()]
        if not rows:
            print(f"{d}: no results yet")
            continue
        by = {}
        for r in rows:
            by.setdefault(bucket(r["required"]), []).append(r["s_l"])
        fmt = [r["format_ok"] for r in rows if r.get("format_ok") is not None]
        natural = sum(not r["truncated"] for r in rows)
        right = 0
        print(f"{d}: {len(rows)} requests, S_l {st.mean(r['s_l'] for r in rows):.1f} ("
              + ", ".join(f"{k} {st.mean(v):.1f} of {len(v)}" for k, v in sorted(by.items(), key=lambda kv: int(kv[0].split('-')[0])))
              + f"), strict format {sum(fmt)}/{len(fmt)}, natural stops {natural}/{len(rows)}, median {st.median(r['words'] for r in rows)} words")
        for r in rows:
            m = re.search(r"in (\d+) parts?", r["think"])
            lines = len(re.findall(r"(?m)^\s*\d+\.", r["think"]))
            paras = len([p for p in r["answer"].split("\n\n") if p.strip()])
            k = int(m.group(1)) if m else None
            right += k is not None and lines == k
            print(f"  {r['required']:5d} asked {r['words']:5d} written  S_l {r['s_l']:5.1f}  parts {k if k else '-':>3}  plan lines {lines:3d}  paragraphs {paras:3d}"
                  + ("  cut" if r["truncated"] else "") + ("" if r.get("format_ok", True) else "  format ✗"))
        print(f"  plans with as many lines as parts: {right} of {len(rows)}")


if __name__ == "__main__":
    main()
