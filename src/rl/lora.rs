//! LoRA adapters: y = W x + (α / r) · B A x, with A [r, in] initialised like PEFT
//! (uniform ±1/√in) and B [out, r] at zero, so training starts from the base model.

use super::RlError;
use crate::nn::dense::{DenseModel, Lora};
use candle_core::{Tensor, Var};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The modules LoRA can target, by their Hugging Face names.
pub use crate::nn::dense::LORA_MODULES as MODULES;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    /// Dropout on the adapter's input during the loss pass (PEFT's `lora_dropout`), in [0, 1).
    pub dropout: f64,
    /// Target modules: any of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self { rank: 16, alpha: 32.0, dropout: 0.0, targets: vec!["q_proj".into(), "v_proj".into()] }
    }
}

impl LoraConfig {
    pub fn validate(&self) -> Result<(), RlError> {
        if self.rank == 0 {
            return Err(RlError::Config("lora.rank must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(RlError::Config(format!("lora.dropout must be in [0, 1), got {}", self.dropout)));
        }
        if self.targets.is_empty() {
            return Err(RlError::Config("lora.targets is empty".into()));
        }
        if let Some(bad) = self.targets.iter().find(|t| !MODULES.contains(&t.as_str())) {
            return Err(RlError::Config(format!("unknown LoRA target '{bad}' (known: {})", MODULES.join(", "))));
        }
        Ok(())
    }
}

/// The trainable variables, by name (`layers.{i}.{module}.lora_a` / `lora_b`), in a fixed order.
pub struct Adapters {
    pub vars: Vec<(String, Var)>,
}

impl Adapters {
    pub fn all_vars(&self) -> Vec<Var> {
        self.vars.iter().map(|(_, v)| v.clone()).collect()
    }

    pub fn param_count(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// A copy of every variable's value, in their order (not shared with the variables).
    pub fn values(&self) -> Result<Vec<Tensor>, RlError> {
        Ok(self.vars.iter().map(|(_, v)| v.as_tensor().copy()).collect::<Result<_, _>>()?)
    }

    /// Sets every variable to `values` (as [`Self::values`] or [`read_adapters`] give them).
    pub fn set_values(&self, values: &[Tensor]) -> Result<(), RlError> {
        for ((_, var), t) in self.vars.iter().zip(values) {
            var.set(t)?;
        }
        Ok(())
    }
}

/// Adds adapters to the target modules of every block, seeded for reproducible runs.
pub fn attach(model: &mut DenseModel, cfg: &LoraConfig, seed: u64) -> Result<Adapters, RlError> {
    cfg.validate()?;
    let mut rng = StdRng::seed_from_u64(seed);
    let (device, dtype) = (model.device().clone(), model.dtype());
    let mut vars = Vec::new();
    for (i, block) in model.blocks.iter_mut().enumerate() {
        for (name, lin) in block.linears_mut() {
            if !cfg.targets.iter().any(|t| t == name) {
                continue;
            }
            let (out_dim, in_dim) = (lin.out_dim(), lin.in_dim());
            let bound = 1.0 / (in_dim as f64).sqrt();
            let a: Vec<f64> = (0..cfg.rank * in_dim).map(|_| rng.random_range(-bound..bound)).collect();
            let a = Var::from_tensor(&Tensor::from_vec(a, (cfg.rank, in_dim), &device)?.to_dtype(dtype)?)?;
            let b = Var::from_tensor(&Tensor::zeros((out_dim, cfg.rank), dtype, &device)?)?;
            vars.push((format!("layers.{i}.{name}.lora_a"), a.clone()));
            vars.push((format!("layers.{i}.{name}.lora_b"), b.clone()));
            lin.lora = Some(Lora::new(a, b, cfg.alpha / cfg.rank as f64, cfg.dropout));
        }
    }
    Ok(Adapters { vars })
}

/// Writes the adapters as safetensors, atomically.
pub fn save_adapters(adapters: &Adapters, path: &Path) -> Result<(), RlError> {
    let tensors: Vec<(String, Tensor)> = adapters.vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), None).map_err(|e| RlError::Io { path: path.display().to_string(), detail: e.to_string() })?;
    crate::fsutil::atomic_write(path, &bytes).map_err(|e| RlError::Io { path: path.display().to_string(), detail: crate::fsutil::describe_io(&e) })
}

/// Loads saved adapter values into `adapters` (names and shapes must match).
pub fn load_adapters(adapters: &Adapters, path: &Path) -> Result<(), RlError> {
    adapters.set_values(&read_adapters(adapters, path)?)
}

/// Saved adapter values for `adapters`, in their order and dtype, without setting them
/// (names and shapes must match).
pub fn read_adapters(adapters: &Adapters, path: &Path) -> Result<Vec<Tensor>, RlError> {
    let p = path.display().to_string();
    crate::nn::dense::check_safetensors(path)?;
    let mut saved: HashMap<String, Tensor> = candle_core::safetensors::load(path, adapters.vars.first().map_or(&candle_core::Device::Cpu, |v| v.1.device())).map_err(|e| RlError::Io { path: p.clone(), detail: e.to_string() })?;
    let mut out = Vec::with_capacity(adapters.vars.len());
    for (name, var) in &adapters.vars {
        let t = saved.remove(name).ok_or_else(|| RlError::Io { path: p.clone(), detail: format!("no tensor {name}: the adapters do not match this job's LoRA settings") })?;
        if t.dims() != var.dims() {
            return Err(RlError::Io { path: p.clone(), detail: format!("{name} has shape {:?}, expected {:?}", t.dims(), var.dims()) });
        }
        out.push(t.to_dtype(var.dtype())?);
    }
    Ok(out)
}
