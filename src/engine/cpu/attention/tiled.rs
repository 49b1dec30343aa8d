//! Attention for head sizes 64, 128 and 256, prefill and decode alike, over fixed key
//! ranges and tiles.
//!
//! A task is one block of query rows (one row when decoding) over one range of
//! [`SPAN`] keys, tile by tile; within a tile, each key/value head's rows are read once for
//! every query row and query head of its group. Each task keeps a partial softmax per
//! (row, head): running max, sum and weighted values. The ranges split a long cache across
//! threads, and the partials are merged afterwards, rescaled to a common max
//! (flash-decoding's split); the blocks share each key tile between up to 16 rows
//! (FlashAttention's forward).
//!
//! Why one path for both: a row's result depends only on its query, its cache and its
//! position, never on which rows it was computed with. Ranges start at multiples of
//! [`SPAN`] and tiles at multiples of [`TILE`] from there, whatever the batch; a score is
//! the same sum whichever eight keys it was computed beside; keys past a row's position,
//! or before its sliding window (Gemma's local layers), never enter its sums. So a prompt prefilled in one go, a draft continued later, and a
//! group of rollouts decoded side by side all give the bits each row gets alone, which the
//! engine's tests hold it to.
//!
//! On AVX2, a decoded row of a group of four query heads or more takes [`decode`]'s tile
//! instead of this module's: the softmax of the whole group in vector lanes, the same bits.
//!
//! Why a task takes every head: split by head, with the key tile transposed per head and
//! the cache's heads side by side in each position's row, decode after 4,000 tokens of
//! context ran at 14.7 tok/s against llama.cpp's 39.9 (2-core EPYC). The cache now keeps
//! each head's rows in one run ([`Layout`]), so a tile of one head is `TILE` consecutive
//! rows.

use super::super::cache::{KvRows, Layout};
use super::super::pool::OutPtr;
#[cfg(target_arch = "x86_64")]
use super::decode::{self, sums8};
use super::{exp_approx, first_key, run_tasks, ROWS, TILE};

/// The most query heads per key/value head taken here (TinyLlama has 8): a decoded row's
/// group fits [`decode::LANES`].
pub(super) const GROUP_MAX: usize = super::decode::LANES;
/// Keys per range: ranges are what threads split a long cache by.
pub(super) const SPAN: usize = 256;
/// Query vectors of one key/value head in a task: rows × group.
const QMAX: usize = ROWS * GROUP_MAX;

