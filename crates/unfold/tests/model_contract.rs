//! The trainer drives any [`Model`], whatever its batch type: a model over batches of labelled
//! points (no sequences at all) trains with Adam, clipping and a cosine schedule, validates on
//! its own held-out set, writes checkpoints and resumes bit-exactly.

use std::collections::BTreeMap;

use unfold::checkpoint::TensorFile;
use unfold::layers::{LossStats, ParamSpec, Parameters};
use unfold::models::{EvalSet, Model, TrainContext};
use unfold::rng::Rng;
use unfold::train::{
    trainer::CHECKPOINT, Clip, Decay, LrSchedule, OptimizerConfig, TrainConfig, TrainData, Trainer,
};

/// `y = w . x + b` with a unit-variance Gaussian likelihood.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    w: Vec<f64>,
    b: Vec<f64>,
}

/// A batch of points `(x, y)`.
struct Points(Vec<([f64; 3], f64)>);

impl Parameters<f64> for Line {
    fn param_specs(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec {
                name: "w".into(),
                shape: vec![3],
            },
            ParamSpec {
                name: "b".into(),
                shape: vec![1],
            },
        ]
    }
    fn param_slices(&self) -> Vec<&[f64]> {
        vec![&self.w, &self.b]
    }
    fn param_slices_mut(&mut self) -> Vec<&mut [f64]> {
        vec![&mut self.w, &mut self.b]
    }
}

impl Line {
    fn sums(&self, batch: &Points, grads: Option<&mut Line>) -> LossStats {
        let n = batch.0.len() as f64;
        let mut st = LossStats::default();
        let mut g = grads;
        for (x, y) in &batch.0 {
            let pred: f64 = self.w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>() + self.b[0];
            let e = pred - y;
            st.nll += 0.5 * e * e + 0.5 * (2.0 * std::f64::consts::PI).ln();
            st.rows += 1;
            st.sq_err += e * e;
            st.values += 1;
            if let Some(g) = g.as_deref_mut() {
                for (gw, xv) in g.w.iter_mut().zip(x) {
                    *gw += e * xv / n;
                }
                g.b[0] += e / n;
            }
        }
        st
    }
}

impl Model<f64> for Line {
    type Batch = Points;
    type EvalSet = Points;
    type Workspace = ();

    fn loss_and_grad(
        &self,
        batch: &Points,
        _ws: &mut (),
        grads: &mut Self,
        _ctx: &mut TrainContext<'_>,
    ) -> unfold::Result<LossStats> {
        Ok(self.sums(batch, Some(grads)))
    }

    fn evaluate(&self, batch: &Points, _ws: &mut ()) -> unfold::Result<LossStats> {
        Ok(self.sums(batch, None))
    }

    fn describe(&self) -> Vec<(String, String)> {
        vec![("model".into(), "line".into())]
    }
}

impl EvalSet<f64, Line> for Points {
    fn evaluate(&self, model: &Line, ws: &mut (), _batch: usize) -> unfold::Result<LossStats> {
        model.evaluate(self, ws)
    }
}

const TRUE_W: [f64; 3] = [1.5, -2.0, 0.5];
const TRUE_B: f64 = 0.25;

fn points(n: usize, rng: &mut Rng) -> Points {
    Points(
        (0..n)
            .map(|_| {
                let x = [rng.normal(), rng.normal(), rng.normal()];
                let y = TRUE_W.iter().zip(&x).map(|(w, x)| w * x).sum::<f64>()
                    + TRUE_B
                    + 0.1 * rng.normal();
                (x, y)
            })
            .collect(),
    )
}

/// Fresh batches drawn from a seeded stream; the position is the number of batches drawn.
struct Stream {
    seed: u64,
    drawn: u64,
}

impl TrainData<f64, Line> for Stream {
    fn next_batch(
        &mut self,
        model: &Line,
        ws: &mut (),
        grads: &mut Line,
        ctx: &mut TrainContext<'_>,
    ) -> unfold::Result<(LossStats, usize)> {
        let mut rng = Rng::new(self.seed.wrapping_add(self.drawn * 7919));
        self.drawn += 1;
        let b = points(16, &mut rng);
        Ok((model.loss_and_grad(&b, ws, grads, ctx)?, b.0.len()))
    }
    fn save_position(&self, meta: &mut BTreeMap<String, String>, _t: &mut TensorFile) {
        meta.insert("data.drawn".into(), self.drawn.to_string());
    }
    fn restore_position(&mut self, file: &TensorFile) -> unfold::Result<()> {
        self.drawn = file.metadata["data.drawn"].parse().unwrap();
        Ok(())
    }
    fn epoch(&self) -> u64 {
        0
    }
}

/// 0.2 decaying over the run to 0.01.
fn cosine(period: u64) -> LrSchedule {
    LrSchedule {
        decay: Decay::Cosine {
            period,
            min_lr: 0.01,
        },
        ..LrSchedule::constant(0.2)
    }
}

fn config(steps: u64, dir: Option<std::path::PathBuf>) -> TrainConfig {
    TrainConfig {
        optimizer: OptimizerConfig::adam(),
        lr: cosine(steps),
        clip: Clip::Norm(5.0),
        eval_every: 10,
        checkpoint_every: 20,
        out_dir: dir,
        seed: 3,
        ..TrainConfig::new(steps)
    }
}

fn zero_line() -> Line {
    Line {
        w: vec![0.0; 3],
        b: vec![0.0],
    }
}

#[test]
fn a_model_over_points_trains_validates_and_resumes_exactly() {
    let valid = points(200, &mut Rng::new(99));
    let before = zero_line()
        .evaluate(&valid, &mut ())
        .unwrap()
        .mse()
        .unwrap();
    // Uninterrupted: 100 steps.
    let mut full = Trainer::new(zero_line(), config(100, None)).unwrap();
    let mut data = Stream { seed: 1, drawn: 0 };
    let summary = full.run(&mut data, Some(&valid), &mut |_| {}).unwrap();
    let after = full.evaluate(&valid).unwrap().mse().unwrap();
    assert!(
        after < 0.05 && after < before / 50.0,
        "mse {before} -> {after}"
    );
    for (w, t) in full.model.w.iter().zip(TRUE_W) {
        assert!((w - t).abs() < 0.1, "w {:?}", full.model.w);
    }
    assert!(summary.last_eval.is_some());

    // Interrupted at step 60 (the last checkpoint of a 60-step run), then resumed to 100.
    let dir = std::env::temp_dir().join(format!("unfold-contract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The same schedule as the full run, stopped at step 60.
    let cut = TrainConfig {
        steps: 60,
        ..config(100, Some(dir.clone()))
    };
    let mut first = Trainer::new(zero_line(), cut).unwrap();
    let mut data = Stream { seed: 1, drawn: 0 };
    first.run(&mut data, Some(&valid), &mut |_| {}).unwrap();
    let mut data = Stream { seed: 1, drawn: 0 };
    let cfg = config(100, Some(dir.clone()));
    let mut resumed = Trainer::resume(zero_line(), cfg, &dir.join(CHECKPOINT), &mut data).unwrap();
    assert_eq!(resumed.step(), 60);
    resumed.run(&mut data, Some(&valid), &mut |_| {}).unwrap();
    assert_eq!(resumed.model, full.model, "resumed run differs");
    let _ = std::fs::remove_dir_all(&dir);
}
