//! Finite-difference gradient checks in f64 for every cell kind, both directions, 1 and 2
//! layers, equal and variable lengths, and gradients on the outputs only, the final states
//! only, or both. Also checks that the inference forward and the streaming step give exactly
//! the training forward's results.

#![allow(clippy::needless_range_loop)] // perturbing element j of several parallel buffers

use unfold::layers::{ClockSpec, DeepSpec, DelaySpec, LeakSpec, TdnnSpec};
use unfold::layers::{InferWorkspace, StepWorkspace, TrainCache};
use unfold::rng::Rng;
use unfold::{CellKind, Parameters, Recurrent, RecurrentConfig, RecurrentState};

/// The PyTorch cells, the leaky unit with learned and with fixed (per-unit) leaks, the
/// clockwork RNN (uneven modules, periods that do not divide each other), delays with and
/// without the one-step recurrence, deep transitions with and without the shortcut, and
/// time-delay layers (dilated, and not).
fn kinds() -> Vec<CellKind> {
    vec![
        CellKind::RnnTanh,
        CellKind::RnnRelu,
        CellKind::Lstm,
        CellKind::Gru,
        CellKind::Leaky(LeakSpec {
            min: 0.1,
            max: 0.9,
            learn: true,
        }),
        CellKind::Leaky(LeakSpec {
            min: 0.2,
            max: 0.7,
            learn: false,
        }),
        CellKind::Clockwork(ClockSpec::new(&[1, 2, 3]).unwrap()),
        CellKind::Delay(DelaySpec::new(&[1, 3]).unwrap()),
        CellKind::Delay(DelaySpec::new(&[2]).unwrap()),
        CellKind::DeepTransition(DeepSpec {
            depth: 3,
            shortcut: true,
        }),
        CellKind::DeepTransition(DeepSpec {
            depth: 2,
            shortcut: false,
        }),
        CellKind::Tdnn(TdnnSpec {
            taps: 3,
            dilation: 2,
        }),
        CellKind::Tdnn(TdnnSpec {
            taps: 2,
            dilation: 1,
        }),
    ]
}

fn rand_vec(n: usize, rng: &mut Rng) -> Vec<f64> {
    (0..n).map(|_| rng.uniform_range(-1.0, 1.0)).collect()
}

struct Problem {
    x: Vec<f64>,
    steps: usize,
    batch: usize,
    lengths: Option<Vec<usize>>,
    init: RecurrentState<f64>,
    dout: Option<Vec<f64>>,
    dfinal: Option<RecurrentState<f64>>,
}

/// loss = sum(out * dout) + sum(h_n * dh_n) + sum(c_n * dc_n)
fn loss(layer: &Recurrent<f64>, p: &Problem, cache: &mut TrainCache<f64>) -> f64 {
    layer
        .forward_train(
            &p.x,
            p.steps,
            p.batch,
            p.lengths.as_deref(),
            Some(&p.init),
            cache,
        )
        .unwrap();
    let mut l = 0.0;
    if let Some(d) = &p.dout {
        l += cache
            .output()
            .iter()
            .zip(d)
            .map(|(a, b)| a * b)
            .sum::<f64>();
    }
    if let Some(df) = &p.dfinal {
        let f = cache.final_state();
        l += f.h.iter().zip(&df.h).map(|(a, b)| a * b).sum::<f64>();
        l += f.c.iter().zip(&df.c).map(|(a, b)| a * b).sum::<f64>();
    }
    l
}

fn assert_close(what: &str, analytic: f64, numeric: f64) {
    let err = (analytic - numeric).abs();
    assert!(
        err <= 1e-6 * (1.0 + numeric.abs()),
        "{what}: analytic {analytic:.10} vs numeric {numeric:.10}"
    );
}

fn check(kind: CellKind, layers: usize, bidir: bool, variable: bool, mode: usize, seed: u64) {
    check_stack(kind, layers, bidir, false, variable, mode, seed);
}

