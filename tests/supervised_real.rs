//! The writer job's supervised cold start on the real default model: a stage of
//! demonstrations in the LongWriter-Zero structure lowers their negative log-likelihood
//! step by step. (The chat template: the job's longwriter-chat adds 270 prompt tokens to
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
