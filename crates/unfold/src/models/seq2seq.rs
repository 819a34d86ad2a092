//! Encoder-decoder (sequence to sequence): an encoder (any recurrent stack, optionally
//! bidirectional) reads `x(1..nx)`; its context `C` (the top layer's final state, both
//! directions joined) is given to the decoder as its initial state (through a learned
//! `tanh` projection), as an extra input at every step, or both; the decoder, fed the previous
//! target symbol (teacher forcing), predicts `y(1..ny)`.
//!
//! Optional attention over all encoder states, on the decoder's outputs as in Luong et al.
//! (2015): `a(t) = softmax_s score(h(t), e(s))`, `c(t) = sum_s a_s(t) e(s)`,
//! `h~(t) = tanh(W_c [c(t); h(t)] + b_c)`, `o(t) = head(h~(t))`, with the multiplicative score
//! `h^T W_a e` or the additive (Bahdanau) score `v^T tanh(W_1 h + W_2 e + b)`. Attention does
//! not feed back into the recurrence, so training stays one batched pass over all target
//! steps.
//!
//! Training is teacher-forced, or uses scheduled sampling in its parallel form (the trainer's
//! self-feeding probability: inputs replaced by symbols drawn from a teacher-forced pass's
//! predictions). Decoding is greedy or by beam search ([`Seq2Seq::translate`]): beam width,
//! length normalisation and `<end>` handling. Exact gradients everywhere (finite-difference
//! tests).

#![allow(clippy::needless_range_loop)] // attention loops index several parallel buffers

use crate::data::{vocab, SeqBatch, Values};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::gemm::dot;
use crate::layers::embedding::Embedding;
use crate::layers::linear::Linear;
use crate::layers::output::{LossStats, OutputKind, OutputLayer};
use crate::layers::{CellKind, Recurrent, RecurrentConfig, RecurrentState, TrainCache};
use crate::models::{
    compose_parameters, project_init, project_init_backward, scored_rows, target_view,
    InitProjection, Model, TrainContext,
};
use crate::probes::ProbeView;

/// Attention over the encoder states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Attention {
    /// None: the decoder sees the source only through the context vector.
    None,
    /// Additive (Bahdanau): `v^T tanh(W_1 h + W_2 e + b)`.
    Additive,
    /// Multiplicative (Luong's general score): `h^T W_a e`.
    Multiplicative,
}

/// Architecture of a [`Seq2Seq`] model.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Seq2SeqConfig {
    /// Source symbols.
    pub src_vocab: usize,
    /// Target symbols (the special symbols of [`crate::data::vocab`] included).
    pub tgt_vocab: usize,
    /// Embedding width of both sides.
    pub embed: usize,
    /// Recurrent cell of encoder and decoder.
    pub cell: CellKind,
    /// Hidden units per layer (decoder; also encoder per direction).
    pub hidden: usize,
    /// Layers of encoder and decoder.
    pub layers: usize,
    /// Bidirectional encoder.
    pub bidirectional: bool,
    /// Give the context to the decoder as its initial state.
    pub context_init: bool,
    /// Give the context to the decoder as an extra input at every step.
    pub context_every_step: bool,
    /// Attention over the encoder states.
    pub attention: Attention,
}

/// An encoder-decoder model.
#[derive(Debug, Clone, PartialEq)]
pub struct Seq2Seq<T> {
    config: Seq2SeqConfig,
    /// Source embedding.
    pub src_embed: Embedding<T>,
    /// Target embedding (decoder input).
    pub tgt_embed: Embedding<T>,
    /// The encoder stack.
    pub encoder: Recurrent<T>,
    /// Context to decoder initial state, `[L*H, Dc]` (when `context_init`).
    pub bridge: Option<Linear<T>>,
    /// The decoder stack.
    pub decoder: Recurrent<T>,
    /// Keys `W_a e` (multiplicative) or `W_2 e` (additive), `[H, Dc]`.
    pub attn_key: Option<Linear<T>>,
    /// `W_1 h + b` of the additive score, `[H, H]`.
    pub attn_query: Option<Linear<T>>,
    /// `v` of the additive score, `[1, H]`.
    pub attn_v: Option<Linear<T>>,
    /// `W_c [c; h] + b_c`, `[H, Dc + H]`.
    pub combine: Option<Linear<T>>,
    /// Output head.
    pub head: Linear<T>,
    /// Softmax over target symbols, `<pad>` ignored.
    pub output: OutputLayer<T>,
}

