use super::kernels::{dequantize_row, dot_tiles, quantize_act, quantize_act_k, scatter_tile, ActBlock, WeightType, MAX_TOKENS, QK};
use crate::engine::model::{KvType, ModelConfig};
use crate::engine::EngineError;
use candle_core::quantized::{gguf_file, GgmlDType};
use super::attention::attention;
use super::cache::{Cache, Q8_BLOCK};
use super::gate::Gate;
use super::pool::{OutPtr, Pool};
use std::io::{Read, Seek, SeekFrom};

/// A quantized weight matrix in its GGUF block layout, one row per output feature.
struct Matrix {
    t: WeightType,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

impl Matrix {
    fn row_bytes(&self) -> usize {
        self.t.row_bytes(self.cols)
    }

    fn row(&self, r: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }
}

/// A matmul input, quantized as llama.cpp quantizes it for each weight format: per 32
/// values for the 32-value formats, per 256 for the K-quants (kept apart because a layer's
/// matrices may mix both).
#[derive(Default)]
struct Acts {
    per32: Vec<ActBlock>,
    per256: Vec<ActBlock>,
}

/// Computes `out_i[t][r] = row_r(m_i) · x[t]` for several matrices sharing one input `x`
/// (`n_tok` rows), as one parallel job; each weight row is read once for all tokens.
fn matmul(jobs: &mut [(&Matrix, &mut [f32])], x: &[f32], n_tok: usize, scratch: &mut Acts) {
    let width = x.len() / n_tok;
    let pool = Pool::global();
    for k in [false, true] {
        if jobs.iter().any(|(m, _)| m.t.is_k() == k) {
            let acts = if k { &mut scratch.per256 } else { &mut scratch.per32 };
            acts.resize(x.len() / QK, ActBlock::default());
            // Whole tokens per task, and at least four: a short input stays on the caller.
            let tokens = n_tok.div_ceil(pool.threads()).max(4);
            pool.chunks_mut(acts, tokens * width / QK, &|i, ar| {
                let xr = &x[i * tokens * width..][..ar.len() * QK];
                if k {
                    quantize_act_k(xr, ar)
                } else {
                    quantize_act(xr, ar)
                }
            });
        }
    }
    let scratch = &*scratch;
    let mut chunks = Vec::new();
    let total_rows: usize = jobs.iter().map(|(m, _)| m.rows).sum();
    let per = total_rows.div_ceil(pool.threads() * 4).max(16);
    for (j, (m, out)) in jobs.iter_mut().enumerate() {
        debug_assert_eq!(out.len(), n_tok * m.rows);
        debug_assert_eq!(width, m.cols);
        let mut r = 0;
        while r < m.rows {
            chunks.push((j, r, (r + per).min(m.rows)));
            r += per;
        }
    }
    let outs: Vec<(&Matrix, OutPtr)> = jobs.iter_mut().map(|(m, o)| (&**m, OutPtr(o.as_mut_ptr()))).collect();
    pool.run(chunks.len(), &|c| {
        let (j, r0, r1) = chunks[c];
        let (m, out) = outs[j];
        let nb = m.cols / QK;
        let acts = if m.t.is_k() { &scratch.per256[..] } else { &scratch.per32[..] };
        let rb = m.row_bytes();
        let rows = &m.data[r0 * rb..r1 * rb];
        let n_rows = r1 - r0;
        // Decode: the chunk's rows one at a time against the one token, in one call.
        // Four short rows at a time used to win (1.2-1.7x while called once per four rows);
        // with the rows walked inside the kernel and read ahead (PREFETCH in kernels/x86.rs)
        // one at a time decodes the default model 1.15-1.2x faster than four at a time
        // (three interleaved pairs, EPYC), and four rows past the L2 cache were always slow.
        if n_tok == 1 {
            // SAFETY: rows r0..r1 of the one token are this task's alone, inside `out`.
            let res = unsafe { std::slice::from_raw_parts_mut(out.at(r0), n_rows) };
            dot_tiles(m.t, rows, rb, &[&acts[..nb]], res);
            return;
        }
        // Prefill (or a group's tokens side by side): every row of the chunk against up
        // to MAX_TOKENS tokens at a time, each weight block unpacked once for all of them.
        let mut res = vec![0f32; n_rows * MAX_TOKENS];
        for t0 in (0..n_tok).step_by(MAX_TOKENS) {
            let k = (n_tok - t0).min(MAX_TOKENS);
            let mut group: [&[ActBlock]; MAX_TOKENS] = [&[]; MAX_TOKENS];
            for (j, g) in group.iter_mut().enumerate().take(k) {
                *g = &acts[(t0 + j) * nb..(t0 + j + 1) * nb];
            }
            dot_tiles(m.t, rows, rb, &group[..k], &mut res[..n_rows * k]);
            // SAFETY: rows r0..r1 of tokens t0..t0 + k are this task's alone, inside `out`.
            unsafe { scatter_tile(&res[..n_rows * k], k, out.at(t0 * m.rows + r0), m.rows) };
        }
    });
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: Matrix,
    wk: Matrix,
    wv: Matrix,
    wo: Matrix,
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    /// Gemma's norms of the attention and FFN outputs, before each residual add.
    post_attn_norm: Option<Vec<f32>>,
    post_ffn_norm: Option<Vec<f32>>,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
}

pub struct CpuModel {
    pub cfg: ModelConfig,
    embed: Matrix,
    output: Option<Matrix>,
    norm: Vec<f32>,
    layers: Vec<Layer>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// A Gemma's local (sliding-window) layers' rope tables; empty otherwise.
    cos_local: Vec<f32>,
    sin_local: Vec<f32>,
    /// Sequence slots: 0 is the main sequence; [`CpuModel::fork`] adds copies of it that
    /// decode side by side ([`CpuModel::forward_slots`]).
    caches: Vec<Cache>,
}

impl CpuModel {
    /// Whether this file can run on the fast path: supported block types and dimensions
    /// that are multiples of 32. Anything else runs on the general path.
    pub fn supports(ct: &gguf_file::Content, cfg: &ModelConfig) -> bool {
        if !super::kernels::has_avx2() || cfg.hidden % QK != 0 || cfg.head_dim % 2 != 0 {
            return false;
        }
        ct.tensor_infos.iter().all(|(name, t)| {
            let is_matrix = name.ends_with(".weight") && t.shape.dims().len() == 2;
            !is_matrix || WeightType::from_ggml(t.ggml_dtype).is_some_and(|w| t.shape.dims()[1] % w.block_values() == 0)
        })
    }

