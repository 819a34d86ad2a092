//! End-to-end training: each pattern learns a small generated task within a fixed budget
//! (fixed seeds, so deterministic), resume is bit-exact, and the trainer's guards (clipping,
//! non-finite detection, early stopping, metrics log) behave as documented.

use std::path::PathBuf;
use unfold::data::{tasks, Dataset, Sequence, Values};
use unfold::layers::OutputKind;
use unfold::models::{
    FeedbackConfig, FeedbackStyle, InputSpec, Model, ModelConfig, OutputFeedback, Readout,
    SequenceClassifier, SequenceLabeller,
};
use unfold::train::{
    clip_gradients, evaluate, global_norm, Batches, Clip, FeedSchedule, LrSchedule,
    OptimizerConfig, Stream, TrainConfig, TrainData, Trainer,
};
use unfold::{CellKind, Error, Parameters};

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("unfold-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cfg(steps: u64, lr: f64) -> TrainConfig {
    TrainConfig {
        lr: LrSchedule::constant(lr),
        eval_every: 0,
        ..TrainConfig::new(steps)
    }
}

#[test]
fn pattern_three_learns_the_sign_of_a_sum() {
    let train = Dataset::new(tasks::sign_of_sum::<f32>(2000, 5, 20, 1)).unwrap();
    let test = Dataset::new(tasks::sign_of_sum::<f32>(500, 5, 20, 2)).unwrap();
    let model = SequenceClassifier::new(
        ModelConfig {
            input: InputSpec::Reals {
                width: 1,
                project: None,
            },
            cell: CellKind::Gru,
            hidden: 16,
            layers: 1,
            bidirectional: false,
            output: OutputKind::Categorical {
                classes: 2,
                pad: None,
            },
            deep_output: 0,
            residual: false,
        },
        Readout::Last,
        7,
    )
    .unwrap();
    let mut tr = Trainer::new(model, cfg(300, 0.01)).unwrap();
    let mut data = Batches::new(&train, 32, 8, 3).unwrap();
    tr.run(&mut data, None, &mut |_| {}).unwrap();
    let acc = tr.evaluate(&test).unwrap().accuracy().unwrap();
    eprintln!("pattern III held-out accuracy {acc:.3}");
    assert!(acc > 0.93, "accuracy {acc}");
}

#[test]
fn pattern_one_tags_every_step() {
    let train = Dataset::new(tasks::running_pair_sum::<f32>(1000, 4, 5, 25, 1)).unwrap();
    let test = Dataset::new(tasks::running_pair_sum::<f32>(200, 4, 5, 25, 2)).unwrap();
    let model = SequenceLabeller::new(
        ModelConfig {
            input: InputSpec::Symbols { vocab: 4, dim: 8 },
            cell: CellKind::RnnTanh,
            hidden: 24,
            layers: 1,
            bidirectional: false,
            output: OutputKind::Categorical {
                classes: 4,
                pad: None,
            },
            deep_output: 0,
            residual: false,
        },
        7,
    )
    .unwrap();
    let mut tr = Trainer::new(model, cfg(400, 0.01)).unwrap();
    let mut data = Batches::new(&train, 32, 8, 3).unwrap();
    tr.run(&mut data, None, &mut |_| {}).unwrap();
    let st = tr.evaluate(&test).unwrap();
    let acc = st.accuracy().unwrap();
    eprintln!(
        "pattern I held-out accuracy {acc:.3}, {:.3} bits/symbol",
        st.bits_per_symbol()
    );
    assert!(acc > 0.97, "accuracy {acc}");
}

fn circle_model(seed: u64) -> OutputFeedback<f32> {
    OutputFeedback::new(
        FeedbackConfig {
            input: None,
            hidden: 24,
            relu: false,
            output: OutputKind::Gaussian {
                dim: 2,
                learn_variance: false,
            },
            style: FeedbackStyle::PerStep,
            backprop_feedback: false,
            prime_steps: 1,
        },
        seed,
    )
    .unwrap()
}