/// Causal attention for `blocks` of rows (see `blocks`): row t attends to positions
/// 0..=p of its cache, `rows[t]` = (keys, values, p), or with a `window` to its last
/// `window` positions.
#[allow(clippy::too_many_arguments)]
pub(super) fn attention<const HD: usize, R: KvRows>(q: &[f32], rows: &[(R, R, usize)], blocks: &[(usize, usize)], window: usize, nh: usize, nkv: usize, out: &mut [f32]) {
    let (g, qd, width) = (nh / nkv, nh * HD, HD + 2);
    // (block, first key, row offset of its partials) for each task.
    let mut tasks = Vec::new();
    let mut slots = 0;
    for (b, &(t0, t1)) in blocks.iter().enumerate() {
        let n = rows[t1 - 1].2 + 1;
        // Ranges wholly before the first row's window (the block's earliest) are no
        // row's: a row's result merges only ranges it sees keys of, and merging one it
        // sees none of adds exact zeros, so skipping them keeps every row's bits.
        let j_first = first_key(rows[t0].2, window) / SPAN * SPAN;
        for j0 in (j_first..n).step_by(SPAN) {
            tasks.push((b, j0, slots));
            slots += (t1 - t0) * nh;
        }
    }
    let mut parts = vec![0f32; slots * width];
    let pp = OutPtr(parts.as_mut_ptr());
    let simd = crate::engine::cpu::kernels::simd() != crate::engine::cpu::kernels::Simd::Scalar;
    let scale = 1.0 / (HD as f32).sqrt();
    let work = |i: usize| {
        let (b, j0, slot) = tasks[i];
        let (t0, t1) = blocks[b];
        let r = t1 - t0;
        // SAFETY: task i writes only its own r * nh * width floats of `parts`.
        let part = unsafe { std::slice::from_raw_parts_mut(pp.at(slot * width), r * nh * width) };
        part.chunks_exact_mut(width).for_each(|h| h[0] = f32::NEG_INFINITY);
        let (kc, vc, _) = rows[t0];
        let at = Layout::of(kc.len(), nkv, HD);
        let j1 = (j0 + SPAN).min(rows[t1 - 1].2 + 1);
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let (qv, s, wide) = scratch.split(nkv * r * g * HD, if R::WIDEN { 2 * TILE * HD } else { 0 });
            // Per key/value head, its query vectors row by row: [kvh][row][head][HD],
            // the order of the partials too.
            for kvh in 0..nkv {
                for (ri, t) in (t0..t1).enumerate() {
                    let src = &q[t * qd + kvh * g * HD..][..g * HD];
                    for (a, &x) in qv[(kvh * r + ri) * g * HD..][..g * HD].iter_mut().zip(src) {
                        *a = x * scale;
                    }
                }
            }
            // The keys each query vector sees: from its row's first key (0, or the start
            // of its window) to its position + 1.
            let (mut vis, mut lo) = ([0usize; QMAX], [0usize; QMAX]);
            for ri in 0..r {
                vis[ri * g..(ri + 1) * g].fill(rows[t0 + ri].2 + 1);
                lo[ri * g..(ri + 1) * g].fill(first_key(rows[t0 + ri].2, window));
            }
            let (vis, lo) = (&vis[..r * g], &lo[..r * g]);
            for k0 in (j0..j1).step_by(TILE) {
                let w = (j1 - k0).min(TILE);
                for kvh in 0..nkv {
                    // The next tile's rows of this head start loading while this one is
                    // worked on (where the cache type asks for it: `KvRows::prefetch`).
                    let next = (k0 + TILE).min(j1)..(k0 + 2 * TILE).min(j1);
                    kc.prefetch(at.at(next.start, kvh), at.at(next.end, kvh));
                    vc.prefetch(at.at(next.start, kvh), at.at(next.end, kvh));
                    let qs = &qv[kvh * r * g * HD..][..r * g * HD];
                    let state = &mut part[kvh * r * g * width..][..r * g * width];
                    let base = at.at(k0, kvh);
                    if R::WIDEN {
                        // The tile's keys and values of this head, widened once for all
                        // r × g query vectors: the same values, read as plain floats.
                        let (kw, vw) = wide.split_at_mut(TILE * HD);
                        kc.widen(base, &mut kw[..w * HD]);
                        vc.widen(base, &mut vw[..w * HD]);
                        run_tile::<HD, &[f32]>(simd, r, qs, (lo, vis), &kw[..w * HD], &vw[..w * HD], HD, 0, k0, w, s, state);
                    } else {
                        run_tile::<HD, R>(simd, r, qs, (lo, vis), kc, vc, HD, base, k0, w, s, state);
                    }
                }
            }
        });
    };
    run_tasks(tasks.len(), rows.iter().map(|r| r.2 + 1).sum::<usize>() * nh, &work);
    // Merge each row's ranges in order. A range past a row's position or before its
    // window left its partial at max −∞ and sum 0: it adds exact zeros.
    let mut i = 0;
    while i < tasks.len() {
        let b = tasks[i].0;
        let end = i + tasks[i..].iter().take_while(|x| x.0 == b).count();
        let (t0, t1) = blocks[b];
        let r = t1 - t0;
        for ri in 0..r {
            for h in 0..nh {
                let (kvh, hi) = (h / g, h % g);
                let part = |k: usize| &parts[(tasks[k].2 + (kvh * r + ri) * g + hi) * width..][..width];
                let m = (i..end).map(|k| part(k)[0]).fold(f32::NEG_INFINITY, f32::max);
                let o = &mut out[(t0 + ri) * qd + h * HD..][..HD];
                o.fill(0.0);
                let mut l = 0.0;
                for k in i..end {
                    let pk = part(k);
                    if pk[0] == f32::NEG_INFINITY {
                        continue;
                    }
                    let c = (pk[0] - m).exp();
                    l += pk[1] * c;
                    for (a, &x) in o.iter_mut().zip(&pk[2..]) {
                        *a += x * c;
                    }
                }
                let inv = 1.0 / l;
                o.iter_mut().for_each(|a| *a *= inv);
            }
        }
        i = end;
    }
}

