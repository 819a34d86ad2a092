//! The chapter's ways of deciding when to stop generating, each learned from data whose
//! lengths follow a known distribution: generated lengths must match it in mean and by the
//! two-sample Kolmogorov-Smirnov statistic (critical value about 0.06 for 1000 against 1000
//! at the 5% level; the tests allow 0.1).

use unfold::data::{vocab, Dataset, Sequence, Values, Vocab};
use unfold::layers::OutputKind;
use unfold::models::{
    generator_sequences, Generator, InputSpec, ModelConfig, RealGenerator, Sampling,
    SequenceLabeller, StopRule,
};
use unfold::rng::Rng;
use unfold::train::{Batches, Clip, Decay, LrSchedule, TrainConfig, Trainer};
use unfold::CellKind;

/// Two-sample Kolmogorov-Smirnov statistic of integer samples.
fn ks(a: &[usize], b: &[usize]) -> f64 {
    let max = a.iter().chain(b).copied().max().unwrap_or(0);
    let cdf = |s: &[usize], k: usize| s.iter().filter(|&&x| x <= k).count() as f64 / s.len() as f64;
    (0..=max)
        .map(|k| (cdf(a, k) - cdf(b, k)).abs())
        .fold(0.0, f64::max)
}

fn mean(a: &[usize]) -> f64 {
    a.iter().sum::<usize>() as f64 / a.len() as f64
}

fn uniform_lengths(n: usize, lo: usize, hi: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| lo + rng.below(hi - lo + 1)).collect()
}

fn train_cfg(steps: u64, lr: f64) -> TrainConfig {
    // A cosine decay lets the estimate of a stopping probability settle at its MLE.
    TrainConfig {
        lr: LrSchedule {
            decay: Decay::Cosine {
                period: steps,
                min_lr: lr / 50.0,
            },
            ..LrSchedule::constant(lr)
        },
        clip: Clip::Norm(1.0),
        eval_every: 0,
        ..TrainConfig::new(steps)
    }
}

fn assert_matches(tag: &str, got: &[usize], want: &[usize], tol_mean: f64) {
    let (mg, mw, d) = (mean(got), mean(want), ks(got, want));
    eprintln!("{tag}: generated mean length {mg:.3}, true {mw:.3}, KS {d:.3}");
    assert!((mg - mw).abs() < tol_mean, "{tag}: mean {mg} vs {mw}");
    assert!(d < 0.1, "{tag}: KS statistic {d}");
}

#[test]
fn end_symbol_lengths_match_the_data() {
    let v = Vocab::chars_of("xy");
    let mut rng = Rng::new(1);
    let lengths = uniform_lengths(3000, 2, 10, 2);
    let seqs: Vec<Sequence<f32>> = lengths
        .iter()
        .map(|&len| {
            let s: String = (0..len)
                .map(|_| if rng.below(2) == 0 { 'x' } else { 'y' })
                .collect();
            let ids = v.encode(&s);
            let mut input = vec![vocab::BOS];
            input.extend(&ids);
            let mut target = ids;
            target.push(vocab::END);
            Sequence {
                len: input.len(),
                input: Values::Symbols(input),
                target: Values::Symbols(target),
            }
        })
        .collect();
    let data = Dataset::new(seqs).unwrap();
    let model = SequenceLabeller::new(
        ModelConfig {
            input: InputSpec::Symbols {
                vocab: v.len(),
                dim: 8,
            },
            cell: CellKind::Lstm,
            hidden: 32,
            layers: 1,
            bidirectional: false,
            output: OutputKind::Categorical {
                classes: v.len(),
                pad: Some(vocab::PAD),
            },
            deep_output: 0,
            residual: false,
        },
        3,
    )
    .unwrap();
    let mut tr = Trainer::new(model, train_cfg(3000, 5e-3)).unwrap();
    tr.run(
        &mut Batches::new(&data, 32, 8, 1).unwrap(),
        None,
        &mut |_| {},
    )
    .unwrap();
    let mut g = Generator::new(&tr.model).unwrap();
    let mut rng = Rng::new(5);
    let got: Vec<usize> = (0..1000)
        .map(|_| {
            g.generate(
                &[vocab::BOS],
                Some(vocab::END),
                50,
                &Sampling::default(),
                &mut rng,
                |_| true,
            )
            .unwrap()
            .0
            .len()
        })
        .collect();
    assert_matches("<end> symbol", &got, &uniform_lengths(1000, 2, 10, 9), 0.4);
}

