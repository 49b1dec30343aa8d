//! The fast decoder's K/V cache: per sequence and layer, the keys (and values) of each
//! key/value head as one run of `[pos][head_dim]` rows ([`Layout`]), stored as f32, f16
//! or q8_0.
//!
//! Why head by head: attention reads one head's keys and values from the first position
//! to the last. Kept position-major (`[pos][kv_heads * head_dim]`, as the projections
//! write them), one head's rows were 256-byte pieces 768 bytes apart (SmolLM2), which the
//! hardware prefetchers follow poorly: decode after 4,000 tokens stalled on those loads
//! (perf, 2-core EPYC). Head by head they are one stream per head, at the cost of a
//! relayout when the cache grows (by doubling, as a `Vec` copies anyway).
//!
//! Why smaller types are offered: decode after a long context is bound by reading this
//! cache. At 8,000 tokens SmolLM2-135M reads 368 MB of f32 keys and values for every new
//! token, more than its weights (about 90 MB); f16 halves that (llama.cpp's default), and
//! q8_0 (llama.cpp's `-ctk q8_0`: blocks of 32 values as int8 with one scale) nearly
//! halves it again. What they cost is rounding each key and value, which can move a
//! near-tie in greedy decoding (docs/performance.md states how often).

use crate::engine::model::KvType;
use half::f16;

/// Values per q8_0 block: one scale each, as ggml's `QK8_0`.
pub(super) const Q8_BLOCK: usize = super::kernels::QK;

/// A value type stored one element per value (f32, f16): how it is rounded and read.
pub(super) trait KvElem: Copy + Send + Sync + 'static {
    /// [`KvRows::DECODE_GROUP`] for rows of this type.
    const DECODE_GROUP: usize = 4;
    fn from_f32(x: f32) -> Self;
    fn to_f32(self) -> f32;
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
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> std::arch::x86_64::__m256 {
        std::arch::x86_64::_mm256_loadu_ps(p)
    }
}

impl KvElem for f16 {
    /// Three: an f16 value is widened on every read, and the decode tile reads each key
    /// once for the whole group where the general tile reads it once per head. SmolLM2's
    /// three heads per key/value head after 8,000 tokens (AVX2-only EPYC, the attention
    /// alone): 1.13-1.5x; with f32 the same group was 0.8-0.96x as fast (docs/long-context.md).
    const DECODE_GROUP: usize = 3;
    fn from_f32(x: f32) -> f16 {
        f16::from_f32(x)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const f16) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }
}

/// A read-only view of one layer's keys or values, as the attention kernels read it:
/// value `i` of the flat buffer (laid out as [`Layout`] says), one at a time or eight.
pub(super) trait KvRows: Copy + Send + Sync {
    /// Whether a tile is better widened to f32 once than read in place by every query
    /// vector: a q8_0 value costs a conversion and a multiply to read, and a prefill
    /// block's 16 rows × its query heads read each key and value of a tile 48 times.
    const WIDEN: bool = false;
    /// The fewest query heads per key/value head for which a decoded row takes
    /// `attention::decode`'s tile (the same bits as the general tile; which is faster
    /// depends on the group and on what a read costs).
    const DECODE_GROUP: usize = 4;
    /// Values `from..from + out.len()` into `out`, each equal to [`KvRows::at`].
    fn widen(self, from: usize, out: &mut [f32]) {
        out.iter_mut().enumerate().for_each(|(i, o)| *o = self.at(from + i));
    }
    /// Values held.
    fn len(self) -> usize;
    /// Value `i`, widened (and scaled) to f32.
    fn at(self, i: usize) -> f32;
    /// Whether both views read the same buffer (rows of one sequence).
    fn same(self, other: Self) -> bool;
    /// Values `i..i + 8` as f32 lanes, equal to [`KvRows::at`] of each.
    ///
    /// # Safety
    /// `i + 8 <= len` and `i` a multiple of 8 (so eight values never straddle a q8_0
    /// block), on a CPU with AVX2 and F16C.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(self, i: usize) -> std::arch::x86_64::__m256;
    /// Asks the CPU to start loading values `from..to` (clamped to the view) into its
    /// caches: a hint, with no effect on any result, which a type whose tiles do not wait
    /// on their loads declines (q8_0).
    fn prefetch(self, from: usize, to: usize);
}