#[test]
fn pattern_two_follows_a_signal_and_runs_free() {
    let train = Dataset::new(tasks::noisy_circle::<f32>(
        400,
        30,
        (0.3, 0.3),
        (1.0, 1.0),
        0.05,
        1,
    ))
    .unwrap();
    let test = Dataset::new(tasks::noisy_circle::<f32>(
        100,
        30,
        (0.3, 0.3),
        (1.0, 1.0),
        0.0,
        2,
    ))
    .unwrap();
    let mut tr = Trainer::new(circle_model(5), cfg(400, 0.01)).unwrap();
    let mut data = Batches::new(&train, 32, 0, 3).unwrap();
    let mut ws = Default::default();
    let before = tr
        .model
        .free_run(&test.batch(&(0..100).collect::<Vec<_>>()), &mut ws)
        .unwrap();
    tr.run(&mut data, None, &mut |_| {}).unwrap();
    let all: Vec<usize> = (0..100).collect();
    let tf = tr.model.teacher_forced(&test.batch(&all), &mut ws).unwrap();
    let free = tr.model.free_run(&test.batch(&all), &mut ws).unwrap();
    let (tf, free, before) = (
        tf.mse().unwrap(),
        free.mse().unwrap(),
        before.mse().unwrap(),
    );
    eprintln!(
        "pattern II: one-step MSE {tf:.5}, free-running MSE {free:.5} (untrained {before:.3})"
    );
    assert!(tf < 0.01, "one-step MSE {tf}");
    assert!(
        free < 0.1 && free < before / 5.0,
        "free-running MSE {free} (untrained {before})"
    );
}

fn params_of<M: Parameters<f32>>(m: &M) -> Vec<Vec<f32>> {
    m.param_slices().iter().map(|s| s.to_vec()).collect()
}

#[test]
fn resume_is_bit_exact_with_scheduled_sampling_and_epochs() {
    let train = Dataset::new(tasks::noisy_circle::<f32>(
        90,
        12,
        (0.2, 0.4),
        (1.0, 1.0),
        0.05,
        1,
    ))
    .unwrap();
    let valid = Dataset::new(tasks::noisy_circle::<f32>(
        20,
        12,
        (0.2, 0.4),
        (1.0, 1.0),
        0.05,
        9,
    ))
    .unwrap();
    let dir = temp_dir("resume");
    let make_cfg = |steps: u64| TrainConfig {
        feed: FeedSchedule::InverseSigmoid {
            c: 5.0,
            min_truth: 0.0,
        },
        eval_every: 7,
        checkpoint_every: 10,
        out_dir: Some(dir.clone()),
        seed: 4,
        clip: Clip::Norm(1.0),
        ..cfg(steps, 0.01)
    };
    // 90 sequences in batches of 16: an epoch is 6 batches, so 25 steps cross several epochs.
    let full = {
        let mut tr = Trainer::new(
            circle_model(3),
            TrainConfig {
                out_dir: None,
                ..make_cfg(25)
            },
        )
        .unwrap();
        let mut data = Batches::new(&train, 16, 2, 8).unwrap();
        tr.run(&mut data, Some(&valid), &mut |_| {}).unwrap();
        params_of(&tr.model)
    };
    {
        let mut tr = Trainer::new(circle_model(3), make_cfg(13)).unwrap();
        let mut data = Batches::new(&train, 16, 2, 8).unwrap();
        tr.run(&mut data, Some(&valid), &mut |_| {}).unwrap();
    }
    // The run ended at step 13 (its last checkpoint); resume from it and go on to 25.
    let ck = dir.join("checkpoint.safetensors");
    let mut data = Batches::new(&train, 16, 2, 8).unwrap();
    let mut tr = Trainer::resume(circle_model(77), make_cfg(25), &ck, &mut data).unwrap();
    assert_eq!(tr.step(), 13);
    tr.run(&mut data, Some(&valid), &mut |_| {}).unwrap();
    assert_eq!(
        params_of(&tr.model),
        full,
        "resumed parameters differ from the uninterrupted run"
    );
    // The metrics log holds each step once, in order.
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("\"split\":\"train\""))
        .map(|l| l[8..].split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(steps, (1..=25).collect::<Vec<_>>());
    assert!(log
        .lines()
        .any(|l| l.contains("\"split\":\"valid\"") && l.contains("\"mse\"")));
    assert!(dir.join("best.safetensors").exists());
}

