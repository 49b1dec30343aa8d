//! Causal attention over a sequence's K/V cache, for the fast CPU decoder.
//!
//! Why blocked: attending row by row, every query row of a long prefill streamed its
//! head's whole key and value history from memory again:
//! at 8,000 tokens of prompt that is megabytes per row, and prefill ran at a sixth of its
//! short-prompt speed. Here a block of consecutive query rows of one head walks the keys
//! once, in tiles, with an online softmax (FlashAttention's forward): each key and value
//! row is read once per block, and the scores, running maxima and outputs stay in cache.
//!
//! For the common head sizes (64, 128, 256) this runs in [`tiled`], which also shares each
//! key tile between the query heads of a group and splits long caches into key ranges
//! across threads, so decode (one row per sequence) keeps every thread on the cache; a
//! decoded row of a group of four heads or more takes [`decode`]'s tile there. The
//! blocked kernels below remain for other head sizes and groups.

mod decode;
mod tiled;

use super::cache::{KvBuf, KvRows, Layout};
use crate::engine::model::KvType;
use super::pool::{OutPtr, Pool};
use tiled::GROUP_MAX;

/// Query rows per block: enough to reuse each loaded key row, few enough that the block's
/// scores and outputs stay in L1.
pub(super) const ROWS: usize = 16;
/// Keys per tile of the online softmax.
pub(super) const TILE: usize = 64;

/// Causal attention: row t (query `q[t]`) attends to positions 0..=p of its cache, where
/// `rows[t]` = (keys, values, p); with a `window` (not 0), to its last `window` positions
/// only (Gemma's sliding-window layers). Every cache holds the model's one cache type;
/// the kernels are compiled once per type.
pub(super) fn attention(q: &[f32], rows: &[(&KvBuf, &KvBuf, usize)], window: usize, nh: usize, nkv: usize, hd: usize, out: &mut [f32]) {
    fn views<'a, R>(rows: &[(&'a KvBuf, &'a KvBuf, usize)], of: impl Fn(&'a KvBuf) -> Option<R>) -> Vec<(R, R, usize)> {
        let of = |b| of(b).expect("every cache of a model holds its one type");
        rows.iter().map(|&(k, v, p)| (of(k), of(v), p)).collect()
    }
    match rows.first().map(|r| r.0.kv_type()) {
        None => {}
        Some(KvType::F32) => attention_on(q, &views(rows, KvBuf::f32s), window, nh, nkv, hd, out),
        Some(KvType::F16) => attention_on(q, &views(rows, KvBuf::f16s), window, nh, nkv, hd, out),
        Some(KvType::Q8) => attention_on(q, &views(rows, KvBuf::q8s), window, nh, nkv, hd, out),
    }
}

/// [`attention`] over views of one cache type.
fn attention_on<R: KvRows>(q: &[f32], rows: &[(R, R, usize)], window: usize, nh: usize, nkv: usize, hd: usize, out: &mut [f32]) {
    debug_assert_eq!(out.len(), rows.len() * nh * hd);
    let blocks = blocks(rows);
    if nh % nkv == 0 && nh / nkv <= GROUP_MAX {
        match hd {
            64 => return tiled::attention::<64, R>(q, rows, &blocks, window, nh, nkv, out),
            128 => return tiled::attention::<128, R>(q, rows, &blocks, window, nh, nkv, out),
            256 => return tiled::attention::<256, R>(q, rows, &blocks, window, nh, nkv, out),
            _ => {}
        }
    }
    let outp = OutPtr(out.as_mut_ptr());
    let work = |idx: usize| {
        let (b, h) = (idx / nh, idx % nh);
        let (t0, t1) = blocks[b];
        // SAFETY: the rows of block b, head h, are written by this task only: a row's
        // heads are hd-wide pieces of its nh * hd output row.
        let out = |t: usize| unsafe { std::slice::from_raw_parts_mut(outp.at((t * nh + h) * hd), hd) };
        let span = Span::new(rows, t0, t1, h, nh, nkv, hd, window);
        match hd {
            64 => block_fixed::<64, R>(q, rows, &span, t0, h, out),
            128 => block_fixed::<128, R>(q, rows, &span, t0, h, out),
            256 => block_fixed::<256, R>(q, rows, &span, t0, h, out),
            _ => block(q, rows, &span, t0, t1, h, hd, out),
        }
    };
    run_tasks(blocks.len() * nh, rows.len() * nh * rows.iter().map(|r| r.2 + 1).max().unwrap_or(0), &work);
}

