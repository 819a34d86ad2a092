//! The `f32` fast path (packed AVX-512 products fused with the cell updates, several threads)
//! against the `f64` portable path on the same weights and inputs: outputs, final states,
//! every gradient, and inference. The sizes cut the hidden units into several blocks with a
//! ragged last one (H = 70 = 32 + 32 + 6), the batch into tiles with a remainder (B = 11) or
//! between threads (B = 19, the small-weights mode),
//! with variable lengths, two layers, both directions, and with and without biases; and the
//! streaming step (single-row kernel, team over units) for one and two sequences. On a
//! machine without AVX-512 both sides run the portable path and the test still holds.

use unfold::layers::{InferWorkspace, TrainCache};
use unfold::rng::Rng;
use unfold::{CellKind, Parameters, Recurrent, RecurrentConfig, RecurrentState};

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn assert_close(a: &[f32], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        let err = (x as f64 - y).abs();
        assert!(
            err <= 2e-5 * scale + 1e-6,
            "{what}[{i}]: f32 {x} vs f64 {y} (scale {scale})"
        );
    }
}

#[test]
fn fast_f32_path_equals_f64_reference() {
    unfold::kernels::gemm::set_num_threads(2);
    let (input, hidden, steps) = (5, 70, 9);
    // 11 sequences: the hidden units are split between threads; 19: the sequences are (two
    // groups, 16 + 3 rows).
    for (batch, lengths) in [
        (11, vec![9, 3, 9, 1, 7, 9, 2, 8, 9, 5, 6]),
        (19, (0..19).map(|b| 1 + (b * 5) % 9).collect::<Vec<usize>>()),
    ] {
        for kind in [
            CellKind::RnnTanh,
            CellKind::RnnRelu,
            CellKind::Lstm,
            CellKind::Gru,
        ] {
            for (bidirectional, bias) in [(false, true), (true, true), (true, false)] {
                let cfg = RecurrentConfig::new(kind, input, hidden)
                    .layers(2)
                    .bidirectional(bidirectional)
                    .bias(bias);
                let l64 = Recurrent::<f64>::new(cfg.clone(), 7).unwrap();
                let mut l32 = Recurrent::<f32>::zeros(cfg.clone()).unwrap();
                for (d, s) in l32.param_slices_mut().into_iter().zip(l64.param_slices()) {
                    d.copy_from_slice(&to_f32(s));
                }
                let mut rng = Rng::new(11);
                let mut rv = |n: usize| -> Vec<f64> {
                    (0..n).map(|_| rng.uniform_range(-1.0, 1.0)).collect()
                };
                let x = rv(steps * batch * input);
                let dout = rv(steps * batch * cfg.output_size());
                let mut init = RecurrentState::<f64>::zeros(&cfg, batch);
                init.h = rv(init.h.len());
                init.c = rv(init.c.len());
                let init32 = RecurrentState {
                    h: to_f32(&init.h),
                    c: to_f32(&init.c),
                    ..RecurrentState::<f32>::zeros(&cfg, batch)
                };
                let what = format!("{kind:?} batch={batch} bi={bidirectional} bias={bias}");

                let mut c64 = TrainCache::default();
                l64.forward_train(&x, steps, batch, Some(&lengths), Some(&init), &mut c64)
                    .unwrap();
                let mut c32 = TrainCache::default();
                l32.forward_train(
                    &to_f32(&x),
                    steps,
                    batch,
                    Some(&lengths),
                    Some(&init32),
                    &mut c32,
                )
                .unwrap();
                assert_close(c32.output(), c64.output(), &format!("{what} output"));
                assert_close(
                    &c32.final_state().h,
                    &c64.final_state().h,
                    &format!("{what} h_n"),
                );
                assert_close(
                    &c32.final_state().c,
                    &c64.final_state().c,
                    &format!("{what} c_n"),
                );

                let mut w32 = InferWorkspace::default();
                l32.forward_infer(
                    &to_f32(&x),
                    steps,
                    batch,
                    Some(&lengths),
                    Some(&init32),
                    &mut w32,
                )
                .unwrap();
                assert_eq!(
                    w32.output(),
                    c32.output(),
                    "{what}: inference differs from training"
                );

                let mut g64 = l64.zeros_like();
                l64.backward(&mut c64, Some(&dout), None, &mut g64, true)
                    .unwrap();
                let mut g32 = l32.zeros_like();
                l32.backward(&mut c32, Some(&to_f32(&dout)), None, &mut g32, true)
                    .unwrap();
                for ((spec, a), b) in g32
                    .param_specs()
                    .iter()
                    .zip(g32.param_slices())
                    .zip(g64.param_slices())
                {
                    assert_close(a, b, &format!("{what} d{}", spec.name));
                }
                assert_close(c32.dinput(), c64.dinput(), &format!("{what} dx"));
                assert_close(&c32.dinit().h, &c64.dinit().h, &format!("{what} dh0"));
            }
        }
    }
}