#[test]
fn resume_is_bit_exact_for_truncated_bptt_streams() {
    let seqs = tasks::running_pair_sum::<f32>(1, 4, 3000, 3000, 5);
    let (input, target) = (&seqs[0].input, &seqs[0].target);
    let model = || {
        SequenceLabeller::<f32>::new(
            ModelConfig {
                input: InputSpec::Symbols { vocab: 4, dim: 4 },
                cell: CellKind::Lstm,
                hidden: 8,
                layers: 2,
                bidirectional: false,
                output: OutputKind::Categorical {
                    classes: 4,
                    pad: None,
                },
                deep_output: 0,
                residual: false,
            },
            1,
        )
        .unwrap()
    };
    let dir = temp_dir("stream");
    let make = |steps| TrainConfig {
        out_dir: Some(dir.clone()),
        checkpoint_every: 9,
        ..cfg(steps, 0.01)
    };
    let full = {
        let mut tr = Trainer::new(
            model(),
            TrainConfig {
                out_dir: None,
                ..make(30)
            },
        )
        .unwrap();
        let mut s = Stream::new(input, target, 4, 10, 25).unwrap();
        tr.run(&mut s, None, &mut |_| {}).unwrap();
        params_of(&tr.model)
    };
    {
        let mut tr = Trainer::new(model(), make(18)).unwrap();
        let mut s = Stream::new(input, target, 4, 10, 25).unwrap();
        tr.run(&mut s, None, &mut |_| {}).unwrap();
    }
    let mut s = Stream::new(input, target, 4, 10, 25).unwrap();
    let mut tr = Trainer::resume(
        model(),
        make(30),
        &dir.join("checkpoint.safetensors"),
        &mut s,
    )
    .unwrap();
    tr.run(&mut s, None, &mut |_| {}).unwrap();
    assert_eq!(params_of(&tr.model), full);
}

#[test]
fn truncated_bptt_windows_score_every_step_once_with_exact_states() {
    // At fixed parameters, the scored losses of all updates add up to the loss of one
    // uninterrupted pass, whatever k1 and k2 are: the carried and replayed states are exact.
    let seqs = tasks::running_pair_sum::<f64>(1, 3, 240, 240, 8);
    let (input, target) = (&seqs[0].input, &seqs[0].target);
    let model = SequenceLabeller::<f64>::new(
        ModelConfig {
            input: InputSpec::Symbols { vocab: 3, dim: 3 },
            cell: CellKind::Gru,
            hidden: 5,
            layers: 2,
            bidirectional: false,
            output: OutputKind::Categorical {
                classes: 3,
                pad: None,
            },
            deep_output: 0,
            residual: false,
        },
        2,
    )
    .unwrap();
    let whole = Dataset::new(vec![Sequence {
        len: 240,
        input: input.clone(),
        target: target.clone(),
    }])
    .unwrap();
    let mut ws = Default::default();
    let reference = evaluate(&model, &mut ws, &whole, 1).unwrap();
    // Chunked evaluation with the state carried gives the same log-likelihood.
    for chunk in [1, 7, 100, 240] {
        let st = unfold::train::evaluate_stream(&model, input, target, chunk).unwrap();
        assert_eq!(st.rows, 240);
        assert!(
            (st.nll - reference.nll).abs() < 1e-9 * reference.nll,
            "chunk {chunk}"
        );
    }
    for (k1, k2) in [(20, 20), (15, 40), (30, 10), (7, 7)] {
        let mut s = Stream::new(input, target, 1, k1, k2).unwrap();
        let mut total = unfold::layers::LossStats::default();
        let mut grads = model.zeros_like();
        let mut rng = unfold::rng::Rng::new(0);
        while total.rows + total_unscored(k1, k2, total.rows) < 240 && s.epoch() == 0 {
            let mut ctx = unfold::models::TrainContext {
                rng: &mut rng,
                feed_prob: 0.0,
                step: 0,
            };
            let (st, _) =
                TrainData::next_batch(&mut s, &model, &mut ws, &mut grads, &mut ctx).unwrap();
            total.merge(&st);
        }
        if k2 >= k1 {
            assert_eq!(total.rows, 240, "k1 {k1} k2 {k2}");
            assert!(
                (total.nll - reference.nll).abs() < 1e-9 * reference.nll,
                "k1 {k1} k2 {k2}: {} vs {}",
                total.nll,
                reference.nll
            );
        } else {
            assert_eq!(total.rows, 240 / k1 * k2, "k1 {k1} k2 {k2}");
        }
    }
}

/// Steps a (k1, k2) schedule leaves unscored by the time `scored` steps are scored.
fn total_unscored(k1: usize, k2: usize, scored: usize) -> usize {
    if k2 >= k1 {
        0
    } else {
        scored / k2 * (k1 - k2)
    }
}

