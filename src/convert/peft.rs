//! LoRA adapters in PEFT's layout: `adapter_model.safetensors` (A as `lora_A.weight`
//! [r, in], B as `lora_B.weight` [out, r], under `base_model.model.model.layers.N.…`) and
//! `adapter_config.json`. It is the layout Hugging Face tools load, so a model trained here
//! ships as the small adapter instead of a second copy of the base; the registry merges it
//! into the base GGUF at load ([`ensure_merged`]).
//!
//! One subtlety: llama GGUF files store q and k rows interleaved for rope (see
//! [`super::hf_gguf`]), so a policy trained on a GGUF base has its q/k B rows in that
//! order. They are written in Hugging Face's order and put back on reading.

use super::hf_gguf::interleave_rope_rows;
use crate::engine::EngineError;
use crate::nn::dense::{DenseModel, Lora};
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use crate::models::{ADAPTER_CONFIG as CONFIG, ADAPTER_WEIGHTS as WEIGHTS};
/// Written beside a merged GGUF: the adapter and base it was merged from.
const STAMP: &str = "merged-from.json";

/// The keys of PEFT's `adapter_config.json` that longwriter reads and writes. Other keys
/// are ignored on reading; the ones that would change the arithmetic are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeftConfig {
    pub peft_type: String,
    #[serde(default)]
    pub task_type: Option<String>,
    pub r: usize,
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    pub target_modules: TargetModules,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default = "no_bias")]
    pub bias: String,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default)]
    pub rank_pattern: HashMap<String, serde_json::Value>,
    #[serde(default)]
    pub alpha_pattern: HashMap<String, serde_json::Value>,
    #[serde(default)]
    pub inference_mode: bool,
}

fn no_bias() -> String {
    "none".into()
}

/// PEFT writes a list of module names, or one regular expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    List(Vec<String>),
    Pattern(String),
}

/// As a user reads them: "q_proj, v_proj", or the pattern.
impl std::fmt::Display for TargetModules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetModules::List(m) => f.write_str(&m.join(", ")),
            TargetModules::Pattern(p) => write!(f, "pattern {p:?}"),
        }
    }
}

impl PeftConfig {
    /// The modules it adapts, or why longwriter cannot merge it.
    fn check(&self) -> Result<&[String], String> {
        if self.peft_type != "LORA" {
            return Err(format!("peft_type is {:?}; only LORA adapters are supported", self.peft_type));
        }
        if self.use_dora || self.fan_in_fan_out || self.bias != "none" || !self.rank_pattern.is_empty() || !self.alpha_pattern.is_empty() {
            return Err("DoRA, fan_in_fan_out, bias terms and per-module rank or alpha patterns are not supported".into());
        }
        if self.r == 0 || !(self.lora_alpha.is_finite() && self.lora_alpha > 0.0) {
            return Err("r and lora_alpha must be positive".into());
        }
        let TargetModules::List(mods) = &self.target_modules else {
            return Err("target_modules is a pattern; list the module names instead".into());
        };
        if let Some(bad) = mods.iter().find(|m| !crate::nn::dense::LORA_MODULES.contains(&m.as_str())) {
            return Err(format!("target module {bad:?} is not one of {}", crate::nn::dense::LORA_MODULES.join(", ")));
        }
        Ok(mods)
    }

    /// The factor B·A is scaled by: α / r (α / √r with rsLoRA).
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }
}

fn key(layer: usize, module: &str, ab: char) -> String {
    let part = if matches!(module, "q_proj" | "k_proj" | "v_proj" | "o_proj") { "self_attn" } else { "mlp" };
    format!("base_model.model.model.layers.{layer}.{part}.{module}.lora_{ab}.weight")
}

fn bad(path: &Path, detail: impl Into<String>) -> EngineError {
    EngineError::Format(format!("{}: {}", path.display(), detail.into()))
}

fn io(path: &Path, e: &std::io::Error) -> EngineError {
    EngineError::Open { path: path.display().to_string(), detail: crate::fsutil::describe_io(e) }
}

fn model(e: candle_core::Error) -> EngineError {
    EngineError::Model(e.to_string())
}

/// Rows back from the interleaved order of llama GGUF files to Hugging Face's rotate-half
/// order: the inverse of [`interleave_rope_rows`].
pub fn deinterleave_rope_rows(w: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let dims = w.dims().to_vec();
    let rest: usize = dims[1..].iter().product();
    w.reshape((heads, dims[0] / heads / 2, 2, rest))?.transpose(1, 2)?.contiguous()?.reshape(dims)
}

