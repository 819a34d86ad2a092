//! The final score of a trained model on held-out data, the figure a run reports: a built-in
//! task's own metric and threshold; bits per character over a held-out text with the state
//! carried (and a sample); accuracy over held-out labelled sequences; the normalised RMSE (and
//! the RMSE in the series' own units) of one-step-ahead forecasts over a held-out window; and
//! exact match, token and character error rates of greedy translations of held-out pairs.

use crate::builtin::{self, TaskSetup};
use crate::data::{vocab, Dataset, GridSet, Scaler, TreeSet, Values, Vocab};
use crate::error::{Error, Result};
use crate::layers::output::argmax;
use crate::layers::output::LossStats;
use crate::models::GridWorkspace;
use crate::models::{AnyModel, Decode, Generator, Model as _, Sampling};
use crate::rng::Rng;

/// Held-out data, and how it is scored.
#[derive(Debug, Clone)]
pub enum HeldOut {
    /// A built-in task's own scoring of its validation set.
    Builtin(Box<TaskSetup>),
    /// A held-out stream of symbols (text), scored with the state carried.
    Stream {
        /// Symbols.
        input: Values<f32>,
        /// Next symbols.
        target: Values<f32>,
    },
    /// Held-out labelled sequences.
    Sequences(Dataset<f32>),
    /// Held-out pairs of an encoder-decoder: source and target symbol ids.
    Pairs(Vec<(Vec<usize>, Vec<usize>)>),
    /// Held-out trees, scored at the roots or at every labelled node (as the model was
    /// trained), with the accuracy per tree depth among the details.
    Trees(TreeSet<f32>),
    /// Held-out images, scored per image or per labelled pixel (as the model was trained);
    /// per-pixel models also report the share of images with every pixel right.
    Grids(GridSet<f32>),
    /// One held-out forecast window whose first `warm` steps only warm the state up.
    Forecast {
        /// The window.
        data: Dataset<f32>,
        /// Steps not scored.
        warm: usize,
    },
}

/// What scoring needs besides the model and the data.
#[derive(Debug, Clone, Copy)]
pub struct ScoreContext<'a> {
    /// The vocabulary of symbol data (the target side of pairs).
    pub vocab: Option<&'a Vocab>,
    /// The source vocabulary of pairs.
    pub src_vocab: Option<&'a Vocab>,
    /// The scaling of real data (forecast errors are reported in the original units too).
    pub scaler: Option<&'a Scaler>,
    /// Samples drawn by generative built-in tasks.
    pub samples: usize,
    /// Seed of any sampling.
    pub seed: u64,
}

/// A final score.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// The metric's value.
    pub metric: f64,
    /// Whether the threshold was reached (when there is one).
    pub passed: Option<bool>,
    /// Other figures by name.
    pub details: Vec<(String, f64)>,
    /// Examples (samples of generative models, translations).
    pub examples: Vec<String>,
}

impl Score {
    fn plain(metric: f64, details: Vec<(&str, f64)>, examples: Vec<String>) -> Self {
        Score {
            metric,
            passed: None,
            details: details
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            examples,
        }
    }
}