#[test]
fn clipping_by_norm_and_by_value() {
    let mut a = [3.0f32, 0.0];
    let mut b = [4.0f32];
    let n = clip_gradients(vec![&mut a[..], &mut b[..]], Clip::Norm(1.0));
    assert!((n - 5.0).abs() < 1e-6, "norm before clipping is reported");
    let after = global_norm(&[&a[..], &b[..]]);
    assert!(
        (after - 1.0).abs() < 1e-5,
        "clipped to the maximum norm: {after}"
    );
    assert!((a[0] / b[0] - 0.75).abs() < 1e-6, "direction kept");
    let mut c = vec![0.5f32, -2.0, 3.0];
    let n = clip_gradients(vec![&mut c[..]], Clip::Value(1.0));
    assert!((n - (0.25f64 + 4.0 + 9.0).sqrt()).abs() < 1e-6);
    assert_eq!(c, vec![0.5, -1.0, 1.0]);
    let mut d = vec![0.1f32, 0.1];
    clip_gradients(vec![&mut d[..]], Clip::Norm(1.0));
    assert_eq!(d, vec![0.1, 0.1], "small gradients are untouched");
}

fn nan_dataset() -> Dataset<f32> {
    let mut seqs = tasks::sign_of_sum::<f32>(8, 3, 5, 1);
    if let Values::Reals { data, .. } = &mut seqs[0].input {
        data[1] = f32::NAN;
    }
    Dataset::new(seqs).unwrap()
}

fn small_classifier() -> SequenceClassifier<f32> {
    SequenceClassifier::new(
        ModelConfig {
            input: InputSpec::Reals {
                width: 1,
                project: None,
            },
            cell: CellKind::RnnTanh,
            hidden: 4,
            layers: 1,
            bidirectional: false,
            output: OutputKind::Categorical {
                classes: 2,
                pad: None,
            },
            deep_output: 0,
            residual: false,
        },
        Readout::Last,
        1,
    )
    .unwrap()
}

#[test]
fn non_finite_loss_stops_with_the_step_or_is_skipped() {
    let data = nan_dataset();
    let mut tr = Trainer::new(small_classifier(), cfg(4, 0.01)).unwrap();
    // One batch of all 8 sequences: the NaN is in the first batch.
    let mut src = Batches::new(&data, 8, 0, 1).unwrap();
    match tr.run(&mut src, None, &mut |_| {}) {
        Err(Error::NonFinite { step, what }) => {
            assert_eq!(step, 1);
            assert_eq!(what, "loss");
        }
        other => panic!("expected a non-finite error, got {other:?}"),
    }
    let before = params_of(&tr.model);
    let mut tr = Trainer::new(
        small_classifier(),
        TrainConfig {
            skip_nonfinite: true,
            ..cfg(3, 0.01)
        },
    )
    .unwrap();
    let mut src = Batches::new(&data, 8, 0, 1).unwrap();
    let s = tr.run(&mut src, None, &mut |_| {}).unwrap();
    assert_eq!(s.skipped, 3);
    assert_eq!(
        params_of(&tr.model),
        before,
        "skipped batches change nothing"
    );
}

#[test]
fn early_stopping_after_patience_evaluations_without_improvement() {
    let data = Dataset::new(tasks::sign_of_sum::<f32>(64, 3, 6, 1)).unwrap();
    // A learning rate far below f32 resolution: parameters never change, so the validation
    // loss never improves after the first evaluation.
    let c = TrainConfig {
        optimizer: OptimizerConfig::sgd(),
        lr: LrSchedule::constant(1e-30),
        eval_every: 2,
        patience: Some(3),
        ..TrainConfig::new(100)
    };
    let mut tr = Trainer::new(small_classifier(), c).unwrap();
    let mut src = Batches::new(&data, 16, 0, 1).unwrap();
    let mut evals = 0;
    let s = tr
        .run(&mut src, Some(&data), &mut |e| {
            if let unfold::train::Event::Eval { .. } = e {
                evals += 1
            }
        })
        .unwrap();
    assert!(s.stopped_early);
    assert_eq!(evals, 4);
    assert_eq!(s.steps, 8);
}

