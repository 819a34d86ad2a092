//! The probes checked in f64 against independent computations: the Jacobian products against
//! finite differences of replayed steps, the gradients by lag against the input gradient of
//! the layer's own backward (engine or generic loop), and the decay against its bound.

use super::lag::follow;
use super::*;
use crate::layers::{
    CellKind, ClockSpec, DeepSpec, LeakSpec, RecurrentConfig, RecurrentInit, RecurrentState,
};
use crate::rng::Rng;

fn randn(n: usize, rng: &mut Rng) -> Vec<f64> {
    (0..n).map(|_| rng.normal()).collect()
}

fn trained_cache(
    rnn: &Recurrent<f64>,
    steps: usize,
    lengths: &[usize],
    seed: u64,
) -> TrainCache<f64> {
    let b = lengths.len();
    let mut rng = Rng::new(seed);
    let x = randn(steps * b * rnn.config().input_size, &mut rng);
    let mut cache = TrainCache::default();
    rnn.forward_train(&x, steps, b, Some(lengths), None, &mut cache)
        .unwrap();
    cache
}

/// Sequence `b`'s input rows as the top layer read them.
fn inputs_of(view: &ProbeView<'_, f64>, b: usize) -> Vec<f64> {
    let cfg = view.rnn.config();
    let (_, batch) = view.cache.shape();
    let w = cfg.layer_input_size(cfg.num_layers - 1);
    let xs = view.cache.layer_input(cfg, cfg.num_layers - 1);
    (0..view.cache.lengths()[b])
        .flat_map(|t| xs[(t * batch + b) * w..(t * batch + b + 1) * w].to_vec())
        .collect()
}

#[test]
fn jacobian_products_match_finite_differences_for_every_cell() {
    let kinds = [
        CellKind::RnnTanh,
        CellKind::Lstm,
        CellKind::Gru,
        CellKind::Leaky(LeakSpec::default()),
        CellKind::Clockwork(ClockSpec::new(&[1, 2, 4]).unwrap()),
        CellKind::DeepTransition(DeepSpec::default()),
    ];
    for kind in kinds {
        let (i, h) = (3, 6);
        let rnn = Recurrent::<f64>::new(RecurrentConfig::new(kind, i, h), 7).unwrap();
        let cache = trained_cache(&rnn, 12, &[12, 9], 8);
        let view = ProbeView {
            rnn: &rnn,
            cache: &cache,
            dout: None,
            dfinal: None,
        };
        for b in 0..2 {
            let lags = [1, 4, 9];
            let got = jacobian_singular_values(&view, b, &lags).unwrap();
            assert_eq!(got.len(), 3, "{kind:?}");
            let tr = view.replay(b).unwrap();
            let x = inputs_of(&view, b);
            let (cell, p) = view.top();
            for (k, sv) in got {
                let i0 = tr.len - k;
                let mut jac = vec![0.0; h * h];
                let eps = 1e-6;
                for j in 0..h {
                    let end = |sign: f64| {
                        let mut s0 = tr.state(i0).to_vec();
                        s0[j] += sign * eps;
                        let r = super::trace::Trace::replay(cell, p, &x[i0 * i..], &s0);
                        r.state(r.len)[..h].to_vec()
                    };
                    let (hp, hm) = (end(1.0), end(-1.0));
                    for r in 0..h {
                        jac[r * h + j] = (hp[r] - hm[r]) / (2.0 * eps);
                    }
                }
                let want = super::spectrum::singular_values(h, &jac).unwrap();
                for (a, w) in sv.iter().zip(&want) {
                    assert!(
                        (a - w).abs() < 1e-6 * (1.0 + w.abs()),
                        "{kind:?} b={b} k={k}: {sv:?} vs {want:?}"
                    );
                }
            }
        }
    }
}

