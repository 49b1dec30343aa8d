//! The novelty reward in the trainer, on a tiny random policy with the real MiniLM
//! embedder: a step's novelty is recomputed here from the samples of the steps before it,
//! and the memory it needs travels with the checkpoint, so a resumed run scores as an
//! unbroken one (and, without the memory, it would not).

mod common;

use candle_core::Device;
use common::tiny::tiny_job;
use longwriter::nn::embed::cosine;
use longwriter::rl::trainer::Trainer;
use serde_json::Value;
use std::path::Path;

/// One prompt a step, all three rollouts logged; the tiny job's two prompts alternate.
const JOB: &str = "[data]\nprompts = \"prompts.jsonl\"\ntemplate = \"nothink\"\n[rewards]\nuse_rewards = [\"length\", \"novelty\"]\nweights = { novelty = 2.0 }\nl_max = 8\n[rollout]\ngroup_size = 3\nprompts_per_step = 1\nmax_new_tokens = 12\ntemperature = 1.0\n[lora]\nrank = 2\n[run]\nsteps = 4\ncheckpoint_every = 2\nseed = 7\nsamples_per_step = 3\n";

fn samples(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("samples.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn novelty_mean(m: &Value) -> Option<f64> {
    m["rewards/novelty/mean"].as_f64()
}

#[test]
fn novelty_compares_answers_with_other_requests_and_resumes_with_its_memory() {
    let (dir, base, job) = tiny_job(JOB);
    job.validate().unwrap();

    // Unbroken: four steps.
    let whole = dir.path().join("whole");
    let mut t = Trainer::new(job.clone(), &base, &whole, false, &Device::Cpu).unwrap();
    let m: Vec<Value> = (0..4).map(|_| t.run_step().unwrap()).collect();
    drop(t);
    assert_eq!(novelty_mean(&m[0]), None, "step 1 has nothing to compare with: {}", m[0]);
    for (k, mk) in m.iter().enumerate().skip(1) {
        let v = novelty_mean(mk).unwrap_or_else(|| panic!("step {}: no novelty: {mk}", k + 1));
        assert!((0.0..=1.0).contains(&v), "step {}: {v}", k + 1);
    }

    // Step 2's novelty by hand: 1 − the mean cosine between each answer and step 1's
    // (a different request's) non-empty answers, with the reward's own answer embedding.
    let s = samples(&whole);
    let (s1, s2): (Vec<&Value>, Vec<&Value>) = (s.iter().filter(|x| x["step"] == 1).collect(), s.iter().filter(|x| x["step"] == 2).collect());
    assert_eq!((s1.len(), s2.len()), (3, 3));
    assert_ne!(s1[0]["prompt"], s2[0]["prompt"], "the two prompts alternate");
    let emb = longwriter::nn::Embedder::from_registry("all-minilm-l6-v2", &Device::Cpu, &longwriter::models::Silent).unwrap();
    let embed = |x: &Value| longwriter::reward::relevance::answer_embedding(&emb, x["answer"].as_str().unwrap()).unwrap();
    let earlier: Vec<Vec<f32>> = s1.iter().filter_map(|x| embed(x)).collect();
    assert!(!earlier.is_empty(), "step 1 wrote no answer at all");
    let mut checked = 0;
    for x in &s2 {
        let logged = x["novelty"].as_f64().unwrap();
        let want = match embed(x) {
            Some(a) => (1.0 - earlier.iter().map(|b| cosine(&a, b) as f64).sum::<f64>() / earlier.len() as f64).clamp(0.0, 1.0),
            None => 0.0,
        };
        assert!((logged - want).abs() < 1e-4, "logged {logged}, by hand {want}: {x}");
        checked += (want > 0.0) as usize;
    }
    assert!(checked > 0, "every step-2 answer was empty or identical to step 1's");

    // Stopped after step 2 and resumed: the memory comes back with the checkpoint.
    let resumed = dir.path().join("resumed");
    let mut t = Trainer::new(job.clone(), &base, &resumed, false, &Device::Cpu).unwrap();
    (0..2).for_each(|_| drop(t.run_step().unwrap()));
    drop(t);
    assert!(resumed.join("checkpoints/step-000002/answers.json").exists());
    let mut t = Trainer::new(job.clone(), &base, &resumed, true, &Device::Cpu).unwrap();
    assert_eq!(t.step, 2);
    let r: Vec<Value> = (0..2).map(|_| t.run_step().unwrap()).collect();
    assert_eq!((novelty_mean(&r[0]), novelty_mean(&r[1])), (novelty_mean(&m[2]), novelty_mean(&m[3])));

    // The same resume without the memory starts from an empty one: step 3's request is
    // step 1's, so it has nothing to compare with. (This is what the saved memory avoids.)
    let forgetful = dir.path().join("forgetful");
    let mut t = Trainer::new(job.clone(), &base, &forgetful, false, &Device::Cpu).unwrap();
    (0..2).for_each(|_| drop(t.run_step().unwrap()));
    drop(t);
    std::fs::remove_file(forgetful.join("checkpoints/step-000002/answers.json")).unwrap();
    let mut t = Trainer::new(job, &base, &forgetful, true, &Device::Cpu).unwrap();
    assert_eq!(novelty_mean(&t.run_step().unwrap()), None);
}

/// The novelty memory's size is checked with the job.
#[test]
fn a_novelty_memory_of_zero_is_refused() {
    let (_dir, _base, mut job) = tiny_job(JOB);
    job.rewards.novelty_memory = 0;
    assert!(job.validate().unwrap_err().to_string().contains("rewards.novelty_memory"));
    job.rewards.novelty_memory = 1;
    job.rewards.use_rewards.push("originality".into());
    let e = job.validate().unwrap_err().to_string();
    assert!(e.contains("\"novelty\"") && e.contains("use_rewards"), "{e}");
}

/// A stage's weights reach the advantages: in stage "b" the length reward weighs 0, so
/// (weighted sum) each rollout's advantage is its novelty's z-score in the group alone.
/// (A stage picks its prompts from the start of the list: step 3 asks step 1's request,
/// and step 2's is the other one remembered.)
#[test]
fn a_stage_that_weighs_only_novelty_ranks_rollouts_by_it() {
    let job = JOB.replace("weights = { novelty = 2.0 }", "combine = \"weighted-sum\"").replace("steps = 4\n", "steps = 3\n")
        + "[[stages]]\nname = \"a\"\nsteps = 2\n[[stages]]\nname = \"b\"\nsteps = 1\nweights = { length = 0.0 }\n";
    let (dir, base, job) = tiny_job(&job);
    let run = dir.path().join("run");
    let mut t = Trainer::new(job, &base, &run, false, &Device::Cpu).unwrap();
    (0..3).for_each(|_| drop(t.run_step().unwrap()));
    let s3: Vec<Value> = samples(&run).into_iter().filter(|x| x["step"] == 3).collect();
    let novelty: Vec<f64> = s3.iter().map(|x| x["novelty"].as_f64().unwrap()).collect();
    let advantages: Vec<f64> = s3.iter().map(|x| x["advantage"].as_f64().unwrap()).collect();
    assert_eq!(advantages, longwriter::reward::weighted_sum(&[novelty.clone()], &[1.0]), "novelty {novelty:?}");
    let lengths: Vec<f64> = s3.iter().map(|x| x["length"].as_f64().unwrap()).collect();
    assert_ne!(advantages, longwriter::reward::weighted_sum(&[lengths.clone(), novelty.clone()], &[1.0, 1.0]), "the length reward {lengths:?} would have changed them");
}
