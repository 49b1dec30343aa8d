//! `job.toml` for other trainers: the same run (model, prompts, G, sampling, ε, β,
//! optimizer, LoRA, steps) as a TRL script, an OpenRLHF command line or verl overrides,
//! all scoring through `longwriter reward-serve`.

use super::job::JobSpec;
use crate::engine::TemplateMode;

/// The trainers a job converts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TrainerKind {
    /// A Python script for TRL's GRPOTrainer with a PEFT LoRA config.
    Trl,
    /// A command line for OpenRLHF's `train_ppo_ray` (group-normalised advantages).
    Openrlhf,
    /// Hydra overrides for verl's `main_ppo` with `algorithm.adv_estimator=grpo`.
    Verl,
}

/// The prompt text a trainer sends for `{}` (the request), matching the job's template.
/// Chat templates are applied by the trainers themselves.
fn raw_template(mode: TemplateMode) -> Option<String> {
    use crate::engine::template::{LONGWRITER_EN, NOTHINK_EN};
    match mode {
        TemplateMode::Longwriter => Some(LONGWRITER_EN.replace("{question}", "{}")),
        TemplateMode::LongwriterPrimed => Some(format!("{}{}", LONGWRITER_EN.replace("{question}", "{}"), mode.prefill())),
        TemplateMode::Nothink => Some(NOTHINK_EN.replace("{question}", "{}")),
        TemplateMode::Chat | TemplateMode::LongwriterChat => None,
    }
}

