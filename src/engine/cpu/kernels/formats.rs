//! The GGUF weight blocks the fast decoder reads, as ggml lays them out (`block_q4_0` …
//! `block_q6_K` in ggml-common.h), and their scalar decoding: the reference that the SIMD
//! kernels are tested against, and the tests hold to candle's own dequantization.
//!
//! Every format is read as 32-value sub-blocks, each of which meets one activation block
//! ([`super::ActBlock`]): value `i` of a sub-block is `q[i] · scale[i / 16] + offset`,
//! with small integers `q`. So a dot product is integer sums times a scale or two, plus
//! `offset · Σx`, whatever the format:
//! - Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: one 32-value block with its own f16 scale (and min);
//! - Q4_K, Q5_K: 256-value super-blocks of eight sub-blocks, each with a 6-bit scale and
//!   min times the super-block's f16 `d` and `dmin`;
//! - Q6_K: 256-value super-blocks of sixteen 16-value halves, each with an 8-bit scale
//!   (the reason for two scales per sub-block).

use candle_core::quantized::GgmlDType;
use half::f16;

/// Values in one activation block, and in one sub-block of every weight format.
pub const QK: usize = 32;

/// Weight formats with a fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightType {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

impl WeightType {
    pub const ALL: [WeightType; 8] = [WeightType::Q4_0, WeightType::Q4_1, WeightType::Q5_0, WeightType::Q5_1, WeightType::Q8_0, WeightType::Q4K, WeightType::Q5K, WeightType::Q6K];

    /// Bytes per block ([`WeightType::block_values`] values).
    pub fn block_bytes(self) -> usize {
        match self {
            WeightType::Q4_0 => 18,
            WeightType::Q4_1 => 20,
            WeightType::Q5_0 => 22,
            WeightType::Q5_1 => 24,
            WeightType::Q8_0 => 34,
            WeightType::Q4K => 144,
            WeightType::Q5K => 176,
            WeightType::Q6K => 210,
        }
    }

    /// Values per block: 32, or a K-quant's 256-value super-block.
    pub fn block_values(self) -> usize {
        match self {
            WeightType::Q4K | WeightType::Q5K | WeightType::Q6K => 256,
            _ => QK,
        }
    }

    /// A K-quant, which meets activations quantized per 256 values
    /// ([`super::quantize_act_k`]) rather than per 32.
    pub fn is_k(self) -> bool {
        self.block_values() == 256
    }

    /// Bytes of a row of `cols` values (a multiple of [`WeightType::block_values`]).
    pub fn row_bytes(self, cols: usize) -> usize {
        cols / self.block_values() * self.block_bytes()
    }

    /// 32-value sub-blocks in a row of `row_bytes` bytes: the activation blocks it meets.
    pub fn sub_blocks(self, row_bytes: usize) -> usize {
        row_bytes / self.block_bytes() * (self.block_values() / QK)
    }

