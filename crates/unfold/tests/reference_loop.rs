//! Every engine equals the generic reference loop: for each PyTorch cell, one and two layers,
//! both directions, equal and ragged lengths, the layer on its engine (portable in f64; fused
//! AVX-512, lane layout and the single-sequence streaming kernel in f32 where the machine has
//! them) against the same layer forced onto the reference loop
//! (`Recurrent::set_reference_loop`): training outputs, final states, every parameter
//! gradient, the input and initial-state gradients, inference and streaming.

use unfold::layers::{InferWorkspace, StepWorkspace, TrainCache};
use unfold::rng::Rng;
use unfold::{CellKind, Float, Parameters, Recurrent, RecurrentConfig, RecurrentState};

const KINDS: [CellKind; 4] = [
    CellKind::RnnTanh,
    CellKind::RnnRelu,
    CellKind::Lstm,
    CellKind::Gru,
];

fn rand_vec<T: Float>(n: usize, rng: &mut Rng) -> Vec<T> {
    (0..n)
        .map(|_| T::from_f64(rng.uniform_range(-1.0, 1.0)))
        .collect()
}

fn close<T: Float>(what: &str, a: &[T], b: &[T], tol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.to_f64().abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let d = (x.to_f64() - y.to_f64()).abs();
        assert!(
            d <= tol * scale,
            "{what}[{i}]: engine {x:?} vs reference {y:?}"
        );
    }
}

struct Shape {
    input: usize,
    hidden: usize,
    steps: usize,
    batch: usize,
    layers: usize,
    bidir: bool,
    ragged: bool,
}

/// Engine against reference loop on one shape; `tol` relative to the largest value compared.
fn compare<T: Float>(kind: CellKind, s: &Shape, seed: u64, tol: f64) {
    let cfg = RecurrentConfig::new(kind, s.input, s.hidden)
        .layers(s.layers)
        .bidirectional(s.bidir);
    let engine = Recurrent::<T>::new(cfg.clone(), seed).unwrap();
    let mut reference = engine.clone();
    reference.set_reference_loop(true);
    assert!(engine.uses_engine() && !reference.uses_engine());
    let mut rng = Rng::new(seed + 7);
    let (steps, batch) = (s.steps, s.batch);
    let x: Vec<T> = rand_vec(steps * batch * s.input, &mut rng);
    let lengths: Option<Vec<usize>> = s.ragged.then(|| {
        (0..batch)
            .map(|b| [steps, 1, steps - 2, 0][b % 4])
            .collect()
    });
    let mut init = RecurrentState::<T>::zeros(&cfg, batch);
    init.h = rand_vec(init.h.len(), &mut rng);
    init.c = rand_vec(init.c.len(), &mut rng);
    let dout: Vec<T> = rand_vec(steps * batch * cfg.output_size(), &mut rng);
    let mut dfinal = RecurrentState::<T>::zeros(&cfg, batch);
    dfinal.h = rand_vec(dfinal.h.len(), &mut rng);
    dfinal.c = rand_vec(dfinal.c.len(), &mut rng);
    let tag = format!(
        "{kind:?} {} I={} H={} B={} L={} bidir={} ragged={}",
        std::any::type_name::<T>(),
        s.input,
        s.hidden,
        batch,
        s.layers,
        s.bidir,
        s.ragged
    );

    // Training forward and backward.
    let run = |layer: &Recurrent<T>| {
        let mut cache = TrainCache::default();
        layer
            .forward_train(
                &x,
                steps,
                batch,
                lengths.as_deref(),
                Some(&init),
                &mut cache,
            )
            .unwrap();
        let out = cache.output().to_vec();
        let fin = cache.final_state().clone();
        let mut grads = layer.zeros_like();
        layer
            .backward(&mut cache, Some(&dout), Some(&dfinal), &mut grads, true)
            .unwrap();
        (
            out,
            fin,
            grads,
            cache.dinput().to_vec(),
            cache.dinit().clone(),
        )
    };
    let (o1, f1, g1, dx1, di1) = run(&engine);
    let (o2, f2, g2, dx2, di2) = run(&reference);
    close(&format!("{tag} output"), &o1, &o2, tol);
    close(&format!("{tag} h_n"), &f1.h, &f2.h, tol);
    close(&format!("{tag} c_n"), &f1.c, &f2.c, tol);
    for ((spec, a), b) in g1
        .param_specs()
        .iter()
        .zip(g1.param_slices())
        .zip(g2.param_slices())
    {
        close(&format!("{tag} d{}", spec.name), a, b, tol);
    }
    close(&format!("{tag} dx"), &dx1, &dx2, tol);
    close(&format!("{tag} dh0"), &di1.h, &di2.h, tol);
    close(&format!("{tag} dc0"), &di1.c, &di2.c, tol);

    // Inference.
    let infer = |layer: &Recurrent<T>| {
        let mut ws = InferWorkspace::default();
        layer
            .forward_infer(&x, steps, batch, lengths.as_deref(), Some(&init), &mut ws)
            .unwrap();
        (ws.output().to_vec(), ws.final_state().clone())
    };
    let (o1, f1) = infer(&engine);
    let (o2, f2) = infer(&reference);
    close(&format!("{tag} infer output"), &o1, &o2, tol);
    close(&format!("{tag} infer h_n"), &f1.h, &f2.h, tol);
    close(&format!("{tag} infer c_n"), &f1.c, &f2.c, tol);

    // Streaming (one direction only).
    if !s.bidir {
        let stream = |layer: &Recurrent<T>| {
            let mut st = init.clone();
            let mut ws = StepWorkspace::default();
            let mut hs = Vec::new();
            for t in 0..steps {
                let xt = &x[t * batch * s.input..(t + 1) * batch * s.input];
                hs.extend_from_slice(layer.step(xt, &mut st, &mut ws).unwrap());
            }
            (hs, st)
        };
        let (h1, s1) = stream(&engine);
        let (h2, s2) = stream(&reference);
        close(&format!("{tag} stream h"), &h1, &h2, tol);
        close(&format!("{tag} stream state"), &s1.c, &s2.c, tol);
    }
}

fn shapes(batches: &[usize], input: usize, hidden: usize, steps: usize) -> Vec<Shape> {
    let mut v = Vec::new();
    for &batch in batches {
        for layers in [1, 2] {
            for bidir in [false, true] {
                for ragged in [false, true] {
                    v.push(Shape {
                        input,
                        hidden,
                        steps,
                        batch,
                        layers,
                        bidir,
                        ragged,
                    });
                }
            }
        }
    }
    v
}

#[test]
fn portable_engine_equals_reference_loop_f64() {
    // Batches of 1 and 2 take the single-row products, 5 the transposed-weight GEMM.
    let mut seed = 1;
    for kind in KINDS {
        for s in shapes(&[1, 2, 5], 3, 6, 5) {
            compare::<f64>(kind, &s, seed, 1e-12);
            seed += 1;
        }
    }
}

#[test]
fn fused_engines_equal_reference_loop_f32() {
    // On AVX-512: batch 8 takes the fused loops, 32 the lane-layout LSTM inference, 1 the
    // streaming kernel; H = 70 spans three unit blocks (one partial). Elsewhere the same
    // shapes check the portable engine in f32.
    let mut seed = 100;
    for kind in KINDS {
        for s in shapes(&[1, 8, 32], 5, 70, 6) {
            compare::<f32>(kind, &s, seed, 2e-5);
            seed += 1;
        }
    }
}