#[test]
fn length_bucketing_reduces_padding_and_covers_every_sequence() {
    let data = Dataset::new(tasks::sign_of_sum::<f32>(512, 1, 100, 1)).unwrap();
    let padded = |bucket| -> usize {
        data.epoch_batches(3, 0, 16, bucket)
            .iter()
            .map(|b| {
                let lens: Vec<usize> = b.iter().map(|&i| data.sequences()[i].len).collect();
                lens.len() * lens.iter().max().unwrap() - lens.iter().sum::<usize>()
            })
            .sum()
    };
    let (plain, bucketed) = (padded(0), padded(16));
    eprintln!("padding: {plain} steps without bucketing, {bucketed} with");
    assert!(bucketed * 5 < plain);
    let mut all: Vec<usize> = data.epoch_batches(3, 1, 16, 16).concat();
    all.sort();
    assert_eq!(all, (0..512).collect::<Vec<_>>());
    assert_ne!(
        data.epoch_batches(3, 0, 16, 16),
        data.epoch_batches(3, 1, 16, 16)
    );
    assert_eq!(
        data.epoch_batches(3, 1, 16, 16),
        data.epoch_batches(3, 1, 16, 16)
    );
}

#[test]
fn scheduled_sampling_schedules() {
    let lin = FeedSchedule::Linear {
        steps: 100,
        min_truth: 0.2,
    };
    assert_eq!(lin.prob(0), 0.0);
    assert!((lin.prob(50) - 0.5).abs() < 1e-12);
    assert!((lin.prob(1000) - 0.8).abs() < 1e-12);
    let exp = FeedSchedule::Exponential {
        base: 0.99,
        min_truth: 0.0,
    };
    assert!((exp.prob(100) - (1.0 - 0.99f64.powi(100))).abs() < 1e-12);
    let inv = FeedSchedule::InverseSigmoid {
        c: 10.0,
        min_truth: 0.0,
    };
    let p: Vec<f64> = (0..200).map(|k| inv.prob(k)).collect();
    assert!(p.windows(2).all(|w| w[1] >= w[0]), "monotone");
    assert!(p[0] < 0.1 && p[199] > 0.99);
    assert_eq!(FeedSchedule::TeacherForcing.prob(10_000), 0.0);
}

#[test]
fn scheduled_sampling_beats_teacher_forcing_when_running_free() {
    // The documented comparison (examples/scheduled_sampling.rs, docs/training.md), one seed:
    // noisy observations of circles of varying radius; free-running error on clean signals.
    let train = Dataset::new(tasks::noisy_circle::<f32>(
        512,
        40,
        (0.3, 0.3),
        (0.5, 1.5),
        0.5,
        100,
    ))
    .unwrap();
    let test = Dataset::new(tasks::noisy_circle::<f32>(
        200,
        40,
        (0.3, 0.3),
        (0.5, 1.5),
        0.0,
        999,
    ))
    .unwrap();
    let all: Vec<usize> = (0..200).collect();
    let free_mse = |feed: FeedSchedule| {
        let mut model = circle_model(0);
        model.set_feedback(FeedbackStyle::PerStep, false);
        let mut tr = Trainer::new(
            model,
            TrainConfig {
                feed,
                ..cfg(1500, 0.005)
            },
        )
        .unwrap();
        let mut data = Batches::new(&train, 32, 0, 0).unwrap();
        tr.run(&mut data, None, &mut |_| {}).unwrap();
        let mut ws = Default::default();
        tr.model
            .free_run(&test.batch(&all), &mut ws)
            .unwrap()
            .mse()
            .unwrap()
    };
    let tf = free_mse(FeedSchedule::TeacherForcing);
    let ss = free_mse(FeedSchedule::Linear {
        steps: 1000,
        min_truth: 0.25,
    });
    eprintln!("free-running MSE: teacher forcing {tf:.4}, scheduled sampling {ss:.4}");
    assert!(
        ss * 1.5 < tf,
        "scheduled sampling {ss} vs teacher forcing {tf}"
    );
}