/// Where the CPU has AVX2 (`simd`): for a decoded row (`r` = 1: every query vector sees
/// the same keys) of a group of [`KvRows::DECODE_GROUP`] heads or more (four; three for
/// f16), [`decode::tile`], else [`tile_avx2`]; without it, [`tile`]. Why not always:
/// SmolLM2's three heads per key/value head left the decode tile 0.8-0.96x as fast with
/// the default f32 cache after 8,000 tokens and no faster with q8_0 (a widened tile, read
/// as f32 here), but 1.13-1.5x with f16 (AVX2-only EPYC), where the 1B shape's eight
/// gained 1.07-2.1x and Gemma 3's four 1.07-1.7x with every type (docs/long-context.md).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn run_tile<const HD: usize, R: KvRows>(simd: bool, r: usize, qs: &[f32], bounds: (&[usize], &[usize]), kc: R, vc: R, stride: usize, base: usize, k0: usize, w: usize, s: &mut [[f32; TILE]; QMAX], state: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd && r == 1 && qs.len() >= R::DECODE_GROUP * HD {
        // SAFETY: simd() is not Scalar only where AVX2, FMA and F16C were detected.
        unsafe { decode::tile::<HD, R>(qs, seen(bounds, 0, k0, w), kc, vc, stride, base, s.as_flattened_mut(), state) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: simd() is not Scalar only where AVX2, FMA and F16C were detected.
        unsafe { tile_avx2::<HD, R>(qs, bounds, kc, vc, stride, base, k0, w, s, state) };
        return;
    }
    let _ = (simd, r);
    tile::<HD, R>(qs, bounds, kc, vc, stride, base, k0, w, s, state);
}

/// A thread's scratch: scaled query vectors, the tile's scores, and room for a widened
/// tile.
struct Scratch(Vec<f32>);

impl Scratch {
    /// `q` floats for queries, QMAX × TILE for scores and `wide` more.
    fn split(&mut self, q: usize, wide: usize) -> (&mut [f32], &mut [[f32; TILE]; QMAX], &mut [f32]) {
        let need = q + QMAX * TILE + wide;
        if self.0.len() < need {
            self.0.resize(need, 0.0);
        }
        let (a, rest) = self.0.split_at_mut(q);
        let (b, c) = rest.split_at_mut(QMAX * TILE);
        let b: &mut [f32; QMAX * TILE] = b.try_into().expect("QMAX × TILE floats");
        // SAFETY: [f32; QMAX * TILE] and [[f32; TILE]; QMAX] have the same layout.
        (a, unsafe { &mut *(b as *mut [f32; QMAX * TILE] as *mut [[f32; TILE]; QMAX]) }, &mut c[..wide])
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = const { std::cell::RefCell::new(Scratch(Vec::new())) };
}

/// The keys of the tile k0..k0+w that query vector i sees, as offsets into the tile:
/// a..v, from `lo[i]` to below `vis[i]` (empty when a == v).
#[inline(always)]
fn seen((lo, vis): (&[usize], &[usize]), i: usize, k0: usize, w: usize) -> (usize, usize) {
    let v = vis[i].saturating_sub(k0).min(w);
    (lo[i].saturating_sub(k0).min(v), v)
}

/// One tile, keys k0..k0+w of one key/value head, for the query vectors `qs` (already
/// scaled by 1/√HD), of which vector i sees keys `lo[i]` to below `vis[i]`: updates each
/// vector's `state`, [max, sum, HD weighted values], as an online softmax does. Key k0 + j
/// of the head is read at `base + j * stride` of `kc` and `vc` (the cache's rows, or a
/// widened copy of the tile).
#[allow(clippy::too_many_arguments)]
fn tile<const HD: usize, R: KvRows>(qs: &[f32], bounds: (&[usize], &[usize]), kc: R, vc: R, stride: usize, base: usize, k0: usize, w: usize, s: &mut [[f32; TILE]; QMAX], state: &mut [f32]) {
    for (qi, q) in qs.chunks_exact(HD).enumerate() {
        let (a, v) = seen(bounds, qi, k0, w);
        for (jj, sc) in s[qi].iter_mut().enumerate().take(v).skip(a) {
            *sc = dot_fixed::<HD, R>(q.try_into().expect("HD floats"), kc, base + jj * stride);
        }
    }
    for (qi, st) in state.chunks_exact_mut(HD + 2).enumerate() {
        let (a, v) = seen(bounds, qi, k0, w);
        if a == v {
            continue;
        }
        let acc = softmax_step(&mut s[qi][a..v], st);
        for (jj, &wgt) in s[qi][a..v].iter().enumerate().map(|(j, x)| (a + j, x)) {
            let val = base + jj * stride;
            for (d, a) in acc.iter_mut().enumerate() {
                *a += wgt * vc.at(val + d);
            }
        }
    }
}

/// The online softmax's step for one vector and tile: turns the tile's scores into
/// weights under the new running max, rescales the sum and weighted values to it, adds
/// the weights to the sum, and returns the weighted values for the tile's values to join.
#[inline(always)]
fn softmax_step<'a>(sc: &mut [f32], st: &'a mut [f32]) -> &'a mut [f32] {
    let (ml, acc) = st.split_at_mut(2);
    let m_new = sc.iter().fold(ml[0], |a, &b| a.max(b));
    let alpha = (ml[0] - m_new).exp();
    if alpha != 1.0 {
        ml[1] *= alpha;
        acc.iter_mut().for_each(|a| *a *= alpha);
    }
    for e in sc.iter_mut() {
        *e = exp_approx(*e - m_new);
    }
    ml[1] += sc.iter().sum::<f32>();
    ml[0] = m_new;
    acc
}