fn check_stack(
    kind: CellKind,
    layers: usize,
    bidir: bool,
    residual: bool,
    variable: bool,
    mode: usize,
    seed: u64,
) {
    let (input, hidden, steps, batch) = (3, 4, 5, 3);
    let cfg = RecurrentConfig::new(kind, input, hidden)
        .layers(layers)
        .bidirectional(bidir)
        .residual(residual);
    let mut layer = Recurrent::<f64>::new(cfg.clone(), seed).unwrap();
    let mut rng = Rng::new(seed + 100);
    let mut init = RecurrentState::zeros(&cfg, batch);
    init.h = rand_vec(init.h.len(), &mut rng);
    init.c = rand_vec(init.c.len(), &mut rng);
    let mut dfinal = RecurrentState::zeros(&cfg, batch);
    dfinal.h = rand_vec(dfinal.h.len(), &mut rng);
    dfinal.c = rand_vec(dfinal.c.len(), &mut rng);
    let mut p = Problem {
        x: rand_vec(steps * batch * input, &mut rng),
        steps,
        batch,
        lengths: variable.then(|| vec![5, 2, 4]),
        init,
        dout: (mode != 1).then(|| rand_vec(steps * batch * cfg.output_size(), &mut rng)),
        dfinal: (mode != 0).then_some(dfinal),
    };
    let mut cache = TrainCache::default();
    loss(&layer, &p, &mut cache);
    let mut grads = layer.zeros_like();
    layer
        .backward(
            &mut cache,
            p.dout.as_deref(),
            p.dfinal.as_ref(),
            &mut grads,
            true,
        )
        .unwrap();
    let dx = cache.dinput().to_vec();
    let dinit = cache.dinit().clone();
    let eps = 1e-6;
    let tag = format!(
        "{kind:?} layers={layers} bidir={bidir} residual={residual} var={variable} mode={mode}"
    );
    // Parameters.
    let specs = layer.param_specs();
    let analytic: Vec<Vec<f64>> = grads.param_slices().iter().map(|s| s.to_vec()).collect();
    for (pi, spec) in specs.iter().enumerate() {
        for j in 0..spec.numel() {
            let orig = layer.param_slices()[pi][j];
            layer.param_slices_mut()[pi][j] = orig + eps;
            let lp = loss(&layer, &p, &mut cache);
            layer.param_slices_mut()[pi][j] = orig - eps;
            let lm = loss(&layer, &p, &mut cache);
            layer.param_slices_mut()[pi][j] = orig;
            let num = (lp - lm) / (2.0 * eps);
            assert_close(&format!("{tag} {}[{j}]", spec.name), analytic[pi][j], num);
        }
    }
    // Input.
    for j in 0..p.x.len() {
        let orig = p.x[j];
        p.x[j] = orig + eps;
        let lp = loss(&layer, &p, &mut cache);
        p.x[j] = orig - eps;
        let lm = loss(&layer, &p, &mut cache);
        p.x[j] = orig;
        assert_close(&format!("{tag} dx[{j}]"), dx[j], (lp - lm) / (2.0 * eps));
    }
    // Initial state.
    for j in 0..p.init.h.len() {
        let orig = p.init.h[j];
        p.init.h[j] = orig + eps;
        let lp = loss(&layer, &p, &mut cache);
        p.init.h[j] = orig - eps;
        let lm = loss(&layer, &p, &mut cache);
        p.init.h[j] = orig;
        assert_close(
            &format!("{tag} dh0[{j}]"),
            dinit.h[j],
            (lp - lm) / (2.0 * eps),
        );
    }
    for j in 0..p.init.c.len() {
        let orig = p.init.c[j];
        p.init.c[j] = orig + eps;
        let lp = loss(&layer, &p, &mut cache);
        p.init.c[j] = orig - eps;
        let lm = loss(&layer, &p, &mut cache);
        p.init.c[j] = orig;
        assert_close(
            &format!("{tag} dc0[{j}]"),
            dinit.c[j],
            (lp - lm) / (2.0 * eps),
        );
    }
}

#[test]
fn gradients_match_finite_differences() {
    let mut seed = 1;
    for kind in kinds() {
        for layers in [1, 2] {
            for bidir in [false, true] {
                for variable in [false, true] {
                    for mode in 0..3 {
                        check(kind, layers, bidir, variable, mode, seed);
                        seed += 1;
                    }
                }
            }
        }
    }
}

/// Residual connections between stacked layers (`y_l = f_l(y_(l-1)) + y_(l-1)`): two and three
/// layers, both directions, ragged lengths, for a PyTorch cell on its engine and cells on the
/// generic loop.
#[test]
fn residual_stacks_match_finite_differences() {
    let kinds = [
        CellKind::Lstm,
        CellKind::Gru,
        CellKind::RnnTanh,
        CellKind::Leaky(LeakSpec::default()),
        CellKind::Delay(DelaySpec::new(&[1, 2]).unwrap()),
    ];
    let mut seed = 500;
    for kind in kinds {
        for layers in [2, 3] {
            for bidir in [false, true] {
                check_stack(kind, layers, bidir, true, true, 2, seed);
                seed += 1;
            }
        }
    }
}

