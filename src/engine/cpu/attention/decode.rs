//! The attention tile for one decoded row: every query head of a key/value group sees the
//! same keys, so the group's softmax runs across the heads, one vector lane each.
//!
//! Why a tile of its own: [`super::tiled`]'s tile takes each query vector through the keys
//! alone, which is what a prefill block needs (its rows see different keys). Decoding a
//! row, that meant (perf after 4,000 tokens of a 1B shape, AVX2-only EPYC): scores that
//! loaded the query again for every multiply-add, and an online softmax whose max and sum
//! ran as scalar chains a tile long, once per query head. Here the scores are laid out key
//! by key, `[key][head]`, so the max, the exps and the sum are vector operations for the
//! whole group (up to [`LANES`] heads); the scores come four query vectors by two keys at
//! a time (each key chunk loaded once for four multiply-adds, each query chunk for two);
//! and the weighted values take two heads by four value chunks at a time, all in
//! registers.
//!
//! Every sum keeps the order and the addition tree of the general tile: a score's eight
//! lanes accumulate over the head size and meet in [`sums8`]'s tree, a head's weights are
//! summed key after key, and its weighted values take the keys in order. So the bits are
//! those of [`super::tiled`]'s tile (tested), and a row decoded alone, in a group of
//! rollouts or at the end of a prefill still gets the same result.
//!
//! [`super::tiled`] sends a decoded row here for groups of four heads or more, three with
//! an f16 cache (`KvRows::DECODE_GROUP`; its `run_tile` says why not fewer);
//! docs/long-context.md has the measurements.

#[cfg(target_arch = "x86_64")]
use super::super::cache::KvRows;
#[cfg(target_arch = "x86_64")]
use super::{exp_approx, TILE};

/// Query heads a decode tile takes together: one vector lane each. No model this engine
/// runs has more than eight query heads per key/value head (TinyLlama has 8).
pub(super) const LANES: usize = 8;

/// One decoded row's tile, keys `first..v` (offsets into the tile) of one key/value head,
/// for the group's query vectors `qs` (already scaled by 1/√HD), every one of which sees
/// those keys: updates each vector's `state`, [max, sum, HD weighted values], as an online
/// softmax does. Key `j` of the tile is read at `base + j * stride` of `kc` and `vc`; `s`
/// is room for the tile's scores, `TILE × LANES` floats.
///
/// # Safety
/// AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn tile<const HD: usize, R: KvRows>(qs: &[f32], (first, v): (usize, usize), kc: R, vc: R, stride: usize, base: usize, s: &mut [f32], state: &mut [f32]) {
    use std::arch::x86_64::*;
    let g = qs.len() / HD;
    // The raw loads below stay inside these rows, at multiples of 8 (stride and base
    // are), so no eight straddle a q8_0 block.
    assert!((1..=LANES).contains(&g) && qs.len() == g * HD && state.len() == g * (HD + 2) && s.len() >= TILE * LANES);
    assert!(HD.is_multiple_of(16) && stride.is_multiple_of(8) && base.is_multiple_of(8) && v <= TILE);
    if first >= v {
        return;
    }
    assert!(base + (v - 1) * stride + HD <= kc.len().min(vc.len()));
    let sp = s.as_mut_ptr();
    let mut q0 = 0;
    while q0 < g {
        let q = qs[q0 * HD..].as_ptr();
        let at = (sp.add(q0), first, v);
        q0 += match g - q0 {
            1 => scores::<HD, 1, 8, R>(q, kc, stride, base, at),
            2 => scores::<HD, 2, 4, R>(q, kc, stride, base, at),
            3 => scores::<HD, 3, 2, R>(q, kc, stride, base, at),
            _ => scores::<HD, 4, 2, R>(q, kc, stride, base, at),
        };
    }

    // The online softmax, a head per lane (lanes past g are never stored back).
    let width = HD + 2;
    let (mut m_old, mut l) = ([f32::NEG_INFINITY; LANES], [0f32; LANES]);
    for i in 0..g {
        (m_old[i], l[i]) = (state[i * width], state[i * width + 1]);
    }
    let mut mx = _mm256_loadu_ps(m_old.as_ptr());
    for j in first..v {
        mx = _mm256_max_ps(mx, _mm256_loadu_ps(sp.add(j * LANES)));
    }
    let mut m_new = [0f32; LANES];
    _mm256_storeu_ps(m_new.as_mut_ptr(), mx);
    for i in 0..g {
        // As the general tile: the sum and weighted values so far, rescaled to the new max.
        let alpha = (m_old[i] - m_new[i]).exp();
        if alpha != 1.0 {
            l[i] *= alpha;
            state[i * width + 2..(i + 1) * width].iter_mut().for_each(|a| *a *= alpha);
        }
    }
    for j in first..v {
        _mm256_storeu_ps(sp.add(j * LANES), _mm256_sub_ps(_mm256_loadu_ps(sp.add(j * LANES)), mx));
    }
    // The weights by the general tile's own exp (a loop LLVM vectorizes), so both tiles
    // share one definition of it.
    let tile = std::slice::from_raw_parts_mut(sp.add(first * LANES), (v - first) * LANES);
    tile.iter_mut().for_each(|e| *e = exp_approx(*e));
    let mut sum = _mm256_setzero_ps();
    for j in first..v {
        sum = _mm256_add_ps(sum, _mm256_loadu_ps(sp.add(j * LANES)));
    }
    let mut sums = [0f32; LANES];
    _mm256_storeu_ps(sums.as_mut_ptr(), sum);
    for i in 0..g {
        state[i * width] = m_new[i];
        state[i * width + 1] = l[i] + sums[i];
    }

    let mut q0 = 0;
    while q0 < g {
        let acc = state[q0 * width + 2..].as_mut_ptr();
        let w = (sp.add(q0) as *const f32, first, v);
        q0 += match g - q0 {
            1 => values::<HD, 1, R>(w, acc, width, vc, stride, base),
            _ => values::<HD, 2, R>(w, acc, width, vc, stride, base),
        };
    }
}

