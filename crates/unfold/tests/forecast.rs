//! Closed-loop forecasting in the library: [`SequenceLabeller::forecast`] equals the slow
//! definition (run the model from a zero state over the history and everything forecast so
//! far, take the last step's mean as the next value), for every cell and for several values
//! per step; models that cannot forecast their own input are refused.

use unfold::data::{Dataset, Sequence, Values};
use unfold::layers::{LeakSpec, OutputKind};
use unfold::models::{InputSpec, ModelConfig, SequenceLabeller};
use unfold::rng::Rng;
use unfold::CellKind;

fn forecaster(cell: CellKind, width: usize, layers: usize) -> SequenceLabeller<f64> {
    let config = ModelConfig {
        input: InputSpec::Reals {
            width,
            project: None,
        },
        cell,
        hidden: 6,
        layers,
        bidirectional: false,
        output: OutputKind::Gaussian {
            dim: width,
            learn_variance: false,
        },
        deep_output: 0,
        residual: false,
    };
    SequenceLabeller::new(config, 5).unwrap()
}

/// The last step's mean after running over `x` (`[steps, width]`) from a zero state.
fn last_mean(m: &SequenceLabeller<f64>, x: &[f64], width: usize) -> Vec<f64> {
    let steps = x.len() / width;
    let seq = Sequence {
        len: steps,
        input: Values::Reals {
            width,
            data: x.to_vec(),
        },
        target: Values::Reals {
            width,
            data: vec![0.0; x.len()],
        },
    };
    let b = Dataset::new(vec![seq]).unwrap().batch(&[0]);
    let mut ws = Default::default();
    m.forward_infer(&b, None, &mut ws, None).unwrap();
    ws.logits()[(steps - 1) * width..].to_vec()
}

#[test]
fn closed_loop_forecast_equals_rerunning_the_whole_series() {
    let leaky = CellKind::Leaky(LeakSpec {
        min: 0.2,
        max: 0.9,
        learn: true,
    });
    for (cell, width, layers) in [
        (CellKind::Lstm, 1, 1),
        (CellKind::Gru, 2, 2),
        (CellKind::RnnTanh, 3, 1),
        (leaky, 1, 2),
    ] {
        let m = forecaster(cell, width, layers);
        let mut rng = Rng::new(9);
        let mut series: Vec<f64> = (0..7 * width).map(|_| rng.normal()).collect();
        let horizon = 6;
        let got = m.forecast(&series, horizon).unwrap();
        assert_eq!(got.len(), horizon * width);
        for k in 0..horizon {
            let want = last_mean(&m, &series, width);
            for (a, b) in got[k * width..(k + 1) * width].iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "{cell:?} step {k}: {a} vs {b}");
            }
            series.extend_from_slice(&want);
        }
    }
}

#[test]
fn models_that_cannot_feed_back_their_output_are_refused() {
    let m = forecaster(CellKind::Gru, 2, 1);
    assert!(m.forecast(&[1.0, 2.0, 3.0], 4).is_err(), "not whole rows");
    assert!(m.forecast(&[], 4).is_err(), "no history");
    let mut cfg = *m.config();
    cfg.output = OutputKind::Categorical {
        classes: 2,
        pad: None,
    };
    let classes = SequenceLabeller::<f64>::new(cfg, 1).unwrap();
    assert!(classes.forecast(&[1.0, 2.0], 3).is_err(), "not a Gaussian");
    cfg = *m.config();
    cfg.bidirectional = true;
    let bi = SequenceLabeller::<f64>::new(cfg, 1).unwrap();
    assert!(bi.forecast(&[1.0, 2.0], 3).is_err(), "bidirectional");
}
