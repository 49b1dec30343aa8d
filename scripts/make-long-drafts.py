#!/usr/bin/env python3
"""Long drafts for the writer's cold start: the base model's own chat answers to the long
training prompts, made to go on past the point where it would stop, and cut at the
paragraph end nearest the asked length.

Why: SmolLM2-135M-Instruct on its chat template answers a 1,500-word request with 300-700
words and stops. Of the 126 cold-start demonstrations that its own answers gave
(scripts/make-cold-start.py), 2 had 900 words or more: the 1,000-2,000-word requests were
all relabelled down to the length written, so the cold start taught that every answer is
short, and the model it left scored 4.1 on the 1,000-2,000-word held-out requests
(docs/writer.md). The paper's cold-start-free recipe needs a 32B model that can write
10,000 words; this one needs to be shown long answers of its own. Suppressing the end of
sequence (llama.cpp's `ignore_eos`) makes it write the next paragraph where it would have
stopped; the draft is then cut at a paragraph end, so every demonstration still ends where
a paragraph ends.

    scripts/make-long-drafts.py SERVER PROMPTS OUT_DIR [--seed N] [--min-length 500] [--parallel 4]

SERVER is a llama-server on the base model file, started with as many slots as
--parallel and a context of at least 1.5 tokens per asked word plus the prompt a slot:

    llama-server -m SmolLM2-135M-Instruct.Q4_1.gguf -t 2 -np 4 -c 16384 --port 8091

PROMPTS is an eval-form file of training prompts (`scripts/make-writer-prompts.py
--train-eval DIR`); the prompts asking for at least --min-length words are drafted.
OUT_DIR/results.jsonl has one row per prompt in `eval longbench`'s form (prompt, required,
answer, truncated, words, tokens; and the whole draft), so `scripts/make-cold-start.py`
takes it like an eval run: a draft that never reached 4/5 of the asked length is marked
truncated and dropped there. Each request uses the registry's sampling for the model
(T 0.6, top-p 0.95, repetition penalty 1.1), with llama.cpp's DRY sampler against
repeating earlier phrases. Rows already in results.jsonl are kept (the script resumes).
`--recut` cuts the stored drafts again after a change to `cut`; it replaces the file, so
not while a drafting run appends to it.
"""
import argparse
import concurrent.futures
import json
import os
import re
import sys
import urllib.request

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
# Past the natural end the model sometimes starts a new chat turn or talks about the task.
TURN = re.compile(r"<\|im_|<\|endoftext|^(user|assistant|system)\s*$", re.M)


def words(text):
    return len(text.split())


def chat_prompt(prompt):
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{prompt}<|im_end|>\n"
            "<|im_start|>assistant\n")


def cut(text, required):
    """The draft cut at the paragraph end nearest `required` words, or None when no paragraph
    end lies within 4/5-5/4 of it. The cut paragraph must end a sentence. Any line break
    ends a paragraph (the model often separates them by one), and the kept ones are
    joined by blank lines. The draft ends before the first paragraph that repeats a
    sentence of six words or more from earlier in it: past its natural end the model
    drifts into repeating itself, and a demonstration would teach that."""
    m = TURN.search(text)
    if m:
        text = text[:m.start()]
    paras = [p.strip() for p in text.split("\n") if p.strip()]
    best, total, seen = None, 0, set()
    for k, p in enumerate(paras):
        said = [" ".join(x.lower().split()) for x in re.split(r"(?<=[.!?])\s+", p) if len(x.split()) >= 6]
        if any(x in seen for x in said) or len(set(said)) < len(said):
            break
        seen.update(said)
        total += words(p)
        if 0.8 * required <= total <= 1.25 * required and p[-1] in ".!?\"'”)*":
            if best is None or abs(total - required) < abs(best[1] - required):
                best = (k + 1, total)
        if total > 1.25 * required:
            break
    return None if best is None else "\n\n".join(paras[:best[0]])


def draft(server, row, seed):
    required = row["length"]
    body = {
        "prompt": chat_prompt(row["prompt"]),
        "n_predict": int(required * 1.45) + 32,
        "ignore_eos": True,
        "temperature": 0.6,
        "top_p": 0.95,
        "top_k": 0,
        "min_p": 0.0,
        "repeat_penalty": 1.1,
        # DRY (llama.cpp's "don't repeat yourself" sampler) over the whole draft: the
        # repetition penalty sees only the last 64 tokens, and past the natural end the
        # model otherwise starts repeating its own earlier sentences.
        "dry_multiplier": 0.8,
        "dry_base": 1.75,
        "dry_allowed_length": 4,
        "dry_penalty_last_n": 4096,  # every draft (0 turns DRY off)
        "seed": seed,
        "cache_prompt": False,
    }
    req = urllib.request.Request(f"{server}/completion", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3600) as r:
        out = json.load(r)
    text = out["content"]
    answer = cut(text, required)
    return {
        "prompt": row["prompt"],
        "type": row.get("type", ""),
        "required": required,
        "answer": answer or "",
        "truncated": answer is None,
        "words": words(answer or ""),
        "drafted_words": words(text),
        "draft": text,
        "tokens": out.get("tokens_predicted", 0),
        "seed": seed,
    }


def recut(path):
    """Applies `cut` again to every stored draft (after a change to it), atomically."""
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    for r in rows:
        if "draft" in r:
            answer = cut(r["draft"], r["required"])
            r.update(answer=answer or "", truncated=answer is None, words=words(answer or ""))
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)
    print(f"{path}: {sum(not r['truncated'] for r in rows)} of {len(rows)} drafts cut near their length", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("server")
    ap.add_argument("prompts")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--min-length", type=int, default=500)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--recut", action="store_true", help="cut OUT_DIR's drafts again and stop")
    a = ap.parse_args()
    if a.recut:
        return recut(f"{a.out}/results.jsonl")
    rows = [json.loads(line) for line in open(a.prompts, encoding="utf-8")]
    rows = [r for r in rows if r["length"] >= a.min_length]
    os.makedirs(a.out, exist_ok=True)
    path = f"{a.out}/results.jsonl"
    done = set()
    if os.path.exists(path):
        done = {json.loads(line)["prompt"] for line in open(path, encoding="utf-8")}
    todo = [r for r in rows if r["prompt"] not in done]
    print(f"{len(rows)} prompts of {a.min_length}+ words, {len(todo)} to draft", file=sys.stderr)
    # Rows are appended whole, one write each, as they finish: a killed run loses only the
    # drafts in flight, and the next one drafts them again.
    with open(path, "a", encoding="utf-8") as f, \
            concurrent.futures.ThreadPoolExecutor(a.parallel) as pool:
        futures = [pool.submit(draft, a.server, r, a.seed) for r in todo]
        for n, fut in enumerate(concurrent.futures.as_completed(futures), 1):
            row = fut.result()
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
            state = "cut off" if row["truncated"] else f"{row['words']} words"
            print(f"[{n}/{len(todo)}] {row['required']} asked, {row['drafted_words']} drafted, {state}",
                  file=sys.stderr)


if __name__ == "__main__":
    main()
