//! The policy's linear layers: a frozen weight (whose backward computes only the input
//! gradient) with an optional bias and an optional LoRA adapter, the only trainable part.

use super::bf16;
use candle_core::{Device, Module, Tensor};
use std::sync::Arc;

/// A low-rank adapter on a linear layer: y += scale · (x Aᵀ) Bᵀ. A and B are the only
/// trainable weights of the policy.
#[derive(Clone)]
pub struct Lora {
    pub a: candle_core::Var,
    pub b: candle_core::Var,
    pub scale: f64,
    /// Dropout on the adapter's input (PEFT's `lora_dropout`). It only acts while a mask
    /// generator is set ([`DenseModel::seed_lora_dropout`]): the trainer sets one per
    /// micro-batch, seeded from (run seed, step, micro-batch) so a resumed run draws the
    /// same masks; scoring, merging and reference passes run without it.
    pub dropout: f64,
    pub masks: std::sync::Arc<std::sync::Mutex<Option<rand::rngs::StdRng>>>,
}

impl Lora {
    pub fn new(a: candle_core::Var, b: candle_core::Var, scale: f64, dropout: f64) -> Self {
        Self { a, b, scale, dropout, masks: Default::default() }
    }

    /// `x` with inverted dropout applied (kept values scaled by 1 / (1 − p)), or `x` itself.
    fn drop_input(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        use rand::Rng;
        let mut guard = self.masks.lock().unwrap_or_else(|p| p.into_inner());
        let (Some(rng), true) = (guard.as_mut(), self.dropout > 0.0) else { return Ok(x.clone()) };
        let keep = 1.0 - self.dropout;
        let mask: Vec<f32> = (0..x.elem_count()).map(|_| if rng.random::<f64>() < keep { (1.0 / keep) as f32 } else { 0.0 }).collect();
        x * Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?
    }
}

/// A linear layer with an optional bias (qwen2's q/k/v have one) and an optional adapter.
pub struct Linear {
    pub weight: Tensor,
    /// `weight` packed for bf16 products ([`DenseModel::pack_bf16`](super::dense::DenseModel::pack_bf16)):
    /// the loss pass then multiplies in bf16 with f32 sums.
    pub packed: Option<Arc<bf16::Frozen>>,
    pub bias: Option<Tensor>,
    pub lora: Option<Lora>,
}

impl Linear {
    pub(super) fn load(get: &super::dense::Getter, name: &str, out_dim: usize, in_dim: usize) -> candle_core::Result<Self> {
        let weight = get.req(&format!("{name}.weight"), &[out_dim, in_dim])?;
        let bias = get.opt(&format!("{name}.bias"), &[out_dim])?;
        Ok(Self { weight, packed: None, bias, lora: None })
    }

    pub fn out_dim(&self) -> usize {
        self.weight.dims()[0]
    }
    pub fn in_dim(&self) -> usize {
        self.weight.dims()[1]
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut y = frozen_matmul(x, &self.weight, self.packed.as_ref())?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        if let Some(l) = &self.lora {
            let d = l.drop_input(x)?.broadcast_matmul(&l.a.as_tensor().t()?)?.broadcast_matmul(&l.b.as_tensor().t()?)?;
            y = (y + (d * l.scale)?)?;
        }
        Ok(y)
    }
}

/// x · wᵀ for a frozen `w`, in bf16 where `packed` (w packed by [`bf16::Frozen::pack`]) is
/// given. candle's matmul backward always computes the gradient of both sides; for a frozen
/// weight that is wasted work and memory (a 49,152 × 576 gradient for a tied LM head), so
/// on CPU a custom op returns only dL/dx.
pub fn frozen_matmul(x: &Tensor, w: &Tensor, packed: Option<&Arc<bf16::Frozen>>) -> candle_core::Result<Tensor> {
    if super::on_cpu_f32(x) && x.rank() >= 2 {
        x.contiguous()?.apply_op1(FrozenMatmul(w.clone(), packed.cloned()))
    } else {
        x.broadcast_matmul(&w.t()?)
    }
}

struct FrozenMatmul(Tensor, Option<Arc<bf16::Frozen>>);

/// `x` [.., k] times a packed operand: [.., n].
fn packed_product(x: &[f32], shape: &candle_core::Shape, b: &bf16::Packed) -> candle_core::Result<(Vec<f32>, candle_core::Shape)> {
    let mut dims = shape.dims().to_vec();
    match dims.last_mut() {
        Some(last) if *last == b.k() => *last = b.n(),
        _ => candle_core::bail!("frozen-matmul: input {shape:?} against a packed weight of {} inputs", b.k()),
    }
    Ok((bf16::matmul(x, b), dims.into()))
}

impl candle_core::CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(&self, storage: &candle_core::CpuStorage, layout: &candle_core::Layout) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        if let Some(p) = &self.1 {
            let (y, shape) = packed_product(super::cpu_f32(storage, layout)?, layout.shape(), &p.fwd)?;
            return Ok((candle_core::CpuStorage::F32(y), shape));
        }
        let data = storage.as_slice::<f32>()?;
        let x: Vec<f32> = match layout.contiguous_offsets() {
            Some((a, b)) => data[a..b].to_vec(),
            None => candle_core::bail!("frozen-matmul needs a contiguous input"),
        };
        let x = Tensor::from_vec(x, layout.shape(), &Device::Cpu)?;
        let y = x.broadcast_matmul(&self.0.t()?)?;
        let shape = y.shape().clone();
        Ok((candle_core::CpuStorage::F32(y.flatten_all()?.to_vec1::<f32>()?), shape))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        if let (Some(p), true) = (&self.1, super::on_cpu_f32(grad)) {
            let (dx, shape) = super::with_f32(grad, |g| packed_product(g, grad.shape(), &p.bwd))?;
            return Ok(Some(Tensor::from_vec(dx, shape, &Device::Cpu)?));
        }
        Ok(Some(grad.broadcast_matmul(&self.0)?))
    }
}

