//! Numerical parity with PyTorch for the two-dimensional recurrent networks, on the fixtures
//! made by `tools/torch_grid_reference.py`, where each sweep is written position by position
//! in the grid's own coordinates (no wavefront): same weights and images; the last layer's
//! feature map, the loss and every parameter gradient compared in f32 with unfold's
//! wavefront forward and backward, for both cells, one, two and four sweeps, concatenated and
//! summed, one and two layers, every read-out, and ReNet layers against `torch.nn.LSTM` and
//! `torch.nn.RNN` run over the rows, then the columns.

use unfold::checkpoint::TensorFile;
use unfold::data::{GridLabels, GridSet};
use unfold::models::{GridConfig, GridModel, GridReadout, GridWorkspace, Model, TrainContext};
use unfold::rng::Rng;

mod common;

use common::{compare, compare_param_grads, fixture_files, tensor};

#[test]
fn grid_models_match_their_position_by_position_pytorch_definitions() {
    let paths = fixture_files("grids", 7);
    for path in paths {
        let tag = path.file_stem().unwrap().to_string_lossy().into_owned();
        let f = TensorFile::read(&path).unwrap();
        let cfg: GridConfig = serde_json::from_str(&f.metadata["config"]).unwrap();
        let mut model = GridModel::<f32>::new(cfg, 0).unwrap();
        f.load_params("model.", &mut model).unwrap();
        let x = tensor(&f, "x");
        let shape = f.tensors["x"].shape.clone();
        let (h, w, c) = (shape[1], shape[2], shape[3]);
        let target: Vec<usize> = tensor(&f, "target").iter().map(|&v| v as usize).collect();
        let mask: Vec<bool> = tensor(&f, "mask").iter().map(|&v| v > 0.5).collect();
        let labels = if cfg.readout == GridReadout::Pixels {
            GridLabels::Pixels {
                labels: target,
                mask,
            }
        } else {
            GridLabels::Image(target)
        };
        let set = GridSet::new((h, w, c), x, labels, 3).unwrap();
        let batch = set.batch(&(0..set.len()).collect::<Vec<_>>());
        let mut grads = model.zeros_like();
        let mut ws = GridWorkspace::default();
        let mut rng = Rng::new(0);
        let mut ctx = TrainContext {
            rng: &mut rng,
            feed_prob: 0.0,
            step: 1,
        };
        let stats = model
            .loss_and_grad(&batch, &mut ws, &mut grads, &mut ctx)
            .unwrap();
        compare(
            &format!("{tag} loss"),
            &[stats.mean_nll() as f32],
            &tensor(&f, "loss"),
        );
        let last = ws.caches().last().unwrap();
        compare(&format!("{tag} out"), last.out(), &tensor(&f, "out"));
        compare_param_grads(&tag, &f, &grads);
    }
}