#[test]
fn sequence_log_likelihood_sums_the_per_step_terms() {
    let data = Dataset::new(tasks::running_pair_sum::<f64>(5, 3, 2, 9, 4)).unwrap();
    let model = SequenceLabeller::<f64>::new(
        ModelConfig {
            input: InputSpec::Symbols { vocab: 3, dim: 2 },
            cell: CellKind::Lstm,
            hidden: 4,
            layers: 1,
            bidirectional: false,
            output: OutputKind::Categorical {
                classes: 3,
                pad: None,
            },
            deep_output: 0,
            residual: false,
        },
        3,
    )
    .unwrap();
    let b = data.batch(&[0, 1, 2, 3, 4]);
    let mut ws = Default::default();
    let ll = model.sequence_log_likelihood(&b, &mut ws).unwrap();
    let st = model.evaluate(&b, &mut ws).unwrap();
    assert!(ll.iter().all(|&v| v < 0.0));
    assert!((ll.iter().sum::<f64>() + st.nll).abs() < 1e-10);
    // Each sequence alone gives the same log-likelihood as inside the padded batch.
    for (j, &l) in ll.iter().enumerate() {
        let one = model
            .sequence_log_likelihood(&data.batch(&[j]), &mut ws)
            .unwrap()[0];
        assert!((one - l).abs() < 1e-10, "sequence {j}: {one} vs {l}");
    }
}

#[test]
fn encoder_decoder_learns_to_reverse_and_decoding_scores_are_exact() {
    use unfold::data::{vocab, Sequence};
    use unfold::models::{Attention, Decode, Seq2Seq, Seq2SeqConfig};
    let (seqs, srcs) = tasks::reverse_digits(4000, 2, 5, 1);
    let train = Dataset::with_sources(seqs, srcs).unwrap();
    let arch = Seq2SeqConfig {
        src_vocab: 10,
        tgt_vocab: vocab::SPECIALS + 10,
        embed: 12,
        cell: CellKind::Gru,
        hidden: 32,
        layers: 1,
        bidirectional: true,
        context_init: true,
        context_every_step: false,
        attention: Attention::Additive,
    };
    let mut tr = Trainer::new(
        Seq2Seq::new(arch, 1).unwrap(),
        TrainConfig {
            clip: Clip::Norm(1.0),
            ..cfg(1200, 5e-3)
        },
    )
    .unwrap();
    let mut data = Batches::new(&train, 32, 8, 1).unwrap();
    tr.run(&mut data, None, &mut |_| {}).unwrap();
    let (tseqs, tsrcs) = tasks::reverse_digits(200, 2, 5, 9);
    let mut ok = 0;
    let mut ws = Default::default();
    for (s, src) in tseqs.iter().zip(&tsrcs) {
        let want: Vec<usize> = s.target.symbols().unwrap()[..s.len - 1].to_vec();
        let beam = Decode {
            beam: 3,
            max_len: 12,
            length_alpha: 0.0,
        };
        let (got, logp) = tr.model.translate(src.symbols().unwrap(), &beam).unwrap();
        let (greedy, _) = tr
            .model
            .translate(src.symbols().unwrap(), &Decode { beam: 1, ..beam })
            .unwrap();
        ok += usize::from(greedy == want);
        // The decoder's score of its output equals the teacher-forced log-likelihood.
        let mut input = vec![vocab::BOS];
        input.extend(&got);
        let mut target = got.clone();
        target.push(vocab::END);
        let one = Dataset::with_sources(
            vec![Sequence {
                len: input.len(),
                input: Values::Symbols(input),
                target: Values::Symbols(target),
            }],
            vec![src.clone()],
        )
        .unwrap();
        let st = tr.model.evaluate(&one.batch(&[0]), &mut ws).unwrap();
        assert!(
            (st.nll + logp).abs() < 1e-3 * st.nll.max(1.0),
            "teacher-forced {} vs decoded {}",
            -st.nll,
            logp
        );
    }
    let acc = ok as f64 / 200.0;
    eprintln!("reverse 2-5 digits: exact match {acc:.3}");
    assert!(acc > 0.9, "exact match {acc}");
}