/// Runs `tasks` tasks of an attention call that computes about `scores` (row, head, key)
/// scores: on the pool from a few hundred, which one decoded row of a 9-head model reaches
/// at about 30 cached positions. Left on the calling thread up to 2,048 of them, decode's
/// attention ran serially while the other threads waited, and decode measured 10% slower
/// (bench, 2-core EPYC).
fn run_tasks(tasks: usize, scores: usize, work: &(dyn Fn(usize) + Sync)) {
    if scores >= 256 {
        Pool::global().run(tasks, work);
    } else {
        (0..tasks).for_each(work);
    }
}

/// Runs of at most [`ROWS`] consecutive rows that share one cache at consecutive
/// positions (a prefill chunk); rows of different sequences are blocks of one.
fn blocks<R: KvRows>(rows: &[(R, R, usize)]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut t0 = 0;
    for t in 1..=rows.len() {
        let joins = t < rows.len() && t - t0 < ROWS && rows[t].0.same(rows[t0].0) && rows[t].2 == rows[t - 1].2 + 1;
        if !joins {
            out.push((t0, t));
            t0 = t;
        }
    }
    out
}

/// The first key a row at position `p` sees: 0, or with a `window`, `window` keys back.
pub(super) fn first_key(p: usize, window: usize) -> usize {
    if window == 0 {
        0
    } else {
        (p + 1).saturating_sub(window)
    }
}

/// What a block of query rows t0..t1 of head `h` reads: the query row width, where its
/// cache's rows are, its key/value head, the score scale, its cache, the keys the last
/// row sees (`n`), the row count, the window (0: none) and the first tile any row of the
/// block sees.
struct Span<R> {
    qd: usize,
    at: Layout,
    kvh: usize,
    scale: f32,
    kc: R,
    vc: R,
    n: usize,
    r: usize,
    window: usize,
    start: usize,
}

impl<R: KvRows> Span<R> {
    #[allow(clippy::too_many_arguments)]
    fn new(rows: &[(R, R, usize)], t0: usize, t1: usize, h: usize, nh: usize, nkv: usize, hd: usize, window: usize) -> Self {
        let (kc, vc, p0) = rows[t0];
        // Tiles wholly before every row's window change nothing: a row's softmax starts
        // at its first visible key either way.
        let start = first_key(p0, window) / TILE * TILE;
        Self { qd: nh * hd, at: Layout::of(kc.len(), nkv, hd), kvh: h / (nh / nkv), scale: 1.0 / (hd as f32).sqrt(), kc, vc, n: rows[t1 - 1].2 + 1, r: t1 - t0, window, start }
    }
}

/// Head `h` of query rows t0..t1 (one cache, consecutive positions): an online softmax
/// over key tiles, each key and value row read once for the whole block.
#[allow(clippy::too_many_arguments)]
fn block<'o, R: KvRows>(q: &[f32], rows: &[(R, R, usize)], span: &Span<R>, t0: usize, t1: usize, h: usize, hd: usize, mut out: impl FnMut(usize) -> &'o mut [f32]) {
    let &Span { qd, at, kvh, scale, kc, vc, n, r, window, start } = span;
    let (mut m, mut l, mut s) = ([f32::NEG_INFINITY; ROWS], [0f32; ROWS], [[0f32; TILE]; ROWS]);
    STATE.with(|cell| {
        let mut acc = cell.borrow_mut();
        acc.clear();
        acc.resize(r * hd, 0.0);
        for j0 in (start..n).step_by(TILE) {
            let j1 = (j0 + TILE).min(n);
            for (i, t) in (t0..t1).enumerate() {
                let qh = &q[t * qd + h * hd..t * qd + (h + 1) * hd];
                let (lo, p) = (first_key(rows[t].2, window), rows[t].2);
                for j in j0..j1 {
                    s[i][j - j0] = if j <= p && j >= lo { dot(qh, kc, at.at(j, kvh)) * scale } else { f32::NEG_INFINITY };
                }
                let tile_max = s[i][..j1 - j0].iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let m_new = m[i].max(tile_max);
                if m_new == f32::NEG_INFINITY {
                    // Every key of this tile is in the row's future or before its window
                    // (and so were all before).
                    s[i][..j1 - j0].fill(0.0);
                    continue;
                }
                let alpha = (m[i] - m_new).exp();
                if alpha != 1.0 {
                    l[i] *= alpha;
                    acc[i * hd..(i + 1) * hd].iter_mut().for_each(|a| *a *= alpha);
                }
                for e in &mut s[i][..j1 - j0] {
                    *e = exp_approx(*e - m_new);
                }
                l[i] += s[i][..j1 - j0].iter().sum::<f32>();
                m[i] = m_new;
            }
            for j in j0..j1 {
                let vj = at.at(j, kvh);
                for i in 0..r {
                    let w = s[i][j - j0];
                    if w != 0.0 {
                        for (d, a) in acc[i * hd..(i + 1) * hd].iter_mut().enumerate() {
                            *a += w * vc.at(vj + d);
                        }
                    }
                }
            }
        }
        for (i, t) in (t0..t1).enumerate() {
            let inv = 1.0 / l[i];
            for (o, &a) in out(t).iter_mut().zip(&acc[i * hd..(i + 1) * hd]) {
                *o = a * inv;
            }
        }
    });
}

