#!/usr/bin/env python3
"""Compare models on held-out training prompts: the share of strict think/answer format,
natural stops (not truncated at the token cap), and the length reward against each
prompt's target (bounds rounded to 10 words, like examples/jobs/short-format-length.toml).

usage: scripts/eval-heldout.py PROMPTS.jsonl HOLDOUT MODEL [MODEL ...]
       (env LONGWRITER=path/to/longwriter, SEEDS=3, MAX_TOKENS=192, TEMPLATE=longwriter)

Each model writes every held-out prompt once per seed with the rollout settings
(the job's template, T 0.8, top-p 1.0); rewards come from `longwriter score --json`.
"""
import json, os, subprocess, sys, tempfile

lw = os.environ.get("LONGWRITER", "target/release/longwriter")
seeds = int(os.environ.get("SEEDS", "3"))
max_tokens = os.environ.get("MAX_TOKENS", "192")
template = os.environ.get("TEMPLATE", "longwriter")


def run(model, prompt, seed):
    w = subprocess.run([lw, "write", "--model", model, "--template", template, "--max-tokens", max_tokens,
                        "--temperature", "0.8", "--top-p", "1.0", "--seed", str(seed), "--json", prompt],
                       capture_output=True, text=True)
    if w.returncode != 0:
        raise SystemExit(f"{model}: {w.stderr.strip()}")
    return json.loads(w.stdout)


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    prompts = [json.loads(l)["prompt"] for l in open(sys.argv[1]) if l.strip()]
    held = prompts[-int(sys.argv[2]):]
    for model in sys.argv[3:]:
        n = strict = natural = 0
        length = []
        words = []
        for p in held:
            for s in range(1, seeds + 1):
                d = run(model, p, s)
                st = d["stats"]
                fmt = st["format"]
                ok = not fmt["violations"] and fmt["think_blocks"] == 1 and fmt["answer_blocks"] == 1
                strict += ok
                natural += st["stop"]["kind"] in ("eos", "stop_string")
                n += 1
                # Rebuild the output the way the trainer scores it (tags only where present).
                text = (f"<think>{d['think']}</think>" if fmt["think_blocks"] else "") + (f"<answer>{d['answer']}</answer>" if fmt["answer_blocks"] else d["answer"])
                sc = subprocess.run([lw, "score", "--json", "--prompt", p, "--l-max", "200"] + (["--target-unit", "10"] + (["--stopped"] if st["stop"]["kind"] != "max_tokens" else [])),
                                    input=text, capture_output=True, text=True)
                r = json.loads(sc.stdout)
                words.append(r["words"])
                if r["length"] is not None:
                    length.append(r["length"])
        print(json.dumps({"model": model, "template": template, "samples": n, "strict_format": strict / n, "natural_stop": natural / n,
                          "length_reward": sum(length) / max(1, len(length)), "mean_answer_words": sum(words) / n}))


if __name__ == "__main__":
    main()
