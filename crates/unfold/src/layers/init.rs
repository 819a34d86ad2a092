//! Initialisations of a recurrent layer's weights that the literature on long-term
//! dependencies proposes, applied on top of a cell's default (PyTorch's uniform) one:
//!
//! - [`RecurrentInit::Orthogonal`]: each `H x H` block of `W_hh` a random orthogonal matrix
//!   times a gain (Saxe et al. 2014): every singular value of the linear part of the step is the
//!   gain, so a linear RNN neither forgets nor explodes;
//! - [`RecurrentInit::Identity`]: the IRNN of Le, Jaitly and Hinton (2015): `W_hh = s I`,
//!   biases zero and `W_ih ~ N(0, 0.001^2)`, meant for a ReLU cell ([`CellKind::RnnRelu`]);
//! - [`RecurrentInit::Radius`]: the cell's default `W_hh` rescaled, block by block, to a chosen
//!   spectral radius (below one forgets, above one explodes: the chapter's experiment);
//! - [`RecurrentInit::EchoState`]: a sparse random `W_hh` scaled to a spectral radius, as a
//!   reservoir is built ([`crate::reservoir`]);
//! - the LSTM's unit forget-gate bias is [`crate::layers::Recurrent::set_forget_bias`].
//!
//! A gated cell stacks `G` blocks of `H` rows in `W_hh`; each block is initialised on its own.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::config::CellKind;
use crate::layers::recurrent::Recurrent;
use crate::reservoir::{scale_to_radius, WeightDist, Weights};
use crate::rng::Rng;

/// How the recurrent weights of a layer start (see the module's list).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RecurrentInit {
    /// The cell's own default (PyTorch's uniform initialisation).
    Default,
    /// Random orthogonal `W_hh` blocks times `gain`.
    Orthogonal {
        /// Every singular value of each block.
        gain: f64,
    },
    /// `W_hh = scale I`, biases zero, `W_ih ~ N(0, 0.001^2)` (IRNN with `scale` 1).
    Identity {
        /// The diagonal.
        scale: f64,
    },
    /// The default `W_hh` rescaled to this spectral radius.
    Radius(f64),
    /// Sparse uniform `W_hh` (each entry non-zero with probability `density`) scaled to
    /// `radius`.
    EchoState {
        /// Spectral radius of each block.
        radius: f64,
        /// Share of non-zero entries, in (0, 1].
        density: f64,
    },
}

impl RecurrentInit {
    /// Short name for reports: `default`, `orthogonal`, `identity`, `radius`, `echo-state`.
    pub fn name(&self) -> &'static str {
        match self {
            RecurrentInit::Default => "default",
            RecurrentInit::Orthogonal { .. } => "orthogonal",
            RecurrentInit::Identity { .. } => "identity",
            RecurrentInit::Radius(_) => "radius",
            RecurrentInit::EchoState { .. } => "echo-state",
        }
    }

    /// Parses `default`, `orthogonal[:GAIN]`, `identity[:SCALE]`, `radius:R`,
    /// `echo-state[:R[:DENSITY]]`.
    pub fn parse(s: &str) -> Result<Self> {
        let mut parts = s.split(':');
        let name = parts.next().unwrap_or("");
        let nums: Vec<f64> = parts
            .map(|p| {
                p.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| {
                        Error::InvalidConfig(format!("'{p}' in init '{s}' is not a number >= 0"))
                    })
            })
            .collect::<Result<_>>()?;
        let arg = |i: usize, default: f64| nums.get(i).copied().unwrap_or(default);
        let init = match name {
            "default" => RecurrentInit::Default,
            "orthogonal" => RecurrentInit::Orthogonal { gain: arg(0, 1.0) },
            "identity" | "irnn" => RecurrentInit::Identity { scale: arg(0, 1.0) },
            "radius" if nums.len() == 1 => RecurrentInit::Radius(nums[0]),
            "echo-state" | "esn" => RecurrentInit::EchoState {
                radius: arg(0, 0.95),
                density: arg(1, 0.1),
            },
            _ => {
                return Err(Error::InvalidConfig(format!(
                    "unknown init '{s}' (default, orthogonal[:GAIN], identity[:SCALE], radius:R, \
                     echo-state[:R[:DENSITY]])"
                )))
            }
        };
        if let RecurrentInit::EchoState { density, .. } = init {
            if !(density > 0.0 && density <= 1.0) {
                return Err(Error::InvalidConfig(format!(
                    "echo-state density must be in (0, 1], got {density}"
                )));
            }
        }
        Ok(init)
    }
}