/// [`block`] for a head size known at compile time (the common 64, 128 and 256), shaped
/// like a small GEMM so that nothing waits on a horizontal sum: the key tile is transposed
/// once per block, a query row's scores for 64 keys accumulate in vector registers
/// (q[d] · Kᵀ[d][..]), and a row's output stays in registers while the tile's values are
/// added to it.
#[allow(clippy::too_many_arguments)]
fn block_fixed<'o, const HD: usize, R: KvRows>(q: &[f32], rows: &[(R, R, usize)], span: &Span<R>, t0: usize, h: usize, mut out: impl FnMut(usize) -> &'o mut [f32]) {
    let &Span { qd, at, kvh, scale, kc, vc, n, r, window, start } = span;
    let (mut m, mut l, mut s) = ([f32::NEG_INFINITY; ROWS], [0f32; ROWS], [[0f32; TILE]; ROWS]);
    let mut kt = vec![[0f32; TILE]; HD];
    let mut acc = vec![[0f32; HD]; r];
    for j0 in (start..n).step_by(TILE) {
        let w = (n - j0).min(TILE);
        for jj in 0..w {
            let k = at.at(j0 + jj, kvh);
            for (d, row) in kt.iter_mut().enumerate() {
                row[jj] = kc.at(k + d);
            }
        }
        for i in 0..r {
            let t = t0 + i;
            let qh: &[f32; HD] = q[t * qd + h * HD..][..HD].try_into().expect("HD floats");
            let mut sc = [0f32; TILE];
            for d in 0..HD {
                let qv = qh[d] * scale;
                for (a, &k) in sc.iter_mut().zip(&kt[d]) {
                    *a += qv * k;
                }
            }
            // Keys past the tile's end, in the row's future or before its window weigh
            // nothing.
            let visible = (rows[t].2 + 1).saturating_sub(j0).min(w);
            sc[visible..].fill(f32::NEG_INFINITY);
            sc[..first_key(rows[t].2, window).saturating_sub(j0).min(visible)].fill(f32::NEG_INFINITY);
            let tile_max = sc.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let m_new = m[i].max(tile_max);
            if m_new == f32::NEG_INFINITY {
                s[i].fill(0.0);
                continue;
            }
            let alpha = (m[i] - m_new).exp();
            if alpha != 1.0 {
                l[i] *= alpha;
                acc[i].iter_mut().for_each(|a| *a *= alpha);
            }
            for e in sc.iter_mut() {
                *e = exp_approx(*e - m_new);
            }
            l[i] += sc.iter().sum::<f32>();
            m[i] = m_new;
            s[i] = sc;
        }
        for i in 0..r {
            let mut a = acc[i];
            for (jj, &wgt) in s[i][..w].iter().enumerate() {
                let v = at.at(j0 + jj, kvh);
                for (d, x) in a.iter_mut().enumerate() {
                    *x += wgt * vc.at(v + d);
                }
            }
            acc[i] = a;
        }
    }
    for (i, a) in acc.iter().enumerate() {
        let inv = 1.0 / l[i];
        for (o, &x) in out(t0 + i).iter_mut().zip(a) {
            *o = x * inv;
        }
    }
}