#[test]
fn class_conditioned_generation_follows_the_requested_class() {
    use unfold::data::{vocab, Sequence, Vocab};
    use unfold::models::{CondMode, Conditioning, Generator, Sampling};
    // Three classes of strings over x/y: all x, alternating xyxy..., all y; lengths 3-8.
    let v = Vocab::chars_of("xy");
    let make = |class: usize, len: usize| -> String {
        (0..len)
            .map(|t| match class {
                0 => 'x',
                1 if t % 2 == 0 => 'x',
                _ => 'y',
            })
            .collect()
    };
    let checker = |class: usize, s: &str| !s.is_empty() && s == make(class, s.len());
    let mut rng = unfold::rng::Rng::new(3);
    let mut seqs = Vec::new();
    let mut conds = Vec::new();
    for _ in 0..1500 {
        let class = rng.below(3);
        let ids = v.encode(&make(class, 3 + rng.below(6)));
        let mut input = vec![vocab::BOS];
        input.extend(&ids);
        let mut target = ids;
        target.push(vocab::END);
        seqs.push(Sequence {
            len: input.len(),
            input: Values::Symbols(input),
            target: Values::Symbols(target),
        });
        let mut c = vec![0f32; 3];
        c[class] = 1.0;
        conds.push(c);
    }
    let data = Dataset::with_conditions(seqs, conds).unwrap();
    for mode in [CondMode::InitialState, CondMode::EveryStep, CondMode::Both] {
        let cfg = ModelConfig {
            input: InputSpec::Symbols {
                vocab: v.len(),
                dim: 8,
            },
            cell: CellKind::Gru,
            hidden: 24,
            layers: 1,
            bidirectional: false,
            output: OutputKind::Categorical {
                classes: v.len(),
                pad: Some(vocab::PAD),
            },
            deep_output: 0,
            residual: false,
        };
        let model = SequenceLabeller::conditioned(cfg, Conditioning { width: 3, mode }, 1).unwrap();
        let mut tr = Trainer::new(model, cfg_clip(800, 1e-2)).unwrap();
        tr.run(
            &mut Batches::new(&data, 32, 8, 1).unwrap(),
            None,
            &mut |_| {},
        )
        .unwrap();
        let mut g = Generator::new(&tr.model).unwrap();
        for class in 0..3 {
            let mut c = vec![0f32; 3];
            c[class] = 1.0;
            g.set_condition(&c).unwrap();
            let ok = (0..100)
                .filter(|_| {
                    let (ids, _) = g
                        .generate(
                            &[vocab::BOS],
                            Some(vocab::END),
                            30,
                            &Sampling::default(),
                            &mut rng,
                            |_| true,
                        )
                        .unwrap();
                    checker(class, &v.decode(&ids))
                })
                .count();
            eprintln!("{mode:?}: class {class}: {ok}/100 generated strings of the requested class");
            assert!(ok >= 95, "{mode:?} class {class}: {ok}/100");
        }
    }
}

fn cfg_clip(steps: u64, lr: f64) -> TrainConfig {
    TrainConfig {
        clip: Clip::Norm(1.0),
        ..cfg(steps, lr)
    }
}

#[test]
fn aligned_conditioning_needs_output_feedback_when_outputs_are_dependent() {
    // y(t) = (x(t) + s) mod 4 with a hidden style s in {0, 1} drawn per sequence: x alone
    // leaves each y(t) a coin flip between two symbols; the previous y reveals s. Two models
    // of the chapter: P(y(t) | x(1..t)) without feedback, and P(y(t) | x(1..t), y(1..t-1))
    // with the previous y fed back (teacher-forced in training, its own samples in
    // generation; input symbol = 5 x(t) + y(t-1), with 4 standing for "no previous y").
    use unfold::data::Sequence;
    use unfold::models::{Generator, Sampling};
    let (t_len, n) = (10, 3000);
    let mut rng = unfold::rng::Rng::new(5);
    let mut with_fb = Vec::new();
    let mut without = Vec::new();
    for _ in 0..n {
        let s = rng.below(2);
        let x: Vec<usize> = (0..t_len).map(|_| rng.below(4)).collect();
        let y: Vec<usize> = x.iter().map(|&v| (v + s) % 4).collect();
        let fed: Vec<usize> = (0..t_len)
            .map(|t| 5 * x[t] + if t == 0 { 4 } else { y[t - 1] })
            .collect();
        with_fb.push(Sequence {
            len: t_len,
            input: Values::Symbols(fed),
            target: Values::Symbols(y.clone()),
        });
        without.push(Sequence {
            len: t_len,
            input: Values::Symbols(x),
            target: Values::Symbols(y),
        });
    }
    let train = |seqs: Vec<Sequence<f32>>, vocab: usize| {
        let data = Dataset::new(seqs).unwrap();
        let model = SequenceLabeller::new(
            ModelConfig {
                input: InputSpec::Symbols { vocab, dim: 8 },
                cell: CellKind::Gru,
                hidden: 16,
                layers: 1,
                bidirectional: false,
                output: OutputKind::Categorical {
                    classes: 4,
                    pad: None,
                },
                deep_output: 0,
                residual: false,
            },
            1,
        )
        .unwrap();
        let mut tr = Trainer::new(model, cfg_clip(800, 1e-2)).unwrap();
        tr.run(
            &mut Batches::new(&data, 32, 0, 1).unwrap(),
            None,
            &mut |_| {},
        )
        .unwrap();
        tr.model
    };
    let fb_model = train(with_fb, 20);
    let plain_model = train(without, 4);
    // Generate y for fresh x and count sequences consistent with one style.
    let consistent = |model: &SequenceLabeller<f32>, feedback: bool, rng: &mut unfold::rng::Rng| {
        let mut g = Generator::new(model).unwrap();
        let mut scratch = Vec::new();
        (0..300)
            .filter(|_| {
                let x: Vec<usize> = (0..t_len).map(|_| rng.below(4)).collect();
                g.reset();
                let mut prev = 4;
                let mut ys = Vec::new();
                for &xt in &x {
                    let id = if feedback { 5 * xt + prev } else { xt };
                    let logits = g.feed(id).unwrap().to_vec();
                    let y = Sampling::default().pick(&logits, rng, &mut scratch);
                    ys.push(y);
                    prev = y;
                }
                (0..2).any(|s| x.iter().zip(&ys).all(|(&a, &b)| (a + s) % 4 == b))
            })
            .count() as f64
            / 300.0
    };
    let c_fb = consistent(&fb_model, true, &mut rng);
    let c_plain = consistent(&plain_model, false, &mut rng);
    eprintln!("consistent generated sequences: with feedback {c_fb:.3}, without {c_plain:.3}");
    assert!(c_fb > 0.9, "with feedback {c_fb}");
    assert!(c_plain < 0.1, "without feedback {c_plain}");
}