/// Starts loading the cache lines of `bytes` bytes from `p` into every level of the CPU's
/// caches (the T0 hint; T1, L2 only, measured no different): a hint only. Why: decode
/// after a long context stalled on the cache's loads (perf, 2-core EPYC, rows then
/// position-major: the loop over the value rows took two fifths of the attention's time,
/// its samples on the first multiply-add of each row).
#[inline(always)]
fn prefetch_bytes(p: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    for off in (0..bytes).step_by(64) {
        // SAFETY: a prefetch never faults and changes no state a program can see; the
        // address stays inside the slice the caller clamped to.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.wrapping_add(off) as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, bytes);
}

/// `from..to` clamped to `len`, as a (start, count) pair.
#[inline(always)]
fn clamp(from: usize, to: usize, len: usize) -> (usize, usize) {
    let to = to.min(len);
    (from.min(to), to - from.min(to))
}

/// Where a layer's values live: head `h`'s row at position `p` starts at value
/// `(h * cap + p) * hd`, where `cap` is the positions the buffer has room for. Every
/// buffer holds `cap` positions of every head, so its length gives `cap`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Layout {
    cap: usize,
    hd: usize,
}

impl Layout {
    /// The layout of a buffer of `len` values, `heads` heads of `hd`.
    #[inline(always)]
    pub(super) fn of(len: usize, heads: usize, hd: usize) -> Self {
        debug_assert_eq!(len % (heads * hd), 0, "a buffer holds whole positions");
        Self { cap: len / (heads * hd), hd }
    }

    /// The first value of head `h`'s row at position `p`; rows of one head are `hd` apart.
    #[inline(always)]
    pub(super) fn at(self, p: usize, h: usize) -> usize {
        (h * self.cap + p) * self.hd
    }
}

impl<T: KvElem> KvRows for &[T] {
    const DECODE_GROUP: usize = T::DECODE_GROUP;
    #[inline(always)]
    fn len(self) -> usize {
        <[T]>::len(self)
    }
    #[inline(always)]
    fn at(self, i: usize) -> f32 {
        self[i].to_f32()
    }
    fn same(self, other: Self) -> bool {
        std::ptr::eq(self, other)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(self, i: usize) -> std::arch::x86_64::__m256 {
        T::load8(self.as_ptr().add(i))
    }
    #[inline(always)]
    fn prefetch(self, from: usize, to: usize) {
        let (i, n) = clamp(from, to, <[T]>::len(self));
        prefetch_bytes(self[i..].as_ptr() as *const u8, n * std::mem::size_of::<T>());
    }
}

/// q8_0 values: `q[i] * d[i / Q8_BLOCK]`.
#[derive(Clone, Copy)]
pub(super) struct Q8Rows<'a> {
    q: &'a [i8],
    d: &'a [f32],
}

impl KvRows for Q8Rows<'_> {
    const WIDEN: bool = true;
    /// Block by block, one scale each, so the loop vectorizes.
    fn widen(self, from: usize, out: &mut [f32]) {
        let (mut i, mut rest) = (from, out);
        while !rest.is_empty() {
            let n = (Q8_BLOCK - i % Q8_BLOCK).min(rest.len());
            let (head, tail) = rest.split_at_mut(n);
            let d = self.d[i / Q8_BLOCK];
            for (o, &q) in head.iter_mut().zip(&self.q[i..i + n]) {
                *o = q as f32 * d;
            }
            i += n;
            rest = tail;
        }
    }
    #[inline(always)]
    fn len(self) -> usize {
        self.q.len()
    }
    #[inline(always)]
    fn at(self, i: usize) -> f32 {
        self.q[i] as f32 * self.d[i / Q8_BLOCK]
    }
    fn same(self, other: Self) -> bool {
        std::ptr::eq(self.q, other.q)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(self, i: usize) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        // Eight int8 → eight int32 → eight floats, times the block's scale: the same
        // product, rounded once, as `at`.
        let q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(self.q.as_ptr().add(i) as *const __m128i)));
        _mm256_mul_ps(q, _mm256_set1_ps(*self.d.get_unchecked(i / Q8_BLOCK)))
    }
    /// No hint: a q8_0 tile is a quarter of an f32 tile's bytes and waits on its widening,
    /// not its loads. With the hint, decode after 4,000 tokens ran at 62.0 tok/s against
    /// 69.4 without, where an f32 cache ran at 57.2 with it and 54.5 without (2-core Xeon,
    /// rows head by head, medians of four interleaved rounds).
    #[inline(always)]
    fn prefetch(self, _from: usize, _to: usize) {}
}

