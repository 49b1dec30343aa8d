#!/usr/bin/env python3
"""Does a group's advantage still point to the asked length? Offline, on real answers.

Why: the writer job's GRPO stages (writer-v2, writer-v3) pulled answers back to 100-500
words whatever was asked (docs/writer.md). Besides length and format, the job rewards
relevance, diversity and fluency, and in the paper's combination every reward is z-scored
inside its group, so a reward's say does not depend on how much it varies. This script
measures, on G answers per prompt from a model, how each reward moves with the answer's
length inside a group, and how much more advantage the answers in the asked range get
than the too-short ones, under each way of combining the rewards and two token caps.

    scripts/reward-alignment.py OUT_DIR [--model smollm2-135m] [--template chat] [-g 8]
        [--prompts 8] [--max-tokens 2400]

OUT_DIR/prompts.jsonl: training prompts asking for 500-1,600 words, spread over that
range (from data/prompts/writer.jsonl's training split); OUT_DIR/out/ the answers
(`longwriter write --json`, the job's rollout sampling: T 0.8, top-p 1.0);
OUT_DIR/scores.jsonl the rewards (`longwriter score --json --quality proxy --relevance`).
All three are kept, so a second run only prints the tables. A shorter token cap is
simulated: an answer that needed more tokens than the cap less 150 (a plan's room, for
answers written without one; a template with a plan counts it twice) is cut (format 0, its
words cut in proportion). LONGWRITER picks the binary (default: target/release/longwriter).

docs/writer-history.md ("How the rewards are combined") has two runs: the base model on `chat`
(the defaults) and the writer job's cold start (`--model writer-v4-step32 --template
longwriter-chat`, a `train export` of its step 32).
"""
import argparse
import json
import os
import statistics as st
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LW = os.environ.get("LONGWRITER", os.path.join(ROOT, "target/release/longwriter"))
PLAN_TOKENS = 150
PROXIES = ["relevance", "diversity", "fluency"]
# examples/jobs/writer.toml's l_max and weights. The length reward and the two combinations
# are computed again here (src/reward/length.rs, src/reward/advantage.rs), since a
# simulated token cap changes the words an answer keeps.
L_MAX = 6000
WEIGHTS = {"length": 2.0, "format": 1.0, "relevance": 1.0, "diversity": 0.5, "fluency": 0.5}


def pick_prompts(path, n):
    """n English training prompts asking for 500-1,600 words, spread over the training
    split's eval-form order (the one `make-writer-prompts.py --train-eval` writes)."""
    if os.path.exists(path):
        return [json.loads(line) for line in open(path, encoding="utf-8")]
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    import random
    from importlib import import_module

    mk = import_module("make-writer-prompts")
    rows, _ = mk.build()
    train = [mk.eval_form(r) for r in rows if "split" not in r and r["lang"] == "en"]
    random.Random(7).shuffle(train)
    cand = [r for r in train if 500 <= r["length"] <= 1600]
    picked = [cand[int(i * len(cand) / n)] for i in range(n)]
    with open(path, "w", encoding="utf-8") as f:
        for r in picked:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return picked


def target(prompt, ranges):
    """The trainer's target with `targets = "rules"`: the prompt's range where the prompt
    file gives one, else the count the prompt states (rounded to 100, as the job does)."""
    if ranges.get(prompt):
        return tuple(ranges[prompt])
    out = subprocess.run([LW, "score", "--prompt", prompt, "--json", "-"], input="<think>x</think><answer>x</answer>", capture_output=True, text=True, check=True)
    t = json.loads(out.stdout)["target"]
    return (t["lo"], t["hi"])


def length_reward(w, lo, hi):
    if lo <= w <= hi:
        return 1.0
    return w / lo if w < lo else max(0.0, (L_MAX - w) / (L_MAX - hi))


def zscores(xs):
    s = st.stdev(xs) if len(xs) > 1 else 0.0
    m = st.mean(xs)
    return [0.0] * len(xs) if s < 1e-12 else [(x - m) / s for x in xs]


def corr(a, b):
    return float("nan") if st.pstdev(a) < 1e-12 or st.pstdev(b) < 1e-12 else st.correlation(a, b)