thread_local! {
    static STATE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// e^x for x ≤ 0 (softmax weights), branch-free so that a loop of them vectorizes: Rust's
/// `exp` is a scalar libm call, and a long prefill takes one per (query, key, head): at
/// 4,000 tokens of prompt, 2 billion of them. As libm does it: x = i·ln2 + r with
/// |r| ≤ ½·ln2 (ln2 in two parts, so r is nearly exact), e^r from its degree-7 Taylor
/// polynomial, and 2^i set in the exponent bits: within a few float roundings of e^x.
/// Below −87 (e^x under f32's normal range) it is 0, so masked scores (−∞) weigh nothing.
#[inline(always)]
pub(super) fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // ln 2 to 12 bits: i · LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_4e-4; // ln 2 − LN2_HI
    // 1.5 · 2²³: adding and subtracting it rounds to the nearest integer in two adds.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.max(-87.0);
    let t = xc * LOG2E + ROUND;
    let i = t - ROUND;
    let r = (xc - i * LN2_HI) - i * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // i as an integer, read from t's bits: t lies in ROUND's binade, where one unit is
    // one step of the mantissa. The same i as `i as i32`, whose saturating conversion
    // LLVM could not vectorize: it took every lane out to a scalar convert and a
    // compare (perf: decode after 4,000 tokens spent a tenth of its attention there).
    let i_int = t.to_bits() as i32 - ROUND.to_bits() as i32;
    let y = f32::from_bits(((i_int + 127) << 23) as u32) * p;
    if x < -87.0 {
        0.0
    } else {
        y
    }
}