/// The scores of QB query vectors (from `q`, HD apart) against keys first..v, KB keys at
/// a time (QB × KB ≤ 8 sums in registers), stored at `s + j * LANES + qb` for key j and
/// vector qb. Returns QB.
///
/// # Safety
/// As [`tile`]: AVX2 and FMA, the keys inside `kc`, `s` valid for the tile's scores.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn scores<const HD: usize, const QB: usize, const KB: usize, R: KvRows>(q: *const f32, kc: R, stride: usize, base: usize, (s, first, v): (*mut f32, usize, usize)) -> usize {
    use std::arch::x86_64::*;
    let mut j = first;
    while j < v {
        let n = (v - j).min(KB);
        // Past the last key (a tail), the last key again: computed, never stored.
        let rows: [usize; KB] = std::array::from_fn(|kb| base + (j + kb.min(n - 1)) * stride);
        let mut a = [_mm256_setzero_ps(); 8];
        for c in 0..HD / 8 {
            let ks: [__m256; KB] = std::array::from_fn(|kb| kc.load8(rows[kb] + c * 8));
            for qb in 0..QB {
                let qv = _mm256_loadu_ps(q.add(qb * HD + c * 8));
                for kb in 0..KB {
                    a[kb * QB + qb] = _mm256_fmadd_ps(qv, ks[kb], a[kb * QB + qb]);
                }
            }
        }
        let mut out = [0f32; 8];
        _mm256_storeu_ps(out.as_mut_ptr(), sums8(&a));
        for kb in 0..n {
            for qb in 0..QB {
                *s.add((j + kb) * LANES + qb) = out[kb * QB + qb];
            }
        }
        j += n;
    }
    QB
}

/// Adds keys first..v's values, weighted, to the weighted values of G query vectors
/// (their `acc`, `width` apart; their weights at `w + j * LANES + qb`), four chunks of
/// eight values (two cache lines of an f32 row) at a time: `acc[q] += Σ w[j][q] · value
/// j`, key by key in order. Returns G. Why two vectors by four chunks (8 sums, 4 values
/// and a weight in registers) rather than four by two: with the f32 cache, read in place,
/// passes that took one cache line of each value row were 1.04-1.06x slower over a cold
/// cache and up to 1.3x over a warm one (1B shape after 8,000 tokens, AVX2-only EPYC);
/// f16 and q8_0 did the same either way.
///
/// # Safety
/// As [`tile`]; `acc` valid for G × `width` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn values<const HD: usize, const G: usize, R: KvRows>((w, first, v): (*const f32, usize, usize), acc: *mut f32, width: usize, vc: R, stride: usize, base: usize) -> usize {
    use std::arch::x86_64::*;
    const C: usize = 4;
    for c0 in (0..HD / 8).step_by(C) {
        let mut a = [[_mm256_setzero_ps(); C]; G];
        for (qb, aq) in a.iter_mut().enumerate() {
            for (c, x) in aq.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(acc.add(qb * width + (c0 + c) * 8));
            }
        }
        for j in first..v {
            let row = base + j * stride + c0 * 8;
            let x: [__m256; C] = std::array::from_fn(|c| vc.load8(row + c * 8));
            for (qb, aq) in a.iter_mut().enumerate() {
                let wv = _mm256_broadcast_ss(&*w.add(j * LANES + qb));
                for (y, &xc) in aq.iter_mut().zip(&x) {
                    *y = _mm256_fmadd_ps(wv, xc, *y);
                }
            }
        }
        for (qb, aq) in a.iter().enumerate() {
            for (c, &y) in aq.iter().enumerate() {
                _mm256_storeu_ps(acc.add(qb * width + (c0 + c) * 8), y);
            }
        }
    }
    G
}

/// The eight horizontal sums of `a` as one vector: `[Σa0, Σa1, …, Σa7]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn sums8(a: &[std::arch::x86_64::__m256; 8]) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    // Pairs within each 128-bit half, then quads: u0 = [Σa0..Σa3 of the low halves | of
    // the high halves], u1 the same for a4..a7; adding the halves crosswise finishes.
    let (t0, t1) = (_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    let (t2, t3) = (_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    let (u0, u1) = (_mm256_hadd_ps(t0, t1), _mm256_hadd_ps(t2, t3));
    _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31))
}
