#!/usr/bin/env python3
"""The writer job's cold-start demonstrations: the base model's own answers on its chat
template, given the LongWriter-Zero structure.

Why: SmolLM2-135M-Instruct writes on topic at about the asked length on its chat template,
but never writes <think>/<answer>, and priming it into them costs it the request
(docs/writer-history.md, "Held-out, at step 130"). So its own chat answers to the training
prompts are wrapped in the structure, and a supervised stage teaches the structure
before GRPO takes over (examples/jobs/writer.toml).

    scripts/make-cold-start.py OUT EVAL_DIR... [--include DEMONSTRATIONS] [--agentwrite]
    scripts/make-cold-start.py OUT --parts DEMONSTRATIONS...

data/sft/writer-cold-start.jsonl (126 demonstrations) came from one seed over the 219
English training prompts, in three files by asked length (up to 300 words, 301-800,
above), each with a token cap that cuts runaways:

    longwriter eval longbench --data train-en-a.jsonl --model smollm2-135m --template chat \
        --seed 1 --max-tokens 800 --out chat-a-s1           # b: 2000, c: 4000

(the train-en files are the training split's English rows in eval form, written by
`scripts/make-writer-prompts.py --train-eval DIR`.) 126 of 219 were kept: 38
near the asked length, 88 relabelled; 16 were cut off, 3 had tags or repeats, 74 were
off length with no "about N words" to relabel.

EVAL_DIRs are `longwriter eval longbench --template chat` runs over training prompts
(never the held-out ones: every prompt is checked against data/prompts/writer.jsonl's
training split). Each answer is kept when:
- it stopped by itself (not cut by the token budget), with no tags or chat tokens in it,
  and without repeated sentences taking over (at most a fifth of its sentences repeat);
- it is near the asked length: between 4/5 and 5/4 of it. An answer off that length,
  to a prompt that asks for "about N words" in so many words, is kept with N replaced by
  the length it has, rounded to ten (hindsight relabelling): it is an answer of that
  length, and the demonstration teaches the model to match the number it is given.

--include puts an earlier demonstrations file's rows first, unchanged (the eval runs that
made data/sft/writer-cold-start.jsonl were not kept).

data/sft/writer-cold-start-long.jsonl is writer-cold-start.jsonl plus the long drafts of
`scripts/make-long-drafts.py` (one seed over the 104 English training prompts of 500
words or more): the base model's own chat answers made to go on past their end and cut at
the paragraph end nearest the asked length, which the first file lacks (2 of its 126
demonstrations have 900 words or more):

    scripts/make-cold-start.py data/sft/writer-cold-start-long.jsonl long-s1 \
        --include data/sft/writer-cold-start.jsonl

--agentwrite reads `--template agentwrite` runs instead (the LongWriter paper's source of
long demonstrations): each draft loses the paragraphs that talk about the writing rather
than the subject, and each paragraph is cut back to its last whole sentence, so a draft
cut at its budget is whole up to there; a request that names no length gets its draft's
length stated. data/sft/writer-cold-start-aw.jsonl (65 demonstrations) came from one
seed over the 104 English training prompts of 500 words or more, on the default file with
DRY 0.8 (a registry entry with `dry_multiplier = 0.8`; without it the drafts repeat
themselves), in two runs (the first 10 prompts of train-en-c, then the rest and train-en-b's
prompts of 500 words or more):

    longwriter eval longbench --data PROMPTS.jsonl --model smollm2-135m-dry \
        --template agentwrite --seed 1 --out aw-dry-s1
    scripts/make-cold-start.py data/sft/writer-cold-start-aw.jsonl aw-dry-probe aw-dry-s1 --agentwrite

--parts rewrites earlier demonstrations' plans as one part per hundred words of the
request's number ("1,500 words": "Plan: about 1,500 words in all, in 15 parts of about 100
words."), with the answer's sentences cut into that many paragraphs of about equal length,
each opening as its plan line does: the part count is then a copy of the request's number
without its last two digits, not a total the model must share out (session 26;
docs/writer-history-2.md, "A part per hundred words"). data/sft/writer-cold-start-parts.jsonl (284
demonstrations) is writer-cold-start-long.jsonl and writer-cold-start-aw.jsonl rewritten:

    scripts/make-cold-start.py data/sft/writer-cold-start-parts.jsonl --parts \
        data/sft/writer-cold-start-long.jsonl data/sft/writer-cold-start-aw.jsonl

The plan is the answer's own outline, so it never claims what the answer does not do:
one line per paragraph with its opening words and its word count, and the total. At
most one demonstration per prompt and seed, and the prompts' order is kept (by file).
"""
import json
import re
import sys

ROOT = __file__.rsplit("/scripts/", 1)[0]
HOLDOUT = 129
MAX_PLAN_LINES = 24


def words(text):
    return len(text.split())


ABBREVIATIONS = {"mr.", "mrs.", "ms.", "dr.", "st.", "prof.", "jr.", "sr.", "e.g.", "i.e.", "etc.", "vs."}