/// `a` · b's values from `off` on, in 8 independent f32 lanes: a single running sum would
/// pin the additions to one order and keep the compiler from vectorizing.
fn dot<R: KvRows>(a: &[f32], b: R, off: usize) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let n8 = a.len() / 8 * 8;
    let tail: f32 = ca.remainder().iter().enumerate().map(|(i, x)| x * b.at(off + n8 + i)).sum();
    for (c, x) in ca.enumerate() {
        for i in 0..8 {
            acc[i] += x[i] * b.at(off + c * 8 + i);
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The textbook definition, in f64: softmax(q·k / √d) · v over positions 0..=p (with a
    /// window, the last `window` of them), of caches laid out as [`Layout`] says.
    pub(super) fn reference(q: &[f32], rows: &[(&[f32], &[f32], usize)], window: usize, nh: usize, nkv: usize, hd: usize) -> Vec<f32> {
        let (qd, rep) = (nh * hd, nh / nkv);
        let mut out = vec![0f32; rows.len() * qd];
        for (t, &(k, v, p)) in rows.iter().enumerate() {
            let at = Layout::of(k.len(), nkv, hd);
            for h in 0..nh {
                let kvh = h / rep;
                let qh = &q[t * qd + h * hd..][..hd];
                let j0 = first_key(p, window);
                let sc: Vec<f64> = (j0..=p).map(|j| qh.iter().zip(&k[at.at(j, kvh)..][..hd]).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() / (hd as f64).sqrt()).collect();
                let m = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = sc.iter().map(|x| (x - m).exp()).sum();
                for d in 0..hd {
                    out[t * qd + h * hd + d] = sc.iter().enumerate().map(|(j, x)| (x - m).exp() / z * v[at.at(j0 + j, kvh) + d] as f64).sum::<f64>() as f32;
                }
            }
        }
        out
    }

    pub(super) fn noise(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32).map(|i| ((i.wrapping_mul(2654435761) ^ seed.wrapping_mul(40503)) >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0).collect()
    }

    /// Every cache type, for tests that run once per type.
    pub(super) const TYPES: [KvType; 3] = [KvType::F32, KvType::F16, KvType::Q8];

    /// The largest absolute difference between `attention` and the definition (on the
    /// values the cache holds), for query vectors drawn from `qseed`.
    pub(super) fn worst_against_reference(rows: &[(&KvBuf, &KvBuf, usize)], window: usize, nh: usize, nkv: usize, hd: usize, qseed: u32) -> f32 {
        let q = noise(rows.len() * nh * hd, qseed);
        let mut out = vec![f32::NAN; rows.len() * nh * hd];
        attention(&q, rows, window, nh, nkv, hd, &mut out);
        let wide: Vec<(Vec<f32>, Vec<f32>, usize)> = rows.iter().map(|&(k, v, p)| (k.widened(), v.widened(), p)).collect();
        let wide: Vec<(&[f32], &[f32], usize)> = wide.iter().map(|(k, v, p)| (&k[..], &v[..], *p)).collect();
        let want = reference(&q, &wide, window, nh, nkv, hd);
        out.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max)
    }

    /// A prefill chunk continuing a cache (positions 100..150: blocks, several key tiles,
    /// rows that see different numbers of keys), a decode batch of three sequences at
    /// different lengths, and a lone row: all within float rounding of the definition,
    /// with grouped-query heads (9 query heads on 3 key/value heads, as SmolLM2), with
    /// and without a sliding window. Every cache type.
    #[test]
    fn blocked_attention_matches_the_definition() {
        TYPES.into_iter().for_each(check);
    }

    fn check(t: KvType) {
        let (nh, nkv, hd) = (9, 3, 64);
        let kvd = nkv * hd;
        let caches: Vec<(KvBuf, KvBuf)> = (0..3).map(|c| (KvBuf::stored(t, &noise(300 * kvd, 7 + c)), KvBuf::stored(t, &noise(300 * kvd, 70 + c)))).collect();
        let cases: Vec<Vec<(usize, usize)>> = vec![(100..150).map(|p| (0, p)).collect(), vec![(0, 5), (1, 140), (2, 299)], vec![(2, 0)], (0..40).map(|p| (1, p)).collect()];
        for (ci, case) in cases.iter().enumerate() {
            let rows: Vec<(&KvBuf, &KvBuf, usize)> = case.iter().map(|&(c, p)| (&caches[c].0, &caches[c].1, p)).collect();
            for window in [0, 37] {
                let worst = worst_against_reference(&rows, window, nh, nkv, hd, 99 + ci as u32);
                assert!(worst < 1e-4, "{t:?}, case {ci}, window {window}: off by {worst}");
            }
        }
        assert_eq!(blocks(&[(&[0.0][..], &[0.0][..], 3)]), vec![(0, 1)]);
        // The other head sizes: 128 (tiled), 32 and 80 (the generic block), and 64 with
        // a group above GROUP_MAX (the fixed block); windows shorter than a tile, a tile
        // long, and longer.
        for (hd, nh, nkv) in [(128, 4, 2), (32, 6, 2), (80, 2, 1), (64, 10, 1)] {
            let kvd = nkv * hd;
            let (k, v) = (KvBuf::stored(t, &noise(200 * kvd, 5)), KvBuf::stored(t, &noise(200 * kvd, 6)));
            let rows: Vec<(&KvBuf, &KvBuf, usize)> = (60..130).map(|p| (&k, &v, p)).collect();
            for window in [0, 17, 64, 100] {
                let worst = worst_against_reference(&rows, window, nh, nkv, hd, 8);
                assert!(worst < 1e-4, "{t:?}, head size {hd}, window {window}: off by {worst}");
            }
        }
    }

    #[test]
    fn exp_approx_is_exp_within_float_rounding() {
        for k in 0..=870_000 {
            let x = -(k as f32) * 1e-4;
            let (got, want) = (exp_approx(x) as f64, (x as f64).exp());
            assert!(((got - want) / want).abs() < 3e-7, "e^{x}: {got} vs {want}");
        }
        assert_eq!(exp_approx(0.0), 1.0);
        assert_eq!((exp_approx(-87.5), exp_approx(f32::NEG_INFINITY)), (0.0, 0.0));
    }

    /// 2^i from t's bits is the same i as a float-to-int conversion, so every weight keeps
    /// its bits: checked against the conversion on every float from −87 to 0 a few
    /// thousand apart in bits, and on the halfway points where i rounds.
    #[test]
    fn exp_approx_reads_i_as_a_conversion_would() {
        fn converted(x: f32) -> f32 {
            let xc = x.max(-87.0);
            let i = (xc * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
            let r = (xc - i * 0.693_359_4) - i * -2.121_944_4e-4;
            let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
            if x < -87.0 { 0.0 } else { f32::from_bits(((i as i32 + 127) << 23) as u32) * p }
        }
        let halfway = (0..=126).flat_map(|k| {
            let x = -(k as f32 + 0.5) / std::f32::consts::LOG2_E;
            [x, f32::from_bits(x.to_bits() + 1), f32::from_bits(x.to_bits() - 1)]
        });
        let stepped = (0..(87f32).to_bits()).step_by(2_999).map(|b| -f32::from_bits(b));
        for x in stepped.chain(halfway).chain([0.0, -0.0, -87.0, -86.999_99]) {
            assert_eq!(exp_approx(x).to_bits(), converted(x).to_bits(), "e^{x}");
        }
    }

    #[test]
    fn blocks_follow_caches_and_positions() {
        let (a, b) = (vec![0f32; 4], vec![0f32; 4]);
        let rows: Vec<(&[f32], &[f32], usize)> = [(&a, 0), (&a, 1), (&a, 2), (&b, 3), (&b, 4), (&a, 9)].iter().map(|(c, p)| (&c[..], &c[..], *p)).collect();
        assert_eq!(blocks(&rows), vec![(0, 3), (3, 5), (5, 6)]);
        let long: Vec<(&[f32], &[f32], usize)> = (0..40).map(|p| (&a[..], &a[..], p)).collect();
        assert_eq!(blocks(&long), vec![(0, 16), (16, 32), (32, 40)]);
    }
}