    pub fn load<R: Read + Seek>(ct: &gguf_file::Content, r: &mut R, cfg: ModelConfig, kv: KvType) -> Result<Self, EngineError> {
        if kv == KvType::Q8 && cfg.head_dim % Q8_BLOCK != 0 {
            return Err(EngineError::Unsupported(format!("a q8_0 K/V cache stores each head's rows as whole blocks of {Q8_BLOCK} values, and this model's heads are {} wide. Hint: LONGWRITER_KV_CACHE=f16", cfg.head_dim)));
        }
        let embed = matrix(ct, r, "token_embd.weight")?;
        let output = if ct.tensor_infos.contains_key("output.weight") { Some(matrix(ct, r, "output.weight")?) } else { None };
        let norm = vector(ct, r, "output_norm.weight")?.ok_or_else(|| EngineError::Format("missing output_norm.weight".into()))?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            let req = |v: Option<Vec<f32>>, s: &str| v.ok_or_else(|| EngineError::Format(format!("missing blk.{i}.{s}")));
            layers.push(Layer {
                attn_norm: req(vector(ct, r, &n("attn_norm.weight"))?, "attn_norm.weight")?,
                wq: matrix(ct, r, &n("attn_q.weight"))?,
                wk: matrix(ct, r, &n("attn_k.weight"))?,
                wv: matrix(ct, r, &n("attn_v.weight"))?,
                wo: matrix(ct, r, &n("attn_output.weight"))?,
                bq: vector(ct, r, &n("attn_q.bias"))?,
                bk: vector(ct, r, &n("attn_k.bias"))?,
                bv: vector(ct, r, &n("attn_v.bias"))?,
                q_norm: vector(ct, r, &n("attn_q_norm.weight"))?,
                k_norm: vector(ct, r, &n("attn_k_norm.weight"))?,
                ffn_norm: req(vector(ct, r, &n("ffn_norm.weight"))?, "ffn_norm.weight")?,
                post_attn_norm: vector(ct, r, &n("post_attention_norm.weight"))?,
                post_ffn_norm: vector(ct, r, &n("post_ffw_norm.weight"))?,
                gate: matrix(ct, r, &n("ffn_gate.weight"))?,
                up: matrix(ct, r, &n("ffn_up.weight"))?,
                down: matrix(ct, r, &n("ffn_down.weight"))?,
            });
        }
        let (cos, sin) = crate::engine::model::rope_table(&cfg, cfg.rope_base);
        let (cos_local, sin_local) = match &cfg.gemma {
            Some(g) => crate::engine::model::rope_table(&cfg, g.rope_base_local),
            None => (Vec::new(), Vec::new()),
        };
        if cfg.gemma.is_some() && layers.iter().any(|l| l.post_attn_norm.is_none() || l.post_ffn_norm.is_none()) {
            return Err(EngineError::Format("a gemma3 layer lacks post_attention_norm or post_ffw_norm".into()));
        }
        Ok(Self { cfg, embed, output, norm, layers, cos, sin, cos_local, sin_local, caches: vec![Cache::new(kv)] })
    }