def sentences(text):
    out, cur = [], []
    for w in text.split():
        cur.append(w)
        # "1." opens a list item; "Mrs." is not an end either.
        if w[-1] in ".!?" and w.lower() not in ABBREVIATIONS and not re.fullmatch(r"\d+\.", w):
            out.append(" ".join(cur))
            cur = []
    return out + ([" ".join(cur)] if cur else [])


def opening(paragraph, n=14):
    first = sentences(paragraph)[0] if sentences(paragraph) else paragraph
    w = first.replace("**", "").replace("#", "").split()
    return " ".join(w[:n]) + ("…" if len(w) > n else "")


def plan(answer):
    paras = [p.strip() for p in re.split(r"\n\s*\n", answer) if p.strip()]
    # Long answers are outlined by groups of paragraphs, so the plan stays a plan.
    per = -(-len(paras) // MAX_PLAN_LINES)
    groups = ["\n\n".join(paras[i:i + per]) for i in range(0, len(paras), per)]
    lines = [f"{k}. {opening(g)} (about {max(10, round(words(g), -1)):,} words)" for k, g in enumerate(groups, 1)]
    # Written as the prompts write their numbers ("1,500"), so that the plan's total is a
    # copy of the request's number: a model that had to turn "1,960" into "1960" planned
    # 195-680 words for requests of 1,500-2,000 (session 24).
    total = max(10, round(words(answer), -1))
    return f"Plan: {len(groups)} parts, about {total:,} words in all.\n" + "\n".join(lines)


# The `--parts` plan: a part per hundred words, so a request's number turns into the
# plan's part count by dropping its last two digits ("1,500 words": 15 parts), a copy
# where the plans above asked the model to share a total out over parts, which it never
# learned (session 24).
PART_WORDS = 100
STATED = re.compile(r"(?<![\d,])(\d{1,2},\d{3}|\d+)[- ]words?\b", re.I)


def stated_words(prompt):
    """The one length a prompt states in words, or None."""
    hits = {int(m.group(1).replace(",", "")) for m in STATED.finditer(prompt)}
    return hits.pop() if len(hits) == 1 else None


def parts_completion(prompt, answer):
    """A completion whose plan has one part per PART_WORDS words of the prompt's number (of
    the answer's length when it states none), the answer's sentences cut into that many
    parts of about equal length, each part a paragraph that opens as its plan line does.
    None when the answer's length is not near that many parts (70-140 words a part)."""
    flat = re.sub(r"(^|\s)#+\s", " ", answer).replace("**", "")
    s = sentences(flat)
    n = sum(words(x) for x in s)
    stated = stated_words(prompt)
    k = 1 if (stated or n) < 1.5 * PART_WORDS else round((stated or n) / PART_WORDS)
    if k > 1 and not 0.7 * PART_WORDS <= n / k <= 1.4 * PART_WORDS:
        return None
    parts, cur, done = [], [], 0
    for x in s:
        cur.append(x)
        done += words(x)
        # Close a part at the sentence end nearest its share of the words.
        if len(parts) < k - 1 and done >= n * (len(parts) + 1) / k - words(x) / 2:
            parts.append(" ".join(cur))
            cur = []
    parts.append(" ".join(cur))
    if len(parts) != k or not all(parts):
        return None
    # The total first, then the parts: a model writing the header copies the request's
    # number next to where it writes the count. With the count first (the order of the
    # plans above), two passes taught the total but not the count: 19 of 24 held-out
    # plans said "1 part" whatever the request (session 26).
    total = (stated or k * PART_WORDS) if k > 1 else max(10, round(n, -1))
    head = f"Plan: about {total:,} words in all, in {k} part{'s' if k > 1 else ''}{f' of about {PART_WORDS} words' if k > 1 else ''}."
    lines = [f"{i}. {opening(p)}" for i, p in enumerate(parts, 1)]
    body = "\n\n".join(parts)
    return f"<think>\n{head}\n" + "\n".join(lines) + f"\n</think>\n<answer>\n{body}\n</answer>"


def replan(out, files):
    """`--parts`: the demonstrations in `files` with their plans rewritten one part per
    hundred words (`parts_completion`)."""
    kept, dropped = [], 0
    for f in files:
        for line in open(f, encoding="utf-8"):
            if not line.strip():
                continue
            r = json.loads(line)
            answer = re.search(r"<answer>\n?(.*?)\n?</answer>", r["completion"], re.S).group(1)
            c = parts_completion(r["prompt"], answer)
            if c is None:
                dropped += 1
                continue
            kept.append({**r, "completion": c})
    write(out, kept)
    print(f"{out}: {len(kept)} demonstrations, {dropped} not near a part per {PART_WORDS} words")


def write(out, rows):
    import os

    # Atomic: a killed run leaves the old file, never half a new one.
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        for k in rows:
            f.write(json.dumps(k, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(out + ".tmp", out)


def relabel(prompt, required, written):
    """The prompt with its stated length replaced by `written` (rounded), or None."""
    forms = {f"{required:,}", str(required)}
    hits = [f for f in forms if re.search(rf"(?<![\d,]){re.escape(f)}(?![\d,])", prompt)]
    if len(hits) != 1 or len(re.findall(rf"(?<![\d,]){re.escape(hits[0])}(?![\d,])", prompt)) != 1:
        return None
    new = max(50, round(written, -1))
    return re.sub(rf"(?<![\d,]){re.escape(hits[0])}(?![\d,])", f"{new:,}", prompt)


# A paragraph that talks about the writing instead of the subject: AgentWrite's step
# prompt ("Write about 400 words. Output only this new paragraph…") echoed back, or the
# assistant's chatter around it ("This continuation continues…", "I'm happy to continue
# with the rest of your text"): 454 of the 1,223 paragraphs of 104 drafts of the base
# model with DRY (session 24). In a story or an essay these words are rare enough that a
# false hit costs one paragraph.
META = re.compile(
    r"\b(paragraphs?|word count|\d[\d,]* words?|the text so far|the plan|writing request|continuation|"
    r"here is the|here's the|here's a|your request|next message|rewritten|note to the reader|"
    r"(this|the) (essay|article|piece|story|text) (has been|was|will)|I'm (happy|ready|going)|I'd (love|be happy)|"
    r"I hope you|I'll (continue|keep|give|write|add))\b",
    re.I,
)
SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)]*(?=\s|$)")


def agentwrite_text(answer):
    """An AgentWrite draft as a demonstration's answer: without the paragraphs that echo a
    step's instructions, and each paragraph cut back to its last whole sentence (a step
    that reached its token cap stops mid-sentence, and the next step starts a paragraph)."""
    out = []
    for p in re.split(r"\n\s*\n", answer):
        p = p.strip()
        if not p or META.search(p):
            continue
        ends = list(SENTENCE_END.finditer(p))
        if ends:
            out.append(p[: ends[-1].end()])
    return "\n\n".join(out)


def clean(answer):
    if any(t in answer for t in ("<think", "</think", "<answer", "</answer", "<|im_", "<|endoftext|>")):
        return False
    s = [x.strip().lower() for x in sentences(answer)]
    return len(s) > 0 and (len(s) - len(set(s))) <= len(s) / 5


def main():
    args, include = sys.argv[1:], None
    if "--parts" in args:
        args.remove("--parts")
        if len(args) < 2:
            sys.exit(__doc__)
        return replan(args[0], args[1:])
    aw = "--agentwrite" in args
    if aw:
        args.remove("--agentwrite")
    if "--include" in args:
        i = args.index("--include")
        if i + 1 >= len(args):
            sys.exit("--include needs a demonstrations file")
        include = args[i + 1]
        del args[i:i + 2]
    if len(args) < 2:
        sys.exit(__doc__)
    out, dirs = args[0], args[1:]
    rows = [json.loads(line) for line in open(f"{ROOT}/data/prompts/writer.jsonl", encoding="utf-8")]
    train = {r["prompt"]: r for r in rows[:-HOLDOUT]}
    kept = []
    if include:
        kept = [json.loads(line) for line in open(include, encoding="utf-8") if line.strip()]
        for k in kept:
            if k.get("source", k["prompt"]) not in train:
                sys.exit(f"{include}: {k['prompt'][:60]!r} is not from a training prompt")
    included = len(kept)
    why = {"cut off": 0, "tags or repeats": 0, "off length": 0, "relabelled": 0, "near": 0}
    for d in dirs:
        for line in open(f"{d}/results.jsonl", encoding="utf-8"):
            r = json.loads(line)
            if r["prompt"] not in train:
                sys.exit(f"{d}: {r['prompt'][:60]!r} is not a training prompt")
            answer = r["answer"].strip()
            if aw:
                answer = agentwrite_text(answer)
            # A draft cut at the budget is whole up to its last sentence once trimmed.
            if (r["truncated"] and not aw) or not answer:
                why["cut off"] += 1
                continue
            if not clean(answer):
                why["tags or repeats"] += 1
                continue
            n, req = words(answer), r["required"]
            prompt = r["prompt"]
            # "At most N" is not met by 1.1N, nor "at least N" by 0.9N.
            rule = train[prompt]["length_rule"]
            if not 0.8 <= n / req <= 1.25 or (rule == "max" and n > req) or (rule == "min" and n < req):
                if rule == "about" and n >= 60:
                    prompt = relabel(prompt, req, n)
                elif rule == "implicit" and aw and n >= 300:
                    # A request that names no length ("a thorough essay") gets the length
                    # its answer has, stated; only for AgentWrite's long drafts, which are
                    # what the demonstrations lack.
                    prompt = f"{prompt.rstrip()} Write about {round(n, -1):,} words."
                else:
                    prompt = None
                if prompt is None:
                    why["off length"] += 1
                    continue
                why["relabelled"] += 1
            else:
                why["near"] += 1
            completion = f"<think>\n{plan(answer)}\n</think>\n<answer>\n{answer}\n</answer>"
            kept.append({"prompt": prompt, "completion": completion, "words": n, "source": r["prompt"]})
    write(out, kept)
    lens = sorted(k["words"] for k in kept)
    print(f"{out}: {len(kept)} demonstrations ({included} included); {why}; answer words median {lens[len(lens) // 2] if lens else 0}, max {lens[-1] if lens else 0}")


if __name__ == "__main__":
    main()