/// Rounds `src` (whole blocks) to q8_0, block by block.
fn quantize_q8(src: &[f32], q: &mut [i8], d: &mut [f32]) {
    for ((xs, qs), d) in src.chunks_exact(Q8_BLOCK).zip(q.chunks_exact_mut(Q8_BLOCK)).zip(d.iter_mut()) {
        *d = super::kernels::quantize_block(xs, qs).0;
    }
}

/// One layer's keys or values.
#[derive(Clone)]
pub(super) enum KvBuf {
    F32(Vec<f32>),
    F16(Vec<f16>),
    /// Values as int8, and one scale per [`Q8_BLOCK`] of them.
    Q8 { q: Vec<i8>, d: Vec<f32> },
}

impl KvBuf {
    /// `values` stored as type `t` (whole q8_0 blocks for q8_0).
    #[cfg(test)]
    pub(super) fn stored(t: KvType, values: &[f32]) -> Self {
        let mut b = Self::zeroed(t, values.len());
        b.write(0, values);
        b
    }

    pub(super) fn kv_type(&self) -> KvType {
        match self {
            Self::F32(_) => KvType::F32,
            Self::F16(_) => KvType::F16,
            Self::Q8 { .. } => KvType::Q8,
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::F16(v) => v.len(),
            Self::Q8 { q, .. } => q.len(),
        }
    }

    /// `n` zeros of type `t` (for q8_0, whole blocks of them).
    fn zeroed(t: KvType, n: usize) -> Self {
        match t {
            KvType::F32 => Self::F32(vec![0.0; n]),
            KvType::F16 => Self::F16(vec![f16::ZERO; n]),
            KvType::Q8 => Self::Q8 { q: vec![0; n], d: vec![0.0; n.div_ceil(Q8_BLOCK)] },
        }
    }

    /// A buffer with room for `cap` positions of `heads` heads of `hd` values, holding the
    /// first `keep` positions of this one (at most what both have room for), each head's
    /// rows moved to where [`Layout`] puts them for the new room.
    fn relayout(&self, cap: usize, keep: usize, heads: usize, hd: usize) -> Self {
        /// Copies each head's first `keep` rows of `w` items from `old` rows apart to
        /// `new` rows apart.
        fn moved<T: Copy>(src: &[T], dst: &mut [T], (old, new): (usize, usize), keep: usize, heads: usize, w: usize) {
            for h in 0..heads {
                dst[h * new * w..][..keep * w].copy_from_slice(&src[h * old * w..][..keep * w]);
            }
        }
        let old = self.len() / (heads * hd);
        let (keep, caps) = (keep.min(old).min(cap), (old, cap));
        let mut out = Self::zeroed(self.kv_type(), cap * heads * hd);
        match (self, &mut out) {
            (Self::F32(a), Self::F32(b)) => moved(a, b, caps, keep, heads, hd),
            (Self::F16(a), Self::F16(b)) => moved(a, b, caps, keep, heads, hd),
            // A head's row is whole q8_0 blocks (the loader refuses q8_0 otherwise), so
            // its scales move as its values do, hd / Q8_BLOCK of them a row.
            (Self::Q8 { q, d }, Self::Q8 { q: q2, d: d2 }) => {
                moved(q, q2, caps, keep, heads, hd);
                moved(d, d2, caps, keep, heads, hd / Q8_BLOCK);
            }
            _ => unreachable!("zeroed() keeps the type"),
        }
        out
    }

    /// Stores one position's keys (or values) of every head, `src` as the projection
    /// gives them (`[heads][hd]`), at position `p`, each head's row where [`Layout`] puts
    /// it, rounded to the buffer's type.
    pub(super) fn write_position(&mut self, p: usize, heads: usize, src: &[f32]) {
        let hd = src.len() / heads;
        let layout = Layout::of(self.len(), heads, hd);
        for (h, row) in src.chunks_exact(hd).enumerate() {
            self.write(layout.at(p, h), row);
        }
    }