/// [`tile`] in AVX2 with FMA. Scores come eight keys at a time: eight dot products
/// accumulate in eight vectors, which one tree of horizontal adds turns into the vector of
/// eight scores (LLVM vectorized the scalar version's dots two floats wide); a key's score
/// is the same bits whichever keys share its eight. A vector's weighted values stay in
/// registers across the tile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_avx2<const HD: usize, R: KvRows>(qs: &[f32], bounds: (&[usize], &[usize]), kc: R, vc: R, stride: usize, base: usize, k0: usize, w: usize, s: &mut [[f32; TILE]; QMAX], state: &mut [f32]) {
    use std::arch::x86_64::*;
    let nq = qs.len() / HD;
    let vis = bounds.1;
    // The raw loads below stay inside these rows, at multiples of 8 (stride and base
    // are), so no eight straddle a q8_0 block.
    assert!(HD % 8 == 0 && stride % 8 == 0 && base % 8 == 0 && w > 0 && w <= TILE && nq <= QMAX && vis.len() == nq && bounds.0.len() == nq && state.len() == nq * (HD + 2));
    let v_max = vis.iter().map(|&n| n.saturating_sub(k0).min(w)).max().unwrap_or(0);
    if v_max == 0 {
        return;
    }
    assert!(base + (v_max - 1) * stride + HD <= kc.len().min(vc.len()));
    for (qi, qh) in qs.chunks_exact(HD).enumerate() {
        let (first, v) = seen(bounds, qi, k0, w);
        let q = qh.as_ptr();
        // From the eight holding the first key seen: a key's score does not depend on
        // which keys share its eight.
        let mut jj = first / 8 * 8;
        while jj < v {
            let n = (v - jj).min(8);
            let mut a = [_mm256_setzero_ps(); 8];
            for (r, ar) in a.iter_mut().enumerate().take(n) {
                let k = base + (jj + r) * stride;
                for c in 0..HD / 8 {
                    *ar = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(c * 8)), kc.load8(k + c * 8), *ar);
                }
            }
            // s rows are TILE wide and jj < v ≤ TILE with TILE a multiple of 8: the
            // store fits; lanes past v are never read.
            _mm256_storeu_ps(s[qi].as_mut_ptr().add(jj), sums8(&a));
            jj += 8;
        }
    }
    let mut qi = 0;
    while qi < nq {
        let (first, v) = seen(bounds, qi, k0, w);
        // The query vectors from qi on that see the same keys (a row's heads of one
        // group do), up to three: they take the tile's values together.
        let n = (qi..nq.min(qi + 3)).take_while(|&i| seen(bounds, i, k0, w) == (first, v)).count();
        if first == v {
            qi += n;
            continue;
        }
        let (mut ws, mut accs) = ([std::ptr::null(); 3], [std::ptr::null_mut(); 3]);
        for (j, st) in state[qi * (HD + 2)..].chunks_exact_mut(HD + 2).take(n).enumerate() {
            accs[j] = softmax_step(&mut s[qi + j][first..v], st).as_mut_ptr();
            ws[j] = s[qi + j].as_ptr();
        }
        match n {
            1 => add_values::<HD, 1, R>(ws, accs, vc, stride, base, first, v),
            2 => add_values::<HD, 2, R>(ws, accs, vc, stride, base, first, v),
            _ => add_values::<HD, 3, R>(ws, accs, vc, stride, base, first, v),
        }
        qi += n;
    }
}