compose_parameters!(Seq2Seq {
    src_embed: "src_embed",
    tgt_embed: "tgt_embed",
    encoder: "encoder",
    bridge: "bridge",
    decoder: "decoder",
    attn_key: "attn_key",
    attn_query: "attn_query",
    attn_v: "attn_v",
    combine: "combine",
    head: "head",
    output: "output"
});

/// Buffers of a [`Seq2Seq`] model.
#[derive(Debug, Default)]
pub struct Seq2SeqWorkspace<T> {
    src_x: Vec<T>,
    enc: TrainCache<T>,
    ctx: Vec<T>,
    pre: Vec<T>,
    init: RecurrentState<T>,
    dec_x: Vec<T>,
    tgt_x: Vec<T>,
    dec: TrainCache<T>,
    keys: Vec<T>,
    query: Vec<T>,
    u: Vec<T>,
    attn: Vec<T>,
    cat: Vec<T>,
    htil: Vec<T>,
    logits: Vec<T>,
    dlogits: Vec<T>,
    dtop: Vec<T>,
    dcat: Vec<T>,
    dh: Vec<T>,
    de: Vec<T>,
    dkeys: Vec<T>,
    dquery: Vec<T>,
    dscore: Vec<T>,
    dctx: Vec<T>,
    dpre: Vec<T>,
    dtgt: Vec<T>,
    dfinal: RecurrentState<T>,
    ulen: usize,
}

impl<T: Float> Seq2SeqWorkspace<T> {
    /// `[Ty, B, V]` output rows of the last call.
    pub fn logits(&self) -> &[T] {
        &self.logits
    }

    /// `[Ty, B, Tx]` attention weights of the last call (empty without attention).
    pub fn attention(&self) -> &[T] {
        &self.attn
    }
}

fn tanh_in_place<T: Float>(v: &mut [T]) {
    v.iter_mut().for_each(|x| *x = x.tanh());
}