    /// Stores `src` from element `at` on, rounded to the buffer's type. For q8_0 both are
    /// whole blocks: a head's row is (every model's head_dim is a multiple of 32 for a
    /// q8_0 cache; the loader refuses q8_0 otherwise).
    pub(super) fn write(&mut self, at: usize, src: &[f32]) {
        match self {
            Self::F32(v) => v[at..at + src.len()].copy_from_slice(src),
            Self::F16(v) => v[at..at + src.len()].iter_mut().zip(src).for_each(|(d, &x)| *d = KvElem::from_f32(x)),
            Self::Q8 { q, d } => {
                assert!(at % Q8_BLOCK == 0 && src.len() % Q8_BLOCK == 0, "q8_0 writes whole blocks");
                quantize_q8(src, &mut q[at..at + src.len()], &mut d[at / Q8_BLOCK..(at + src.len()) / Q8_BLOCK]);
            }
        }
    }

    /// The values as f32 slices; `None` for another type.
    pub(super) fn f32s(&self) -> Option<&[f32]> {
        if let Self::F32(v) = self { Some(v) } else { None }
    }

    /// The values as f16 slices; `None` for another type.
    pub(super) fn f16s(&self) -> Option<&[f16]> {
        if let Self::F16(v) = self { Some(v) } else { None }
    }

    /// The values as q8_0 rows; `None` for another type.
    pub(super) fn q8s(&self) -> Option<Q8Rows<'_>> {
        if let Self::Q8 { q, d } = self { Some(Q8Rows { q, d }) } else { None }
    }

    /// Every value widened to f32 (tests and references).
    #[cfg(test)]
    pub(super) fn widened(&self) -> Vec<f32> {
        match self {
            Self::F32(v) => v.clone(),
            Self::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            Self::Q8 { .. } => {
                let r = self.q8s().expect("q8_0");
                (0..r.len()).map(|i| r.at(i)).collect()
            }
        }
    }
}