#[test]
fn encoder_decoder_trains_with_scheduled_sampling() {
    use unfold::data::vocab;
    use unfold::models::{Attention, Decode, Seq2Seq, Seq2SeqConfig, TrainContext};
    let (seqs, srcs) = tasks::reverse_digits(4000, 2, 5, 1);
    let train = Dataset::with_sources(seqs, srcs).unwrap();
    let arch = Seq2SeqConfig {
        src_vocab: 10,
        tgt_vocab: vocab::SPECIALS + 10,
        embed: 12,
        cell: CellKind::Gru,
        hidden: 32,
        layers: 1,
        bidirectional: true,
        context_init: true,
        context_every_step: false,
        attention: Attention::Additive,
    };
    // Self-feeding changes the decoder's inputs, a vanishing probability does not.
    let m = Seq2Seq::<f32>::new(arch, 1).unwrap();
    let b = train.batch(&(0..16).collect::<Vec<_>>());
    let loss = |p: f64| {
        let mut g = m.zeros_like();
        let mut rng = unfold::rng::Rng::new(3);
        let mut ctx = TrainContext {
            rng: &mut rng,
            feed_prob: p,
            step: 1,
        };
        m.loss_and_grad(&b, &mut Default::default(), &mut g, &mut ctx)
            .unwrap()
            .nll
    };
    assert_eq!(loss(0.0), loss(1e-300));
    assert_ne!(loss(0.0), loss(1.0));
    let mut tr = Trainer::new(
        Seq2Seq::new(arch, 1).unwrap(),
        TrainConfig {
            feed: FeedSchedule::Linear {
                steps: 1000,
                min_truth: 0.5,
            },
            ..cfg_clip(1200, 5e-3)
        },
    )
    .unwrap();
    tr.run(
        &mut Batches::new(&train, 32, 8, 1).unwrap(),
        None,
        &mut |_| {},
    )
    .unwrap();
    let (tseqs, tsrcs) = tasks::reverse_digits(200, 2, 5, 9);
    let ok = tseqs
        .iter()
        .zip(&tsrcs)
        .filter(|(s, src)| {
            let want = &s.target.symbols().unwrap()[..s.len - 1];
            tr.model
                .translate(
                    src.symbols().unwrap(),
                    &Decode {
                        beam: 1,
                        max_len: 12,
                        length_alpha: 1.0,
                    },
                )
                .unwrap()
                .0
                == want
        })
        .count();
    eprintln!("reverse with scheduled sampling: exact match {}/200", ok);
    assert!(ok >= 180, "{ok}/200");
}