/// Heads of a q or k projection whose rows `dense` keeps in GGUF's interleaved order.
fn rope_heads(dense: &DenseModel, module: &str) -> Option<usize> {
    if !dense.cfg.rope_interleaved {
        return None;
    }
    match module {
        "q_proj" => Some(dense.cfg.n_head()),
        "k_proj" => Some(dense.cfg.n_kv_head()),
        _ => None,
    }
}

/// Writes the adapters attached to `dense` into `dir` in PEFT's layout (each file
/// atomically, the config last: a directory with a config has its weights).
/// `base_model` is the Hugging Face id of the base, for tools that load it from there.
pub fn write(dense: &DenseModel, dir: &Path, base_model: Option<&str>) -> Result<PeftConfig, EngineError> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    let (mut rank, mut scale, mut modules) = (0, 0.0, Vec::<String>::new());
    for (i, block) in dense.blocks.iter().enumerate() {
        for (name, lin) in block.linears() {
            let Some(l) = &lin.lora else { continue };
            let cpu = |v: &Var| v.as_tensor().to_dtype(DType::F32)?.to_device(&Device::Cpu);
            let a = cpu(&l.a).map_err(model)?;
            let mut b = cpu(&l.b).map_err(model)?;
            if let Some(h) = rope_heads(dense, name) {
                b = deinterleave_rope_rows(&b, h).map_err(model)?;
            }
            (rank, scale) = (a.dims()[0], l.scale);
            if !modules.iter().any(|m| m == name) {
                modules.push(name.to_string());
            }
            tensors.push((key(i, name, 'A'), a));
            tensors.push((key(i, name, 'B'), b));
        }
    }
    if tensors.is_empty() {
        return Err(EngineError::Model("the model has no LoRA adapters to write".into()));
    }
    let cfg = PeftConfig {
        peft_type: "LORA".into(),
        task_type: Some("CAUSAL_LM".into()),
        r: rank,
        lora_alpha: scale * rank as f64,
        lora_dropout: 0.0,
        target_modules: TargetModules::List(modules),
        base_model_name_or_path: base_model.map(str::to_string),
        bias: no_bias(),
        fan_in_fan_out: false,
        use_rslora: false,
        use_dora: false,
        rank_pattern: HashMap::new(),
        alpha_pattern: HashMap::new(),
        inference_mode: true,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, &e))?;
    let weights = dir.join(WEIGHTS);
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), None).map_err(|e| bad(&weights, e.to_string()))?;
    crate::fsutil::atomic_write(&weights, &bytes).map_err(|e| io(&weights, &e))?;
    let config = dir.join(CONFIG);
    let json = serde_json::to_string_pretty(&cfg).expect("a config serializes");
    crate::fsutil::atomic_write(&config, json.as_bytes()).map_err(|e| io(&config, &e))?;
    Ok(cfg)
}

/// Reads and checks a PEFT adapter directory's config; returns it with the modules it adapts.
fn read_config(dir: &Path) -> Result<(PeftConfig, Vec<String>), EngineError> {
    let config = dir.join(CONFIG);
    let text = std::fs::read_to_string(&config).map_err(|e| io(&config, &e))?;
    let cfg: PeftConfig = serde_json::from_str(&text).map_err(|e| bad(&config, format!("not a PEFT adapter config: {e}")))?;
    let modules = cfg.check().map_err(|m| bad(&config, m))?.to_vec();
    Ok((cfg, modules))
}

/// Attaches the adapter in `dir` to `dense` (which must have none), as the trainer's LoRA
/// would be: merged or trained further alike.
pub fn attach(dense: &mut DenseModel, dir: &Path) -> Result<PeftConfig, EngineError> {
    let (cfg, modules) = read_config(dir)?;
    let weights = dir.join(WEIGHTS);
    let bytes = std::fs::read(&weights).map_err(|e| io(&weights, &e))?;
    let mut saved: HashMap<String, Tensor> = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| bad(&weights, e.to_string()))?;
    let (device, dtype, scale) = (dense.device().clone(), dense.dtype(), cfg.scale());
    let mut found = Vec::new();
    for i in 0..dense.blocks.len() {
        for m in &modules {
            let heads = rope_heads(dense, m);
            let block = &mut dense.blocks[i];
            let Some((_, lin)) = block.linears_mut().into_iter().find(|(n, _)| n == m) else { continue };
            let mut take = |ab: char| saved.remove(&key(i, m, ab)).ok_or_else(|| bad(&weights, format!("no tensor {} (the config lists {m})", key(i, m, ab))));
            let (a, b) = (take('A')?, take('B')?);
            if a.dims() != [cfg.r, lin.in_dim()] || b.dims() != [lin.out_dim(), cfg.r] {
                return Err(bad(&weights, format!("layer {i} {m}: A {:?} and B {:?} do not fit a rank-{} adapter of a [{}, {}] matrix", a.dims(), b.dims(), cfg.r, lin.out_dim(), lin.in_dim())));
            }
            let b = match heads {
                Some(h) => interleave_rope_rows(&b, h).map_err(model)?,
                None => b,
            };
            let var = |t: Tensor| t.to_dtype(dtype).and_then(|t| t.to_device(&device)).and_then(|t| Var::from_tensor(&t)).map_err(model);
            lin.lora = Some(Lora::new(var(a)?, var(b)?, scale, 0.0));
            found.push(m.clone());
        }
    }
    if let Some(extra) = saved.keys().next() {
        return Err(bad(&weights, format!("tensor {extra} belongs to no module the config lists, or to a layer this model lacks")));
    }
    if found.is_empty() {
        return Err(bad(&weights, "the adapter adapts nothing in this model"));
    }
    Ok(cfg)
}