/// Adds keys first..v's values, weighted, to the weighted values of G query vectors that
/// see the same keys: `acc[q] += Σ w[q][j] · value j`, key by key in order, so each lane
/// gets the same sums as a vector alone. Why G together: each value row is read and
/// widened once for all of them, not once per query head (decode after 4,000 tokens
/// spent two fifths of its attention in this loop, stalled on the value rows). Four vectors
/// of a row at a time keep 4 × G sums in registers on AVX2's sixteen.
///
/// # Safety
/// AVX2, FMA and F16C; `w[q]` valid for `v` reads and `acc[q]` for HD reads and writes,
/// distinct, for q < G; the values as [`tile_avx2`] asserts.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn add_values<const HD: usize, const G: usize, R: KvRows>(w: [*const f32; 3], acc: [*mut f32; 3], vc: R, stride: usize, base: usize, first: usize, v: usize) {
    use std::arch::x86_64::*;
    for c0 in (0..HD / 8).step_by(4) {
        let mut a = [[_mm256_setzero_ps(); 4]; G];
        for (aq, p) in a.iter_mut().zip(acc) {
            for (c, x) in aq.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(p.add((c0 + c) * 8));
            }
        }
        for jj in first..v {
            let val = base + jj * stride + c0 * 8;
            let x = [vc.load8(val), vc.load8(val + 8), vc.load8(val + 16), vc.load8(val + 24)];
            for (aq, wq) in a.iter_mut().zip(w) {
                let wv = _mm256_set1_ps(*wq.add(jj));
                for (y, &xc) in aq.iter_mut().zip(&x) {
                    *y = _mm256_fmadd_ps(wv, xc, *y);
                }
            }
        }
        for (aq, p) in a.iter().zip(acc) {
            for (c, &y) in aq.iter().enumerate() {
                _mm256_storeu_ps(p.add((c0 + c) * 8), y);
            }
        }
    }
}

/// q · k (k's HD values from `off` on) for a fixed head size: 16 independent lanes, then
/// halves added pairwise, so the compiler keeps it in vector registers to the last add.
#[inline(always)]
fn dot_fixed<const HD: usize, R: KvRows>(q: &[f32; HD], k: R, off: usize) -> f32 {
    let mut acc = [0f32; 16];
    for c in 0..HD / 16 {
        for i in 0..16 {
            acc[i] += q[c * 16 + i] * k.at(off + c * 16 + i);
        }
    }
    let mut w = 8;
    while w > 0 {
        for i in 0..w {
            acc[i] += acc[i + w];
        }
        w /= 2;
    }
    acc[0]
}

#[cfg(test)]
mod tests {
    use super::super::super::cache::KvBuf;
    use super::super::tests::{noise, worst_against_reference, TYPES};
    use super::super::{attention as attend, blocks};
    use super::*;
    use crate::engine::model::KvType;

