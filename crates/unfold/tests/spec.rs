//! Models rebuild from their checkpoint through the library alone: every kind of
//! [`ModelSpec`] (labellers with symbols or reals, leaky, LSTM, delay or deep-transition
//! cells, dropout and conditioning; classifiers, one of them clockwork; encoder-decoders with
//! attention) saved with its vocabulary and input scaling loads back equal, with the same
//! outputs; checkpoints without a spec, from a newer release or with a malformed spec are
//! clear errors.

use unfold::checkpoint::TensorFile;
use unfold::data::{tasks, Dataset, Scaler, Vocab};
use unfold::layers::{ClockSpec, DeepSpec, DelaySpec, LeakSpec, OutputKind};
use unfold::models::{
    load_model, AnyModel, Architecture, Attention, CondMode, Conditioning, InputSpec, Model,
    ModelConfig, ModelSpec, Readout, SavedModel, Seq2SeqConfig,
};
use unfold::{CellKind, Error};

fn temp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("unfold-spec-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn reals_config(cell: CellKind, output: OutputKind) -> ModelConfig {
    ModelConfig {
        input: InputSpec::Reals {
            width: 1,
            project: None,
        },
        cell,
        hidden: 5,
        layers: 2,
        bidirectional: false,
        output,
        deep_output: 0,
        residual: false,
    }
}

fn specs() -> Vec<ModelSpec> {
    let gaussian = OutputKind::Gaussian {
        dim: 1,
        learn_variance: false,
    };
    vec![
        ModelSpec::Labeller {
            config: ModelConfig {
                residual: true,
                ..reals_config(
                    CellKind::Leaky(LeakSpec {
                        min: 0.1,
                        max: 0.9,
                        learn: true,
                    }),
                    gaussian,
                )
            },
            dropout: 0.2,
            conditioning: None,
        },
        ModelSpec::Labeller {
            config: ModelConfig {
                input: InputSpec::Symbols { vocab: 7, dim: 4 },
                cell: CellKind::Lstm,
                hidden: 6,
                layers: 1,
                bidirectional: false,
                output: OutputKind::Categorical {
                    classes: 7,
                    pad: Some(0),
                },
                deep_output: 0,
                residual: false,
            },
            dropout: 0.0,
            conditioning: Some(Conditioning {
                width: 3,
                mode: CondMode::Both,
            }),
        },
        ModelSpec::Classifier {
            config: reals_config(
                CellKind::Gru,
                OutputKind::Categorical {
                    classes: 3,
                    pad: None,
                },
            ),
            readout: Readout::Mean,
        },
        ModelSpec::Seq2Seq {
            config: Seq2SeqConfig {
                src_vocab: 9,
                tgt_vocab: 8,
                embed: 4,
                cell: CellKind::Gru,
                hidden: 5,
                layers: 1,
                bidirectional: true,
                context_init: true,
                context_every_step: false,
                attention: Attention::Additive,
            },
        },
        // The cells of the multiple-time-scale and deep-transition family, settings included.
        ModelSpec::Classifier {
            config: reals_config(
                CellKind::Clockwork(ClockSpec::new(&[1, 3]).unwrap()),
                OutputKind::Categorical {
                    classes: 2,
                    pad: None,
                },
            ),
            readout: Readout::Last,
        },
        ModelSpec::Labeller {
            config: reals_config(CellKind::Delay(DelaySpec::new(&[2, 5]).unwrap()), gaussian),
            dropout: 0.0,
            conditioning: None,
        },
        ModelSpec::Labeller {
            config: ModelConfig {
                deep_output: 1,
                residual: false,
                ..reals_config(
                    CellKind::DeepTransition(DeepSpec {
                        depth: 3,
                        shortcut: false,
                    }),
                    gaussian,
                )
            },
            dropout: 0.0,
            conditioning: None,
        },
    ]
}

