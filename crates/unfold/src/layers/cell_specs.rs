//! The settings of the cells that have settings beyond their sizes: the leak rates of leaky
//! units, the periods of a clockwork RNN, the delays of a skip-through-time cell and the depth
//! of a deep transition. Each is `Copy` (lists are held inline, see [`SmallList`]) so that a
//! [`crate::layers::CellKind`] stays a plain value, and each is stored in checkpoints through
//! serde.

use crate::error::{Error, Result};

/// A short list of positive integers (a clockwork RNN's periods, a cell's delays), held inline
/// so that the cell kind holding it stays `Copy`. Serialised as a plain list.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SmallList {
    len: u8,
    items: [u32; SmallList::CAPACITY],
}

impl SmallList {
    /// The most values a list holds.
    pub const CAPACITY: usize = 16;

    /// The list of `values`: 1 to [`SmallList::CAPACITY`] values, each in `1..=2^20`.
    pub fn new(values: &[usize]) -> Result<Self> {
        if values.is_empty() || values.len() > Self::CAPACITY {
            return Err(Error::InvalidConfig(format!(
                "a list of 1 to {} values is needed (got {})",
                Self::CAPACITY,
                values.len()
            )));
        }
        let mut items = [0u32; Self::CAPACITY];
        for (slot, &v) in items.iter_mut().zip(values) {
            if v == 0 || v > 1 << 20 {
                return Err(Error::InvalidConfig(format!(
                    "every value must be in 1..=1048576 (got {v})"
                )));
            }
            *slot = v as u32;
        }
        Ok(SmallList {
            len: values.len() as u8,
            items,
        })
    }

    /// The values.
    pub fn values(&self) -> Vec<usize> {
        self.items[..self.len as usize]
            .iter()
            .map(|&v| v as usize)
            .collect()
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the list is empty (never, for a list made by [`SmallList::new`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The largest value.
    pub fn max(&self) -> usize {
        self.values().into_iter().max().unwrap_or(0)
    }
}

impl std::fmt::Debug for SmallList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.values()).finish()
    }
}

impl serde::Serialize for SmallList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.values().serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for SmallList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = Vec::<usize>::deserialize(d)?;
        SmallList::new(&v).map_err(serde::de::Error::custom)
    }
}

/// The leak rates of a [`crate::layers::CellKind::Leaky`] layer: unit `j` of `H` starts at
/// `max * (min / max)^(j / (H - 1))` (geometric steps from the fastest to the slowest unit;
/// `min == max` gives every unit the same rate), and keeps it unless `learn`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LeakSpec {
    /// Leak rate of the slowest unit, in (0, 1]. Default 0.02 (a time constant of 50 steps).
    pub min: f64,
    /// Leak rate of the fastest unit, in `[min, 1]`. Default 1 (an ordinary tanh unit).
    pub max: f64,
    /// Train the leak rates (through `a = 1 / (1 + ρ²)`) instead of keeping them. Default true.
    pub learn: bool,
}

impl Default for LeakSpec {
    fn default() -> Self {
        LeakSpec {
            min: 0.02,
            max: 1.0,
            learn: true,
        }
    }
}

impl LeakSpec {
    /// Every unit's leak rate at the start (`[hidden]`).
    pub fn initial(&self, hidden: usize) -> Vec<f64> {
        (0..hidden)
            .map(|j| {
                if hidden < 2 || self.min == self.max {
                    self.max
                } else {
                    let f = j as f64 / (hidden - 1) as f64;
                    self.max * (self.min / self.max).powf(f)
                }
            })
            .collect()
    }

    /// The `ρ >= 0` with `1 / (1 + ρ²) = a`.
    pub fn rho_of(a: f64) -> f64 {
        (1.0 / a - 1.0).max(0.0).sqrt()
    }

    /// Checks `0 < min <= max <= 1`.
    pub fn validate(&self) -> Result<()> {
        if !(self.min > 0.0 && self.min <= self.max && self.max <= 1.0) {
            return Err(Error::InvalidConfig(format!(
                "leak rates need 0 < min <= max <= 1 (got min {}, max {})",
                self.min, self.max
            )));
        }
        Ok(())
    }
}

/// The modules of a clockwork RNN (Koutník et al. 2014): the hidden units split into
/// `periods.len()` modules of (nearly) equal size, module `m` updated only at steps that are
/// multiples of its period, and reading the state of its own and of slower modules only.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClockSpec {
    /// The modules' periods, fastest first (sorted when the spec is made).
    pub periods: SmallList,
}

impl ClockSpec {
    /// Modules with the given periods, sorted fastest first.
    pub fn new(periods: &[usize]) -> Result<Self> {
        let mut p = periods.to_vec();
        p.sort_unstable();
        Ok(ClockSpec {
            periods: SmallList::new(&p)?,
        })
    }

    /// `modules` modules with periods 1, 2, 4, ..., 2^(modules-1), the paper's exponential
    /// series.
    pub fn exponential(modules: usize) -> Result<Self> {
        let p: Vec<usize> = (0..modules.min(21)).map(|m| 1 << m).collect();
        Self::new(&p)
    }