/// The LSTM inference with the batch in vector lanes (32 sequences: two whole vectors; 40: a
/// 16-lane remainder group, half of it past the batch; 24 at H = 260) against the f64 forward:
/// outputs and final states, variable lengths (reverse direction starting at each sequence's
/// own end), two layers (the second reads 2H inputs: several 16-feature chunks, a partial
/// one), both directions, with and without biases, and ragged blocks of units (H = 70 = 32 +
/// 32 + 6 and 260 = 8 x 32 + 4, tiles of 3 with remainders). H = 70 splits the sequences
/// between the two threads, H = 260 (over 1 MiB of weights) the units at every step; the two
/// directions of a layer run side by side, one thread each, and one after the other on one
/// thread. The second call reuses the packed weights; a changed bias is used. Last, 20
/// sequences (too few for their vectors) take the row-major path with the same workspace.
#[test]
fn lane_layout_inference_equals_f64_reference() {
    unfold::kernels::gemm::set_num_threads(2);
    let (input, steps) = (21, 9);
    for (hidden, batch) in [(70, 32usize), (70, 40), (260, 24)] {
        let lengths: Vec<usize> = (0..batch).map(|b| 1 + (b * 5) % steps).collect();
        for (bidirectional, bias) in [(false, true), (true, true), (true, false)] {
            let cfg = RecurrentConfig::new(CellKind::Lstm, input, hidden)
                .layers(2)
                .bidirectional(bidirectional)
                .bias(bias);
            let mut l64 = Recurrent::<f64>::new(cfg.clone(), 9).unwrap();
            let mut l32 = Recurrent::<f32>::zeros(cfg.clone()).unwrap();
            let mut rng = Rng::new(12);
            let mut rv =
                |n: usize| -> Vec<f64> { (0..n).map(|_| rng.uniform_range(-1.0, 1.0)).collect() };
            let x = rv(steps * batch * input);
            let mut init = RecurrentState::<f64>::zeros(&cfg, batch);
            init.h = rv(init.h.len());
            init.c = rv(init.c.len());
            let mut w32 = InferWorkspace::default();
            for round in 0..2 {
                if round == 1 && bias {
                    // A bias changed alone must be packed again.
                    let b = l64.param_slices_mut().into_iter().nth(2).unwrap();
                    b.iter_mut().for_each(|v| *v += 0.5);
                }
                for (d, s) in l32.param_slices_mut().into_iter().zip(l64.param_slices()) {
                    d.copy_from_slice(&to_f32(s));
                }
                let what = format!(
                    "H={hidden} batch={batch} bi={bidirectional} bias={bias} round={round}"
                );
                let run = (&x[..], steps, batch, &lengths[..], Some(&init));
                assert_inference_close(&l64, &l32, run, &mut w32, &what);
            }
            if bidirectional {
                // On one thread the two directions run one after the other (on two, side by
                // side, as above).
                let _serial = unfold::kernels::gemm::serial_scope();
                let what = format!("H={hidden} batch={batch} bias={bias} one thread");
                let run = (&x[..], steps, batch, &lengths[..], Some(&init));
                assert_inference_close(&l64, &l32, run, &mut InferWorkspace::default(), &what);
            }
            // The same workspace with a batch the lane layout does not take (20 sequences).
            let small = 20;
            let xs: Vec<f64> = (0..steps)
                .flat_map(|t| x[t * batch * input..(t * batch + small) * input].to_vec())
                .collect();
            let what = format!("H={hidden} bi={bidirectional} bias={bias} then 20 sequences");
            let run = (&xs[..], steps, small, &lengths[..small], None);
            assert_inference_close(&l64, &l32, run, &mut w32, &what);
        }
    }
}

/// One inference call: input, steps, batch, lengths and initial state.
type InferRun<'a> = (
    &'a [f64],
    usize,
    usize,
    &'a [usize],
    Option<&'a RecurrentState<f64>>,
);