def advantages(vals, weights, combine):
    names = [n for n in weights if weights[n] > 0]
    if combine == "weighted-sum":
        return zscores([sum(weights[n] * vals[n][k] for n in names) for k in range(len(vals["length"]))])
    zs = {n: zscores(vals[n]) for n in names}
    total = sum(weights[n] for n in names)
    return [sum(weights[n] * zs[n][k] for n in names) / total for k in range(len(vals["length"]))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--template", default="chat")
    ap.add_argument("-g", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=2400)
    a = ap.parse_args()
    os.makedirs(os.path.join(a.out, "out"), exist_ok=True)
    prompts = pick_prompts(os.path.join(a.out, "prompts.jsonl"), a.prompts)
    ranges = {r["prompt"]: r.get("range") for r in map(json.loads, open(os.path.join(ROOT, "data/prompts/writer.jsonl"), encoding="utf-8"))}
    scores_path = os.path.join(a.out, "scores.jsonl")
    scored = {}
    if os.path.exists(scores_path):
        scored = {r["file"]: r for r in map(json.loads, open(scores_path, encoding="utf-8"))}
    with open(scores_path, "a", encoding="utf-8") as sf:
        for i, p in enumerate(prompts):
            lo, hi = target(p["prompt"], ranges)
            for s in range(1, a.g + 1):
                f = os.path.join(a.out, "out", f"p{i}-s{s}.json")
                if not os.path.exists(f):
                    w = subprocess.run([LW, "write", "--model", a.model, "--template", a.template, "--temperature", "0.8", "--top-p", "1.0",
                                        "--max-tokens", str(a.max_tokens), "--seed", str(s), "--json", p["prompt"]],
                                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
                    if w.returncode != 0:
                        sys.exit(f"write failed: {w.stderr.strip()}")
                    with open(f + ".tmp", "w", encoding="utf-8") as o:
                        o.write(w.stdout)
                    os.replace(f + ".tmp", f)
                key = os.path.relpath(f, a.out)
                if key in scored:
                    continue
                d = json.load(open(f, encoding="utf-8"))
                text = f"<think>\nplan\n</think>\n<answer>\n{d['answer']}\n</answer>"
                out = subprocess.run([LW, "score", "--prompt", p["prompt"], "--target", f"{lo},{hi}", "--quality", "proxy", "--relevance", "--json", "-"],
                                     input=text, capture_output=True, text=True, check=True)
                sc = json.loads(out.stdout)
                # An empty answer has no quality score; the trainer gives it 0 for both.
                parts = {q["name"]: q["value"] for q in (sc["quality"] or {"parts": []})["parts"]}
                row = {"file": key, "group": i, "lo": lo, "hi": hi, "words": sc["words"], "relevance": sc["relevance"],
                       "diversity": parts.get("diversity", 0.0), "fluency": parts.get("fluency", 0.0),
                       "tokens": d["stats"]["generated_tokens"], "natural": d["stats"]["stop"]["kind"] != "max_tokens"}
                sf.write(json.dumps(row) + "\n")
                sf.flush()
                scored[key] = row
    rows = list(scored.values())
    groups = [[r for r in rows if r["group"] == g] for g in sorted({r["group"] for r in rows})]
    print(f"{len(rows)} answers to {len(groups)} prompts ({a.model}, {a.template}); {sum(r['natural'] for r in rows)} stopped by themselves")
    print("\nInside a group, correlation of each reward with the answer's words (mean over groups):")
    for label, keep in (("all answers", lambda r: True), ("answers that stopped by themselves", lambda r: r["natural"])):
        cs = {n: [] for n in PROXIES}
        for g in groups:
            g = [r for r in g if keep(r)]
            if len(g) >= 4:
                for n in PROXIES:
                    c = corr([r["words"] for r in g], [r[n] for r in g])
                    if c == c:
                        cs[n].append(c)
        print(f"  {label:36} " + "  ".join(f"{n} {st.mean(cs[n]):+.2f}" for n in PROXIES if cs[n]))
    print("\nMean advantage of answers in the asked range against too-short ones (the gap is the length signal):")
    print(f"  {'token cap':>9}  {'rewards':44} {'combine':15} {'in range':>9} {'too short':>9} {'gap':>6}")
    for cap in (1600, a.max_tokens):
        for wlabel, weights in (("the writer job's five", WEIGHTS), ("length and format only", {"length": 2.0, "format": 1.0})):
            for combine in ("advantage-mean", "weighted-sum"):
                if len(weights) == 2 and combine == "weighted-sum":
                    continue
                inr, short = [], []
                for g in groups:
                    vals = {n: [] for n in WEIGHTS}
                    words = []
                    for r in g:
                        budget = cap - PLAN_TOKENS
                        cut = not r["natural"] or r["tokens"] > budget
                        w = r["words"] if r["tokens"] <= budget else int(r["words"] * budget / r["tokens"])
                        words.append(w)
                        vals["length"].append(length_reward(w, r["lo"], r["hi"]))
                        vals["format"].append(0.0 if cut else 1.0)
                        for n in PROXIES:
                            vals[n].append(r[n])
                    for adv, w, r, lr in zip(advantages(vals, weights, combine), words, g, vals["length"]):
                        if lr >= 0.999:
                            inr.append(adv)
                        elif w < r["lo"]:
                            short.append(adv)
                if inr and short:
                    print(f"  {cap:>9}  {wlabel:44} {combine:15} {st.mean(inr):+9.2f} {st.mean(short):+9.2f} {st.mean(inr) - st.mean(short):+6.2f}   ({len(inr)} in range, {len(short)} short)")


if __name__ == "__main__":
    main()
