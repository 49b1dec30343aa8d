#!/usr/bin/env python3
"""GRPO step time of longwriter against TRL's GRPOTrainer, measured in one run on the same
settings: the default model (GGUF, dequantized to f32 by transformers), 1 prompt x G=4,
192 new tokens at T 0.8, LoRA r16 on q_proj/v_proj, AdamW, 2 threads.

usage: python scripts/bench-train-vs-trl.py
       (env LONGWRITER=target/release/longwriter, STEPS=3, THREADS=2, MATMUL=auto: longwriter's
       --matmul, bf16 products where the CPU has AVX512-BF16; TRL_BF16=1: TRL's bf16 = True,
       its mixed precision, instead of f32)
needs: pip install torch transformers trl peft gguf datasets

The first step of each is left out of the means (loading, first touches), and so is a
longwriter step whose loss passes were skipped because every advantage was 0 (TRL computes
them anyway). Prints one JSON object with both breakdowns and the ratios longwriter / TRL
(below 1 is faster) of the step, its rollout part (with rewards) and its loss part.
"""
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

LW = os.environ.get("LONGWRITER", "target/release/longwriter")
STEPS = int(os.environ.get("STEPS", "3"))
THREADS = int(os.environ.get("THREADS", "2"))
MATMUL = os.environ.get("MATMUL", "auto")
TRL_BF16 = os.environ.get("TRL_BF16", "") == "1"


def ours():
    out = subprocess.run([LW, "--threads", str(THREADS), "bench", "--train", "--reps", str(STEPS), "--matmul", MATMUL, "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"longwriter bench --train failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def trl(prompt_text, gguf_path, max_new_tokens):
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(THREADS)
    d, f = os.path.split(gguf_path)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    # transformers marks a GGUF-loaded model as quantized and TRL then refuses to train it;
    # after loading it is a plain f32 model.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

    def reward(completions, **_):
        # Cheap on purpose: the comparison is about the trainer, not the reward.
        return [-abs(len(c.split()) - 150) / 150 for c in completions]

    steps, gen = [], []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            steps.append(time.perf_counter() - self.t0)

    out = tempfile.mkdtemp()
    config = GRPOConfig(
        output_dir=out, num_generations=4, per_device_train_batch_size=4, gradient_accumulation_steps=1,
        max_completion_length=max_new_tokens, temperature=0.8, top_p=1.0, beta=0.0, epsilon=0.2,
        learning_rate=1e-4, max_steps=STEPS, logging_steps=1, save_strategy="no", report_to=[],
        use_cpu=True, bf16=TRL_BF16, fp16=False, seed=42, dataloader_num_workers=0,
    )
    data = Dataset.from_list([{"prompt": prompt_text}] * (STEPS + 1))
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=model, processing_class=tok, reward_funcs=[reward], args=config, train_dataset=data, peft_config=lora, callbacks=[Timer()])
    inner = trainer._generate_and_score_completions
    tokens = []

    def timed(*a, **k):
        t0 = time.perf_counter()
        r = inner(*a, **k)
        gen.append(time.perf_counter() - t0)
        mask = r.get("completion_mask")
        tokens.append(int(mask.sum()) if mask is not None else None)
        return r

    trainer._generate_and_score_completions = timed
    # The trainer prints its logs to stdout, which carries this script's JSON.
    with contextlib.redirect_stdout(sys.stderr):
        trainer.train()
    rows = [{"step": i + 1, "step_time": s, "rollout_and_reward": g, "loss": s - g, "completion_tokens": t} for i, (s, g, t) in enumerate(zip(steps, gen, tokens))]
    m = rows[1:] if len(rows) > 1 else rows
    mean = lambda k: sum(r[k] for r in m) / len(m)
    return {"steps": rows, "mean": {"step_time": mean("step_time"), "rollout_and_reward": mean("rollout_and_reward"), "loss": mean("loss"),
                                    "completion_tokens": mean("completion_tokens")},
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "bf16": TRL_BF16, "versions": versions()}


def versions():
    import torch, transformers, trl, peft
    return {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__, "peft": peft.__version__}


def main():
    a = ours()
    b = trl(a["prompt_text"], a["model_path"], a["max_new_tokens"])
    am, bm = a["mean"], b["mean"]
    print(json.dumps({"longwriter": {k: a.get(k) for k in ("mean", "measured_steps", "steps", "peak_rss_mb", "matmul", "machine", "gemm_peak_gflop_s", "loss_share_of_gemm_peak")}, "trl": b,
                      "ratio_step_time": am["step_time"] / bm["step_time"],
                      "ratio_rollout": (am["rollout"] + am["reward"]) / bm["rollout_and_reward"],
                      "ratio_loss": am["loss"] / bm["loss"],
                      "ratio_seconds_per_completion_token": (am["step_time"] / am["completion_tokens"]) / (bm["step_time"] / bm["completion_tokens"])}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