    /// How this model stores its K/V cache.
    pub fn kv_type(&self) -> KvType {
        self.caches[0].kv_type()
    }

    pub fn position(&self) -> usize {
        self.caches[0].pos
    }

    pub fn clear(&mut self) {
        self.caches.truncate(1);
        self.caches[0].pos = 0;
    }

    pub fn truncate(&mut self, len: usize) {
        self.caches[0].pos = self.caches[0].pos.min(len);
    }

    /// Replaces a weight matrix (by its GGUF name) with new quantized bytes of the same
    /// shape, and forgets every cached position (they were computed with the old weights).
    pub fn set_matrix(&mut self, name: &str, dtype: GgmlDType, rows: usize, cols: usize, data: Vec<u8>) -> Result<(), EngineError> {
        let t = WeightType::from_ggml(dtype).ok_or_else(|| EngineError::Unsupported(format!("{name} has type {dtype:?}")))?;
        let (i, kind) = crate::engine::block_matrix(name)?;
        let l = self.layers.get_mut(i).ok_or_else(|| EngineError::Model(format!("no weight matrix {name}")))?;
        let m = [&mut l.wq, &mut l.wk, &mut l.wv, &mut l.wo, &mut l.gate, &mut l.up, &mut l.down].into_iter().nth(kind).expect("seven block matrices");
        if (m.rows, m.cols) != (rows, cols) || cols % t.block_values() != 0 || data.len() != rows * t.row_bytes(cols) {
            return Err(EngineError::Model(format!("{name}: new weights are {rows}×{cols} in {} bytes, the model's are {}×{}", data.len(), m.rows, m.cols)));
        }
        *m = Matrix { t, rows, cols, data };
        self.clear();
        Ok(())
    }

    /// Makes slots 1..=n copies of the main sequence (slot 0), which stays as it is.
    pub fn fork(&mut self, n: usize) {
        let copy = self.caches[0].used(self.cfg.n_kv_head, self.cfg.head_dim);
        self.caches.truncate(1);
        self.caches.extend(std::iter::repeat_n(copy, n));
    }

