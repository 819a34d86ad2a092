//! Two-dimensional recurrent layers: finite-difference gradient checks in f64 of every
//! parameter and of the input, for both cells, one, two and four sweeps, concatenated and
//! summed, through the output map and the sweeps' final states; and the wavefront's batching
//! invariant: a grid's output does not depend on the other grids of its batch.

#![allow(clippy::needless_range_loop)] // perturbing element j of parallel buffers

use unfold::layers::grid::{
    Combine, GridCache, GridCell, GridGradWork, GridLayer, GridLayerConfig, GridShape,
};
use unfold::rng::Rng;
use unfold::Parameters;

fn random(n: usize, rng: &mut Rng) -> Vec<f64> {
    (0..n).map(|_| rng.uniform_range(-1.0, 1.0)).collect()
}

/// `sum(out * r) + sum(final * q)`.
fn loss(
    layer: &GridLayer<f64>,
    shape: GridShape,
    x: &[f64],
    r: &[f64],
    q: &[f64],
    cache: &mut GridCache<f64>,
) -> f64 {
    layer.forward(shape, x, cache).unwrap();
    let mut l: f64 = cache.out.iter().zip(r).map(|(a, b)| a * b).sum();
    let h = layer.config().hidden;
    for s in 0..layer.config().sweeps {
        let fin = cache.final_states(s);
        for img in 0..shape.images {
            for k in 0..h {
                l += fin[img * h + k] * q[img * layer.config().sweeps * h + s * h + k];
            }
        }
    }
    l
}

fn check(cell: GridCell, sweeps: usize, combine: Combine, seed: u64) {
    let cfg = GridLayerConfig {
        cell,
        input_size: 3,
        hidden: 4,
        sweeps,
        combine,
    };
    let mut layer = GridLayer::<f64>::new(cfg, seed).unwrap();
    layer.set_forget_bias(0.5);
    let shape = GridShape {
        images: 2,
        height: 3,
        width: 4,
    };
    let mut rng = Rng::new(seed + 7);
    let n = shape.positions();
    let x = random(n * 3, &mut rng);
    let r = random(n * cfg.out_width(), &mut rng);
    let q = random(shape.images * sweeps * cfg.hidden, &mut rng);
    let mut cache = GridCache::default();
    loss(&layer, shape, &x, &r, &q, &mut cache);
    let mut grads = layer.zeros_like();
    let mut work = GridGradWork::default();
    let mut dx = vec![0.0; x.len()];
    layer
        .backward(
            &x,
            &mut cache,
            &r,
            Some(&q),
            (&mut grads, &mut work),
            &mut dx,
        )
        .unwrap();
    let eps = 1e-6;
    let analytic: Vec<Vec<f64>> = grads.param_slices().iter().map(|s| s.to_vec()).collect();
    let names = layer.param_specs();
    let mut worst: f64 = 0.0;
    for (t, spec) in names.iter().enumerate() {
        for j in 0..analytic[t].len() {
            let orig = layer.param_slices()[t][j];
            layer.param_slices_mut()[t][j] = orig + eps;
            let lp = loss(&layer, shape, &x, &r, &q, &mut cache);
            layer.param_slices_mut()[t][j] = orig - eps;
            let lm = loss(&layer, shape, &x, &r, &q, &mut cache);
            layer.param_slices_mut()[t][j] = orig;
            let num = (lp - lm) / (2.0 * eps);
            let err = (num - analytic[t][j]).abs() / (1.0 + num.abs());
            assert!(
                err < 1e-7,
                "{cell:?} x{sweeps} {combine:?}: {} [{j}] numeric {num} analytic {}",
                spec.name,
                analytic[t][j]
            );
            worst = worst.max(err);
        }
    }
    let mut xp = x.clone();
    for j in 0..x.len() {
        xp[j] = x[j] + eps;
        let lp = loss(&layer, shape, &xp, &r, &q, &mut cache);
        xp[j] = x[j] - eps;
        let lm = loss(&layer, shape, &xp, &r, &q, &mut cache);
        xp[j] = x[j];
        let num = (lp - lm) / (2.0 * eps);
        assert!(
            (num - dx[j]).abs() / (1.0 + num.abs()) < 1e-7,
            "{cell:?} x{sweeps} {combine:?}: dx[{j}] numeric {num} analytic {}",
            dx[j]
        );
    }
    // The gradients are not trivially zero.
    assert!(analytic.iter().all(|g| g.iter().any(|v| v.abs() > 1e-6)));
}

#[test]
fn rnn_gradients_match_finite_differences() {
    check(GridCell::Rnn, 1, Combine::Concat, 1);
    check(GridCell::Rnn, 2, Combine::Sum, 2);
    check(GridCell::Rnn, 4, Combine::Concat, 3);
}

#[test]
fn lstm_gradients_match_finite_differences() {
    check(GridCell::Lstm, 1, Combine::Sum, 4);
    check(GridCell::Lstm, 4, Combine::Concat, 5);
    check(GridCell::Lstm, 4, Combine::Sum, 6);
}