fn py_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The job as a config for `kind`; `hf_model` is the Hugging Face id of the job's model and
/// `reward_url` the base URL of `longwriter reward-serve`.
pub fn convert(job: &JobSpec, kind: TrainerKind, hf_model: &str, reward_url: &str) -> String {
    let (r, o, l, g) = (&job.rollout, &job.optim, &job.lora, &job.grpo);
    let prompts = job.data.prompts.display().to_string();
    let batch = r.group_size * r.prompts_per_step;
    let accum = batch.div_ceil(o.micro_batch).max(1);
    let mode = job.data.template;
    let mut caveats = String::new();
    if job.data.targets == "rules" {
        caveats.push_str(&format!("\nTargets: this job reads them from the prompt text rounded to {} words; the converted data sends each prompt's `range` when it has one, and reward-serve reads the rest from the text with the paper's 100-word unit.", job.rewards.target_unit));
    }
    if let Some(k) = job.rollout.tokens_per_word {
        caveats.push_str(&format!("\nBudget: every prompt gets rollout.max_new_tokens there; this job's {k} tokens per target word exists only in longwriter's own trainer."));
    }
    if let Some(n) = job.rollout.max_think_tokens {
        caveats.push_str(&format!("\nThink budget: plans run unbounded there; this job's forced close after {n} plan tokens exists only in longwriter's own trainer."));
    }
    if job.rollout.length_control().is_on() {
        caveats.push_str("\nLength control: rollouts end where the policy ends them there; this job's answer floor and end nudge (rollout.answer_floor, rollout.end_nudge) exist only in longwriter's own trainer.");
    }
    if job.rollout.plan_header.is_some() {
        caveats.push_str("\nPlan header: the prompts there end with the template; this job's header written into each rollout's plan (rollout.plan_header) exists only in longwriter's own trainer.");
    }
    if job.rewards.format == "graded" {
        caveats.push_str("\nFormat: reward-serve scores it strictly (0 or 1); this job's graded shaping exists only in longwriter's own trainer.");
    }
    let mut own: Vec<&str> = ["relevance", "diversity", "novelty"].into_iter().filter(|r| job.rewards.uses(r)).collect();
    if !job.rewards.weights.is_empty() {
        own.push("per-reward weights");
    }
    if job.rewards.combine != crate::reward::Combine::default() {
        own.push("the weighted-sum combination");
    }
    if job.rewards.truncated != super::job::Truncated::default() {
        own.push("the handling of cut rollouts (rewards.truncated)");
    }
    if let Some((last, rest)) = own.split_last() {
        let list = if rest.is_empty() { last.to_string() } else { format!("{} and {last}", rest.join(", ")) };
        caveats.push_str(&format!("\nRewards: {list} exist only in longwriter's own trainer; reward-serve combines length, format and quality with equal weight."));
    }
    let note = format!(
        "Converted from a longwriter job by `longwriter train convert`. Rewards come from `longwriter reward-serve` at {reward_url}; start it with the job's settings:\n  longwriter reward-serve --l-max {}{}\nEach step: {} prompts x G={} rollouts, {} new tokens, T={} top-p={}, eps={} beta={}, lr={}.{caveats}",
        job.rewards.l_max,
        if mode.expects_think() { "" } else { " --no-think" },
        r.prompts_per_step,
        r.group_size,
        r.max_new_tokens,
        r.temperature,
        r.top_p,
        g.epsilon,
        g.beta,
        o.lr
    );
    let note = note.replace('\n', "\n# ");
    match kind {
        TrainerKind::Trl => {
            let template = match raw_template(mode) {
                Some(t) => format!("TEMPLATE = {}\n\ndef as_prompt(request):\n    return TEMPLATE.replace(\"{{}}\", request, 1)\n", py_str(&t)),
                None => "def as_prompt(request):\n    # Conversational format: TRL applies the model's chat template.\n    return [{\"role\": \"user\", \"content\": request}]\n".into(),
            };
            format!(
                r#"# {note}
#
#   pip install trl peft datasets
#   python this_file.py   (with contrib/ on PYTHONPATH for longwriter_trl)
import json

from datasets import Dataset
from peft import LoraConfig
from trl import GRPOConfig, GRPOTrainer

from longwriter_trl import make_reward_func

{template}

def rows(path, holdout={holdout}):
    items = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    items = items[: len(items) - holdout] if holdout else items
    for it in items:
        request = it.get("prompt") or it.get("question") or it.get("instruction")
        target = it.get("range") or it.get("length")
        yield {{"prompt": as_prompt(request), "target": target if isinstance(target, list) else None}}


dataset = Dataset.from_list(list(rows({prompts})))
config = GRPOConfig(
    output_dir="longwriter-grpo",
    num_generations={gsize},
    per_device_train_batch_size={micro},
    gradient_accumulation_steps={accum},
    max_completion_length={max_new},
    temperature={temp},
    top_p={top_p},
    epsilon={eps},
    beta={beta},
    num_iterations={iters},
    learning_rate={lr},
    adam_beta1={b1},
    adam_beta2={b2},
    adam_epsilon={adam_eps},
    weight_decay={wd},
    max_grad_norm={clip},
    gradient_checkpointing={ckpt},
    max_steps={steps},
    save_steps={save},
    save_total_limit={keep},
    seed={seed},
    logging_steps=1,
)
lora = LoraConfig(r={rank}, lora_alpha={alpha}, lora_dropout={dropout}, target_modules={targets}, task_type="CAUSAL_LM")
trainer = GRPOTrainer(
    model={model},
    reward_funcs=[make_reward_func({url})],
    args=config,
    train_dataset=dataset,
    peft_config=lora,
)
trainer.train()
"#,
                holdout = job.data.holdout,
                prompts = py_str(&prompts),
                gsize = r.group_size,
                micro = o.micro_batch.max(1),
                ckpt = if o.gradient_checkpointing { "True" } else { "False" },
                max_new = r.max_new_tokens,
                temp = r.temperature,
                top_p = r.top_p,
                eps = g.epsilon,
                beta = g.beta,
                iters = g.iterations,
                lr = o.lr,
                b1 = o.betas[0],
                b2 = o.betas[1],
                adam_eps = o.eps,
                wd = o.weight_decay,
                clip = o.grad_clip,
                steps = job.run.steps,
                save = job.run.checkpoint_every,
                keep = match job.run.keep_checkpoints {
                    0 => "None".to_string(),
                    n => n.to_string(),
                },
                seed = job.run.seed,
                rank = l.rank,
                alpha = l.alpha,
                dropout = l.dropout,
                targets = serde_json::to_string(&l.targets).unwrap(),
                model = py_str(hf_model),
                url = py_str(reward_url),
            )
        }
        TrainerKind::Openrlhf => {
            let mut args = vec![
                ("--pretrain".to_string(), hf_model.to_string()),
                ("--remote_rm_url".into(), format!("{}/get_reward", reward_url.trim_end_matches('/'))),
                ("--prompt_data".into(), prompts),
                ("--input_key".into(), "prompt".into()),
                ("--label_key".into(), "range".into()),
                ("--advantage_estimator".into(), "group_norm".into()),
                ("--n_samples_per_prompt".into(), r.group_size.to_string()),
                ("--rollout_batch_size".into(), r.prompts_per_step.to_string()),
                ("--train_batch_size".into(), batch.to_string()),
                ("--micro_train_batch_size".into(), o.micro_batch.to_string()),
                ("--generate_max_len".into(), r.max_new_tokens.to_string()),
                ("--temperature".into(), r.temperature.to_string()),
                ("--top_p".into(), r.top_p.to_string()),
                ("--eps_clip".into(), g.epsilon.to_string()),
                ("--init_kl_coef".into(), g.beta.to_string()),
                // Updates per batch of rollouts (μ).
                ("--max_epochs".into(), g.iterations.to_string()),
                ("--actor_learning_rate".into(), o.lr.to_string()),
                ("--adam_betas".into(), format!("{} {}", o.betas[0], o.betas[1])),
                ("--l2".into(), o.weight_decay.to_string()),
                ("--max_norm".into(), o.grad_clip.to_string()),
                ("--lora_rank".into(), l.rank.to_string()),
                ("--lora_alpha".into(), l.alpha.to_string()),
                ("--lora_dropout".into(), l.dropout.to_string()),
                ("--target_modules".into(), l.targets.join(" ")),
                ("--max_samples".into(), "100000000".into()),
                ("--num_episodes".into(), "1".into()),
                ("--save_steps".into(), job.run.checkpoint_every.to_string()),
                // OpenRLHF keeps 3 unless told; 0 here means all.
                ("--max_ckpt_num".into(), match job.run.keep_checkpoints {
                    0 => "1000000".to_string(),
                    n => n.to_string(),
                }),
                ("--seed".into(), job.run.seed.to_string()),
            ];
            if o.gradient_checkpointing {
                args.push(("--gradient_checkpointing".into(), String::new()));
            }
            if let Some(t) = raw_template(mode) {
                args.push(("--input_template".into(), t));
            } else {
                args.push(("--apply_chat_template".into(), String::new()));
            }
            let mut s = format!("# {}\n# OpenRLHF has no step count: {} steps of this job are {} prompts; cap the data or stop there.\npython -m openrlhf.cli.train_ppo_ray \\\n", note, job.run.steps, job.run.steps * r.prompts_per_step);
            let n = args.len();
            for (i, (k, v)) in args.into_iter().enumerate() {
                let end = if i + 1 == n { "\n" } else { " \\\n" };
                if v.is_empty() {
                    s.push_str(&format!("  {k}{end}"));
                } else if k == "--target_modules" || k == "--adam_betas" {
                    s.push_str(&format!("  {k} {v}{end}"));
                } else {
                    s.push_str(&format!("  {k} {}{end}", sh_quote(&v)));
                }
            }
            s
        }
        TrainerKind::Verl => {
            let mut o_ = vec![
                "algorithm.adv_estimator=grpo".to_string(),
                format!("actor_rollout_ref.model.path={hf_model}"),
                format!("actor_rollout_ref.model.lora_rank={}", l.rank),
                format!("actor_rollout_ref.model.lora_alpha={}", l.alpha),
                format!("actor_rollout_ref.model.target_modules=[{}]", l.targets.join(",")),
                format!("actor_rollout_ref.rollout.n={}", r.group_size),
                format!("actor_rollout_ref.rollout.temperature={}", r.temperature),
                format!("actor_rollout_ref.rollout.top_p={}", r.top_p),
                format!("actor_rollout_ref.actor.clip_ratio={}", g.epsilon),
                format!("actor_rollout_ref.actor.use_kl_loss={}", g.beta > 0.0),
                format!("actor_rollout_ref.actor.kl_loss_coef={}", g.beta),
                format!("actor_rollout_ref.actor.ppo_epochs={}", g.iterations),
                "actor_rollout_ref.actor.kl_loss_type=low_var_kl".into(),
                format!("actor_rollout_ref.actor.optim.lr={}", o.lr),
                format!("actor_rollout_ref.actor.optim.weight_decay={}", o.weight_decay),
                format!("actor_rollout_ref.actor.grad_clip={}", o.grad_clip),
                format!("actor_rollout_ref.actor.ppo_mini_batch_size={}", r.prompts_per_step),
                format!("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={}", o.micro_batch),
                format!("actor_rollout_ref.model.enable_gradient_checkpointing={}", o.gradient_checkpointing),
                format!("data.train_batch_size={}", r.prompts_per_step),
                format!("data.max_response_length={}", r.max_new_tokens),
                "data.train_files=longwriter_train.parquet".into(),
                "data.val_files=longwriter_train.parquet".into(),
                "custom_reward_function.path=contrib/longwriter_verl.py".into(),
                "custom_reward_function.name=compute_score".into(),
                format!("trainer.total_training_steps={}", job.run.steps),
                format!("trainer.save_freq={}", job.run.checkpoint_every),
                format!("trainer.max_actor_ckpt_to_keep={}", match job.run.keep_checkpoints {
                    0 => "null".to_string(),
                    n => n.to_string(),
                }),
            ];
            o_.push(format!("data.seed={}", job.run.seed));
            let prefix = raw_template(mode).map(|t| format!("{}", py_str(&t))).unwrap_or_else(|| "None".into());
            format!(
                "# {}\n# 1. The prompts as verl parquet (needs pandas + pyarrow):\npython - <<'PY'\nimport json, pandas as pd\nT = {prefix}\nrows = []\nfor line in open({}, encoding='utf-8'):\n    if not line.strip():\n        continue\n    it = json.loads(line)\n    q = it.get('prompt') or it.get('question') or it.get('instruction')\n    tgt = it.get('range') or it.get('length')\n    content = T.replace('{{}}', q, 1) if T else q\n    rows.append({{'data_source': 'longwriter', 'prompt': [{{'role': 'user', 'content': content}}],\n                 'reward_model': {{'style': 'rule', 'ground_truth': json.dumps(tgt if isinstance(tgt, list) else None)}},\n                 'extra_info': {{'prompt': q}}}})\nrows = rows[: len(rows) - {}] if {} else rows\npd.DataFrame(rows).to_parquet('longwriter_train.parquet')\nPY\n# 2. Train (LONGWRITER_REWARD_URL={reward_url}):\nLONGWRITER_REWARD_URL={} python -m verl.trainer.main_ppo \\\n  {}\n",
                note,
                py_str(&prompts),
                job.data.holdout,
                job.data.holdout,
                sh_quote(reward_url),
                o_.join(" \\\n  ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> JobSpec {
        let mut j = JobSpec::default();
        j.rollout.group_size = 8;
        j.rollout.prompts_per_step = 2;
        j.optim.lr = 5e-4;
        j.grpo.beta = 0.04;
        j.data.template = TemplateMode::LongwriterPrimed;
        j.data.prompts = "/data/p.jsonl".into();
        j
    }

    fn assert_python(src: &str) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.py");
        std::fs::write(&p, src).unwrap();
        let o = std::process::Command::new("python3").arg("-c").arg("import ast, sys; ast.parse(open(sys.argv[1]).read())").arg(&p).output().expect("python3");
        assert!(o.status.success(), "{}\n{src}", String::from_utf8_lossy(&o.stderr));
    }

    #[test]
    fn trl_script_carries_every_setting() {
        let s = convert(&job(), TrainerKind::Trl, "HuggingFaceTB/SmolLM2-135M-Instruct", "http://127.0.0.1:8000");
        assert_python(&s);
        for want in ["num_generations=8,", "per_device_train_batch_size=1,", "gradient_accumulation_steps=16,", "max_completion_length=192,", "temperature=0.8,", "epsilon=0.2,", "beta=0.04,", "learning_rate=0.0005,", "r=16, lora_alpha=32, lora_dropout=0, target_modules=[\"q_proj\",\"v_proj\"]", "max_steps=30,", "make_reward_func(\"http://127.0.0.1:8000\")", "<|assistant|>: <think>"] {
            assert!(s.contains(want), "missing {want:?} in\n{s}");
        }
    }

    #[test]
    fn openrlhf_and_verl_map_the_group_and_the_server() {
        let s = convert(&job(), TrainerKind::Openrlhf, "m", "http://h:8000/");
        for want in ["--remote_rm_url 'http://h:8000/get_reward'", "--advantage_estimator 'group_norm'", "--n_samples_per_prompt '8'", "--rollout_batch_size '2'", "--init_kl_coef '0.04'", "--target_modules q_proj v_proj", "--input_template '"] {
            assert!(s.contains(want), "missing {want:?} in\n{s}");
        }
        let v = convert(&job(), TrainerKind::Verl, "m", "http://h:8000");
        assert_python(v.split("<<'PY'\n").nth(1).unwrap().split("\nPY\n").next().unwrap());
        for want in ["algorithm.adv_estimator=grpo", "actor_rollout_ref.rollout.n=8", "actor_rollout_ref.actor.use_kl_loss=true", "actor_rollout_ref.actor.kl_loss_coef=0.04", "data.train_batch_size=2", "custom_reward_function.name=compute_score", "trainer.total_training_steps=30"] {
            assert!(v.contains(want), "missing {want:?} in\n{v}");
        }
        let mut chat = job();
        chat.data.template = TemplateMode::Chat;
        assert!(convert(&chat, TrainerKind::Openrlhf, "m", "u").contains("--apply_chat_template"));
    }

    #[test]
    fn gradient_checkpointing_carries_over() {
        let mut j = job();
        assert!(convert(&j, TrainerKind::Trl, "m", "u").contains("gradient_checkpointing=False,"));
        assert!(!convert(&j, TrainerKind::Openrlhf, "m", "u").contains("--gradient_checkpointing"));
        j.optim.gradient_checkpointing = true;
        let trl = convert(&j, TrainerKind::Trl, "m", "u");
        assert_python(&trl);
        assert!(trl.contains("gradient_checkpointing=True,"), "{trl}");
        assert!(convert(&j, TrainerKind::Openrlhf, "m", "u").contains("  --gradient_checkpointing \\\n"));
        assert!(convert(&j, TrainerKind::Verl, "m", "u").contains("actor_rollout_ref.model.enable_gradient_checkpointing=true"));
    }

    #[test]
    fn kept_checkpoints_carry_over() {
        let mut j = job();
        assert!(convert(&j, TrainerKind::Trl, "m", "u").contains("save_total_limit=None,"));
        assert!(convert(&j, TrainerKind::Verl, "m", "u").contains("trainer.max_actor_ckpt_to_keep=null"));
        j.run.keep_checkpoints = 3;
        let trl = convert(&j, TrainerKind::Trl, "m", "u");
        assert_python(&trl);
        assert!(trl.contains("save_total_limit=3,"), "{trl}");
        assert!(convert(&j, TrainerKind::Openrlhf, "m", "u").contains("--max_ckpt_num '3'"));
        assert!(convert(&j, TrainerKind::Verl, "m", "u").contains("trainer.max_actor_ckpt_to_keep=3"));
    }

    /// What only longwriter's own trainer does is said, in a config that still parses.
    #[test]
    fn own_trainer_settings_are_stated_as_caveats() {
        let mut j = job();
        assert!(!convert(&j, TrainerKind::Trl, "m", "u").contains("Think budget"));
        j.rollout.max_think_tokens = Some(768);
        j.rollout.tokens_per_word = Some(2.5);
        j.rewards.truncated = crate::rl::job::Truncated::Zero;
        let trl = convert(&j, TrainerKind::Trl, "m", "u");
        assert_python(&trl);
        assert!(trl.contains("forced close after 768 plan tokens") && trl.contains("2.5 tokens per target word") && trl.contains("rewards.truncated"), "{trl}");
    }
}