/// `dL/dx(t) = W_ih^T ((1 - h(t)^2) ⊙ dL/dh(t))` for a tanh RNN: the probe's gradients on h,
/// summed over output positions, must give the input gradient of the layer's backward.
fn check_against_input_gradient(per_step: bool) {
    let (i, h, steps) = (3, 5, 9);
    let lengths = [9, 6, 9];
    let b = lengths.len();
    for reference in [false, true] {
        let mut rnn =
            Recurrent::<f64>::new(RecurrentConfig::new(CellKind::RnnTanh, i, h), 3).unwrap();
        rnn.set_reference_loop(reference);
        let mut cache = trained_cache(&rnn, steps, &lengths, 4);
        let mut rng = Rng::new(5);
        let cfg = rnn.config().clone();
        let mut dout = vec![0.0; steps * b * h];
        let mut dfinal = RecurrentState::zeros(&cfg, b);
        if per_step {
            for t in 0..steps {
                for j in 0..b {
                    if t < lengths[j] {
                        for u in 0..h {
                            dout[(t * b + j) * h + u] = rng.normal();
                        }
                    }
                }
            }
        } else {
            dfinal.h = randn(b * h, &mut rng);
        }
        let mut grads = rnn.zeros_like();
        let (d, f) = if per_step {
            (Some(&dout[..]), None)
        } else {
            (None, Some(&dfinal))
        };
        rnn.backward(&mut cache, d, f, &mut grads, true).unwrap();
        let view = ProbeView {
            rnn: &rnn,
            cache: &cache,
            dout: d,
            dfinal: f,
        };
        let w_ih = rnn.cell(0, 0).w_ih().to_vec();
        for (j, &len) in lengths.iter().enumerate() {
            let tr = view.replay(j).unwrap();
            let mut total = vec![vec![0.0; h]; len];
            follow(&view, j, usize::MAX, |_, t, g| {
                total[t].iter_mut().zip(g).for_each(|(a, v)| *a += v);
            })
            .unwrap();
            for (t, g) in total.iter().enumerate() {
                let hs = &tr.state(t + 1)[..h];
                for c in 0..i {
                    let want: f64 = (0..h)
                        .map(|u| w_ih[u * i + c] * (1.0 - hs[u] * hs[u]) * g[u])
                        .sum();
                    let got = cache.dinput()[(t * b + j) * i + c];
                    assert!(
                        (want - got).abs() < 1e-10,
                        "per_step={per_step} reference={reference} seq {j} t={t}: {want} vs {got}"
                    );
                }
            }
        }
        // The profile is the mean of the followed norms.
        let prof = gradient_by_lag(&view, 3, usize::MAX).unwrap();
        assert_eq!(prof.counts[0], if per_step { 24 } else { 3 });
        assert!(prof.norms.iter().all(|n| n.is_finite() && *n > 0.0));
    }
}

#[test]
fn lag_gradients_give_the_input_gradient_of_a_loss_at_the_end() {
    check_against_input_gradient(false);
}

#[test]
fn lag_gradients_give_the_input_gradient_of_a_loss_at_every_step() {
    check_against_input_gradient(true);
}

#[test]
fn the_gradient_of_a_contracting_rnn_decays_at_least_as_fast_as_its_gain() {
    let cfg = RecurrentConfig::new(CellKind::RnnTanh, 2, 16);
    let mut rnn = Recurrent::<f64>::new(cfg.clone(), 1).unwrap();
    rnn.initialise(RecurrentInit::Orthogonal { gain: 0.7 }, 2)
        .unwrap();
    let cache = trained_cache(&rnn, 40, &[40, 40], 3);
    let mut fin = RecurrentState::zeros(&cfg, 2);
    fin.h = randn(32, &mut Rng::new(4));
    let view = ProbeView {
        rnn: &rnn,
        cache: &cache,
        dout: None,
        dfinal: Some(&fin),
    };
    let prof = gradient_by_lag(&view, 2, 1).unwrap();
    assert_eq!(prof.norms.len(), 40);
    for k in 0..39 {
        assert!(prof.norms[k + 1] <= 0.7 * prof.norms[k] * (1.0 + 1e-9));
    }
    assert!(prof.log_slope().unwrap() < 0.7f64.ln());
    // The weight matrix's eigenvalues all lie on the circle of radius 0.7.
    let ev = weight_eigenvalues(&rnn, 0).unwrap().unwrap();
    assert!(ev.iter().all(|&(a, b)| (a.hypot(b) - 0.7).abs() < 1e-9));
    // The linearised step is diag(1 - h^2) W: inside that circle.
    assert!(spectral_radius_of(&step_eigenvalues(&view, 0).unwrap()) <= 0.7 + 1e-9);
    // A gated cell has no single square W_hh.
    let lstm = Recurrent::<f64>::new(RecurrentConfig::new(CellKind::Lstm, 2, 4), 1).unwrap();
    assert!(weight_eigenvalues(&lstm, 0).unwrap().is_none());
}

#[test]
fn the_record_is_one_json_line_with_every_probe() {
    let cfg = RecurrentConfig::new(CellKind::Lstm, 2, 4);
    let rnn = Recurrent::<f32>::new(cfg.clone(), 1).unwrap();
    let mut cache = TrainCache::default();
    let x: Vec<f32> = (0..2 * 12 * 2).map(|v| (v as f32 * 0.37).sin()).collect();
    rnn.forward_train(&x, 12, 2, None, None, &mut cache)
        .unwrap();
    let mut fin = RecurrentState::zeros(&cfg, 2);
    fin.h.iter_mut().for_each(|v| *v = 0.5);
    let view = ProbeView {
        rnn: &rnn,
        cache: &cache,
        dout: None,
        dfinal: Some(&fin),
    };
    let rec = probe(&view, &ProbeConfig::every(10), 10).unwrap();
    assert_eq!(rec.lag.norms.len(), 12);
    assert_eq!(rec.step_eigenvalues.len(), 8, "h and c");
    assert_eq!(
        rec.jacobian.iter().map(|j| j.0).collect::<Vec<_>>(),
        vec![1, 10],
        "lag 50 is beyond the sequence"
    );
    let v: serde_json::Value = serde_json::from_str(&rec.to_json()).unwrap();
    assert_eq!(v["split"], "probe");
    assert_eq!(v["grad_by_lag"].as_array().unwrap().len(), 12);
    assert_eq!(
        v["jacobian_singular_values"]["10"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert!(v["step_radius"].as_f64().unwrap() > 0.0);
}