    /// The default for `hidden` units: periods 1, 2, ..., 128 (eight modules), fewer when
    /// there are fewer than eight units.
    pub fn default_for(hidden: usize) -> Self {
        Self::exponential(hidden.clamp(1, 8)).expect("powers of two up to 128 are valid")
    }

    /// The units of module `m` of `hidden`: `[m H / M, (m + 1) H / M)`.
    pub fn module_units(&self, m: usize, hidden: usize) -> std::ops::Range<usize> {
        let n = self.periods.len();
        m * hidden / n..(m + 1) * hidden / n
    }

    /// Checks that every module has at least one of the `hidden` units.
    pub fn check_hidden(&self, hidden: usize) -> Result<()> {
        if hidden < self.periods.len() {
            return Err(Error::InvalidConfig(format!(
                "a clockwork RNN with {} modules needs at least {} hidden units (got {hidden})",
                self.periods.len(),
                self.periods.len()
            )));
        }
        Ok(())
    }
}

/// The recurrences of a skip-through-time cell: `h(t)` reads `h(t - d)` for every delay `d`
/// in the list (Lin et al. 1996). With 1 in the list it adds delayed connections to an
/// ordinary tanh RNN; without, it replaces the one-step recurrence.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DelaySpec {
    /// The delays, ascending, without repeats.
    pub delays: SmallList,
}

impl DelaySpec {
    /// Recurrences from `h(t - d)` for each `d` of `delays` (sorted, repeats removed).
    pub fn new(delays: &[usize]) -> Result<Self> {
        let mut d = delays.to_vec();
        d.sort_unstable();
        d.dedup();
        let delays = SmallList::new(&d)?;
        if delays.max() > 4096 {
            return Err(Error::InvalidConfig(format!(
                "delays of at most 4096 steps are supported (got {})",
                delays.max()
            )));
        }
        Ok(DelaySpec { delays })
    }

    /// The default: delays 1 and 4.
    pub fn default_delays() -> Self {
        Self::new(&[1, 4]).expect("valid")
    }
}

/// A time-delay neural network layer (Waibel et al. 1989; the chapter's non-recurrent
/// baseline): a causal 1-D convolution over time with `taps` taps `dilation` steps apart,
/// `h(t) = tanh(sum over k < taps of W_k x(t - k dilation) + b)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TdnnSpec {
    /// Taps of the kernel, at least 1. Default 4.
    pub taps: usize,
    /// Steps between taps, at least 1. Default 1.
    pub dilation: usize,
}

impl Default for TdnnSpec {
    fn default() -> Self {
        TdnnSpec {
            taps: 4,
            dilation: 1,
        }
    }
}

impl TdnnSpec {
    /// Steps of input one output sees: `(taps - 1) * dilation + 1`.
    pub fn receptive_field(&self) -> usize {
        (self.taps - 1) * self.dilation + 1
    }

    /// Steps ahead a sequence's state holds partial sums for, per unit:
    /// `(taps - 1) * dilation`.
    pub fn delay_line(&self) -> usize {
        (self.taps - 1) * self.dilation
    }

    /// Checks `1 <= taps <= 64`, `1 <= dilation <= 4096` and a receptive field of at most
    /// 65536 steps.
    pub fn validate(&self) -> Result<()> {
        if !(1..=64).contains(&self.taps) || !(1..=4096).contains(&self.dilation) {
            return Err(Error::InvalidConfig(format!(
                "a TDNN needs 1 to 64 taps and a dilation of 1 to 4096 (got {} taps, dilation {})",
                self.taps, self.dilation
            )));
        }
        if self.receptive_field() > 65536 {
            return Err(Error::InvalidConfig(format!(
                "a TDNN's receptive field of {} steps is over 65536",
                self.receptive_field()
            )));
        }
        Ok(())
    }
}

/// A deep transition (Pascanu et al. 2014): the map from `h(t-1)` to `h(t)` is an MLP of
/// `depth` tanh layers, the first reading `x(t)` and `h(t-1)`, each other the layer below;
/// with `shortcut`, the last layer also reads `h(t-1)` directly (the DT(S)-RNN), so the
/// shortest path from one step to the next is one layer long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeepSpec {
    /// Layers of the transition, at least 1 (1 is a plain tanh RNN). Default 2.
    pub depth: usize,
    /// A shortcut from `h(t-1)` to the last layer. Default true.
    pub shortcut: bool,
}

impl Default for DeepSpec {
    fn default() -> Self {
        DeepSpec {
            depth: 2,
            shortcut: true,
        }
    }
}

impl DeepSpec {
    /// Checks `1 <= depth <= 16`.
    pub fn validate(&self) -> Result<()> {
        if !(1..=16).contains(&self.depth) {
            return Err(Error::InvalidConfig(format!(
                "a deep transition needs 1 to 16 layers (got {})",
                self.depth
            )));
        }
        Ok(())
    }
}