    /// The name llama.cpp gives the type (`q4_0` … `q6_K`, compared without case).
    pub fn label(self) -> &'static str {
        match self {
            WeightType::Q4_0 => "q4_0",
            WeightType::Q4_1 => "q4_1",
            WeightType::Q5_0 => "q5_0",
            WeightType::Q5_1 => "q5_1",
            WeightType::Q8_0 => "q8_0",
            WeightType::Q4K => "q4_K",
            WeightType::Q5K => "q5_K",
            WeightType::Q6K => "q6_K",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.label().eq_ignore_ascii_case(name.trim()))
    }

    /// The `general.file_type` (llama_ftype) of a file made of this type only.
    pub fn file_type(self) -> u32 {
        match self {
            WeightType::Q4_0 => 2,
            WeightType::Q4_1 => 3,
            WeightType::Q8_0 => 7,
            WeightType::Q5_0 => 8,
            WeightType::Q5_1 => 9,
            WeightType::Q4K => 14,
            WeightType::Q5K => 16,
            WeightType::Q6K => 18,
        }
    }

    pub fn from_ggml(d: GgmlDType) -> Option<Self> {
        Some(match d {
            GgmlDType::Q4_0 => WeightType::Q4_0,
            GgmlDType::Q4_1 => WeightType::Q4_1,
            GgmlDType::Q5_0 => WeightType::Q5_0,
            GgmlDType::Q5_1 => WeightType::Q5_1,
            GgmlDType::Q8_0 => WeightType::Q8_0,
            GgmlDType::Q4K => WeightType::Q4K,
            GgmlDType::Q5K => WeightType::Q5K,
            GgmlDType::Q6K => WeightType::Q6K,
            _ => return None,
        })
    }

    pub fn ggml(self) -> GgmlDType {
        match self {
            WeightType::Q4_0 => GgmlDType::Q4_0,
            WeightType::Q4_1 => GgmlDType::Q4_1,
            WeightType::Q5_0 => GgmlDType::Q5_0,
            WeightType::Q5_1 => GgmlDType::Q5_1,
            WeightType::Q8_0 => GgmlDType::Q8_0,
            WeightType::Q4K => GgmlDType::Q4K,
            WeightType::Q5K => GgmlDType::Q5K,
            WeightType::Q6K => GgmlDType::Q6K,
        }
    }
}

