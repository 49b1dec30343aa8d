//! The writer job's trainer on the real default model: a supervised cold start's stage of
//! demonstrations in the LongWriter-Zero structure lowers their negative log-likelihood
//! step by step, and GRPO's rollouts keep the length control they are given. (The chat template: the job's longwriter-chat adds 270 prompt tokens to
//! each demonstration, which only makes the test slower.)

mod common;

use candle_core::Device;
use longwriter::rl::job::JobSpec;
use longwriter::rl::trainer::Trainer;

#[test]
fn a_cold_start_stage_fits_the_structure_on_the_default_model() {
    let dir = tempfile::tempdir().unwrap();
    let demos = [
        ("Write a 60-word note to a neighbour about a lost cat.", "<think>\nPlan: 2 parts, about 60 words in all.\n1. The cat is missing since Tuesday… (about 30 words)\n2. Where to call… (about 30 words)\n</think>\n<answer>\nDear neighbour, our grey cat Pepper has been missing since Tuesday evening.\n\nIf you see her, please call us.\n</answer>"),
        ("In about 50 words, describe a harbour at dawn.", "<think>\nPlan: 1 part, about 50 words in all.\n1. Boats, gulls and the first light… (about 50 words)\n</think>\n<answer>\nThe boats rock in the grey water while the gulls wake the quay. The first light turns the masts gold.\n</answer>"),
    ];
    let lines: Vec<String> = demos.iter().map(|(p, c)| serde_json::json!({ "prompt": p, "completion": c }).to_string()).collect();
    std::fs::write(dir.path().join("demos.jsonl"), lines.join("\n")).unwrap();
    std::fs::write(dir.path().join("prompts.jsonl"), "{\"prompt\": \"Write a poem of about 40 words.\"}\n").unwrap();
    let toml = "[data]\nprompts = \"prompts.jsonl\"\ntemplate = \"chat\"\n[optim]\nlr = 1e-3\nmicro_batch = 2\n[lora]\nrank = 8\n[run]\nsteps = 3\n\
                [[stages]]\nname = \"cold-start\"\nsteps = 3\nprompts_per_step = 2\ndemonstrations = \"demos.jsonl\"\n";
    std::fs::write(dir.path().join("job.toml"), toml).unwrap();
    let job = JobSpec::load(&dir.path().join("job.toml")).unwrap();
    let mut t = Trainer::new(job, &common::default_model_path(), &dir.path().join("run"), false, &Device::Cpu).unwrap();
    let nll: Vec<f64> = (0..3).map(|_| t.run_step().unwrap()["supervised/nll"].as_f64().unwrap()).collect();
    // The base model has never seen the structure: it starts well above a nat a token.
    assert!(nll[0] > 1.0, "{nll:?}");
    assert!(nll[1] < nll[0] && nll[2] < nll[1] && nll[2] < 0.9 * nll[0], "the NLL falls: {nll:?}");
}

/// `rollout.answer_floor` and `rollout.end_nudge`: a GRPO step's rollouts are decoded
/// with the length control `write` uses, on each prompt's own target. At the rollouts'
/// temperature (0.8, no penalties) the default model's chat answers to this request run
/// on to the 400-token cap (270-340 words at this seed); with a floor and a nudge of 1.0
/// of the 120 words asked (the middle of 70-170), every rollout holds 120 as the decoder
/// counts (`engine::answer_length`: words, or tokens / 2 for a collapse) and then ends by
/// sampling.
#[test]
fn grpo_rollouts_keep_the_length_control_of_their_target() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("prompts.jsonl"), "{\"prompt\": \"Write a short note to a neighbour about a lost cat.\", \"range\": [70, 170]}\n").unwrap();
    let step = |control: &str| -> Vec<serde_json::Value> {
        let toml = format!("[data]\nprompts = \"prompts.jsonl\"\ntemplate = \"chat\"\ntargets = \"dataset\"\n[rewards]\nuse_rewards = [\"length\"]\n[rollout]\ngroup_size = 3\nprompts_per_step = 1\nmax_new_tokens = 400\n{control}\n[lora]\nrank = 2\n[run]\nsteps = 1\nseed = 5\nsamples_per_step = 3\n");
        std::fs::write(dir.path().join("job.toml"), toml).unwrap();
        let job = JobSpec::load(&dir.path().join("job.toml")).unwrap();
        let run = dir.path().join(format!("run{}", control.len()));
        Trainer::new(job, &common::default_model_path(), &run, false, &Device::Cpu).unwrap().run_step().unwrap();
        std::fs::read_to_string(run.join("samples.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let summary = |v: &[serde_json::Value]| v.iter().map(|s| (s["words"].clone(), s["tokens"].clone(), s["stop"].clone())).collect::<Vec<_>>();
    let free = step("");
    assert!(free.iter().all(|s| s["stop"].as_str().unwrap().contains("max tokens")), "free, every rollout runs to the cap: {:?}", summary(&free));
    let held = step("answer_floor = 1.0\nend_nudge = 1.0");
    assert_eq!(held.len(), 3);
    for s in &held {
        let mut w = longwriter::text::WordCounter::default();
        w.push(s["answer"].as_str().unwrap().trim_end_matches("<|im_end|>"));
        // The tokens before the end of sequence: the decoder's count when it allowed it.
        let counted = longwriter::engine::answer_length(&w, s["tokens"].as_u64().unwrap() as usize - 1);
        assert!(counted >= 120 && s["stop"] == "end of sequence", "held to 120, then ended by sampling: {:?}", summary(&held));
        assert!(w.total() < 250, "nudged from 120: {:?}", summary(&held));
    }
}
