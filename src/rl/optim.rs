//! AdamW with decoupled weight decay (Loshchilov & Hutter), written here rather than taken
//! from candle-nn because a resumed run needs the moment estimates, which candle keeps
//! private. Its state saves to safetensors with the adapters.

use super::RlError;
use candle_core::{Tensor, Var};
use std::collections::HashMap;
use std::path::Path;

pub struct AdamW {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Steps taken (for bias correction).
    pub t: u64,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl AdamW {
    pub fn new(vars: &[Var], lr: f64, betas: [f64; 2], eps: f64, weight_decay: f64) -> Result<Self, RlError> {
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        Ok(Self {
            lr,
            beta1: betas[0],
            beta2: betas[1],
            eps,
            weight_decay,
            t: 0,
            m: vars.iter().map(zeros).collect::<Result<_, _>>()?,
            v: vars.iter().map(zeros).collect::<Result<_, _>>()?,
        })
    }

    /// One update of `vars` with `grads` (same order).
    pub fn step(&mut self, vars: &[Var], grads: &[Tensor]) -> Result<(), RlError> {
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.t as i32);
        let c2 = 1.0 - b2.powi(self.t as i32);
        for (i, (var, g)) in vars.iter().zip(grads).enumerate() {
            self.m[i] = ((&self.m[i] * b1)? + (g * (1.0 - b1))?)?;
            self.v[i] = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let mhat = (&self.m[i] / c1)?;
            let vhat = (&self.v[i] / c2)?;
            let update = (mhat / (vhat.sqrt()? + self.eps)?)?;
            let decayed = (var.as_tensor() * (1.0 - self.lr * self.weight_decay))?;
            var.set(&(decayed - (update * self.lr)?)?)?;
        }
        Ok(())
    }

    /// The moments and step count as named tensors.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>, RlError> {
        let mut out = vec![("t".to_string(), Tensor::new(&[self.t as f64], self.m.first().map_or(&candle_core::Device::Cpu, |m| m.device()))?)];
        for (i, (m, v)) in self.m.iter().zip(&self.v).enumerate() {
            out.push((format!("m.{i}"), m.clone()));
            out.push((format!("v.{i}"), v.clone()));
        }
        Ok(out)
    }

    pub fn save(&self, path: &Path) -> Result<(), RlError> {
        let st = self.state()?;
        let bytes = safetensors::serialize(st.iter().map(|(n, t)| (n.as_str(), t)), None).map_err(|e| RlError::Io { path: path.display().to_string(), detail: e.to_string() })?;
        crate::fsutil::atomic_write(path, &bytes).map_err(|e| RlError::Io { path: path.display().to_string(), detail: crate::fsutil::describe_io(&e) })
    }

    pub fn load(&mut self, path: &Path) -> Result<(), RlError> {
        let p = path.display().to_string();
        crate::nn::dense::check_safetensors(path)?;
        let dev = self.m.first().map_or(candle_core::Device::Cpu, |m| m.device().clone());
        let mut st: HashMap<String, Tensor> = candle_core::safetensors::load(path, &dev).map_err(|e| RlError::Io { path: p.clone(), detail: e.to_string() })?;
        let mut take = |k: &str, like: &Tensor| -> Result<Tensor, RlError> {
            let t = st.remove(k).ok_or_else(|| RlError::Io { path: p.clone(), detail: format!("optimizer state has no {k}") })?;
            if t.dims() != like.dims() {
                return Err(RlError::Io { path: p.clone(), detail: format!("optimizer state {k} has shape {:?}, expected {:?}", t.dims(), like.dims()) });
            }
            Ok(t.to_dtype(like.dtype())?)
        };
        for i in 0..self.m.len() {
            self.m[i] = take(&format!("m.{i}"), &self.m[i])?;
            self.v[i] = take(&format!("v.{i}"), &self.v[i])?;
        }
        let t = st.remove("t").ok_or_else(|| RlError::Io { path: p.clone(), detail: "optimizer state has no step count".into() })?;
        self.t = t.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?[0] as u64;
        Ok(())
    }
}

/// Scales `grads` so their global L2 norm is at most `max` (0: no clipping); returns the
/// norm before clipping.
pub fn clip_grad_norm(grads: &mut [Tensor], max: f64) -> Result<f64, RlError> {
    let mut sq = 0.0;
    for g in grads.iter() {
        sq += g.to_dtype(candle_core::DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
    }
    let norm = sq.sqrt();
    if max > 0.0 && norm > max {
        let s = max / (norm + 1e-6);
        for g in grads.iter_mut() {
            *g = (&*g * s)?;
        }
    }
    Ok(norm)
}
