//! Finite-difference gradient checks in f64 for the output distributions and the three
//! patterns' models: every parameter of every part (input layer, recurrent stack, head,
//! learned variance), variable-length batches, padding symbols, and pattern II's feedback
//! both under teacher forcing and with self-fed steps back-propagated through.

#![allow(clippy::needless_range_loop)] // perturbing element j of parallel buffers

use unfold::data::{SeqBatch, Values};
use unfold::layers::{OutputKind, OutputLayer, Target};
use unfold::models::{
    FeedbackConfig, FeedbackStyle, InputSpec, Model, ModelConfig, OutputFeedback, Readout,
    SequenceClassifier, SequenceLabeller, SequenceModel, TrainContext,
};
use unfold::rng::Rng;
use unfold::{CellKind, Parameters};

const LENGTHS: [usize; 3] = [5, 2, 4];
const STEPS: usize = 5;

fn reals(n: usize, rng: &mut Rng) -> Vec<f64> {
    (0..n).map(|_| rng.uniform_range(-1.0, 1.0)).collect()
}

fn mask() -> Vec<bool> {
    (0..STEPS * 3).map(|r| r / 3 < LENGTHS[r % 3]).collect()
}

fn input(spec: InputSpec, rng: &mut Rng) -> Values<f64> {
    match spec {
        InputSpec::Symbols { vocab, .. } => {
            Values::Symbols((0..STEPS * 3).map(|_| rng.below(vocab)).collect())
        }
        InputSpec::Reals { width, .. } => Values::Reals {
            width,
            data: reals(STEPS * 3 * width, rng),
        },
    }
}

fn targets(kind: OutputKind, rows: usize, rng: &mut Rng) -> Values<f64> {
    match kind {
        OutputKind::Categorical { classes, .. } => {
            Values::Symbols((0..rows).map(|_| rng.below(classes)).collect())
        }
        OutputKind::Gaussian { dim, .. } => Values::Reals {
            width: dim,
            data: reals(rows * dim, rng),
        },
        OutputKind::Bernoulli { dim } => Values::Reals {
            width: dim,
            data: (0..rows * dim).map(|_| (rng.below(2)) as f64).collect(),
        },
    }
}

fn batch(spec: InputSpec, kind: OutputKind, per_step: bool, seed: u64) -> SeqBatch<f64> {
    let mut rng = Rng::new(seed);
    let input = input(spec, &mut rng);
    let rows = if per_step { STEPS * 3 } else { 3 };
    SeqBatch {
        steps: STEPS,
        batch: 3,
        lengths: LENGTHS.to_vec(),
        input,
        target: targets(kind, rows, &mut rng),
        mask: mask(),
        per_step,
        source: None,
        loss_norm: None,
        cond: None,
    }
}