/// One grid's output is the same alone or among others, and each sweep's output at a position
/// depends only on the positions on its side (a one-sweep layer ignores what comes after).
#[test]
fn grids_are_independent_and_sweeps_causal() {
    for cell in [GridCell::Rnn, GridCell::Lstm] {
        let cfg = GridLayerConfig {
            cell,
            input_size: 2,
            hidden: 5,
            sweeps: 4,
            combine: Combine::Concat,
        };
        let layer = GridLayer::<f64>::new(cfg, 9).unwrap();
        let (h, w) = (4, 5);
        let mut rng = Rng::new(3);
        let x = random(3 * h * w * 2, &mut rng);
        let mut all = GridCache::default();
        let shape = |images| GridShape {
            images,
            height: h,
            width: w,
        };
        layer.forward(shape(3), &x, &mut all).unwrap();
        let f = cfg.out_width();
        for img in 0..3 {
            let mut one = GridCache::default();
            let xi = &x[img * h * w * 2..(img + 1) * h * w * 2];
            layer.forward(shape(1), xi, &mut one).unwrap();
            let got = &all.out[img * h * w * f..(img + 1) * h * w * f];
            for (a, b) in got.iter().zip(&one.out) {
                assert!((a - b).abs() < 1e-12);
            }
        }
        // Changing the bottom-right pixel leaves the top-left sweep's output elsewhere alone.
        let mut x2 = x.clone();
        let last = (h * w - 1) * 2;
        x2[last] += 1.0;
        let mut c2 = GridCache::default();
        layer.forward(shape(3), &x2, &mut c2).unwrap();
        for p in 0..h * w - 1 {
            for k in 0..5 {
                assert_eq!(all.out[p * f + k], c2.out[p * f + k]);
            }
        }
        // At the top-left, only the sweep from the bottom-right has seen that pixel (the
        // one from the top-right sees the top row, the one from the bottom-left the left
        // column).
        for s in 1..3 {
            assert_eq!(all.out[s * 5], c2.out[s * 5], "sweep {s} at the top-left");
        }
        assert_ne!(all.out[15], c2.out[15], "sweep 3 at the top-left");
    }
}

/// The whole model (two stacked layers, a deep output, every read-out; 2-D sweeps and ReNet
/// layers): the mean NLL's gradient against finite differences of every parameter.
#[test]
fn grid_model_gradients_match_finite_differences() {
    use unfold::data::{GridLabels, GridSet};
    use unfold::layers::OutputKind;
    use unfold::models::{
        GridConfig, GridKind, GridModel, GridReadout, GridWorkspace, Model, TrainContext,
    };
    for (k, readout) in [
        GridReadout::Mean,
        GridReadout::Last,
        GridReadout::Pixels,
        GridReadout::Mean,
        GridReadout::Pixels,
    ]
    .into_iter()
    .enumerate()
    {
        let cell = if k == 1 {
            GridCell::Rnn
        } else {
            GridCell::Lstm
        };
        let cfg = GridConfig {
            channels: 2,
            cell,
            hidden: 3,
            layers: 2,
            sweeps: if k == 2 { 2 } else { 4 },
            combine: if k == 0 {
                Combine::Sum
            } else {
                Combine::Concat
            },
            deep_output: 1,
            output: OutputKind::Categorical {
                classes: 3,
                pad: None,
            },
            readout,
            // The last two: ReNet layers (rows, then columns).
            kind: if k >= 3 {
                GridKind::ReNet
            } else {
                GridKind::Sweeps
            },
        };
        let mut model = GridModel::<f64>::new(cfg, 11 + k as u64).unwrap();
        let mut rng = Rng::new(k as u64);
        let (n, h, w) = (3, 3, 4);
        let pixels = random(n * h * w * 2, &mut rng);
        let labels = if readout == GridReadout::Pixels {
            GridLabels::Pixels {
                labels: (0..n * h * w).map(|_| rng.below(3)).collect(),
                mask: (0..n * h * w).map(|_| rng.below(4) != 0).collect(),
            }
        } else {
            GridLabels::Image((0..n).map(|_| rng.below(3)).collect())
        };
        let set = GridSet::new((h, w, 2), pixels, labels, 3).unwrap();
        let batch = set.batch(&[2, 0, 1]);
        let mut ws = GridWorkspace::default();
        let mut grads = model.zeros_like();
        let mut r = Rng::new(0);
        let mut ctx = TrainContext {
            rng: &mut r,
            feed_prob: 0.0,
            step: 1,
        };
        model
            .loss_and_grad(&batch, &mut ws, &mut grads, &mut ctx)
            .unwrap();
        let analytic: Vec<Vec<f64>> = grads.param_slices().iter().map(|s| s.to_vec()).collect();
        let specs = model.param_specs();
        let eps = 1e-6;
        for t in 0..analytic.len() {
            for j in 0..analytic[t].len() {
                let orig = model.param_slices()[t][j];
                let mut at = |v: f64| {
                    model.param_slices_mut()[t][j] = v;
                    model.evaluate(&batch, &mut ws).unwrap().mean_nll()
                };
                let num = (at(orig + eps) - at(orig - eps)) / (2.0 * eps);
                model.param_slices_mut()[t][j] = orig;
                assert!(
                    (num - analytic[t][j]).abs() / (1.0 + num.abs()) < 1e-7,
                    "{readout:?}: {} [{j}] numeric {num} analytic {}",
                    specs[t].name,
                    analytic[t][j]
                );
            }
        }
    }
}