impl<T: Float> Seq2Seq<T> {
    /// A model initialised as PyTorch initialises each part, from `seed`.
    pub fn new(config: Seq2SeqConfig, seed: u64) -> Result<Self> {
        let c = config;
        if c.src_vocab == 0 || c.tgt_vocab <= vocab::SPECIALS {
            return Err(Error::InvalidConfig("vocabularies are empty".into()));
        }
        let h = c.hidden;
        let enc_cfg = RecurrentConfig::new(c.cell, c.embed, h)
            .layers(c.layers)
            .bidirectional(c.bidirectional);
        let dc = enc_cfg.output_size();
        let dec_in = c.embed + if c.context_every_step { dc } else { 0 };
        let dec_cfg = RecurrentConfig::new(c.cell, dec_in, h).layers(c.layers);
        let s = |k: u64| seed.wrapping_add(k);
        let attn = c.attention != Attention::None;
        Ok(Seq2Seq {
            config,
            src_embed: Embedding::new(c.src_vocab, c.embed, s(0))?,
            tgt_embed: Embedding::new(c.tgt_vocab, c.embed, s(1))?,
            encoder: Recurrent::new(enc_cfg, s(2))?,
            bridge: if c.context_init {
                Some(Linear::new(dc, c.layers * h, true, s(3))?)
            } else {
                None
            },
            decoder: Recurrent::new(dec_cfg, s(4))?,
            attn_key: if attn {
                Some(Linear::new(dc, h, false, s(5))?)
            } else {
                None
            },
            attn_query: if c.attention == Attention::Additive {
                Some(Linear::new(h, h, true, s(6))?)
            } else {
                None
            },
            attn_v: if c.attention == Attention::Additive {
                Some(Linear::new(h, 1, false, s(7))?)
            } else {
                None
            },
            combine: if attn {
                Some(Linear::new(dc + h, h, true, s(8))?)
            } else {
                None
            },
            head: Linear::new(h, c.tgt_vocab, true, s(9))?,
            output: OutputLayer::new(OutputKind::Categorical {
                classes: c.tgt_vocab,
                pad: Some(vocab::PAD),
            })?,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &Seq2SeqConfig {
        &self.config
    }

    fn dc(&self) -> usize {
        self.encoder.config().output_size()
    }

    /// Encoder, context, decoder and attention forward over a batch (teacher forcing: the
    /// batch's inputs are the previous target symbols). Fills the workspace.
    fn forward(&self, batch: &SeqBatch<T>, ws: &mut Seq2SeqWorkspace<T>) -> Result<()> {
        let src = batch.source.as_ref().ok_or_else(|| {
            Error::InvalidCall("an encoder-decoder batch needs source sequences".into())
        })?;
        let (Values::Symbols(sids), Values::Symbols(tids)) = (&src.input, &batch.input) else {
            return Err(Error::InvalidCall(
                "encoder-decoder inputs must be symbols".into(),
            ));
        };
        if src.lengths.contains(&0) {
            return Err(Error::InvalidCall("empty source sequence".into()));
        }
        let c = &self.config;
        let (b, tx, ty, h, e) = (batch.batch, src.steps, batch.steps, c.hidden, c.embed);
        let dc = self.dc();
        // Encoder.
        ws.src_x.resize(tx * b * e, T::ZERO);
        self.src_embed.forward(sids, &mut ws.src_x)?;
        self.encoder
            .forward_train(&ws.src_x, tx, b, Some(&src.lengths), None, &mut ws.enc)?;
        // Context: the top layer's final h, both directions.
        ws.ctx.resize(b * dc, T::ZERO);
        ws.enc
            .final_state()
            .top_h_into(self.encoder.config(), &mut ws.ctx);
        // Decoder initial state.
        let dcfg = self.decoder.config().clone();
        let init = match &self.bridge {
            Some(br) => {
                let ip = InitProjection {
                    proj: br,
                    config: &dcfg,
                    c: &ws.ctx,
                    batch: b,
                };
                project_init(&ip, &mut ws.pre, &mut ws.init)?;
                Some(&ws.init)
            }
            None => None,
        };
        // Decoder inputs: previous target symbol, and the context at every step.
        let din = dcfg.input_size;
        ws.tgt_x.resize(ty * b * e, T::ZERO);
        self.tgt_embed.forward(tids, &mut ws.tgt_x)?;
        ws.dec_x.resize(ty * b * din, T::ZERO);
        for r in 0..ty * b {
            ws.dec_x[r * din..r * din + e].copy_from_slice(&ws.tgt_x[r * e..(r + 1) * e]);
            if c.context_every_step {
                let j = r % b;
                ws.dec_x[r * din + e..(r + 1) * din].copy_from_slice(&ws.ctx[j * dc..(j + 1) * dc]);
            }
        }
        self.decoder
            .forward_train(&ws.dec_x, ty, b, Some(&batch.lengths), init, &mut ws.dec)?;
        let rows = ty * b;
        let v = self.head.out_features();
        ws.logits.resize(rows * v, T::ZERO);
        if let (Some(key), Some(comb)) = (&self.attn_key, &self.combine) {
            let enc_out = ws.enc.output();
            let dec_out = ws.dec.output();
            ws.keys.resize(tx * b * h, T::ZERO);
            key.forward(enc_out, tx * b, &mut ws.keys)?;
            if let Some(q) = &self.attn_query {
                ws.query.resize(rows * h, T::ZERO);
                q.forward(dec_out, rows, &mut ws.query)?;
                ws.u.resize(rows * tx * h, T::ZERO);
                ws.ulen = tx;
            }
            ws.attn.clear();
            ws.attn.resize(rows * tx, T::ZERO);
            ws.cat.clear();
            ws.cat.resize(rows * (dc + h), T::ZERO);
            for t in 0..ty {
                for j in 0..b {
                    let r = t * b + j;
                    let hrow = &dec_out[r * h..(r + 1) * h];
                    if t < batch.lengths[j] {
                        let keys = SourceKeys {
                            keys: &ws.keys,
                            batch: b,
                            index: j,
                            len: src.lengths[j],
                        };
                        let additive = self.attn_v.as_ref().map(|_| {
                            (
                                &ws.query[r * h..(r + 1) * h],
                                &mut ws.u[r * tx * h..(r + 1) * tx * h],
                            )
                        });
                        self.attend(hrow, keys, additive, &mut ws.attn[r * tx..(r + 1) * tx]);
                        let cat = &mut ws.cat[r * (dc + h)..(r + 1) * (dc + h)];
                        for s in 0..src.lengths[j] {
                            let a = ws.attn[r * tx + s];
                            for (cv, &ev) in
                                cat[..dc].iter_mut().zip(&enc_out[(s * b + j) * dc..][..dc])
                            {
                                *cv += a * ev;
                            }
                        }
                    }
                    ws.cat[r * (dc + h) + dc..(r + 1) * (dc + h)].copy_from_slice(hrow);
                }
            }
            ws.htil.resize(rows * h, T::ZERO);
            comb.forward(&ws.cat, rows, &mut ws.htil)?;
            tanh_in_place(&mut ws.htil);
            self.head.forward(&ws.htil, rows, &mut ws.logits)?;
        } else {
            self.head.forward(ws.dec.output(), rows, &mut ws.logits)?;
        }
        Ok(())
    }

    /// Attention weights `a` of one decoder row `hrow` over one source's states (softmax of
    /// the scores). For additive attention, `additive` holds the row's query projection and
    /// the `[len, H]` block where the score's `u = tanh(q + k)` is stored for backward.
    fn attend(
        &self,
        hrow: &[T],
        src: SourceKeys<'_, T>,
        mut additive: Option<(&[T], &mut [T])>,
        a: &mut [T],
    ) {
        let h = self.config.hidden;
        let len = src.len;
        for s in 0..len {
            let k = &src.keys[(s * src.batch + src.index) * h..][..h];
            a[s] = match (&self.attn_v, additive.as_mut()) {
                (Some(v), Some((q, u))) => {
                    let us = &mut u[s * h..(s + 1) * h];
                    for ((o, &qi), &ki) in us.iter_mut().zip(*q).zip(k) {
                        *o = (qi + ki).tanh();
                    }
                    dot(&v.weight, us)
                }
                _ => dot(hrow, k),
            };
        }
        let m = a[..len]
            .iter()
            .fold(a[0], |m, &x| if x > m { x } else { m });
        let mut sum = T::ZERO;
        for x in a[..len].iter_mut() {
            *x = (*x - m).exp();
            sum += *x;
        }
        let inv = T::ONE / sum;
        a[..len].iter_mut().for_each(|x| *x *= inv);
    }
}

impl<T: Float> Model<T> for Seq2Seq<T> {
    type Batch = SeqBatch<T>;
    type EvalSet = crate::data::Dataset<T>;
    type Workspace = Seq2SeqWorkspace<T>;

    fn loss_and_grad(
        &self,
        batch: &SeqBatch<T>,
        ws: &mut Self::Workspace,
        grads: &mut Self,
        ctx: &mut TrainContext<'_>,
    ) -> Result<LossStats> {
        if ctx.feed_prob > 0.0 {
            // Scheduled sampling, in parallel (Duckworth et al. 2019): a teacher-forced pass
            // gives the model's prediction at every step; each decoder input after the first
            // is then replaced, with probability p, by a symbol drawn from the prediction at
            // the step before, and the model is trained on the mixed inputs (the drawn
            // symbols count as given inputs, as in Bengio et al. 2015).
            self.forward(batch, ws)?;
            let Values::Symbols(tids) = &batch.input else {
                return Err(Error::InvalidCall(
                    "encoder-decoder inputs must be symbols".into(),
                ));
            };
            let (b, v) = (batch.batch, self.head.out_features());
            let mut mixed = tids.clone();
            for t in 1..batch.steps {
                for j in 0..b {
                    if t < batch.lengths[j] && ctx.rng.uniform() < ctx.feed_prob {
                        let r = (t - 1) * b + j;
                        mixed[t * b + j] = crate::layers::output::sample_softmax(
                            &ws.logits[r * v..(r + 1) * v],
                            ctx.rng,
                        );
                    }
                }
            }
            let mut fed = batch.clone();
            fed.input = Values::Symbols(mixed);
            let mut tf = TrainContext {
                rng: &mut *ctx.rng,
                feed_prob: 0.0,
                step: ctx.step,
            };
            return self.loss_and_grad(&fed, ws, grads, &mut tf);
        }
        self.forward(batch, ws)?;
        let c = &self.config;
        let src = batch.source.as_ref().expect("checked in forward");
        let (b, tx, ty, h, e) = (batch.batch, src.steps, batch.steps, c.hidden, c.embed);
        let dc = self.dc();
        let rows = ty * b;
        let v = self.head.out_features();
        let target = target_view(batch);
        let n = scored_rows(self.output.kind(), &target, Some(&batch.mask), rows);
        ws.dlogits.resize(rows * v, T::ZERO);
        let stats = self.output.nll_grad(
            &ws.logits,
            rows,
            target,
            Some(&batch.mask),
            1.0 / batch.loss_norm.unwrap_or(n.max(1) as f64),
            (&mut ws.dlogits[..], &mut grads.output),
        )?;
        // dtop: gradient on the decoder outputs.
        ws.dh.clear();
        ws.dh.resize(rows * h, T::ZERO);
        ws.de.clear();
        ws.de.resize(tx * b * dc, T::ZERO);
        if let (Some(key), Some(comb)) = (&self.attn_key, &self.combine) {
            ws.dtop.resize(rows * h, T::ZERO);
            let gc = grads.combine.as_mut().expect("same shape");
            self.head.backward(
                &ws.htil,
                &ws.dlogits,
                rows,
                &mut grads.head,
                Some(&mut ws.dtop),
                false,
            )?;
            for (d, &y) in ws.dtop.iter_mut().zip(&ws.htil) {
                *d *= T::ONE - y * y;
            }
            ws.dcat.resize(rows * (dc + h), T::ZERO);
            comb.backward(&ws.cat, &ws.dtop, rows, gc, Some(&mut ws.dcat), false)?;
            let enc_out = ws.enc.output();
            let dec_out = ws.dec.output();
            ws.dkeys.clear();
            ws.dkeys.resize(tx * b * h, T::ZERO);
            ws.dquery.clear();
            ws.dquery.resize(rows * h, T::ZERO);
            ws.dscore.resize(tx, T::ZERO);
            let gv = grads.attn_v.as_mut();
            let mut gv = gv;
            for t in 0..ty {
                for j in 0..b {
                    let r = t * b + j;
                    if t >= batch.lengths[j] {
                        continue;
                    }
                    let len = src.lengths[j];
                    let dcat = &ws.dcat[r * (dc + h)..(r + 1) * (dc + h)];
                    // The h part of [c; h] goes straight to the decoder output.
                    for (d, &g) in ws.dh[r * h..(r + 1) * h].iter_mut().zip(&dcat[dc..]) {
                        *d += g;
                    }
                    let a = &ws.attn[r * tx..r * tx + len];
                    // c = sum_s a_s e_s.
                    let mut dot_sum = T::ZERO;
                    for s in 0..len {
                        let es = &enc_out[(s * b + j) * dc..][..dc];
                        let mut da = T::ZERO;
                        for (x, y) in dcat[..dc].iter().zip(es) {
                            da += *x * *y;
                        }
                        ws.dscore[s] = da;
                        dot_sum += a[s] * da;
                        for (d, &g) in ws.de[(s * b + j) * dc..][..dc].iter_mut().zip(&dcat[..dc]) {
                            *d += a[s] * g;
                        }
                    }
                    for s in 0..len {
                        ws.dscore[s] = a[s] * (ws.dscore[s] - dot_sum);
                    }
                    let hrow = &dec_out[r * h..(r + 1) * h];
                    match &self.attn_v {
                        None => {
                            for s in 0..len {
                                let ds = ws.dscore[s];
                                let k = &ws.keys[(s * b + j) * h..][..h];
                                for i in 0..h {
                                    ws.dh[r * h + i] += ds * k[i];
                                    ws.dkeys[(s * b + j) * h + i] += ds * hrow[i];
                                }
                            }
                        }
                        Some(vv) => {
                            let g = gv.as_deref_mut().expect("same shape");
                            for s in 0..len {
                                let ds = ws.dscore[s];
                                let us = &ws.u[(r * ws.ulen + s) * h..][..h];
                                for i in 0..h {
                                    g.weight[i] += ds * us[i];
                                    let dpre = ds * vv.weight[i] * (T::ONE - us[i] * us[i]);
                                    ws.dquery[r * h + i] += dpre;
                                    ws.dkeys[(s * b + j) * h + i] += dpre;
                                }
                            }
                        }
                    }
                }
            }
            if let Some(q) = &self.attn_query {
                let gq = grads.attn_query.as_mut().expect("same shape");
                q.backward(dec_out, &ws.dquery, rows, gq, Some(&mut ws.dh), true)?;
            }
            let gk = grads.attn_key.as_mut().expect("same shape");
            key.backward(enc_out, &ws.dkeys, tx * b, gk, Some(&mut ws.de), true)?;
        } else {
            self.head.backward(
                ws.dec.output(),
                &ws.dlogits,
                rows,
                &mut grads.head,
                Some(&mut ws.dh),
                false,
            )?;
        }
        // Decoder.
        self.decoder
            .backward(&mut ws.dec, Some(&ws.dh), None, &mut grads.decoder, true)?;
        let din = self.decoder.config().input_size;
        let dx = ws.dec.dinput();
        ws.dtgt.resize(rows * e, T::ZERO);
        ws.dctx.clear();
        ws.dctx.resize(b * dc, T::ZERO);
        for r in 0..rows {
            ws.dtgt[r * e..(r + 1) * e].copy_from_slice(&dx[r * din..r * din + e]);
            if c.context_every_step {
                let j = r % b;
                for (d, &g) in ws.dctx[j * dc..(j + 1) * dc]
                    .iter_mut()
                    .zip(&dx[r * din + e..(r + 1) * din])
                {
                    *d += g;
                }
            }
        }
        if let Values::Symbols(tids) = &batch.input {
            self.tgt_embed
                .backward(tids, &ws.dtgt, &mut grads.tgt_embed, None)?;
        }
        if let Some(br) = &self.bridge {
            let gb = grads.bridge.as_mut().expect("same shape");
            let ip = InitProjection {
                proj: br,
                config: self.decoder.config(),
                c: &ws.ctx,
                batch: b,
            };
            let dinit = ws.dec.dinit();
            let dctx = Some(&mut ws.dctx[..]);
            project_init_backward(&ip, &ws.pre, dinit, &mut ws.dpre, gb, dctx)?;
        }
        // Encoder: the context came from the top layer's final h.
        let ecfg = self.encoder.config();
        ws.dfinal = RecurrentState::zeros(ecfg, b);
        ws.dfinal.set_top_h(ecfg, &ws.dctx);
        self.encoder.backward(
            &mut ws.enc,
            Some(&ws.de),
            Some(&ws.dfinal),
            &mut grads.encoder,
            true,
        )?;
        if let Values::Symbols(sids) = &src.input {
            self.src_embed
                .backward(sids, ws.enc.dinput(), &mut grads.src_embed, None)?;
        }
        Ok(stats)
    }

    fn evaluate(&self, batch: &SeqBatch<T>, ws: &mut Self::Workspace) -> Result<LossStats> {
        self.forward(batch, ws)?;
        let rows = batch.steps * batch.batch;
        self.output.nll(
            &ws.logits,
            rows,
            target_view(batch),
            Some(&batch.mask),
            None,
        )
    }

    /// The decoder: its outputs carry the loss at every target step.
    fn probe_view<'a>(&'a self, ws: &'a Self::Workspace) -> Option<ProbeView<'a, T>> {
        Some(ProbeView {
            rnn: &self.decoder,
            cache: &ws.dec,
            dout: Some(&ws.dh[..]),
            dfinal: None,
        })
    }

    fn describe(&self) -> Vec<(String, String)> {
        vec![
            ("model".into(), "seq2seq".into()),
            ("config".into(), format!("{:?}", self.config)),
        ]
    }
}

/// How [`Seq2Seq::translate`] decodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decode {
    /// Beam width (1: greedy).
    pub beam: usize,
    /// Maximum output length (without `<end>`).
    pub max_len: usize,
    /// Hypotheses are ranked by `log P / len^alpha` (0: raw log-probability, which favours
    /// short outputs; 1: mean log-probability per symbol).
    pub length_alpha: f64,
}

impl Default for Decode {
    fn default() -> Self {
        Decode {
            beam: 1,
            max_len: 100,
            length_alpha: 1.0,
        }
    }
}

/// One hypothesis of the beam.
#[derive(Debug, Clone)]
struct Hyp {
    tokens: Vec<usize>,
    logp: f64,
}

impl<T: Float> Seq2Seq<T> {
    /// Decodes one source sequence (symbol ids) greedily or by beam search; returns the
    /// output symbols (without `<end>`) and their log-probability.
    pub fn translate(&self, src: &[usize], d: &Decode) -> Result<(Vec<usize>, f64)> {
        if src.is_empty() {
            return Err(Error::InvalidCall(
                "cannot translate an empty sequence".into(),
            ));
        }
        if d.beam == 0 {
            return Err(Error::InvalidConfig("beam width must be at least 1".into()));
        }
        let c = &self.config;
        let (h, e, k) = (c.hidden, c.embed, d.beam);
        let dc = self.dc();
        let tx = src.len();
        // Encoder.
        let mut x = vec![T::ZERO; tx * e];
        self.src_embed.forward(src, &mut x)?;
        let mut iw = crate::layers::InferWorkspace::default();
        self.encoder.forward_infer(&x, tx, 1, None, None, &mut iw)?;
        let enc_out = iw.output().to_vec();
        let mut ctx = vec![T::ZERO; dc];
        iw.final_state().top_h_into(self.encoder.config(), &mut ctx);
        let keys = match &self.attn_key {
            Some(key) => {
                let mut kk = vec![T::ZERO; tx * h];
                key.forward(&enc_out, tx, &mut kk)?;
                kk
            }
            None => Vec::new(),
        };
        // Decoder state, one row per beam.
        let dcfg = self.decoder.config().clone();
        let mut state = RecurrentState::zeros(&dcfg, k);
        if let Some(br) = &self.bridge {
            let rows: Vec<T> = (0..k).flat_map(|_| ctx.iter().copied()).collect();
            let ip = InitProjection {
                proj: br,
                config: &dcfg,
                c: &rows,
                batch: k,
            };
            project_init(&ip, &mut Vec::new(), &mut state)?;
        }
        let din = dcfg.input_size;
        let v = self.head.out_features();
        let mut sw = crate::layers::StepWorkspace::default();
        let mut xin = vec![T::ZERO; k * din];
        let mut emb = vec![T::ZERO; e];
        let (mut a, mut q, mut cat, mut htil, mut logits) = (
            vec![T::ZERO; tx],
            vec![T::ZERO; h],
            vec![T::ZERO; dc + h],
            vec![T::ZERO; h],
            vec![T::ZERO; v],
        );
        let mut u = vec![T::ZERO; tx * h];
        let mut live = vec![Hyp {
            tokens: Vec::new(),
            logp: 0.0,
        }];
        let mut finished: Vec<(f64, Hyp)> = Vec::new();
        let norm = |hy: &Hyp, len: usize| hy.logp / (len.max(1) as f64).powf(d.length_alpha);
        for _ in 0..=d.max_len {
            for (row, hy) in live.iter().enumerate() {
                let last = hy.tokens.last().copied().unwrap_or(vocab::BOS);
                self.tgt_embed.forward(&[last], &mut emb)?;
                xin[row * din..row * din + e].copy_from_slice(&emb);
                if c.context_every_step {
                    xin[row * din + e..(row + 1) * din].copy_from_slice(&ctx);
                }
            }
            let hs = self.decoder.step(&xin, &mut state, &mut sw)?.to_vec();
            let mut cands: Vec<(f64, usize, usize)> = Vec::new();
            for (row, hy) in live.iter().enumerate() {
                let hrow = &hs[row * h..(row + 1) * h];
                if let (Some(_), Some(comb)) = (&self.attn_key, &self.combine) {
                    if let Some(qq) = &self.attn_query {
                        qq.forward(hrow, 1, &mut q)?;
                    }
                    let src = SourceKeys {
                        keys: &keys,
                        batch: 1,
                        index: 0,
                        len: tx,
                    };
                    let additive = self.attn_v.as_ref().map(|_| (&q[..], &mut u[..]));
                    self.attend(hrow, src, additive, &mut a);
                    cat.fill(T::ZERO);
                    for s in 0..tx {
                        for (cv, &ev) in cat[..dc].iter_mut().zip(&enc_out[s * dc..(s + 1) * dc]) {
                            *cv += a[s] * ev;
                        }
                    }
                    cat[dc..].copy_from_slice(hrow);
                    comb.forward(&cat, 1, &mut htil)?;
                    tanh_in_place(&mut htil);
                    self.head.forward(&htil, 1, &mut logits)?;
                } else {
                    self.head.forward(hrow, 1, &mut logits)?;
                }
                let m = logits.iter().fold(f64::MIN, |m, x| m.max(x.to_f64()));
                let lse = m + logits
                    .iter()
                    .map(|x| (x.to_f64() - m).exp())
                    .sum::<f64>()
                    .ln();
                for (tok, lv) in logits.iter().enumerate() {
                    if tok == vocab::PAD || tok == vocab::BOS {
                        continue;
                    }
                    cands.push((hy.logp + lv.to_f64() - lse, row, tok));
                }
            }
            cands.sort_by(|x, y| y.0.total_cmp(&x.0));
            let mut next = Vec::new();
            let mut parents = Vec::new();
            for &(lp, row, tok) in cands.iter() {
                if next.len() >= k {
                    break;
                }
                let mut hy = live[row].clone();
                hy.logp = lp;
                if tok == vocab::END {
                    let len = hy.tokens.len() + 1;
                    finished.push((norm(&hy, len), hy));
                    continue;
                }
                hy.tokens.push(tok);
                next.push(hy);
                parents.push(row);
            }
            if finished.len() >= k || next.is_empty() || next[0].tokens.len() > d.max_len {
                if finished.is_empty() {
                    finished.extend(next.into_iter().map(|hy| (norm(&hy, hy.tokens.len()), hy)));
                }
                break;
            }
            // Reorder the beam's state rows by parent.
            let old = state.clone();
            let e = dcfg.extra_state_size();
            for l in 0..c.layers {
                for (i, &p) in parents.iter().enumerate() {
                    let (dst, src) = ((l * k + i) * h, (l * k + p) * h);
                    state.h[dst..dst + h].copy_from_slice(&old.h[src..src + h]);
                    let (dst, src) = ((l * k + i) * e, (l * k + p) * e);
                    state.c[dst..dst + e].copy_from_slice(&old.c[src..src + e]);
                }
            }
            live = next;
        }
        let best = finished
            .into_iter()
            .max_by(|x, y| x.0.total_cmp(&y.0))
            .map(|(_, hy)| hy)
            .unwrap_or(Hyp {
                tokens: Vec::new(),
                logp: f64::NEG_INFINITY,
            });
        Ok((best.tokens, best.logp))
    }
}

/// The attention keys of one source sequence inside a batch's `[T, B, H]` keys: sequence
/// `index` of `batch`, its first `len` steps.
#[derive(Clone, Copy)]
struct SourceKeys<'a, T> {
    keys: &'a [T],
    batch: usize,
    index: usize,
    len: usize,
}
