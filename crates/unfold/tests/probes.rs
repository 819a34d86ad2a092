//! The probes through the trainer: every model with a recurrent layer over time (classifier
//! with either read-out, labeller, encoder-decoder) is probed at the first step, every N steps
//! and the last, the probe lines land in `metrics.jsonl`, and probing changes nothing about
//! the training itself.

use unfold::data::{tasks, vocab, Dataset, Sequence, Values};
use unfold::layers::{CellKind, OutputKind};
use unfold::models::{
    Attention, InputSpec, Model, ModelConfig, Readout, Seq2Seq, Seq2SeqConfig, SequenceClassifier,
    SequenceLabeller, SequenceModel,
};
use unfold::probes::{ProbeConfig, ProbeRecord};
use unfold::rng::Rng;
use unfold::train::{Batches, Event, TrainConfig, Trainer};

/// Trains `model` for 5 steps with probes every 2 steps; returns the probes and the losses.
fn probed<M: SequenceModel<f32>>(
    model: M,
    data: &Dataset<f32>,
    probe: bool,
    dir: Option<&std::path::Path>,
) -> (Vec<ProbeRecord>, Vec<f64>) {
    let mut cfg = TrainConfig::new(5);
    cfg.probe = probe.then(|| ProbeConfig::every(2));
    cfg.out_dir = dir.map(|d| d.to_path_buf());
    let mut tr = Trainer::new(model, cfg).unwrap();
    let mut b = Batches::new(data, 4, 1, 3).unwrap();
    let (mut probes, mut losses) = (Vec::new(), Vec::new());
    tr.run(&mut b, None, &mut |e| match e {
        Event::Probe(p) => probes.push((**p).clone()),
        Event::Step { loss, .. } => losses.push(*loss),
        _ => {}
    })
    .unwrap();
    (probes, losses)
}

fn check<M: SequenceModel<f32>>(what: &str, model: M, data: &Dataset<f32>, len: usize) {
    let (probes, losses) = probed(model.clone(), data, true, None);
    assert_eq!(
        probes.iter().map(|p| p.step).collect::<Vec<_>>(),
        vec![1, 2, 4, 5],
        "{what}"
    );
    for p in &probes {
        assert!(
            !p.lag.norms.is_empty() && p.lag.norms.len() <= len,
            "{what}"
        );
        assert!(p.lag.norms.iter().all(|n| n.is_finite()), "{what}");
        assert!(
            p.lag.norms[0] > 0.0,
            "{what}: the loss reads the last output"
        );
        assert!(!p.step_eigenvalues.is_empty(), "{what}");
        assert!(
            p.jacobian.iter().all(|(k, sv)| *k >= 1 && !sv.is_empty()),
            "{what}"
        );
    }
    let (_, plain) = probed(model, data, false, None);
    assert_eq!(losses, plain, "{what}: probing must not change training");
}

/// A one-output Gaussian model over the adding problem's two input channels.
fn adding_config(cell: CellKind, hidden: usize, layers: usize) -> ModelConfig {
    ModelConfig {
        input: InputSpec::Reals {
            width: 2,
            project: None,
        },
        cell,
        hidden,
        layers,
        bidirectional: false,
        output: OutputKind::Gaussian {
            dim: 1,
            learn_variance: false,
        },
        deep_output: 0,
        residual: false,
    }
}

#[test]
fn every_model_with_a_recurrent_layer_is_probed_by_the_trainer() {
    let adding = Dataset::new(tasks::adding::<f32>(16, 20, 1)).unwrap();
    for (cell, readout) in [
        (CellKind::RnnTanh, Readout::Last),
        (CellKind::Lstm, Readout::Mean),
        (CellKind::Gru, Readout::Last),
    ] {
        let m = SequenceClassifier::<f32>::new(adding_config(cell, 6, 2), readout, 2).unwrap();
        check(&format!("classifier {cell:?} {readout:?}"), m, &adding, 20);
    }
    let copy = Dataset::new(tasks::copy_memory(16, 5, 2)).unwrap();
    let cfg = ModelConfig {
        input: InputSpec::Symbols { vocab: 10, dim: 4 },
        cell: CellKind::Leaky(Default::default()),
        hidden: 6,
        layers: 1,
        bidirectional: false,
        output: OutputKind::Categorical {
            classes: 10,
            pad: None,
        },
        deep_output: 0,
        residual: false,
    };
    check(
        "labeller",
        SequenceLabeller::<f32>::new(cfg, 3).unwrap(),
        &copy,
        25,
    );
    let mut rng = Rng::new(5);
    let (mut seqs, mut srcs) = (Vec::new(), Vec::new());
    for _ in 0..16 {
        let y: Vec<usize> = (0..6).map(|_| vocab::SPECIALS + rng.below(3)).collect();
        let mut input = vec![vocab::BOS];
        input.extend(&y);
        let mut target = y.clone();
        target.push(vocab::END);
        seqs.push(Sequence {
            len: input.len(),
            input: Values::Symbols(input),
            target: Values::Symbols(target),
        });
        srcs.push(Values::Symbols(
            y.iter().map(|v| v - vocab::SPECIALS).collect(),
        ));
    }
    let pairs = Dataset::with_sources(seqs, srcs).unwrap();
    let cfg = Seq2SeqConfig {
        src_vocab: 5,
        tgt_vocab: vocab::SPECIALS + 3,
        embed: 4,
        cell: CellKind::Gru,
        hidden: 6,
        layers: 1,
        bidirectional: true,
        context_init: true,
        context_every_step: true,
        attention: Attention::Additive,
    };
    check("seq2seq", Seq2Seq::<f32>::new(cfg, 4).unwrap(), &pairs, 7);
}

#[test]
fn probe_lines_land_in_the_metrics_log() {
    let dir = std::env::temp_dir().join(format!("unfold-probes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = Dataset::new(tasks::adding::<f32>(16, 15, 1)).unwrap();
    let cfg = adding_config(CellKind::RnnTanh, 5, 1);
    let m = SequenceClassifier::<f32>::new(cfg, Readout::Last, 1).unwrap();
    let (probes, _) = probed(m.clone(), &data, true, Some(&dir));
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["split"] == "probe")
        .collect();
    assert_eq!(lines.len(), probes.len());
    for (l, p) in lines.iter().zip(&probes) {
        assert_eq!(l["step"].as_u64(), Some(p.step));
        let g: Vec<f64> = l["grad_by_lag"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        // serde_json reads floats to within an ulp or two.
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-14 * b.abs();
        assert_eq!(g.len(), p.lag.norms.len());
        assert!(g.iter().zip(&p.lag.norms).all(|(a, b)| close(*a, *b)));
        assert!(close(
            l["weight_radius"].as_f64().unwrap(),
            p.weight_radius().unwrap()
        ));
    }
    let _ = m.describe();
    let _ = std::fs::remove_dir_all(&dir);
}