    /// One token for each of `slots` (distinct, from [`CpuModel::fork`]), each after its
    /// own cached positions, in one pass: every weight row is read once for all of them.
    /// Returns their logits, row after row.
    pub fn forward_slots(&mut self, slots: &[usize], ids: &[u32]) -> Result<Vec<f32>, EngineError> {
        assert_eq!(slots.len(), ids.len(), "one token per slot");
        if ids.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        if let Some(&bad) = slots.iter().find(|&&s| s == 0 || s >= self.caches.len()) {
            return Err(EngineError::Model(format!("no sequence slot {bad}")));
        }
        if let Some(&s) = slots.iter().find(|&&s| self.caches[s].pos >= self.cfg.context_length) {
            return Err(EngineError::ContextOverflow { needed: self.caches[s].pos + 1, limit: self.cfg.context_length });
        }
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= self.embed.rows) {
            return Err(EngineError::Model(format!("token id {bad} is outside the vocabulary")));
        }
        let rows: Vec<(usize, usize)> = slots.iter().map(|&s| (s, self.caches[s].pos)).collect();
        let logits = self.run(ids, &rows, true);
        for &s in slots {
            self.caches[s].pos += 1;
        }
        Ok(logits)
    }

    /// Runs `ids` after the cached positions; returns the last position's logits, or with
    /// `all` every position's, row after row.
    pub fn forward(&mut self, ids: &[u32], all: bool) -> Result<Vec<f32>, EngineError> {
        if ids.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let pos = self.caches[0].pos;
        if pos + ids.len() > self.cfg.context_length {
            return Err(EngineError::ContextOverflow { needed: pos + ids.len(), limit: self.cfg.context_length });
        }
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= self.embed.rows) {
            return Err(EngineError::Model(format!("token id {bad} is outside the vocabulary")));
        }
        let rows: Vec<(usize, usize)> = (0..ids.len()).map(|t| (0, pos + t)).collect();
        let logits = self.run(ids, &rows, all);
        self.caches[0].pos += ids.len();
        Ok(logits)
    }

    /// Runs token `ids[i]` as position `rows[i].1` of sequence slot `rows[i].0`. Rows of one
    /// slot must be consecutive positions in order (a prefill chunk); each row attends to
    /// its own slot's cache up to its position.
    fn run(&mut self, ids: &[u32], rows: &[(usize, usize)], all: bool) -> Vec<f32> {
        let cfg = self.cfg.clone();
        let (s, hid) = (ids.len(), cfg.hidden);
        let (nh, nkv, hd) = (cfg.n_head, cfg.n_kv_head, cfg.head_dim);
        let (qd, kvd) = (nh * hd, nkv * hd);
        let eps = cfg.rms_eps as f32;
        for &(slot, p) in rows {
            self.caches[slot].reserve(self.layers.len(), p + 1, nkv, hd, cfg.context_length);
        }
        let mut x = vec![0f32; s * hid];
        for (t, &id) in ids.iter().enumerate() {
            dequantize_row(self.embed.t, self.embed.row(id as usize), &mut x[t * hid..(t + 1) * hid]);
        }
        if cfg.gemma.is_some() {
            let scale = (hid as f32).sqrt();
            x.iter_mut().for_each(|v| *v *= scale);
        }
        let mut h = vec![0f32; s * hid];
        let mut acts = Acts::default();
        let (mut q, mut k, mut v) = (vec![0f32; s * qd], vec![0f32; s * kvd], vec![0f32; s * kvd]);
        let mut att = vec![0f32; s * qd];
        let mut proj = vec![0f32; s * hid];
        let ffn = self.layers[0].gate.rows;
        let (mut g, mut u) = (vec![0f32; s * ffn], vec![0f32; s * ffn]);
        for (li, l) in self.layers.iter().enumerate() {
            // A Gemma's local layers: their own rope base, and a window over the cache.
            let local = cfg.gemma.filter(|g| g.is_local(li));
            let (cos, sin) = if local.is_some() { (&self.cos_local, &self.sin_local) } else { (&self.cos, &self.sin) };
            let window = local.map_or(0, |g| g.window);
            rms_norm(&x, &l.attn_norm, eps, &mut h);
            matmul(&mut [(&l.wq, &mut q), (&l.wk, &mut k), (&l.wv, &mut v)], &h, s, &mut acts);
            add_bias(&mut q, l.bq.as_deref());
            add_bias(&mut k, l.bk.as_deref());
            add_bias(&mut v, l.bv.as_deref());
            if let Some(w) = &l.q_norm {
                rms_norm_in_place(&mut q, w, eps);
            }
            if let Some(w) = &l.k_norm {
                rms_norm_in_place(&mut k, w, eps);
            }
            for (t, &(slot, p)) in rows.iter().enumerate() {
                let (c, sn) = (&cos[p * hd / 2..(p + 1) * hd / 2], &sin[p * hd / 2..(p + 1) * hd / 2]);
                for head in q[t * qd..(t + 1) * qd].chunks_exact_mut(hd).chain(k[t * kvd..(t + 1) * kvd].chunks_exact_mut(hd)) {
                    rope(head, c, sn, cfg.rope_neox);
                }
                let cache = &mut self.caches[slot];
                cache.k[li].write_position(p, nkv, &k[t * kvd..(t + 1) * kvd]);
                cache.v[li].write_position(p, nkv, &v[t * kvd..(t + 1) * kvd]);
            }
            attend(&self.caches, li, &q, rows, window, &cfg, &mut att);
            matmul(&mut [(&l.wo, &mut proj)], &att, s, &mut acts);
            if let Some(w) = &l.post_attn_norm {
                rms_norm_in_place(&mut proj, w, eps);
            }
            add(&mut x, &proj);

            rms_norm(&x, &l.ffn_norm, eps, &mut h);
            matmul(&mut [(&l.gate, &mut g), (&l.up, &mut u)], &h, s, &mut acts);
            if cfg.gemma.is_some() { Gate::Gelu } else { Gate::Silu }.apply(&mut g, &u, Pool::global());
            matmul(&mut [(&l.down, &mut proj)], &g, s, &mut acts);
            if let Some(w) = &l.post_ffn_norm {
                rms_norm_in_place(&mut proj, w, eps);
            }
            add(&mut x, &proj);
        }
        let rows = if all { s } else { 1 };
        let last = &x[(s - rows) * hid..];
        let mut normed = vec![0f32; rows * hid];
        rms_norm(last, &self.norm, eps, &mut normed);
        let out = self.output.as_ref().unwrap_or(&self.embed);
        let mut logits = vec![0f32; rows * out.rows];
        matmul(&mut [(out, &mut logits)], &normed, rows, &mut acts);
        logits
    }
}