#[test]
fn every_spec_round_trips_through_a_checkpoint() {
    let scaler = Scaler {
        names: vec!["a".into(), "b".into()],
        mean: vec![1.0, -2.0],
        std: vec![0.5, 3.0],
        target: Some(0),
        classes: vec![],
        downsample: 1,
    };
    for (i, spec) in specs().into_iter().enumerate() {
        let model = spec.build::<f32>(i as u64 + 1).unwrap();
        let vocab = Vocab::chars_of("abcd");
        let saved = SavedModel {
            spec: spec.clone(),
            model: model.clone(),
            vocab: matches!(spec, ModelSpec::Seq2Seq { .. }).then(|| vocab.clone()),
            src_vocab: None,
            scaler: matches!(spec, ModelSpec::Labeller { .. }).then(|| scaler.clone()),
            metadata: [("note".to_string(), "kept".to_string())].into(),
        };
        let path = temp(&format!("m{i}.safetensors"));
        saved.save(&path).unwrap();
        let back = load_model::<f32>(&path).unwrap();
        assert_eq!(back.spec, spec, "spec {i}");
        assert_eq!(back.model, model, "model {i}");
        assert_eq!(back.scaler, saved.scaler);
        assert_eq!(
            back.vocab.map(|v| v.to_metadata()),
            saved.vocab.map(|v| v.to_metadata())
        );
        assert_eq!(back.metadata["note"], "kept");
        // The one call that loads any saved model (ESNs too) gives the same model, and the
        // spec gives the shape back that builds it again.
        let unfold::saved::Saved::Model(any) = unfold::saved::load::<f32>(&path).unwrap() else {
            panic!("spec {i} loaded as an ESN");
        };
        assert_eq!(any.model, model, "model {i}");
        let arch = Architecture {
            embed: 7,
            ..Architecture::new(spec.cell(), 3)
        };
        let again = ModelSpec::for_shape(spec.shape(), &arch).unwrap();
        assert_eq!(again.shape().kind, spec.shape().kind, "spec {i}");
        assert_eq!(again.cell(), spec.cell());
        // Built with another seed the parameters differ: they really come from the file.
        assert_ne!(spec.build::<f32>(99).unwrap(), model);
    }
}

#[test]
fn a_reloaded_model_gives_the_same_outputs() {
    let spec = &specs()[0];
    let AnyModel::Labeller(m) = spec.build::<f64>(5).unwrap() else {
        unreachable!()
    };
    let data = Dataset::new(tasks::sum_of_sines::<f64>(6, 12, 3)).unwrap();
    let batch = data.batch(&[0, 1, 2, 3]);
    let path = temp("outputs.safetensors");
    SavedModel {
        spec: spec.clone(),
        model: AnyModel::Labeller(m.clone()),
        vocab: None,
        src_vocab: None,
        scaler: None,
        metadata: Default::default(),
    }
    .save(&path)
    .unwrap();
    let AnyModel::Labeller(back) = load_model::<f64>(&path).unwrap().model else {
        panic!("not a labeller")
    };
    let a = m.evaluate(&batch, &mut Default::default()).unwrap();
    let b = back.evaluate(&batch, &mut Default::default()).unwrap();
    assert_eq!(a.nll, b.nll);
    assert_eq!(a.sq_err, b.sq_err);
}

#[test]
fn checkpoints_without_a_usable_spec_are_clear_errors() {
    let spec = &specs()[2];
    let model = spec.build::<f32>(1).unwrap();
    // No spec at all (a checkpoint from before specs, or not an unfold model).
    let mut f = TensorFile::new();
    f.insert_params("model.", &model);
    let path = temp("nospec.safetensors");
    f.write(&path).unwrap();
    let msg = load_model::<f32>(&path).unwrap_err().to_string();
    assert!(
        msg.contains("no model spec") && msg.contains("nospec"),
        "{msg}"
    );
    // A newer format version.
    let (k, v) = spec.metadata_entry();
    f.metadata
        .insert(k.clone(), v.replace("\"version\":1", "\"version\":99"));
    f.write(&path).unwrap();
    let msg = load_model::<f32>(&path).unwrap_err().to_string();
    assert!(msg.contains("newer"), "{msg}");
    // Malformed.
    f.metadata
        .insert(k, "{\"version\":1,\"model\":{\"kind\":\"tree\"}}".into());
    f.write(&path).unwrap();
    assert!(matches!(
        load_model::<f32>(&path),
        Err(Error::CheckpointMismatch(m)) if m.contains("malformed")
    ));
    // A spec whose tensors are not in the file.
    let mut g = TensorFile::new();
    g.metadata.extend([spec.metadata_entry()]);
    g.write(&path).unwrap();
    assert!(load_model::<f32>(&path).is_err());
}