/// Runs the f64 and the f32 layer's inference on the same call (the f32 one in `w32`, which
/// may hold an earlier call's buffers and packed weights) and compares the outputs and final
/// states.
fn assert_inference_close(
    l64: &Recurrent<f64>,
    l32: &Recurrent<f32>,
    (x, steps, batch, lengths, init): InferRun,
    w32: &mut InferWorkspace<f32>,
    what: &str,
) {
    let init32 = init.map(|s| RecurrentState {
        h: to_f32(&s.h),
        c: to_f32(&s.c),
        batch: s.batch,
    });
    let mut w64 = InferWorkspace::default();
    l64.forward_infer(x, steps, batch, Some(lengths), init, &mut w64)
        .unwrap();
    l32.forward_infer(
        &to_f32(x),
        steps,
        batch,
        Some(lengths),
        init32.as_ref(),
        w32,
    )
    .unwrap();
    assert_close(w32.output(), w64.output(), &format!("{what} output"));
    let (s32, s64) = (w32.final_state(), w64.final_state());
    assert_close(&s32.h, &s64.h, &format!("{what} h_n"));
    assert_close(&s32.c, &s64.c, &format!("{what} c_n"));
}

/// The streaming step in f32 (single-row AVX-512 dot products for one or two sequences, the
/// team of threads over blocks of units) against the f64 sequence forward: the top layer's h
/// at every step, two layers, every cell kind.
#[test]
fn f32_streaming_step_equals_f64_forward() {
    use unfold::layers::StepWorkspace;
    unfold::kernels::gemm::set_num_threads(2);
    let (input, hidden, steps) = (5, 300, 6);
    for kind in [
        CellKind::RnnTanh,
        CellKind::RnnRelu,
        CellKind::Lstm,
        CellKind::Gru,
    ] {
        for batch in [1, 2] {
            let cfg = RecurrentConfig::new(kind, input, hidden).layers(2);
            let l64 = Recurrent::<f64>::new(cfg.clone(), 3).unwrap();
            let mut l32 = Recurrent::<f32>::zeros(cfg.clone()).unwrap();
            for (d, s) in l32.param_slices_mut().into_iter().zip(l64.param_slices()) {
                d.copy_from_slice(&to_f32(s));
            }
            let mut rng = Rng::new(5);
            let x: Vec<f64> = (0..steps * batch * input)
                .map(|_| rng.uniform_range(-1.0, 1.0))
                .collect();
            let mut w64 = InferWorkspace::default();
            l64.forward_infer(&x, steps, batch, None, None, &mut w64)
                .unwrap();
            let mut state = RecurrentState::<f32>::zeros(&cfg, batch);
            let mut sws = StepWorkspace::default();
            let x32 = to_f32(&x);
            for t in 0..steps {
                let row = batch * input;
                let h = l32
                    .step(&x32[t * row..(t + 1) * row], &mut state, &mut sws)
                    .unwrap();
                let want = &w64.output()[t * batch * hidden..(t + 1) * batch * hidden];
                assert_close(h, want, &format!("{kind:?} batch {batch} step {t}"));
            }
        }
    }
}

/// Packed weights are reused across calls only while the weights are unchanged: after one
/// recurrent and one input weight change (as an optimizer step would make), a reused workspace
/// and cache give exactly what fresh ones give, for inference and the training forward.
#[test]
fn changed_weights_are_packed_again() {
    unfold::kernels::gemm::set_num_threads(2);
    let (input, hidden, steps, batch) = (6, 40, 5, 11);
    let cfg = RecurrentConfig::new(CellKind::Lstm, input, hidden).layers(2);
    let mut layer = Recurrent::<f32>::new(cfg, 3).unwrap();
    let mut rng = Rng::new(4);
    let x: Vec<f32> = (0..steps * batch * input)
        .map(|_| rng.uniform_range(-1.0, 1.0) as f32)
        .collect();
    let mut ws = InferWorkspace::default();
    let mut cache = TrainCache::default();
    let run = |layer: &Recurrent<f32>, ws: &mut InferWorkspace<f32>, c: &mut TrainCache<f32>| {
        layer
            .forward_infer(&x, steps, batch, None, None, ws)
            .unwrap();
        layer
            .forward_train(&x, steps, batch, None, None, c)
            .unwrap();
        (ws.output().to_vec(), c.output().to_vec())
    };
    let before = run(&layer, &mut ws, &mut cache);
    assert_eq!(
        before,
        run(&layer, &mut ws, &mut cache),
        "same weights, same outputs"
    );
    for (k, p) in layer.param_slices_mut().into_iter().enumerate() {
        // Every parameter tensor of both layers moves a little (weights and biases).
        p[(k * 7) % p.len()] += 0.25;
    }
    let reused = run(&layer, &mut ws, &mut cache);
    let fresh = run(
        &layer,
        &mut InferWorkspace::default(),
        &mut TrainCache::default(),
    );
    assert_ne!(before.0, fresh.0, "the change must show in the outputs");
    assert_eq!(
        reused, fresh,
        "a reused workspace must not keep stale packed weights"
    );
}