    /// The AVX2 tile against the scalar one, over several tiles (an online softmax that
    /// rescales), full tiles and tails that are not a multiple of eight keys, query
    /// vectors that see all, part or none of a tile, every head size; and the decode
    /// tile against the AVX2 one, bit for bit.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_tiles_match_the_scalar_ones_and_the_decode_tile_their_bits() {
        if crate::engine::cpu::kernels::best() == crate::engine::cpu::kernels::Simd::Scalar {
            return;
        }
        fn check<const HD: usize>(t: KvType) {
            let kvd = 2 * HD;
            let k = KvBuf::stored(t, &noise(500 * kvd, 21).iter().map(|x| x * 3.0).collect::<Vec<f32>>());
            let v = KvBuf::stored(t, &noise(500 * kvd, 22));
            match t {
                KvType::F32 => compare::<HD, _>(k.f32s().unwrap(), v.f32s().unwrap()),
                KvType::F16 => compare::<HD, _>(k.f16s().unwrap(), v.f16s().unwrap()),
                KvType::Q8 => compare::<HD, _>(k.q8s().unwrap(), v.q8s().unwrap()),
            }
        }
        fn compare<const HD: usize, R: KvRows>(k: R, v: R) {
            let kvd = 2 * HD;
            let vis = [500, 500, 500, 140, 131, 203];
            // First keys: none, inside a tile, on its edges, past some tiles.
            let lo = [0, 70, 200, 64, 5, 190];
            let q = noise(vis.len() * HD, 23);
            // n query vectors' states before any key: max −∞, sum and values 0.
            let fresh = |n: usize| (0..n).flat_map(|_| std::iter::once(f32::NEG_INFINITY).chain(std::iter::repeat_n(0.0, HD + 1))).collect::<Vec<f32>>();
            let (mut a, mut b) = (fresh(vis.len()), fresh(vis.len()));
            let mut s = Box::new([[0f32; TILE]; QMAX]);
            for (k0, w) in [(0, 64), (64, 64), (128, 64), (192, 13), (205, 61), (436, 64)] {
                tile::<HD, R>(&q, (&lo, &vis), k, v, kvd, k0 * kvd + HD, k0, w, &mut s, &mut a);
                // SAFETY: best() found AVX2, FMA and F16C.
                unsafe { tile_avx2::<HD, R>(&q, (&lo, &vis), k, v, kvd, k0 * kvd + HD, k0, w, &mut s, &mut b) };
                let worst = a.iter().zip(&b).map(|(x, y)| if x == y { 0.0 } else { (x - y).abs() / x.abs().max(1.0) }).fold(0f32, f32::max);
                // Two summation orders of scores near ±15, through exp: a few 1e-5.
                assert!(worst < 5e-4, "HD {HD}, keys {k0}..{}: off by {worst}", k0 + w);
            }
            // One decoded row (every vector of the group sees the same keys): the decode
            // tile gives the AVX2 tile's bits, for every group size it takes.
            for g in 1..=decode::LANES {
                let q = noise(g * HD, 24 + g as u32);
                for (lo, vis) in [(0, 500), (70, 500), (0, 140), (5, 131), (190, 203), (64, 64)] {
                    let bounds = (vec![lo; g], vec![vis; g]);
                    let bounds = (&bounds.0[..], &bounds.1[..]);
                    let (mut a, mut b) = (fresh(g), fresh(g));
                    for (k0, w) in [(0, 64), (64, 64), (128, 64), (192, 13), (205, 61), (436, 64)] {
                        // SAFETY: best() found AVX2, FMA and F16C.
                        unsafe {
                            tile_avx2::<HD, R>(&q, bounds, k, v, kvd, k0 * kvd + HD, k0, w, &mut s, &mut a);
                            decode::tile::<HD, R>(&q, seen(bounds, 0, k0, w), k, v, kvd, k0 * kvd + HD, s.as_flattened_mut(), &mut b);
                        }
                        let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
                        assert_eq!(bits(&a), bits(&b), "HD {HD}, group {g}, keys {lo}..{vis}, tile {k0}..{}", k0 + w);
                    }
                }
            }
        }
        for t in TYPES {
            check::<64>(t);
            check::<128>(t);
            check::<256>(t);
        }
    }

    /// Rows over long caches, split into ranges across tasks and merged: one decoded row,
    /// several of different lengths, a prefill block that spans ranges, group sizes from 1
    /// to 8 (GROUP_MAX) plus one above it (the blocked path); every cache type.
    #[test]
    fn ranged_attention_matches_the_definition() {
        TYPES.into_iter().for_each(check);
    }

    fn check(t: KvType) {
        for (hd, nh, nkv, ps) in [(64, 9, 3, vec![2000]), (64, 9, 3, vec![1999, 3, 700]), (64, 9, 3, (240..300).collect()), (128, 8, 1, vec![1500]), (64, 4, 4, vec![1100, 257]), (256, 2, 1, vec![900]), (64, 16, 1, vec![1200])] {
            let kvd = nkv * hd;
            // Spread the scores, so a wrong rescaling of a range's partial shows.
            let k = KvBuf::stored(t, &noise(2001 * kvd, 11).iter().map(|x| x * 3.0).collect::<Vec<f32>>());
            let v = KvBuf::stored(t, &noise(2001 * kvd, 12));
            let rows: Vec<(&KvBuf, &KvBuf, usize)> = ps.iter().map(|&p| (&k, &v, p)).collect();
            // No window, Gemma's 512 (across a range boundary), and one shorter than a tile.
            for window in [0, 512, 41] {
                let worst = worst_against_reference(&rows, window, nh, nkv, hd, 13);
                assert!(worst < 1e-4, "{t:?}, hd {hd}, {nh}/{nkv} heads, positions {ps:?}, window {window}: off by {worst}");
            }
        }
    }

    /// A row's bits do not depend on the rows it is computed with: each row of a prefill
    /// chunk (positions 230..300: blocks of 16 across tiles and the range boundary at 256)
    /// and of a decode batch equals the same row computed alone; every cache type.
    #[test]
    fn a_row_gets_the_same_bits_alone_as_in_a_block_or_batch() {
        TYPES.into_iter().for_each(same_bits);
    }

    fn same_bits(kv: KvType) {
        // SmolLM2's group of 3 (the general tile for every row) and a group of 8 (the
        // decode tile for a row alone or in a batch, the general one in a prefill block).
        same_bits_for(kv, 9, 3);
        same_bits_for(kv, 16, 2);
    }

    fn same_bits_for(kv: KvType, nh: usize, nkv: usize) {
        let hd = 64;
        let kvd = nkv * hd;
        let k = KvBuf::stored(kv, &noise(700 * kvd, 31).iter().map(|x| x * 3.0).collect::<Vec<f32>>());
        let v = KvBuf::stored(kv, &noise(700 * kvd, 32));
        let (k2, v2) = (KvBuf::stored(kv, &noise(700 * kvd, 33)), KvBuf::stored(kv, &noise(700 * kvd, 34)));
        // Stand-ins for the two caches, to check how the rows group into blocks.
        let ids = [vec![0f32], vec![0f32]];
        let cases: Vec<Vec<(usize, usize)>> = vec![(230..300).map(|p| (0, p)).collect(), vec![(0, 699), (1, 5), (1, 600)], (500..520).map(|p| (1, p)).collect()];
        for case in cases {
            let rows: Vec<(&KvBuf, &KvBuf, usize)> = case.iter().map(|&(c, p)| if c == 0 { (&k, &v, p) } else { (&k2, &v2, p) }).collect();
            let q = noise(rows.len() * nh * hd, 35);
            let grouped: Vec<(&[f32], &[f32], usize)> = case.iter().map(|&(c, p)| (&ids[c][..], &ids[c][..], p)).collect();
            assert!(blocks(&grouped).len() < rows.len() || rows.len() == 3);
            for window in [0, 100, 300] {
                let mut together = vec![0f32; rows.len() * nh * hd];
                attend(&q, &rows, window, nh, nkv, hd, &mut together);
                for (t, row) in rows.iter().enumerate() {
                    let mut alone = vec![0f32; nh * hd];
                    attend(&q[t * nh * hd..][..nh * hd], &[*row], window, nh, nkv, hd, &mut alone);
                    assert_eq!(alone, together[t * nh * hd..][..nh * hd], "{kv:?}, {nh}/{nkv} heads: row {t} at position {}, window {window}", row.2);
                }
            }
        }
    }
}

