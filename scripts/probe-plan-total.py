#!/usr/bin/env python3
"""Does a trained writer follow a plan whose total is the request's own number?

    llama-server -m MODEL.gguf -t 2 -c 8192 --port PORT &
    scripts/probe-plan-total.py PORT SEED primed|parts|free REQUESTS.jsonl

Each request (eval form: prompt, length) goes to the server as a raw completion: the
LongWriter-Zero instruction as the user turn of SmolLM2's chat template, the assistant
turn opened with `<think>`. `primed` also writes the plan's first line for the model
("Plan: K parts, about N words in all.\\n1.", one part per 140 words), as budget forcing
writes `</think>`; `parts` writes every part's count too: the model gives each part's
opening (one call a line, up to its first parenthesis or line end), the probe adds
"(about N/K words)", then writes `</think>` and `<answer>` and the model writes the whole
answer in one pass; `free` leaves the plan to it. Prints each answer's words and S_l, then
S_l by bucket (docs/writer-history.md, "AgentWrite's drafts as long demonstrations").
"""
import importlib.util
import json
import re
import statistics
import sys
import urllib.request

ROOT = __file__.rsplit("/scripts/", 1)[0]
# The chat rendering the long drafts used (SmolLM2's template with its default system turn).
_spec = importlib.util.spec_from_file_location("make_long_drafts", f"{ROOT}/scripts/make-long-drafts.py")
_drafts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_drafts)


def s_l(required, written):
    if written == 0:
        return 0.0
    if written > required:
        return 100 * max(0.0, 1 - (written / required - 1) / 3)
    return 100 * max(0.0, 1 - (required / written - 1) / 2)


def complete(port, prompt, n_predict, seed, stop):
    body = {"prompt": prompt, "n_predict": n_predict, "temperature": 0.6, "top_p": 0.95, "repeat_penalty": 1.1, "seed": seed, "stop": stop, "cache_prompt": False}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/completion", json.dumps(body).encode(), {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=900))


def main():
    if len(sys.argv) != 5 or sys.argv[3] not in ("primed", "parts", "free"):
        sys.exit(__doc__)
    port, seed, mode, data = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    template = open(f"{ROOT}/src/engine/template.rs", encoding="utf-8").read()
    instruction = re.search(r'pub const LONGWRITER_EN: &str = "(.*?)";\n', template).group(1)
    out = []
    for line in open(data, encoding="utf-8"):
        r = json.loads(line)
        n = r["length"]
        prompt = _drafts.chat_prompt(instruction.replace("{question}", r["prompt"])) + "<think>\n"
        k = max(1, round(n / 140))
        if mode == "primed":
            prompt += f"Plan: {k} parts, about {n:,} words in all.\n1."
        elif mode == "parts":
            prompt += f"Plan: {k} parts, about {n:,} words in all.\n"
            for i in range(1, k + 1):
                prompt += f"{i}."
                point = complete(port, prompt, 40, seed + i, ["(", "\n"])["content"].strip() or "Continue."
                prompt += f" {point} (about {round(n / k):,} words)\n"
            prompt += "</think>\n<answer>\n"
        res = complete(port, prompt, int(n * 1.25 * 2.5) + 768, seed, ["</answer>"])
        text = res["content"] if mode != "parts" else "</think>\n<answer>\n" + res["content"]
        answer = re.search(r"<answer>(.*)$", text, re.S)
        words = len(answer.group(1).split()) if answer else 0
        out.append((n, s_l(n, words)))
        print(n, words, round(s_l(n, words), 1), "closed" if "</think>" in text else "open", res.get("stop_type"), flush=True)
    for lo, hi in [(100, 500), (500, 1000), (1000, 2001)]:
        b = [s for n, s in out if lo <= n < hi]
        if b:
            print(f"[{lo}, {hi}) n={len(b)} S_l {statistics.mean(b):.1f}")
    print("all S_l", round(statistics.mean(s for _, s in out), 1))


if __name__ == "__main__":
    main()