/// One sequence's K/V state: per layer, each head's `[pos][head_dim]` rows ([`Layout`]),
/// grown by doubling.
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

    /// Makes room for `len` positions of `heads` heads of `hd` values in every layer.
    pub(super) fn reserve(&mut self, layers: usize, len: usize, heads: usize, hd: usize, context: usize) {
        let t = self.t;
        self.k.resize_with(layers, || KvBuf::zeroed(t, 0));
        self.v.resize_with(layers, || KvBuf::zeroed(t, 0));
        for (k, v) in self.k.iter_mut().zip(self.v.iter_mut()) {
            if k.len() < len * heads * hd {
                let cap = len.next_power_of_two().max(256).min(context).max(len);
                *k = k.relayout(cap, self.pos, heads, hd);
                *v = v.relayout(cap, self.pos, heads, hd);
            }
        }
    }

    /// A copy holding only the positions in use, with room for no more.
    pub(super) fn used(&self, heads: usize, hd: usize) -> Self {
        let keep = |b: &KvBuf| b.relayout(self.pos, self.pos, heads, hd);
        Self { k: self.k.iter().map(keep).collect(), v: self.v.iter().map(keep).collect(), pos: self.pos, t: self.t }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_stores_its_type_and_rounds_to_it() {
        let row: Vec<f32> = (0..32).map(|i| [1.0, 1.0 / 3.0, -2.5, 100.0][i % 4] * (1.0 + i as f32 / 64.0)).collect();
        for t in [KvType::F32, KvType::F16, KvType::Q8] {
            let mut c = Cache::new(t);
            c.reserve(2, 3, 1, 32, 100);
            // Room for 256 positions (the smallest step), capped by the context.
            assert_eq!(c.k[1].len(), 100 * 32);
            c.k[1].write_position(1, 1, &row);
            c.pos = 2;
            let kept = c.used(1, 32);
            assert_eq!((kept.k[1].len(), kept.k[1].kv_type()), (64, t));
            let got = &kept.k[1].widened()[32..];
            let worst = got.iter().zip(&row).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            match t {
                KvType::F32 => assert_eq!(got, &row[..]),
                // f16: 11 significant bits; q8_0: half a step of max|x| / 127 = 0.79.
                KvType::F16 => assert!(worst > 0.0 && worst <= 150.0 / 2048.0, "{worst}"),
                KvType::Q8 => assert!(worst > 0.01 && worst <= 0.5 * 150.0 / 127.0 + 1e-4, "{worst}"),
            }
        }
    }

    /// Growing a cache (by doubling, past 256 positions) and copying the positions in use
    /// keep every head's rows where [`Layout`] puts them, in every type: three heads of
    /// 64, each row whole numbers with ±127 in every block, which f16 and q8_0 (a scale of
    /// 1) hold exactly.
    #[test]
    fn growing_and_copying_a_cache_keeps_every_heads_rows() {
        let (heads, hd) = (3, 64);
        let row = |p: usize| -> Vec<f32> { (0..heads * hd).map(|i| if i % 32 == 0 { 127.0 } else { ((p * 7 + i * 3) % 255) as f32 - 127.0 }).collect() };
        for t in [KvType::F32, KvType::F16, KvType::Q8] {
            let mut c = Cache::new(t);
            for p in 0..300 {
                c.reserve(1, p + 1, heads, hd, 4096);
                c.k[0].write_position(p, heads, &row(p));
                c.pos = p + 1;
            }
            assert_eq!(c.k[0].len(), 512 * heads * hd, "{t:?}: doubled from 256 to 512 positions");
            for b in [&c.k[0], &c.used(heads, hd).k[0]] {
                let (all, layout) = (b.widened(), Layout::of(b.len(), heads, hd));
                for p in 0..300 {
                    for (h, want) in row(p).chunks_exact(hd).enumerate() {
                        assert_eq!(&all[layout.at(p, h)..][..hd], want, "{t:?}: head {h} at position {p}");
                    }
                }
            }
            assert_eq!(c.used(heads, hd).k[0].len(), 300 * heads * hd);
        }
    }

    /// q8_0 rounds as ggml does: the block's largest magnitude is exactly ±127 steps, a
    /// zero block stays zero, and each block has its own scale.
    #[test]
    fn q8_blocks_round_to_their_own_scale() {
        let mut xs: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) / 7.0).collect();
        xs[32..].iter_mut().for_each(|x| *x *= 1e-3);
        let b = KvBuf::stored(KvType::Q8, &[&xs[..], &[0.0; 32]].concat());
        let KvBuf::Q8 { q, d } = &b else { unreachable!() };
        assert_eq!((q[0], q[63], d[0], d[1]), (-127, 127, 20.0 / 7.0 / 127.0, 43.0 / 7.0 * 1e-3 / 127.0));
        assert_eq!((&q[64..], d[2]), (&[0i8; 32][..], 0.0));
        let r = b.q8s().unwrap();
        for (i, &x) in xs.iter().enumerate() {
            assert!((r.at(i) - x).abs() <= d[i / 32] / 2.0 * 1.0001, "value {i}: {} against {x}", r.at(i));
        }
        // Widening a run that starts and ends inside blocks gives what `at` reads.
        let mut wide = vec![0f32; 50];
        r.widen(7, &mut wide);
        assert!(wide.iter().enumerate().all(|(i, x)| x.to_bits() == r.at(7 + i).to_bits()), "{wide:?}");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_loads_widen_as_the_scalar_reads_do() {
        if crate::engine::cpu::kernels::best() == crate::engine::cpu::kernels::Simd::Scalar {
            return;
        }
        let xs: Vec<f32> = [0.0, -0.0, 1.0, 1e-7, -3.5, 65504.0, 0.1, 2e-5, 7.0].iter().cycle().take(72).enumerate().map(|(i, x)| x * (1.0 + i as f32)).collect();
        let lanes = |v: std::arch::x86_64::__m256| {
            let mut out = [0f32; 8];
            // SAFETY: out holds eight floats; the caller found AVX.
            unsafe { std::arch::x86_64::_mm256_storeu_ps(out.as_mut_ptr(), v) };
            out.map(f32::to_bits)
        };
        let bufs = [KvBuf::stored(KvType::F16, &xs[..64]), KvBuf::stored(KvType::Q8, &xs[..64])];
        let (h, q) = (bufs[0].f16s().unwrap(), bufs[1].q8s().unwrap());
        for i in (0..64).step_by(8) {
            let bits = |r: &dyn Fn(usize) -> f32| std::array::from_fn::<u32, 8, _>(|j| r(i + j).to_bits());
            // SAFETY: best() found AVX2 and F16C; each load is of 8 values inside the 64.
            let (gh, gq) = unsafe { (lanes(h.load8(i)), lanes(q.load8(i))) };
            assert_eq!(gh, bits(&|j| h.at(j)), "f16 values {i}..");
            assert_eq!(gq, bits(&|j| q.at(j)), "q8_0 values {i}..");
        }
    }
}