/// The base GGUF `base` with the adapter in `dir` merged, written to `dest` (adapted
/// matrices as Q8_0, as the trainer merges them; the rest copied). The file is reused
/// while the adapter's files and the base are unchanged, and merged again otherwise.
pub fn ensure_merged(base: &Path, dir: &Path, dest: &Path) -> Result<PathBuf, EngineError> {
    let stamp_of = || -> Result<serde_json::Value, EngineError> {
        let mut parts = Vec::new();
        for p in [dir.join(WEIGHTS), dir.join(CONFIG), base.to_path_buf()] {
            let md = std::fs::metadata(&p).map_err(|e| io(&p, &e))?;
            let mtime = md.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
            parts.push(serde_json::json!({ "path": p, "size": md.len(), "mtime_ns": mtime.to_string() }));
        }
        Ok(serde_json::Value::Array(parts))
    };
    let want = stamp_of()?;
    let stamp = dest.with_file_name(STAMP);
    let have = std::fs::read_to_string(&stamp).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    if dest.exists() && have.as_ref() == Some(&want) {
        return Ok(dest.to_path_buf());
    }
    let mut r = std::io::BufReader::new(std::fs::File::open(base).map_err(|e| io(base, &e))?);
    let ct = candle_core::quantized::gguf_file::Content::read(&mut r).map_err(|e| bad(base, e.to_string()))?;
    let mut dense = DenseModel::from_gguf(&ct, &mut r, &Device::Cpu)?;
    attach(&mut dense, dir)?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, &e))?;
    }
    super::merge::write_merged_gguf(base, &dense, dest)?;
    crate::fsutil::atomic_write(&stamp, want.to_string().as_bytes()).map_err(|e| io(&stamp, &e))?;
    Ok(dest.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_rows_round_trip() {
        let w = Tensor::arange(0f32, 48.0, &Device::Cpu).unwrap().reshape((12, 4)).unwrap();
        let i = interleave_rope_rows(&w, 2).unwrap();
        assert_ne!(i.to_vec2::<f32>().unwrap(), w.to_vec2::<f32>().unwrap());
        assert_eq!(deinterleave_rope_rows(&i, 2).unwrap().to_vec2::<f32>().unwrap(), w.to_vec2::<f32>().unwrap());
        // Head 0 of 6 rows: HF rows 0 1 2 | 3 4 5 interleave to 0 3 1 4 2 5.
        let col: Vec<f32> = i.narrow(1, 0, 1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(&col[..6], &[0.0, 12.0, 4.0, 16.0, 8.0, 20.0]);
    }

    #[test]
    fn configs_that_change_the_arithmetic_are_refused() {
        let good = r#"{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"], "lora_dropout": 0.05, "some_new_key": 1}"#;
        let cfg: PeftConfig = serde_json::from_str(good).unwrap();
        assert_eq!(cfg.check().unwrap(), ["q_proj", "v_proj"]);
        assert_eq!(cfg.scale(), 2.0);
        assert_eq!(PeftConfig { use_rslora: true, ..cfg.clone() }.scale(), 16.0 / 8f64.sqrt());
        for (edit, needle) in [
            (PeftConfig { use_dora: true, ..cfg.clone() }, "DoRA"),
            (PeftConfig { target_modules: TargetModules::Pattern(".*proj".into()), ..cfg.clone() }, "pattern"),
            (PeftConfig { target_modules: TargetModules::List(vec!["qkv".into()]), ..cfg.clone() }, "\"qkv\""),
            (PeftConfig { peft_type: "IA3".into(), ..cfg.clone() }, "LORA"),
            (PeftConfig { r: 0, ..cfg.clone() }, "positive"),
        ] {
            assert!(edit.check().unwrap_err().contains(needle), "{needle}");
        }
    }
}