/// Compares the model's gradient with central differences of its loss, element by element.
fn check<M: SequenceModel<f64>>(tag: &str, model: &M, b: &SeqBatch<f64>, feed_prob: f64) {
    let loss_grad = |m: &M, grads: &mut M| {
        let mut rng = Rng::new(99);
        let mut ctx = TrainContext {
            rng: &mut rng,
            feed_prob,
            step: 1,
        };
        let mut ws = M::Workspace::default();
        m.loss_and_grad(b, &mut ws, grads, &mut ctx)
            .unwrap()
            .mean_nll()
    };
    let mut grads = model.zeros_like();
    let base = loss_grad(model, &mut grads);
    assert!(base.is_finite() && base > 0.0, "{tag}: loss {base}");
    let analytic: Vec<Vec<f64>> = grads.param_slices().iter().map(|s| s.to_vec()).collect();
    let specs = model.param_specs();
    let eps = 1e-6;
    let mut probe = model.clone();
    let mut scratch = model.zeros_like();
    let mut checked = 0;
    for (pi, spec) in specs.iter().enumerate() {
        for j in 0..spec.numel() {
            let orig = probe.param_slices()[pi][j];
            probe.param_slices_mut()[pi][j] = orig + eps;
            let up = loss_grad(&probe, &mut scratch);
            probe.param_slices_mut()[pi][j] = orig - eps;
            let down = loss_grad(&probe, &mut scratch);
            probe.param_slices_mut()[pi][j] = orig;
            let fd = (up - down) / (2.0 * eps);
            let an = analytic[pi][j];
            // Central differences with eps = 1e-6 carry about 1e-10 of rounding, so tiny gradients
            // are compared against a floor.
            let err = (fd - an).abs() / fd.abs().max(an.abs()).max(1e-3);
            assert!(
                err < 1e-5,
                "{tag}: {}[{j}] analytic {an:e} vs finite difference {fd:e}",
                spec.name
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "{tag}: only {checked} parameters");
}

#[test]
fn output_distributions_match_finite_differences() {
    let mut rng = Rng::new(5);
    let kinds = [
        OutputKind::Categorical {
            classes: 4,
            pad: Some(1),
        },
        OutputKind::Categorical {
            classes: 3,
            pad: None,
        },
        OutputKind::Gaussian {
            dim: 2,
            learn_variance: false,
        },
        OutputKind::Gaussian {
            dim: 3,
            learn_variance: true,
        },
        OutputKind::Bernoulli { dim: 3 },
    ];
    for kind in kinds {
        let rows = 6;
        let mut out = OutputLayer::<f64>::new(kind).unwrap();
        for v in out.log_var.iter_mut() {
            *v = rng.uniform_range(-0.5, 0.5);
        }
        let o: Vec<f64> = (0..rows * kind.width())
            .map(|_| 3.0 * rng.uniform_range(-1.0, 1.0))
            .collect();
        let y = targets(kind, rows, &mut rng);
        let target = match &y {
            Values::Symbols(s) => Target::Symbols(s),
            Values::Reals { data, .. } => Target::Reals(data),
        };
        let m: Vec<bool> = (0..rows).map(|r| r != 3).collect();
        let mut d = vec![0.0; o.len()];
        let mut g = out.zeros_like();
        let st = out
            .nll_grad(&o, rows, target, Some(&m), 0.7, (&mut d, &mut g))
            .unwrap();
        let f = |o: &[f64], out: &OutputLayer<f64>| {
            0.7 * out.nll(o, rows, target, Some(&m), None).unwrap().nll
        };
        assert!((0.7 * st.nll - f(&o, &out)).abs() < 1e-12);
        let eps = 1e-6;
        for j in 0..o.len() {
            let (mut a, mut b) = (o.clone(), o.clone());
            a[j] += eps;
            b[j] -= eps;
            let fd = (f(&a, &out) - f(&b, &out)) / (2.0 * eps);
            assert!(
                (fd - d[j]).abs() < 1e-6 * fd.abs().max(1.0),
                "{kind:?} o[{j}]: {} vs {fd}",
                d[j]
            );
        }
        for j in 0..out.log_var.len() {
            let (mut a, mut b) = (out.clone(), out.clone());
            a.log_var[j] += eps;
            b.log_var[j] -= eps;
            let fd = (f(&o, &a) - f(&o, &b)) / (2.0 * eps);
            assert!(
                (fd - g.log_var[j]).abs() < 1e-6 * fd.abs().max(1.0),
                "{kind:?} log_var[{j}]"
            );
        }
        // Masked rows get zero gradient and no score.
        assert!(d[3 * kind.width()..4 * kind.width()]
            .iter()
            .all(|&v| v == 0.0));
    }
}

#[test]
fn bernoulli_loss_is_stable_for_huge_logits() {
    let out = OutputLayer::<f32>::new(OutputKind::Bernoulli { dim: 2 }).unwrap();
    let o = [1000.0f32, -1000.0];
    let st = out
        .nll(&o, 1, Target::Reals(&[1.0, 0.0]), None, None)
        .unwrap();
    assert!(st.nll.is_finite() && st.nll < 1e-6);
    let st = out
        .nll(&o, 1, Target::Reals(&[0.0, 1.0]), None, None)
        .unwrap();
    assert!((st.nll - 2000.0).abs() < 1e-3, "{}", st.nll);
}

#[test]
fn pattern_one_labeller_gradients() {
    let cases = [
        (
            "elman symbols softmax pad",
            ModelConfig {
                input: InputSpec::Symbols { vocab: 5, dim: 3 },
                cell: CellKind::RnnTanh,
                hidden: 4,
                layers: 1,
                bidirectional: false,
                output: OutputKind::Categorical {
                    classes: 4,
                    pad: Some(0),
                },
                deep_output: 0,
                residual: false,
            },
        ),
        (
            "lstm projected reals gaussian learned variance, 2 layers bi",
            ModelConfig {
                input: InputSpec::Reals {
                    width: 2,
                    project: Some(3),
                },
                cell: CellKind::Lstm,
                hidden: 3,
                layers: 2,
                bidirectional: true,
                output: OutputKind::Gaussian {
                    dim: 2,
                    learn_variance: true,
                },
                deep_output: 0,
                residual: false,
            },
        ),
        (
            "gru reals bernoulli bi",
            ModelConfig {
                input: InputSpec::Reals {
                    width: 2,
                    project: None,
                },
                cell: CellKind::Gru,
                hidden: 3,
                layers: 1,
                bidirectional: true,
                output: OutputKind::Bernoulli { dim: 2 },
                deep_output: 0,
                residual: false,
            },
        ),
        (
            "leaky learned leaks reals gaussian, 2 layers",
            ModelConfig {
                input: InputSpec::Reals {
                    width: 2,
                    project: None,
                },
                cell: CellKind::Leaky(unfold::layers::LeakSpec {
                    min: 0.05,
                    max: 0.8,
                    learn: true,
                }),
                hidden: 4,
                layers: 2,
                bidirectional: false,
                output: OutputKind::Gaussian {
                    dim: 2,
                    learn_variance: false,
                },
                deep_output: 0,
                residual: false,
            },
        ),
        (
            "DOT(S)-RNN: deep transition and a deep output of 2 layers, softmax",
            ModelConfig {
                input: InputSpec::Reals {
                    width: 2,
                    project: None,
                },
                cell: CellKind::DeepTransition(unfold::layers::DeepSpec {
                    depth: 2,
                    shortcut: true,
                }),
                hidden: 3,
                layers: 1,
                bidirectional: false,
                output: OutputKind::Categorical {
                    classes: 3,
                    pad: None,
                },
                deep_output: 2,
                residual: false,
            },
        ),
    ];
    for (i, (tag, cfg)) in cases.into_iter().enumerate() {
        let mut m = SequenceLabeller::<f64>::new(cfg, 10 + i as u64).unwrap();
        for v in m.output.log_var.iter_mut() {
            *v = 0.3;
        }
        let b = batch(cfg.input, cfg.output, true, 20 + i as u64);
        check(tag, &m, &b, 0.0);
    }
}

#[test]
fn dropout_between_layers_has_exact_gradients_and_drops() {
    let cfg = ModelConfig {
        input: InputSpec::Symbols { vocab: 5, dim: 3 },
        cell: CellKind::Lstm,
        hidden: 4,
        layers: 3,
        bidirectional: true,
        output: OutputKind::Categorical {
            classes: 4,
            pad: None,
        },
        deep_output: 0,
        residual: false,
    };
    let mut m = SequenceLabeller::<f64>::new(cfg, 3).unwrap();
    m.set_dropout(0.4).unwrap();
    let b = batch(cfg.input, cfg.output, true, 5);
    // `check` draws the masks from the same seed at every evaluation.
    check("lstm 3 layers bi, dropout 0.4", &m, &b, 0.0);
    // Dropout changes the training loss; inference never drops.
    let mut ws = Default::default();
    let mut g = m.zeros_like();
    let mut rng = Rng::new(1);
    let mut ctx = TrainContext {
        rng: &mut rng,
        feed_prob: 0.0,
        step: 1,
    };
    let with = m.loss_and_grad(&b, &mut ws, &mut g, &mut ctx).unwrap().nll;
    let without = m.loss_and_grad_from(&b, None, &mut ws, &mut g).unwrap().nll;
    let eval = m.evaluate(&b, &mut ws).unwrap().nll;
    assert!((with - without).abs() > 1e-6);
    assert!((eval - without).abs() < 1e-9);
    assert!(m.set_dropout(1.0).is_err());
    // The same with residual connections: the skip path bypasses the dropout masks.
    let res = ModelConfig {
        residual: true,
        ..cfg
    };
    let mut r = SequenceLabeller::<f64>::new(res, 3).unwrap();
    r.set_dropout(0.4).unwrap();
    check("lstm 3 layers bi residual, dropout 0.4", &r, &b, 0.0);
}

#[test]
fn pattern_three_classifier_gradients() {
    let cases = [
        (
            "lstm last state, 2 layers bi, softmax",
            Readout::Last,
            ModelConfig {
                input: InputSpec::Reals {
                    width: 2,
                    project: None,
                },
                cell: CellKind::Lstm,
                hidden: 3,
                layers: 2,
                bidirectional: true,
                output: OutputKind::Categorical {
                    classes: 3,
                    pad: None,
                },
                deep_output: 0,
                residual: false,
            },
        ),
        (
            "gru mean readout, gaussian",
            Readout::Mean,
            ModelConfig {
                input: InputSpec::Symbols { vocab: 4, dim: 2 },
                cell: CellKind::Gru,
                hidden: 4,
                layers: 1,
                bidirectional: false,
                output: OutputKind::Gaussian {
                    dim: 1,
                    learn_variance: true,
                },
                deep_output: 0,
                residual: false,
            },
        ),
        (
            "elman last state symbols bi",
            Readout::Last,
            ModelConfig {
                input: InputSpec::Symbols { vocab: 4, dim: 3 },
                cell: CellKind::RnnTanh,
                hidden: 3,
                layers: 1,
                bidirectional: true,
                output: OutputKind::Categorical {
                    classes: 2,
                    pad: None,
                },
                deep_output: 0,
                residual: false,
            },
        ),
        (
            "clockwork mean readout, deep output, gaussian",
            Readout::Mean,
            ModelConfig {
                input: InputSpec::Reals {
                    width: 2,
                    project: None,
                },
                cell: CellKind::Clockwork(unfold::layers::ClockSpec::new(&[1, 2]).unwrap()),
                hidden: 4,
                layers: 1,
                bidirectional: true,
                output: OutputKind::Gaussian {
                    dim: 1,
                    learn_variance: false,
                },
                deep_output: 1,
                residual: false,
            },
        ),
    ];
    for (i, (tag, readout, cfg)) in cases.into_iter().enumerate() {
        let m = SequenceClassifier::<f64>::new(cfg, readout, 30 + i as u64).unwrap();
        let b = batch(cfg.input, cfg.output, false, 40 + i as u64);
        check(tag, &m, &b, 0.0);
    }
}

fn feedback_cfg(output: OutputKind, style: FeedbackStyle, through: bool) -> FeedbackConfig {
    FeedbackConfig {
        input: Some(InputSpec::Reals {
            width: 2,
            project: None,
        }),
        hidden: 4,
        relu: false,
        output,
        style,
        backprop_feedback: through,
        prime_steps: 1,
    }
}

#[test]
fn pattern_two_gradients_under_teacher_forcing() {
    let outs = [
        OutputKind::Gaussian {
            dim: 2,
            learn_variance: true,
        },
        OutputKind::Categorical {
            classes: 3,
            pad: None,
        },
        OutputKind::Bernoulli { dim: 2 },
    ];
    for (i, out) in outs.into_iter().enumerate() {
        let m = OutputFeedback::<f64>::new(
            feedback_cfg(out, FeedbackStyle::PerStep, false),
            50 + i as u64,
        )
        .unwrap();
        let b = batch(
            InputSpec::Reals {
                width: 2,
                project: None,
            },
            out,
            true,
            60 + i as u64,
        );
        check(&format!("pattern II teacher forcing {out:?}"), &m, &b, 0.0);
    }
}

#[test]
fn pattern_two_gradients_with_embedded_and_projected_inputs() {
    let cases = [
        (
            InputSpec::Symbols { vocab: 4, dim: 3 },
            OutputKind::Categorical {
                classes: 3,
                pad: None,
            },
        ),
        (
            InputSpec::Reals {
                width: 2,
                project: Some(3),
            },
            OutputKind::Gaussian {
                dim: 2,
                learn_variance: false,
            },
        ),
    ];
    for (i, (spec, out)) in cases.into_iter().enumerate() {
        let mut c = feedback_cfg(out, FeedbackStyle::PerStep, false);
        c.input = Some(spec);
        let m = OutputFeedback::<f64>::new(c, 90 + i as u64).unwrap();
        let b = batch(spec, out, true, 95 + i as u64);
        check(&format!("pattern II inputs {spec:?}"), &m, &b, 0.0);
    }
}

#[test]
fn pattern_two_gradients_through_self_fed_outputs() {
    let out = OutputKind::Gaussian {
        dim: 2,
        learn_variance: false,
    };
    for (i, style) in [FeedbackStyle::PerStep, FeedbackStyle::Segments { len: 2 }]
        .into_iter()
        .enumerate()
    {
        let m = OutputFeedback::<f64>::new(feedback_cfg(out, style, true), 70 + i as u64).unwrap();
        let b = batch(
            InputSpec::Reals {
                width: 2,
                project: None,
            },
            out,
            true,
            80 + i as u64,
        );
        check(
            &format!("pattern II BPTT through feedback {style:?}"),
            &m,
            &b,
            0.6,
        );
    }
}

#[test]
fn teacher_forced_pattern_two_is_one_batched_pass_equal_to_stepping() {
    // With feed probability 0 the parallel pass and the step-by-step path (forced through the
    // mixed code with probability 0 in segments) must agree exactly on the outputs.
    let out = OutputKind::Gaussian {
        dim: 2,
        learn_variance: false,
    };
    let m =
        OutputFeedback::<f64>::new(feedback_cfg(out, FeedbackStyle::PerStep, false), 3).unwrap();
    let b = batch(
        InputSpec::Reals {
            width: 2,
            project: None,
        },
        out,
        true,
        4,
    );
    let mut ws = Default::default();
    let mut g_parallel = m.zeros_like();
    let mut rng = Rng::new(1);
    let mut ctx = TrainContext {
        rng: &mut rng,
        feed_prob: 0.0,
        step: 1,
    };
    let parallel = m
        .loss_and_grad(&b, &mut ws, &mut g_parallel, &mut ctx)
        .unwrap();
    let tf_logits = ws.logits().to_vec();
    let mut ctx = TrainContext {
        rng: &mut rng,
        feed_prob: 1e-300,
        step: 1,
    };
    let mut g = m.zeros_like();
    let stepped = m.loss_and_grad(&b, &mut ws, &mut g, &mut ctx).unwrap();
    for (a, c) in ws.logits().iter().zip(&tf_logits) {
        assert!((a - c).abs() < 1e-12);
    }
    assert!((stepped.mean_nll() - parallel.mean_nll()).abs() < 1e-12);
    for (a, c) in g.param_slices().iter().zip(g_parallel.param_slices()) {
        for (x, y) in a.iter().zip(c) {
            assert!((x - y).abs() < 1e-12);
        }
    }
}

fn seq2seq_batch(seed: u64) -> SeqBatch<f64> {
    use unfold::data::{vocab, Dataset, Sequence};
    let mut rng = Rng::new(seed);
    let mut seqs = Vec::new();
    let mut sources = Vec::new();
    for (sl, tl) in [(4, 3), (2, 5), (5, 1)] {
        let src: Vec<usize> = (0..sl).map(|_| rng.below(5)).collect();
        let y: Vec<usize> = (0..tl).map(|_| vocab::SPECIALS + rng.below(3)).collect();
        let mut input = vec![vocab::BOS];
        input.extend(&y);
        let mut target = y;
        target.push(vocab::END);
        seqs.push(Sequence {
            len: input.len(),
            input: Values::Symbols(input),
            target: Values::Symbols(target),
        });
        sources.push(Values::Symbols(src));
    }
    Dataset::with_sources(seqs, sources)
        .unwrap()
        .batch(&[0, 1, 2])
}

#[test]
fn encoder_decoder_gradients_with_and_without_attention() {
    use unfold::models::{Attention, Seq2Seq, Seq2SeqConfig};
    let cases = [
        (CellKind::Gru, 2, true, true, true, Attention::None),
        (CellKind::Lstm, 1, false, true, false, Attention::Additive),
        (
            CellKind::RnnTanh,
            1,
            true,
            false,
            true,
            Attention::Multiplicative,
        ),
        (CellKind::Lstm, 2, true, true, true, Attention::Additive),
    ];
    for (i, (cell, layers, bi, init, every, attention)) in cases.into_iter().enumerate() {
        let cfg = Seq2SeqConfig {
            src_vocab: 5,
            tgt_vocab: 7,
            embed: 3,
            cell,
            hidden: 3,
            layers,
            bidirectional: bi,
            context_init: init,
            context_every_step: every,
            attention,
        };
        let m = Seq2Seq::<f64>::new(cfg, 100 + i as u64).unwrap();
        check(
            &format!("seq2seq {cfg:?}"),
            &m,
            &seq2seq_batch(7 + i as u64),
            0.0,
        );
    }
}

#[test]
fn real_generator_gradients_for_every_stop_rule() {
    use unfold::data::Dataset;
    use unfold::models::{generator_sequences, RealGenerator, StopRule};
    let mut rng = Rng::new(4);
    let series: Vec<Vec<f64>> = [4, 2, 5]
        .iter()
        .map(|&len| (0..len * 2).map(|_| rng.uniform_range(-1.0, 1.0)).collect())
        .collect();
    let data = Dataset::new(generator_sequences(&series, 2)).unwrap();
    let b = data.batch(&[0, 1, 2]);
    for (i, rule) in [
        StopRule::StopBit,
        StopRule::LengthHead {
            max_len: 6,
            poisson: false,
        },
        StopRule::LengthHead {
            max_len: 6,
            poisson: true,
        },
        StopRule::MaxLength,
    ]
    .into_iter()
    .enumerate()
    {
        let mut m = RealGenerator::<f64>::new(2, CellKind::Gru, 3, 1, rule, 10 + i as u64).unwrap();
        if let Some(l) = m.length.as_mut() {
            for (k, v) in l.logits.iter_mut().enumerate() {
                *v = 0.3 * k as f64 - 0.2;
            }
        }
        check(&format!("real generator {rule:?}"), &m, &b, 0.0);
    }
}

#[test]
fn conditioned_labeller_gradients_in_every_mode() {
    use unfold::models::{CondMode, Conditioning};
    for (i, mode) in [CondMode::InitialState, CondMode::EveryStep, CondMode::Both]
        .into_iter()
        .enumerate()
    {
        let cfg = ModelConfig {
            input: InputSpec::Symbols { vocab: 5, dim: 3 },
            cell: if i == 1 {
                CellKind::Gru
            } else {
                CellKind::Lstm
            },
            hidden: 3,
            layers: 2,
            bidirectional: false,
            output: OutputKind::Categorical {
                classes: 4,
                pad: None,
            },
            deep_output: 0,
            residual: false,
        };
        let m = SequenceLabeller::<f64>::conditioned(
            cfg,
            Conditioning { width: 2, mode },
            40 + i as u64,
        )
        .unwrap();
        let mut b = batch(cfg.input, cfg.output, true, 50 + i as u64);
        let mut rng = Rng::new(9);
        b.cond = Some(reals(3 * 2, &mut rng));
        check(&format!("conditioned labeller {mode:?}"), &m, &b, 0.0);
        // The condition changes the outputs.
        let mut ws = Default::default();
        let l1 = m.evaluate(&b, &mut ws).unwrap().nll;
        b.cond = Some(reals(3 * 2, &mut rng));
        let l2 = m.evaluate(&b, &mut ws).unwrap().nll;
        assert!((l1 - l2).abs() > 1e-9, "{mode:?}");
        b.cond = None;
        assert!(
            m.evaluate(&b, &mut ws).is_err(),
            "a conditioned model needs its vectors"
        );
    }
    // A bidirectional stack: the condition sets both directions' initial states.
    let cfg = ModelConfig {
        input: InputSpec::Symbols { vocab: 5, dim: 3 },
        cell: CellKind::Lstm,
        hidden: 3,
        layers: 2,
        bidirectional: true,
        output: OutputKind::Categorical {
            classes: 4,
            pad: None,
        },
        deep_output: 0,
        residual: false,
    };
    let cond = Conditioning {
        width: 2,
        mode: CondMode::Both,
    };
    let m = SequenceLabeller::<f64>::conditioned(cfg, cond, 44).unwrap();
    assert_eq!(m.cond_init.as_ref().unwrap().out_features(), 2 * 2 * 3);
    let mut b = batch(cfg.input, cfg.output, true, 54);
    b.cond = Some(reals(3 * 2, &mut Rng::new(8)));
    check("conditioned bidirectional labeller", &m, &b, 0.0);
}