/// A random `n x n` orthogonal matrix (row-major): Gram-Schmidt, twice, on Gaussian rows, each
/// row's sign fixed so the distribution is Haar's.
pub fn random_orthogonal(n: usize, rng: &mut Rng) -> Vec<f64> {
    let mut q: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
    for i in 0..n {
        for _pass in 0..2 {
            for j in 0..i {
                let dot: f64 = (0..n).map(|k| q[i * n + k] * q[j * n + k]).sum();
                for k in 0..n {
                    q[i * n + k] -= dot * q[j * n + k];
                }
            }
        }
        let norm = (0..n).map(|k| q[i * n + k].powi(2)).sum::<f64>().sqrt();
        for k in 0..n {
            q[i * n + k] /= norm;
        }
    }
    q
}

/// The spectral radius of a dense `n x n` block.
fn block_radius(block: &[f64], n: usize) -> Result<f64> {
    let ev = crate::reservoir::spectral::dense_eigenvalues(n, block)?;
    Ok(ev.iter().map(|&(re, im)| re.hypot(im)).fold(0.0, f64::max))
}

impl<T: Float> Recurrent<T> {
    /// Applies `init` to every layer and direction, drawing from `seed`. Biases other than
    /// the identity initialisation's are left as they are.
    ///
    /// Fails for a cell without a recurrent matrix (the time-delay layer), and for a clockwork
    /// cell with anything but [`RecurrentInit::Radius`] (its `W_hh` is block-triangular by
    /// construction).
    pub fn initialise(&mut self, init: RecurrentInit, seed: u64) -> Result<()> {
        let kind = self.config().kind;
        if init == RecurrentInit::Default {
            return Ok(());
        }
        if matches!(kind, CellKind::Tdnn(_)) {
            return Err(Error::InvalidConfig(
                "a time-delay layer has no recurrent weights to initialise".into(),
            ));
        }
        if matches!(kind, CellKind::Clockwork(_)) && !matches!(init, RecurrentInit::Radius(_)) {
            return Err(Error::InvalidConfig(format!(
                "a clockwork cell keeps its block-triangular W_hh: only radius:R applies, not {}",
                init.name()
            )));
        }
        let h = self.config().hidden_size;
        let nd = self.config().directions();
        let mut rng = Rng::new(seed);
        for l in 0..self.config().num_layers {
            let specs = self.cell_fn(l).param_specs();
            let whh = specs
                .iter()
                .position(|s| s.name == "weight_hh")
                .ok_or_else(|| {
                    Error::InvalidConfig(format!("the {} cell has no weight_hh", kind.name()))
                })?;
            let blocks = specs[whh].numel() / (h * h);
            for d in 0..nd {
                let cell = self.cell_mut(l, d);
                for g in 0..blocks {
                    let w = &mut cell.get_mut(whh)[g * h * h..(g + 1) * h * h];
                    let mut block: Vec<f64> = w.iter().map(|v| v.to_f64()).collect();
                    match init {
                        RecurrentInit::Default => {}
                        RecurrentInit::Orthogonal { gain } => {
                            block = random_orthogonal(h, &mut rng);
                            block.iter_mut().for_each(|v| *v *= gain);
                        }
                        RecurrentInit::Identity { scale } => {
                            block.fill(0.0);
                            (0..h).for_each(|i| block[i * h + i] = scale);
                        }
                        RecurrentInit::Radius(r) => {
                            let now = block_radius(&block, h)?;
                            if now > 0.0 {
                                block.iter_mut().for_each(|v| *v *= r / now);
                            }
                        }
                        RecurrentInit::EchoState { radius, density } => {
                            let mut m =
                                Weights::random(h, h, density, WeightDist::Uniform, &mut rng)?;
                            scale_to_radius(&mut m, radius, rng.next_u64())?;
                            block = m.to_dense();
                        }
                    }
                    for (dst, &v) in w.iter_mut().zip(&block) {
                        *dst = T::from_f64(v);
                    }
                }
                if let RecurrentInit::Identity { .. } = init {
                    for (i, spec) in specs.iter().enumerate() {
                        if spec.name == "weight_ih" {
                            for v in cell.get_mut(i).iter_mut() {
                                *v = T::from_f64(0.001 * rng.normal());
                            }
                        } else if spec.name.starts_with("bias") {
                            cell.get_mut(i).fill(T::ZERO);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::RecurrentConfig;

    fn radius_of(layer: &Recurrent<f64>, block: usize) -> f64 {
        let h = layer.config().hidden_size;
        let w = &layer.cell(0, 0).w_hh()[block * h * h..(block + 1) * h * h];
        block_radius(w, h).unwrap()
    }

    #[test]
    fn orthogonal_blocks_have_orthonormal_rows_times_the_gain() {
        let cfg = RecurrentConfig::new(CellKind::Lstm, 3, 8);
        let mut l = Recurrent::<f64>::new(cfg, 1).unwrap();
        l.initialise(RecurrentInit::Orthogonal { gain: 1.5 }, 2)
            .unwrap();
        let w = l.cell(0, 0).w_hh();
        for g in 0..4 {
            let b = &w[g * 64..(g + 1) * 64];
            for i in 0..8 {
                for j in 0..8 {
                    let dot: f64 = (0..8).map(|k| b[i * 8 + k] * b[j * 8 + k]).sum();
                    let want = if i == j { 2.25 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-12, "block {g} ({i},{j}): {dot}");
                }
            }
        }
    }

    #[test]
    fn radius_and_echo_state_reach_the_asked_spectral_radius() {
        let cfg = RecurrentConfig::new(CellKind::RnnTanh, 2, 20);
        let mut l = Recurrent::<f64>::new(cfg.clone(), 1).unwrap();
        let before = l.cell(0, 0).w_hh().to_vec();
        l.initialise(RecurrentInit::Radius(1.7), 3).unwrap();
        assert!((radius_of(&l, 0) - 1.7).abs() < 1e-9);
        // A rescaling keeps the direction of the matrix.
        let after = l.cell(0, 0).w_hh();
        let ratio = after[0] / before[0];
        for (a, b) in after.iter().zip(&before) {
            assert!((a - ratio * b).abs() < 1e-12);
        }
        let mut e = Recurrent::<f64>::new(cfg, 1).unwrap();
        e.initialise(
            RecurrentInit::EchoState {
                radius: 0.9,
                density: 0.2,
            },
            4,
        )
        .unwrap();
        assert!((radius_of(&e, 0) - 0.9).abs() < 1e-6);
        let zeros = e.cell(0, 0).w_hh().iter().filter(|v| **v == 0.0).count();
        assert!(zeros > 200, "a sparse matrix: {zeros} zeros of 400");
    }

    #[test]
    fn identity_sets_the_irnn_of_le_jaitly_and_hinton() {
        let cfg = RecurrentConfig::new(CellKind::RnnRelu, 2, 5);
        let mut l = Recurrent::<f32>::new(cfg, 1).unwrap();
        l.initialise(RecurrentInit::Identity { scale: 1.0 }, 5)
            .unwrap();
        let c = l.cell(0, 0);
        for i in 0..5 {
            for j in 0..5 {
                assert_eq!(c.w_hh()[i * 5 + j], if i == j { 1.0 } else { 0.0 });
            }
        }
        assert!(c.b_ih().iter().chain(c.b_hh()).all(|v| *v == 0.0));
        assert!(c.w_ih().iter().all(|v| v.abs() < 0.01) && c.w_ih().iter().any(|v| *v != 0.0));
    }

    #[test]
    fn parse_reads_every_form_and_refuses_the_rest() {
        assert_eq!(
            RecurrentInit::parse("orthogonal").unwrap(),
            RecurrentInit::Orthogonal { gain: 1.0 }
        );
        assert_eq!(
            RecurrentInit::parse("radius:1.5").unwrap(),
            RecurrentInit::Radius(1.5)
        );
        assert_eq!(
            RecurrentInit::parse("echo-state:0.8:0.05").unwrap(),
            RecurrentInit::EchoState {
                radius: 0.8,
                density: 0.05
            }
        );
        for bad in [
            "radius",
            "orthogonal:x",
            "echo-state:0.9:2",
            "glorot",
            "radius:-1",
        ] {
            assert!(RecurrentInit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn clockwork_takes_only_a_radius() {
        let spec = crate::layers::ClockSpec::new(&[1, 2]).unwrap();
        let cfg = RecurrentConfig::new(CellKind::Clockwork(spec), 2, 4);
        let mut l = Recurrent::<f64>::new(cfg, 1).unwrap();
        assert!(l
            .initialise(RecurrentInit::Orthogonal { gain: 1.0 }, 1)
            .is_err());
        l.initialise(RecurrentInit::Radius(0.5), 1).unwrap();
    }
}