fn ramps(lengths: &[usize]) -> Vec<Vec<f32>> {
    lengths
        .iter()
        .map(|&len| (0..len).map(|t| (t + 1) as f32 / 12.0).collect())
        .collect()
}

#[test]
fn stop_bit_lengths_match_the_data() {
    let lengths = uniform_lengths(2000, 3, 12, 3);
    let data = Dataset::new(generator_sequences(&ramps(&lengths), 1)).unwrap();
    let model = RealGenerator::<f32>::new(1, CellKind::Gru, 32, 1, StopRule::StopBit, 2).unwrap();
    let mut tr = Trainer::new(model, train_cfg(3000, 5e-3)).unwrap();
    tr.run(
        &mut Batches::new(&data, 32, 8, 1).unwrap(),
        None,
        &mut |_| {},
    )
    .unwrap();
    let mut rng = Rng::new(6);
    let got: Vec<usize> = (0..1000)
        .map(|_| tr.model.generate(40, false, &mut rng).unwrap().1)
        .collect();
    assert_matches("stop bit", &got, &uniform_lengths(1000, 3, 12, 10), 0.5);
}

#[test]
fn length_heads_match_the_data() {
    // Categorical: P(len = k) proportional to k on 1..=8.
    let mut rng = Rng::new(7);
    let draw = |rng: &mut Rng| {
        let u = rng.below(36);
        (1..=8).find(|k| u < k * (k + 1) / 2).unwrap()
    };
    let lengths: Vec<usize> = (0..2000).map(|_| draw(&mut rng)).collect();
    let data = Dataset::new(generator_sequences(&ramps(&lengths), 1)).unwrap();
    let rule = StopRule::LengthHead {
        max_len: 8,
        poisson: false,
    };
    let model = RealGenerator::<f32>::new(1, CellKind::Gru, 8, 1, rule, 2).unwrap();
    let mut tr = Trainer::new(model, train_cfg(600, 2e-2)).unwrap();
    tr.run(
        &mut Batches::new(&data, 32, 0, 1).unwrap(),
        None,
        &mut |_| {},
    )
    .unwrap();
    let got: Vec<usize> = (0..1000)
        .map(|_| tr.model.generate(40, false, &mut rng).unwrap().1)
        .collect();
    let want: Vec<usize> = (0..1000).map(|_| draw(&mut rng)).collect();
    assert_matches("categorical length head", &got, &want, 0.3);
    // Poisson: len = 1 + Poisson(4).
    let poisson = |rng: &mut Rng| {
        let (mut k, mut p) = (0, rng.uniform());
        while p > (-4.0f64).exp() {
            k += 1;
            p *= rng.uniform();
        }
        1 + k
    };
    let lengths: Vec<usize> = (0..2000).map(|_| poisson(&mut rng)).collect();
    let data = Dataset::new(generator_sequences(&ramps(&lengths), 1)).unwrap();
    let rule = StopRule::LengthHead {
        max_len: 40,
        poisson: true,
    };
    let model = RealGenerator::<f32>::new(1, CellKind::Gru, 8, 1, rule, 2).unwrap();
    let mut tr = Trainer::new(model, train_cfg(600, 2e-2)).unwrap();
    tr.run(
        &mut Batches::new(&data, 32, 0, 1).unwrap(),
        None,
        &mut |_| {},
    )
    .unwrap();
    let rate = tr.model.length.as_ref().unwrap().logits[0].exp();
    assert!((rate - 4.0).abs() < 0.3, "learned rate {rate}");
    let got: Vec<usize> = (0..1000)
        .map(|_| tr.model.generate(40, false, &mut rng).unwrap().1)
        .collect();
    let want: Vec<usize> = (0..1000).map(|_| poisson(&mut rng)).collect();
    assert_matches("Poisson length head", &got, &want, 0.3);
}

#[test]
fn hard_maximum_length_caps_generation() {
    let model = RealGenerator::<f32>::new(1, CellKind::Gru, 8, 1, StopRule::MaxLength, 2).unwrap();
    let mut rng = Rng::new(1);
    let (values, len) = model.generate(17, true, &mut rng).unwrap();
    assert_eq!((values.len(), len), (17, 17));
    // Every stopping rule also stops at the hard maximum.
    let model = RealGenerator::<f32>::new(1, CellKind::Gru, 8, 1, StopRule::StopBit, 2).unwrap();
    let lens: Vec<usize> = (0..50)
        .map(|_| model.generate(3, false, &mut rng).unwrap().1)
        .collect();
    assert!(lens.iter().all(|&l| (1..=3).contains(&l)));
}
