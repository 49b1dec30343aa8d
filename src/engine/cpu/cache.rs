//! The fast decoder's K/V cache: per sequence and layer, each position's keys (and
//! values) as one `[kv_heads * head_dim]` row, stored as f32 or as f16.
//!
//! Why f16 is offered: decode after a long context is bound by reading this cache. At
//! 8,000 tokens SmolLM2-135M reads 368 MB of f32 keys and values for every new token, more
//! than its weights (about 90 MB); f16 halves that, and llama.cpp's cache is f16 by
//! default. What it costs is rounding each key and value to 11 significant bits, which
//! can move a near-tie in greedy decoding (docs/performance.md states how often).

use crate::engine::model::KvType;
use half::f16;

/// A value type the cache can hold. The attention kernels read it through these.
pub(super) trait KvElem: Copy + Send + Sync + 'static {
    fn from_f32(x: f32) -> Self;
    fn to_f32(self) -> f32;
    /// The buffer's values, when it holds this type.
    fn slice(buf: &KvBuf) -> Option<&[Self]>;
    /// Eight values from `p` as f32 lanes.
    ///
    /// # Safety
    /// `p` must be valid for eight reads, on a CPU with AVX2 and F16C (the kernels' AVX2
    /// path requires both).
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;
}

impl KvElem for f32 {
    fn from_f32(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    fn slice(buf: &KvBuf) -> Option<&[f32]> {
        match buf {
            KvBuf::F32(v) => Some(v),
            KvBuf::F16(_) => None,
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> std::arch::x86_64::__m256 {
        std::arch::x86_64::_mm256_loadu_ps(p)
    }
}

impl KvElem for f16 {
    fn from_f32(x: f32) -> f16 {
        f16::from_f32(x)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    fn slice(buf: &KvBuf) -> Option<&[f16]> {
        match buf {
            KvBuf::F16(v) => Some(v),
            KvBuf::F32(_) => None,
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const f16) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }
}

/// One layer's keys or values.
#[derive(Clone)]
pub(super) enum KvBuf {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

impl KvBuf {
    fn new(t: KvType) -> Self {
        match t {
            KvType::F32 => Self::F32(Vec::new()),
            KvType::F16 => Self::F16(Vec::new()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::F16(v) => v.len(),
        }
    }

    fn resize(&mut self, n: usize) {
        match self {
            Self::F32(v) => v.resize(n, 0.0),
            Self::F16(v) => v.resize(n, f16::ZERO),
        }
    }

    /// Stores `src` from element `at` on, rounded to the buffer's type.
    pub(super) fn write(&mut self, at: usize, src: &[f32]) {
        match self {
            Self::F32(v) => v[at..at + src.len()].copy_from_slice(src),
            Self::F16(v) => v[at..at + src.len()].iter_mut().zip(src).for_each(|(d, &x)| *d = KvElem::from_f32(x)),
        }
    }

    /// The first `n` elements as a new buffer.
    fn prefix(&self, n: usize) -> Self {
        match self {
            Self::F32(v) => Self::F32(v[..n].to_vec()),
            Self::F16(v) => Self::F16(v[..n].to_vec()),
        }
    }

    /// The values as `T`. Every buffer of a model holds its one cache type, and the model
    /// asks for that type.
    pub(super) fn of<T: KvElem>(&self) -> &[T] {
        T::slice(self).expect("a cache read as the type it holds")
    }
}

/// One sequence's K/V state: per layer, `[pos][kv_heads * head_dim]`, grown by doubling.
#[derive(Clone)]
pub(super) struct Cache {
    pub(super) k: Vec<KvBuf>,
    pub(super) v: Vec<KvBuf>,
    pub(super) pos: usize,
    t: KvType,
}

impl Cache {
    pub(super) fn new(t: KvType) -> Self {
        Self { k: Vec::new(), v: Vec::new(), pos: 0, t }
    }

    pub(super) fn kv_type(&self) -> KvType {
        self.t
    }

    /// Makes room for `len` positions in every layer.
    pub(super) fn reserve(&mut self, layers: usize, len: usize, kvd: usize, context: usize) {
        let t = self.t;
        self.k.resize_with(layers, || KvBuf::new(t));
        self.v.resize_with(layers, || KvBuf::new(t));
        let need = len * kvd;
        for (k, v) in self.k.iter_mut().zip(self.v.iter_mut()) {
            if k.len() < need {
                let cap = len.next_power_of_two().max(256).min(context) * kvd;
                k.resize(cap.max(need));
                v.resize(cap.max(need));
            }
        }
    }

    /// A copy holding only the positions in use (`kvd` values each).
    pub(super) fn used(&self, kvd: usize) -> Self {
        let n = self.pos * kvd;
        Self { k: self.k.iter().map(|k| k.prefix(n)).collect(), v: self.v.iter().map(|v| v.prefix(n)).collect(), pos: self.pos, t: self.t }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_stores_its_type_and_rounds_to_it() {
        for t in [KvType::F32, KvType::F16] {
            let mut c = Cache::new(t);
            c.reserve(2, 3, 4, 100);
            // Room for 256 positions (the smallest step), capped by the context.
            assert_eq!(c.k[1].len(), 100 * 4);
            c.k[1].write(4, &[1.0, 1.0 / 3.0, -2.5, 65504.0]);
            c.pos = 2;
            let kept = c.used(4);
            assert_eq!(kept.k[1].len(), 8);
            let got: Vec<f32> = match t {
                KvType::F32 => kept.k[1].of::<f32>()[4..].to_vec(),
                KvType::F16 => kept.k[1].of::<f16>()[4..].iter().map(|x| x.to_f32()).collect(),
            };
            let third = if t == KvType::F32 { 1.0 / 3.0 } else { f16::from_f32(1.0 / 3.0).to_f32() };
            assert_eq!(got, [1.0, third, -2.5, 65504.0]);
            assert!(t == KvType::F32 || third != 1.0 / 3.0);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_loads_widen_as_the_scalar_conversion_does() {
        if crate::engine::cpu::kernels::best() == crate::engine::cpu::kernels::Simd::Scalar {
            return;
        }
        let xs: Vec<f16> = [0.0, -0.0, 1.0, 1e-7, -3.5, 65504.0, 0.1, 2e-5, 7.0].iter().map(|&x| f16::from_f32(x)).collect();
        let mut out = [0f32; 8];
        // SAFETY: best() found AVX2 and F16C; xs holds nine values.
        unsafe { std::arch::x86_64::_mm256_storeu_ps(out.as_mut_ptr(), f16::load8(xs[1..].as_ptr())) };
        let want: Vec<f32> = xs[1..].iter().map(|x| x.to_f32()).collect();
        assert_eq!(out.map(f32::to_bits).to_vec(), want.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    }
}