#[test]
fn gradients_without_bias_and_with_empty_sequence() {
    for (i, kind) in kinds().into_iter().enumerate() {
        let cfg = RecurrentConfig::new(kind, 2, 3)
            .bias(false)
            .bidirectional(true);
        let layer = Recurrent::<f64>::new(cfg.clone(), 9 + i as u64).unwrap();
        let mut rng = Rng::new(5);
        let (steps, batch) = (4, 2);
        let x = rand_vec(steps * batch * 2, &mut rng);
        let dout = rand_vec(steps * batch * 6, &mut rng);
        let lengths = [4, 0];
        let mut cache = TrainCache::default();
        layer
            .forward_train(&x, steps, batch, Some(&lengths), None, &mut cache)
            .unwrap();
        // A zero-length sequence keeps its initial (zero) state and has zero outputs.
        let out = cache.output().to_vec();
        for t in 0..steps {
            assert!(out[(t * batch + 1) * 6..(t * batch + 2) * 6]
                .iter()
                .all(|&v| v == 0.0));
        }
        let mut grads = layer.zeros_like();
        layer
            .backward(&mut cache, Some(&dout), None, &mut grads, true)
            .unwrap();
        let dx = cache.dinput();
        for t in 0..steps {
            assert!(dx[(t * batch + 1) * 2..(t * batch + 2) * 2]
                .iter()
                .all(|&v| v == 0.0));
        }
        assert!(
            grads.param_specs().iter().all(|s| !s.name.contains("bias")),
            "no bias tensors"
        );
        // And the full finite-difference check on the no-bias layer.
        let mut l2 = layer.clone();
        let base = |l: &Recurrent<f64>, c: &mut TrainCache<f64>| {
            l.forward_train(&x, steps, batch, Some(&lengths), None, c)
                .unwrap();
            c.output()
                .iter()
                .zip(&dout)
                .map(|(a, b)| a * b)
                .sum::<f64>()
        };
        let an: Vec<Vec<f64>> = grads.param_slices().iter().map(|s| s.to_vec()).collect();
        for pi in 0..an.len() {
            for j in 0..an[pi].len() {
                let o = l2.param_slices()[pi][j];
                l2.param_slices_mut()[pi][j] = o + 1e-6;
                let lp = base(&l2, &mut cache);
                l2.param_slices_mut()[pi][j] = o - 1e-6;
                let lm = base(&l2, &mut cache);
                l2.param_slices_mut()[pi][j] = o;
                assert_close(
                    &format!("{kind:?} nobias p{pi}[{j}]"),
                    an[pi][j],
                    (lp - lm) / 2e-6,
                );
            }
        }
    }
}

#[test]
fn inference_and_streaming_equal_training_forward() {
    for (i, kind) in kinds().into_iter().enumerate() {
        for (bidir, residual) in [(false, false), (true, false), (false, true), (true, true)] {
            let cfg = RecurrentConfig::new(kind, 3, 5)
                .layers(2)
                .bidirectional(bidir)
                .residual(residual);
            let layer = Recurrent::<f32>::new(cfg.clone(), 40 + i as u64).unwrap();
            let mut rng = Rng::new(3);
            let (steps, batch) = (6, 3);
            let x: Vec<f32> = (0..steps * batch * 3)
                .map(|_| rng.uniform_range(-1.0, 1.0) as f32)
                .collect();
            let lengths = [6, 3, 5];
            let mut init = RecurrentState::<f32>::zeros(&cfg, batch);
            for v in init.h.iter_mut().chain(init.c.iter_mut()) {
                *v = rng.uniform_range(-1.0, 1.0) as f32;
            }
            let mut cache = TrainCache::default();
            layer
                .forward_train(&x, steps, batch, Some(&lengths), Some(&init), &mut cache)
                .unwrap();
            let mut ws = InferWorkspace::default();
            layer
                .forward_infer(&x, steps, batch, Some(&lengths), Some(&init), &mut ws)
                .unwrap();
            assert_eq!(
                cache.output(),
                ws.output(),
                "{kind:?} bidir={bidir} residual={residual}"
            );
            assert_eq!(cache.final_state(), ws.final_state());
            if bidir {
                let mut st = init.clone();
                assert!(layer
                    .step(&x[..9], &mut st, &mut StepWorkspace::default())
                    .is_err());
                continue;
            }
            // Streaming, equal lengths: step by step equals the whole-sequence forward.
            layer
                .forward_infer(&x, steps, batch, None, Some(&init), &mut ws)
                .unwrap();
            let mut st = init.clone();
            let mut sws = StepWorkspace::default();
            for t in 0..steps {
                let h = layer
                    .step(&x[t * batch * 3..(t + 1) * batch * 3], &mut st, &mut sws)
                    .unwrap()
                    .to_vec();
                let o = &ws.output()[t * batch * 5..(t + 1) * batch * 5];
                for (a, b) in h.iter().zip(o) {
                    assert!(
                        (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                        "{kind:?} residual={residual} step {t}"
                    );
                }
            }
            for (a, b) in st.h.iter().zip(&ws.final_state().h) {
                assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()));
            }
        }
    }
}