#[inline]
pub(super) fn h(b: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// Sub-block `k` (0..8) of a Q4_K/Q5_K super-block: its 6-bit scale and min, packed in
/// 12 bytes (ggml's `get_scale_min_k4`).
#[inline]
pub(super) fn scale_min_k4(k: usize, s: &[u8]) -> (u8, u8) {
    if k < 4 {
        (s[k] & 63, s[k + 4] & 63)
    } else {
        ((s[k + 4] & 0x0F) | ((s[k - 4] >> 6) << 4), (s[k + 4] >> 4) | ((s[k] >> 6) << 4))
    }
}

/// The inverse of [`scale_min_k4`]: eight 6-bit scales and mins into 12 bytes.
pub(super) fn pack_scale_min_k4(sc: &[u8; 8], m: &[u8; 8], s: &mut [u8]) {
    for k in 0..4 {
        s[k] = (sc[k] & 63) | (sc[k + 4] >> 4) << 6;
        s[k + 4] = (m[k] & 63) | (m[k + 4] >> 4) << 6;
        s[k + 8] = (sc[k + 4] & 0x0F) | (m[k + 4] & 0x0F) << 4;
    }
}

/// One 32-value sub-block, decoded: value `i` is `q[i] · scale[i / 16] + offset`.
pub struct Sub {
    pub q: [i32; QK],
    pub scale: [f32; 2],
    pub offset: f32,
}

/// Decodes sub-block `j` of a row.
pub fn sub_block(t: WeightType, row: &[u8], j: usize) -> Sub {
    let per = t.block_values() / QK;
    let bb = t.block_bytes();
    let b = &row[j / per * bb..(j / per + 1) * bb];
    let k = j % per;
    let mut q = [0i32; QK];
    let (scale, offset) = match t {
        WeightType::Q8_0 => {
            for (i, v) in q.iter_mut().enumerate() {
                *v = b[2 + i] as i8 as i32;
            }
            (h(b, 0), 0.0)
        }
        WeightType::Q4_0 | WeightType::Q4_1 => {
            let qs = if t == WeightType::Q4_1 { &b[4..20] } else { &b[2..18] };
            for i in 0..16 {
                q[i] = (qs[i] & 0x0F) as i32;
                q[i + 16] = (qs[i] >> 4) as i32;
            }
            let d = h(b, 0);
            (d, if t == WeightType::Q4_1 { h(b, 2) } else { -8.0 * d })
        }
        WeightType::Q5_0 | WeightType::Q5_1 => {
            let at = if t == WeightType::Q5_1 { 4 } else { 2 };
            let qh = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            let qs = &b[at + 4..at + 20];
            for i in 0..16 {
                q[i] = (qs[i] & 0x0F) as i32 | (((qh >> i) & 1) << 4) as i32;
                q[i + 16] = (qs[i] >> 4) as i32 | (((qh >> (i + 16)) & 1) << 4) as i32;
            }
            let d = h(b, 0);
            (d, if t == WeightType::Q5_1 { h(b, 2) } else { -16.0 * d })
        }
        WeightType::Q4K | WeightType::Q5K => {
            let (sc, m) = scale_min_k4(k, &b[4..16]);
            // Sub-blocks 2c and 2c+1 share 32 bytes: low nibbles, then high nibbles.
            let qs_at = if t == WeightType::Q5K { 48 } else { 16 };
            let qs = &b[qs_at + k / 2 * 32..qs_at + k / 2 * 32 + 32];
            for (i, v) in q.iter_mut().enumerate() {
                *v = if k % 2 == 0 { qs[i] & 0x0F } else { qs[i] >> 4 } as i32;
                if t == WeightType::Q5K {
                    // The fifth bit of value i of sub-block k is bit k of qh[i].
                    *v |= (((b[16 + i] >> k) & 1) << 4) as i32;
                }
            }
            (h(b, 0) * sc as f32, -h(b, 2) * m as f32)
        }
        WeightType::Q6K => {
            // Two 128-value halves; in each, sub-block m takes the low (m < 2) or high
            // nibbles of ql[(m % 2) * 32..], and bits 2m, 2m+1 of qh.
            let (n, m) = (k / 4, k % 4);
            let ql = &b[n * 64 + m % 2 * 32..n * 64 + m % 2 * 32 + 32];
            let qh = &b[128 + n * 32..128 + n * 32 + 32];
            for (i, v) in q.iter_mut().enumerate() {
                let lo = if m < 2 { ql[i] & 0x0F } else { ql[i] >> 4 };
                *v = (lo | ((qh[i] >> (2 * m)) & 3) << 4) as i32 - 32;
            }
            let d = h(b, 208);
            let sc = |s: usize| b[192 + n * 8 + 2 * m + s] as i8 as f32 * d;
            return Sub { q, scale: [sc(0), sc(1)], offset: 0.0 };
        }
    };
    Sub { q, scale: [scale, scale], offset }
}

/// Dequantizes one row of `out.len()` values.
pub fn dequantize_row(t: WeightType, row: &[u8], out: &mut [f32]) {
    for (j, o) in out.chunks_exact_mut(QK).enumerate().take(t.sub_blocks(row.len())) {
        let s = sub_block(t, row, j);
        for (i, v) in o.iter_mut().enumerate() {
            *v = s.q[i] as f32 * s.scale[i / 16] + s.offset;
        }
    }
}

/// Scalar reference: dot product of one weight row with quantized activations.
pub fn dot_scalar(t: WeightType, row: &[u8], act: &[super::ActBlock]) -> f32 {
    let mut acc = 0f32;
    for (j, a) in act.iter().enumerate().take(t.sub_blocks(row.len())) {
        let s = sub_block(t, row, j);
        let half = |r: std::ops::Range<usize>| r.map(|i| s.q[i] * a.qs[i] as i32).sum::<i32>() as f32;
        acc += a.d * (s.scale[0] * half(0..16) + s.scale[1] * half(16..32)) + s.offset * a.s;
    }
    acc
}

/// `blocks` blocks of random weights with small positive scales, as real files have, from
/// a caller's random stream: for tests, benchmarks and synthetic models.
pub fn random_blocks(t: WeightType, blocks: usize, next: &mut impl FnMut() -> u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(blocks * t.block_bytes());
    let f16_bytes = |v: f32| f16::from_f32(v).to_bits().to_le_bytes();
    for _ in 0..blocks {
        let start = out.len();
        out.extend((0..t.block_bytes()).map(|_| next() as u8));
        let b = &mut out[start..];
        let small = |r: u64, lo: f32, hi: f32| lo + (r % 1000) as f32 / 1000.0 * (hi - lo);
        // Scales that keep weights within about ±0.2 whatever the format's integer range,
        // as trained weights are: a random model with larger ones is chaotic, and two
        // correct engines then disagree on it.
        let (lo, hi) = match t {
            WeightType::Q4_0 | WeightType::Q4_1 => (0.001, 0.02),
            WeightType::Q5_0 | WeightType::Q5_1 => (0.0005, 0.01),
            WeightType::Q8_0 => (0.0001, 0.0015),
            WeightType::Q4K => (0.00002, 0.0002),
            WeightType::Q5K => (0.00001, 0.0001),
            WeightType::Q6K => (0.00002, 0.00005),
        };
        let d = f16_bytes(small(next(), lo, hi));
        match t {
            WeightType::Q6K => b[208..210].copy_from_slice(&d),
            _ => b[0..2].copy_from_slice(&d),
        }
        // Offsets that centre the weights on zero, as trained weights are (uncentred
        // random rows share a large mean, which then dominates every logit).
        let dv = small(next(), lo, hi);
        match t {
            WeightType::Q4_1 | WeightType::Q5_1 => {
                let zero = if t == WeightType::Q4_1 { 8.0 } else { 16.0 };
                b[2..4].copy_from_slice(&f16_bytes(-zero * f16::from_f32(dv).to_f32()));
                b[0..2].copy_from_slice(&f16_bytes(dv));
            }
            WeightType::Q4K | WeightType::Q5K => {
                // Each sub-block's min equals its scale, so dmin = d · the middle q.
                let mid = if t == WeightType::Q4K { 7.5 } else { 15.5 };
                b[0..2].copy_from_slice(&f16_bytes(dv));
                b[2..4].copy_from_slice(&f16_bytes(mid * dv));
                let sc: [u8; 8] = std::array::from_fn(|_| (next() % 64) as u8);
                pack_scale_min_k4(&sc, &sc, &mut b[4..16]);
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{QStorage, QTensor};
    use candle_core::Device;

    fn stream(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// candle's dequantization of every format is written apart from ours (from ggml's
    /// reference C): the same random bytes must give the same values.
    #[test]
    fn dequantize_row_equals_candles_dequantization() {
        let mut next = stream(0x5EED);
        for t in WeightType::ALL {
            let blocks = 2048 / t.block_values();
            let bytes = random_blocks(t, blocks, &mut next);
            let cols = blocks * t.block_values();
            let qt = QTensor::new(QStorage::from_data(std::borrow::Cow::Borrowed(&bytes), &Device::Cpu, t.ggml()).unwrap(), &[1, cols]).unwrap();
            let want: Vec<f32> = qt.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let mut got = vec![0f32; cols];
            dequantize_row(t, &bytes, &mut got);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{t:?} value {i}: {g} vs candle's {w}");
            }
            assert!(got.iter().any(|v| *v != 0.0), "{t:?}: all zero");
        }
    }

    #[test]
    fn packed_k_scales_unpack_to_what_was_packed() {
        let sc: [u8; 8] = [0, 63, 17, 42, 5, 60, 33, 1];
        let m: [u8; 8] = [63, 0, 9, 50, 31, 2, 44, 61];
        let mut packed = [0u8; 12];
        pack_scale_min_k4(&sc, &m, &mut packed);
        for k in 0..8 {
            assert_eq!(scale_min_k4(k, &packed), (sc[k], m[k]), "sub-block {k}");
        }
    }

    #[test]
    fn layouts_add_up() {
        for t in WeightType::ALL {
            assert_eq!(WeightType::from_ggml(t.ggml()), Some(t));
            assert_eq!(WeightType::parse(&t.label().to_uppercase()), Some(t));
            assert_eq!(t.block_bytes(), t.ggml().type_size(), "{t:?}");
            assert_eq!(t.block_values(), t.ggml().block_size(), "{t:?}");
            assert_eq!(t.sub_blocks(t.row_bytes(1536)), 1536 / QK);
        }
        assert_eq!(WeightType::from_ggml(GgmlDType::F16), None);
    }
}