/// Layer `li`'s attention for `rows` ((slot, position) each) over their slots' caches;
/// with a `window`, over the last `window` positions only.
#[allow(clippy::too_many_arguments)]
fn attend(caches: &[Cache], li: usize, q: &[f32], rows: &[(usize, usize)], window: usize, cfg: &ModelConfig, out: &mut [f32]) {
    let views: Vec<_> = rows.iter().map(|&(slot, p)| (&caches[slot].k[li], &caches[slot].v[li], p)).collect();
    attention(q, &views, window, cfg.n_head, cfg.n_kv_head, cfg.head_dim, out);
}

/// RMS norm of each `w.len()`-wide row of `x` into `out`.
fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    for (xr, or) in x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())) {
        let scale = rms_scale(xr, eps);
        for ((o, &xv), &wv) in or.iter_mut().zip(xr).zip(w) {
            *o = xv * scale * wv;
        }
    }
}

/// [`rms_norm`] of `x` into itself (per-head q/k norms, Gemma's output norms), the same
/// arithmetic without a copy of the rows.
fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    for xr in x.chunks_exact_mut(w.len()) {
        let scale = rms_scale(xr, eps);
        for (xv, &wv) in xr.iter_mut().zip(w) {
            *xv = *xv * scale * wv;
        }
    }
}

/// 1 / √(mean square + eps) of one row.
fn rms_scale(xr: &[f32], eps: f32) -> f32 {
    1.0 / (xr.iter().map(|v| v * v).sum::<f32>() / xr.len() as f32 + eps).sqrt()
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

fn add_bias(x: &mut [f32], b: Option<&[f32]>) {
    if let Some(b) = b {
        for row in x.chunks_exact_mut(b.len()) {
            add(row, b);
        }
    }
}

/// Rotates one head in place: interleaved pairs (2i, 2i+1) for llama GGUFs, halves
/// (i, i+d/2) for NeoX-style models.
fn rope(head: &mut [f32], cos: &[f32], sin: &[f32], neox: bool) {
    let half = head.len() / 2;
    for i in 0..half {
        let (a, b) = if neox { (i, i + half) } else { (2 * i, 2 * i + 1) };
        let (x0, x1) = (head[a], head[b]);
        head[a] = x0 * cos[i] - x1 * sin[i];
        head[b] = x0 * sin[i] + x1 * cos[i];
    }
}

fn read_bytes<R: Read + Seek>(ct: &gguf_file::Content, r: &mut R, name: &str) -> Result<Option<(Vec<u8>, GgmlDType, Vec<usize>)>, EngineError> {
    let Some(info) = ct.tensor_infos.get(name) else { return Ok(None) };
    let dims = info.shape.dims().to_vec();
    let size = info.shape.elem_count() / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
    let mut buf = vec![0u8; size];
    r.seek(SeekFrom::Start(ct.tensor_data_offset + info.offset)).and_then(|_| r.read_exact(&mut buf)).map_err(|e| EngineError::Format(format!("reading tensor {name}: {e}")))?;
    Ok(Some((buf, info.ggml_dtype, dims)))
}

fn matrix<R: Read + Seek>(ct: &gguf_file::Content, r: &mut R, name: &str) -> Result<Matrix, EngineError> {
    let (data, dt, dims) = read_bytes(ct, r, name)?.ok_or_else(|| EngineError::Format(format!("missing tensor {name}")))?;
    let t = WeightType::from_ggml(dt).ok_or_else(|| EngineError::Unsupported(format!("{name} has type {dt:?}")))?;
    // candle reports GGUF shapes outermost first: (rows, cols).
    let (rows, cols) = (dims[0], dims[1]);
    Ok(Matrix { t, rows, cols, data })
}

fn vector<R: Read + Seek>(ct: &gguf_file::Content, r: &mut R, name: &str) -> Result<Option<Vec<f32>>, EngineError> {
    let Some((data, dt, _)) = read_bytes(ct, r, name)? else { return Ok(None) };
    match dt {
        GgmlDType::F32 => Ok(Some(data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())),
        GgmlDType::F16 => Ok(Some(data.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect())),
        other => Err(EngineError::Unsupported(format!("{name} has type {other:?}"))),
    }
}