#[test]
fn truncated_bptt_carries_state_without_gradient() {
    // Two chunks with the state carried equal one long forward; the second chunk's backward
    // gives parameter gradients of the second chunk only (the border cuts the gradient).
    let cfg = RecurrentConfig::new(CellKind::Lstm, 2, 3);
    let layer = Recurrent::<f64>::new(cfg.clone(), 77).unwrap();
    let mut rng = Rng::new(8);
    let (steps, batch) = (8, 2);
    let x = rand_vec(steps * batch * 2, &mut rng);
    let mut full = TrainCache::default();
    layer
        .forward_train(&x, steps, batch, None, None, &mut full)
        .unwrap();
    let half = steps / 2 * batch * 2;
    let mut c1 = TrainCache::default();
    layer
        .forward_train(&x[..half], steps / 2, batch, None, None, &mut c1)
        .unwrap();
    let carried = c1.final_state().clone();
    let mut c2 = TrainCache::default();
    layer
        .forward_train(&x[half..], steps / 2, batch, None, Some(&carried), &mut c2)
        .unwrap();
    let n = c2.output().len();
    for (a, b) in c2
        .output()
        .iter()
        .zip(&full.output()[full.output().len() - n..])
    {
        assert!((a - b).abs() < 1e-12);
    }
    // The gradient of the second chunk treats the carried state as a constant input: it equals
    // the gradient of a fresh run started from that state.
    let dout = rand_vec(n, &mut rng);
    let mut g2 = layer.zeros_like();
    layer
        .backward(&mut c2, Some(&dout), None, &mut g2, false)
        .unwrap();
    let mut c3 = TrainCache::default();
    layer
        .forward_train(&x[half..], steps / 2, batch, None, Some(&carried), &mut c3)
        .unwrap();
    let mut g3 = layer.zeros_like();
    layer
        .backward(&mut c3, Some(&dout), None, &mut g3, false)
        .unwrap();
    assert_eq!(g2, g3);
    assert!(c2.dinit().h.iter().any(|&v| v != 0.0));
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let cfg = RecurrentConfig::new(CellKind::Gru, 2, 3);
    let layer = Recurrent::<f32>::new(cfg.clone(), 1).unwrap();
    let mut cache = TrainCache::default();
    assert!(layer
        .forward_train(&[0.0; 5], 2, 1, None, None, &mut cache)
        .is_err());
    assert!(layer
        .forward_train(&[0.0; 8], 2, 2, Some(&[3, 1]), None, &mut cache)
        .is_err());
    assert!(layer
        .forward_train(&[0.0; 8], 2, 2, Some(&[1]), None, &mut cache)
        .is_err());
    let mut g = layer.zeros_like();
    assert!(layer
        .backward(&mut cache, None, None, &mut g, false)
        .is_err());
    assert!(Recurrent::<f32>::new(RecurrentConfig::new(CellKind::Lstm, 0, 3), 1).is_err());
}

#[test]
fn single_sequence_streaming_equals_whole_sequence_forward() {
    // Batch 1 takes the fused streaming kernel; H = 128 makes it split the units across
    // threads when more than one is available. The layer without biases is also residual.
    for (i, kind) in kinds().into_iter().enumerate() {
        for (input, hidden, bias) in [(3, 5, true), (128, 128, true), (7, 40, false)] {
            let cfg = RecurrentConfig::new(kind, input, hidden)
                .layers(2)
                .bias(bias)
                .residual(!bias);
            let layer = Recurrent::<f32>::new(cfg.clone(), 60 + i as u64).unwrap();
            let mut rng = Rng::new(11);
            let steps = 7;
            let x: Vec<f32> = (0..steps * input)
                .map(|_| rng.uniform_range(-1.0, 1.0) as f32)
                .collect();
            let mut init = RecurrentState::<f32>::zeros(&cfg, 1);
            for v in init.h.iter_mut().chain(init.c.iter_mut()) {
                *v = rng.uniform_range(-1.0, 1.0) as f32;
            }
            let mut ws = InferWorkspace::default();
            layer
                .forward_infer(&x, steps, 1, None, Some(&init), &mut ws)
                .unwrap();
            let mut st = init.clone();
            let mut sws = StepWorkspace::default();
            for t in 0..steps {
                let h = layer
                    .step(&x[t * input..(t + 1) * input], &mut st, &mut sws)
                    .unwrap()
                    .to_vec();
                let o = &ws.output()[t * hidden..(t + 1) * hidden];
                for (a, b) in h.iter().zip(o) {
                    assert!(
                        (a - b).abs() <= 2e-6 * (1.0 + b.abs()),
                        "{kind:?} H={hidden} step {t}: {a} vs {b}"
                    );
                }
            }
            let fs = ws.final_state();
            for (a, b) in st.h.iter().zip(&fs.h).chain(st.c.iter().zip(&fs.c)) {
                assert!((a - b).abs() <= 2e-6 * (1.0 + b.abs()));
            }
        }
    }
}