/// Scores a trained model on held-out data; a model that does not fit the data is an error.
pub fn score(test: &HeldOut, model: &AnyModel<f32>, ctx: &ScoreContext) -> Result<Score> {
    let mismatch = || Error::InvalidCall("the model does not fit the held-out data".into());
    match (test, model) {
        (HeldOut::Builtin(setup), m) => {
            let sc = match m {
                AnyModel::Labeller(m) => {
                    builtin::score_labeller(setup, m, ctx.samples, ctx.seed.wrapping_add(12345))?
                }
                AnyModel::Classifier(m) => builtin::score_classifier(setup, m)?,
                AnyModel::Seq2Seq(_) | AnyModel::Tree(_) | AnyModel::Grid(_) => {
                    return Err(mismatch())
                }
            };
            Ok(Score {
                metric: sc.metric,
                passed: Some(sc.passed),
                details: sc.details,
                examples: sc.examples,
            })
        }
        (HeldOut::Stream { input, target }, AnyModel::Labeller(m)) => {
            let st = crate::train::evaluate_stream(m, input, target, 1000)?;
            let mut examples = Vec::new();
            if let Some(v) = ctx.vocab {
                let mut g = Generator::new(m)?;
                let mut rng = Rng::new(ctx.seed.wrapping_add(777));
                let bos = [vocab::BOS];
                let (ids, _) =
                    g.generate(&bos, None, 300, &Sampling::default(), &mut rng, |_| true)?;
                examples.push(v.decode(&ids));
            }
            Ok(Score::plain(
                st.bits_per_symbol(),
                vec![
                    ("test_bits_per_character", st.bits_per_symbol()),
                    ("test_nats_per_character", st.mean_nll()),
                    ("test_perplexity", st.perplexity()),
                    ("test_characters", st.rows as f64),
                ],
                examples,
            ))
        }
        (HeldOut::Sequences(d), AnyModel::Classifier(m)) => {
            let all: Vec<usize> = (0..d.len()).collect();
            let st: LossStats = m.evaluate(&d.batch(&all), &mut Default::default())?;
            let acc = st.accuracy().unwrap_or(0.0);
            Ok(Score::plain(
                acc,
                vec![
                    ("test_accuracy", acc),
                    ("test_loss", st.mean_nll()),
                    ("test_sequences", d.len() as f64),
                ],
                Vec::new(),
            ))
        }
        (HeldOut::Forecast { data, warm }, AnyModel::Labeller(m)) => {
            let mut b = data.batch(&[0]);
            let w = (*warm).min(b.steps);
            b.mask[..w * b.batch].fill(false);
            let st = m.evaluate(&b, &mut Default::default())?;
            let (var, scored) = builtin::target_variance(&b);
            let mse = st.mse().unwrap_or(f64::NAN);
            let unit = ctx.scaler.map_or(1.0, |sc| sc.std[sc.target.unwrap_or(0)]);
            let nrmse = (mse / var).sqrt();
            Ok(Score::plain(
                nrmse,
                vec![
                    ("nrmse", nrmse),
                    ("rmse_original_units", mse.sqrt() * unit),
                    ("forecast_steps", scored as f64),
                ],
                Vec::new(),
            ))
        }
        (HeldOut::Pairs(pairs), AnyModel::Seq2Seq(m)) => {
            let d = Decode {
                beam: 1,
                max_len: 200,
                length_alpha: 1.0,
            };
            let (mut exact, mut tok_err, mut tok_n, mut chr_err, mut chr_n) = (0, 0, 0, 0, 0);
            let mut examples = Vec::new();
            for (i, (x, y)) in pairs.iter().enumerate() {
                let (got, _) = m.translate(x, &d)?;
                exact += usize::from(&got == y);
                chr_err += edit_distance(&got, y);
                chr_n += y.len();
                if let Some(tv) = ctx.vocab {
                    let (gs, ys) = (tv.decode(&got), tv.decode(y));
                    let gt: Vec<&str> = gs.split_whitespace().collect();
                    let yt: Vec<&str> = ys.split_whitespace().collect();
                    tok_err += edit_distance(&gt, &yt);
                    tok_n += yt.len();
                    if let (true, Some(sv)) = (i < 5, ctx.src_vocab) {
                        examples.push(format!("{} -> {gs}  (want {ys})", sv.decode(x)));
                    }
                }
            }
            let n = pairs.len().max(1) as f64;
            let mut details = vec![("exact_match", exact as f64 / n)];
            if ctx.vocab.is_some() {
                details.push(("token_error_rate", tok_err as f64 / tok_n.max(1) as f64));
            }
            details.push(("character_error_rate", chr_err as f64 / chr_n.max(1) as f64));
            details.push(("test_pairs", n));
            Ok(Score::plain(exact as f64 / n, details, examples))
        }
        (HeldOut::Trees(set), AnyModel::Tree(m)) => {
            let st = m.evaluate_set(set)?;
            let acc = st.accuracy().unwrap_or(0.0);
            let mut details = vec![
                ("test_accuracy".to_string(), acc),
                ("test_loss".to_string(), st.mean_nll()),
                ("test_trees".to_string(), set.len() as f64),
            ];
            let depths: Vec<usize> = set.examples().iter().map(|e| e.depth()).collect();
            let (lo, hi) = (depths.iter().min().copied(), depths.iter().max().copied());
            if let (Some(lo), Some(hi)) = (lo, hi) {
                if hi > lo && hi - lo <= 16 {
                    for d in lo..=hi {
                        let idx: Vec<usize> = (0..set.len()).filter(|&i| depths[i] == d).collect();
                        if idx.is_empty() {
                            continue;
                        }
                        let a = m
                            .evaluate_set(&set.subset(&idx)?)?
                            .accuracy()
                            .unwrap_or(0.0);
                        details.push((format!("test_accuracy_depth_{d}"), a));
                    }
                }
            }
            Ok(Score {
                metric: acc,
                passed: None,
                details,
                examples: Vec::new(),
            })
        }
        (HeldOut::Grids(set), AnyModel::Grid(m)) => {
            let st = m.evaluate_set(set)?;
            let acc = st.accuracy().unwrap_or(0.0);
            let mut details = vec![
                ("test_accuracy".to_string(), acc),
                ("test_loss".to_string(), st.mean_nll()),
                ("test_images".to_string(), set.len() as f64),
            ];
            if set.per_pixel() {
                details.push((
                    "test_images_all_right".to_string(),
                    all_right_share(m, set)?,
                ));
            }
            Ok(Score {
                metric: acc,
                passed: None,
                details,
                examples: Vec::new(),
            })
        }
        _ => Err(mismatch()),
    }
}

/// The share of images whose every scored pixel a per-pixel model predicts right.
fn all_right_share(m: &crate::models::GridModel<f32>, set: &GridSet<f32>) -> Result<f64> {
    let mut ws = GridWorkspace::default();
    let px = set.height * set.width;
    let idx: Vec<usize> = (0..set.len()).collect();
    let mut good = 0;
    for chunk in idx.chunks(((1usize << 16) / px.max(1)).clamp(1, 256)) {
        let b = set.batch(chunk);
        let rows = m.outputs(&b, &mut ws)?;
        let o = ws.logits().len() / rows.max(1);
        for img in 0..chunk.len() {
            good +=
                usize::from((img * px..(img + 1) * px).all(|r| {
                    !b.mask[r] || argmax(&ws.logits()[r * o..(r + 1) * o]) == b.target[r]
                }));
        }
    }
    Ok(good as f64 / set.len().max(1) as f64)
}

/// Levenshtein distance between two token lists.
pub fn edit_distance<X: PartialEq>(a: &[X], b: &[X]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance(b"kitten", b"sitting"), 3);
        assert_eq!(edit_distance(b"", b"abc"), 3);
        assert_eq!(edit_distance(b"abc", b"abc"), 0);
        assert_eq!(edit_distance(b"abc", b""), 3);
    }
}
