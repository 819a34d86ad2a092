//! What the multiple-time-scale and deep-transition cells are, checked as properties of their
//! outputs (their gradients are checked in `gradcheck.rs`):
//! - a clockwork module changes only at multiples of its period, reads no faster module, and
//!   its phase carries across streamed steps;
//! - a delay cell with only delay d cannot see the last d - 1 inputs' effect through its state;
//! - a delay cell with delay 1 and a deep transition of depth 1 are the tanh RNN.

use unfold::layers::{ClockSpec, DeepSpec, DelaySpec, InferWorkspace, StepWorkspace};
use unfold::rng::Rng;
use unfold::{CellKind, Parameters, Recurrent, RecurrentConfig, RecurrentState};

fn rand_vec(n: usize, rng: &mut Rng) -> Vec<f64> {
    (0..n).map(|_| rng.uniform_range(-1.0, 1.0)).collect()
}

/// Inference outputs `[T, B, H]` of `layer` over `x` from the zero state.
fn outputs(layer: &Recurrent<f64>, x: &[f64], steps: usize, batch: usize) -> Vec<f64> {
    let mut ws = InferWorkspace::default();
    layer
        .forward_infer(x, steps, batch, None, None, &mut ws)
        .unwrap();
    ws.output().to_vec()
}

#[test]
fn clockwork_modules_update_only_at_their_periods() {
    let (input, hidden, steps, batch) = (2, 6, 13, 2);
    let spec = ClockSpec::new(&[4, 1, 2]).unwrap(); // sorted to 1, 2, 4
    let cfg = RecurrentConfig::new(CellKind::Clockwork(spec), input, hidden);
    let layer = Recurrent::<f64>::new(cfg.clone(), 3).unwrap();
    // weight_hh is block upper triangular: module m reads modules m.. only.
    let w = layer.cell(0, 0).get(1);
    for u in 0..hidden {
        for v in 0..hidden {
            if v / 2 < u / 2 {
                assert_eq!(w[u * hidden + v], 0.0, "unit {u} reads faster unit {v}");
            }
        }
    }
    let x = rand_vec(steps * batch * input, &mut Rng::new(1));
    let out = outputs(&layer, &x, steps, batch);
    let at = |t: usize, b: usize, u: usize| out[(t * batch + b) * hidden + u];
    for (m, period) in [1usize, 2, 4].into_iter().enumerate() {
        for t in 1..steps {
            for b in 0..batch {
                for u in 2 * m..2 * m + 2 {
                    let changed = at(t, b, u) != at(t - 1, b, u);
                    assert_eq!(
                        changed,
                        t % period == 0,
                        "module {m} (period {period}) at step {t}"
                    );
                }
            }
        }
    }
    // One step at a time from a carried state gives the same outputs: the phase is state.
    let mut state = RecurrentState::zeros(&cfg, batch);
    let mut sw = StepWorkspace::default();
    for t in 0..steps {
        let xt = &x[t * batch * input..(t + 1) * batch * input];
        let h = layer.step(xt, &mut state, &mut sw).unwrap();
        assert_eq!(
            h,
            &out[t * batch * hidden..(t + 1) * batch * hidden],
            "step {t}"
        );
    }
}

#[test]
fn clockwork_gradients_leave_the_missing_connections_at_zero() {
    let spec = ClockSpec::new(&[1, 2, 4]).unwrap();
    let cfg = RecurrentConfig::new(CellKind::Clockwork(spec), 2, 6);
    let layer = Recurrent::<f64>::new(cfg, 4).unwrap();
    let (steps, batch) = (9, 3);
    let mut rng = Rng::new(2);
    let x = rand_vec(steps * batch * 2, &mut rng);
    let dout = rand_vec(steps * batch * 6, &mut rng);
    let mut cache = Default::default();
    layer
        .forward_train(&x, steps, batch, None, None, &mut cache)
        .unwrap();
    let mut grads = layer.zeros_like();
    layer
        .backward(&mut cache, Some(&dout), None, &mut grads, false)
        .unwrap();
    let gw = grads.cell(0, 0).get(1);
    let mut inside = 0.0;
    for u in 0..6 {
        for v in 0..6 {
            if v / 2 < u / 2 {
                assert_eq!(gw[u * 6 + v], 0.0);
            } else {
                inside += gw[u * 6 + v].abs();
            }
        }
    }
    assert!(inside > 0.0, "the connections that exist get gradients");
}

#[test]
fn a_pure_delay_cell_reads_only_states_d_steps_back() {
    let (input, hidden, steps) = (2, 3, 7);
    let cfg = RecurrentConfig::new(
        CellKind::Delay(DelaySpec::new(&[3]).unwrap()),
        input,
        hidden,
    );
    let layer = Recurrent::<f64>::new(cfg, 5).unwrap();
    let x = rand_vec(steps * input, &mut Rng::new(3));
    let base = outputs(&layer, &x, steps, 1);
    // Change the input at step 1: h(1) changes, h(2) and h(3) cannot (they read h(-1) and
    // h(0)), h(4) reads h(1) and changes.
    let mut x2 = x.clone();
    x2[input] += 0.5;
    let moved = outputs(&layer, &x2, steps, 1);
    let changed =
        |t: usize| base[t * hidden..(t + 1) * hidden] != moved[t * hidden..(t + 1) * hidden];
    assert!(!changed(0));
    assert!(changed(1));
    assert!(!changed(2) && !changed(3));
    assert!(changed(4));
}

/// Copies a tanh RNN's weights into `layer` (a delay cell with delay 1 or a deep transition
/// of depth 1: `weight_ih`, `weight_hh`, `bias`) with `bias = b_ih + b_hh`.
fn same_as_rnn(kind: CellKind) {
    let (input, hidden, steps, batch) = (3, 4, 6, 2);
    let rnn =
        Recurrent::<f64>::new(RecurrentConfig::new(CellKind::RnnTanh, input, hidden), 7).unwrap();
    let mut other = Recurrent::<f64>::new(RecurrentConfig::new(kind, input, hidden), 8).unwrap();
    let r = rnn.cell(0, 0);
    let bias: Vec<f64> = r.get(2).iter().zip(r.get(3)).map(|(a, b)| a + b).collect();
    {
        let o = other.cell_mut(0, 0);
        o.get_mut(0).copy_from_slice(r.get(0));
        o.get_mut(1).copy_from_slice(r.get(1));
        o.get_mut(2).copy_from_slice(&bias);
    }
    assert_eq!(other.param_specs().len(), 3, "{kind:?}");
    let x = rand_vec(steps * batch * input, &mut Rng::new(9));
    let a = outputs(&rnn, &x, steps, batch);
    let b = outputs(&other, &x, steps, batch);
    for (p, q) in a.iter().zip(&b) {
        assert!((p - q).abs() < 1e-12, "{kind:?}: {p} vs {q}");
    }
}

#[test]
fn delay_one_and_depth_one_are_the_tanh_rnn() {
    same_as_rnn(CellKind::Delay(DelaySpec::new(&[1]).unwrap()));
    same_as_rnn(CellKind::DeepTransition(DeepSpec {
        depth: 1,
        shortcut: true,
    }));
}
