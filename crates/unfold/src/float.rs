//! The scalar types the kernels are generic over: `f32` for speed, `f64` for gradient checks.
//!
//! The `f32` activations are branch-free polynomial approximations (Cephes-style, within about 2
//! ulp of the correctly rounded value) so that the fused element-wise loops vectorise; the `f64`
//! ones call the standard library, so finite-difference checks see exact functions.

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// A floating-point scalar usable by every kernel.
pub trait Float:
    Copy
    + Debug
    + Default
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
{
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// The safetensors dtype name of this type.
    const DTYPE: &'static str;
    /// Conversion from f64 (rounding for f32).
    fn from_f64(x: f64) -> Self;
    /// Conversion to f64 (exact).
    fn to_f64(self) -> f64;
    /// e^x.
    fn exp(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Logistic sigmoid 1 / (1 + e^-x).
    fn sigmoid(self) -> Self;
    /// max(x, 0).
    fn relu(self) -> Self {
        if self > Self::ZERO {
            self
        } else {
            Self::ZERO
        }
    }
    /// Absolute value.
    fn abs(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Whether the value is neither NaN nor infinite.
    fn is_finite(self) -> bool;
    /// Writes little-endian bytes.
    fn write_le(self, out: &mut Vec<u8>);
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const DTYPE: &'static str = "F64";
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn exp(self) -> Self {
        f64::exp(self)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    #[inline(always)]
    fn sigmoid(self) -> Self {
        if self >= 0.0 {
            1.0 / (1.0 + (-self).exp())
        } else {
            let e = self.exp();
            e / (1.0 + e)
        }
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f64::abs(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        f64::ln(self)
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const DTYPE: &'static str = "F32";
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn exp(self) -> Self {
        exp_f32(self)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        tanh_f32(self)
    }
    #[inline(always)]
    fn sigmoid(self) -> Self {
        1.0 / (1.0 + exp_f32(-self))
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32::abs(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        f32::ln(self)
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// e^x for f32 without branches or library calls, so loops over it vectorise.
///
/// Range reduction x = n ln2 + r with |r| <= ln2/2 (ln2 split in two parts for accuracy), a
/// degree-6 minimax polynomial for e^r (Cephes `expf`), and 2^n built in the exponent bits.
/// Inputs are clamped to [-87.3, 88.3]: the result saturates at about 1.2e-38 and 2.2e38.
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' published coefficients
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to the nearest integer n and leaves n in the low mantissa bits,
    // so n is read back with integer arithmetic (no float-to-int conversion in the loop).
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3); // NaN stays NaN, so a diverging run is seen
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let ni = t.to_bits().wrapping_sub(ROUND.to_bits());
    let r = x - n * C1 - n * C2;
    let z = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1;
    let e = p * z + r + 1.0;
    e * f32::from_bits(ni.wrapping_add(127) << 23)
}

/// Chooses `a` where `cond` holds, else `b`, as a bit blend the vectoriser turns into a select.
#[inline(always)]
fn blend(cond: bool, a: f32, b: f32) -> f32 {
    let m = (cond as u32).wrapping_neg();
    f32::from_bits((a.to_bits() & m) | (b.to_bits() & !m))
}

/// tanh for f32 without branches: an odd polynomial near 0 (Cephes `tanhf`, keeps the relative
/// accuracy of small arguments) and 1 - 2 / (e^{2|x|} + 1) elsewhere, sign restored at the end.
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' published coefficients
pub fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let small =
        ((((-5.704_988_7e-3 * z + 2.063_908_9e-2) * z - 5.373_971_6e-2) * z + 1.333_144_2e-1) * z
            - 3.333_328_2e-1)
            * z
            * x
            + x;
    let e = exp_f32(2.0 * a);
    let large = f32::from_bits((1.0 - 2.0 / (e + 1.0)).to_bits() | (x.to_bits() & 0x8000_0000));
    blend(a < 0.625, small, large)
}

/// `(expm1(r), 2^n)` for `x = n ln2 + r`, `|r| <= ln2 / 2` (ln2 in two parts), with `expm1(r)`
/// from Cephes' Pade form `2 r P(r^2) / (Q(r^2) - r P(r^2))` (no cancellation for small `r`) and
/// `2^n` built in the exponent bits. `x` must lie in [-708, 709]; branch-free, so loops over it
/// vectorise.
#[inline(always)]
fn exp_parts(x: f64) -> (f64, f64) {
    let (p, d, scale) = exp_pade(x);
    (2.0 * (p / d), scale)
}

/// The pieces of [`exp_parts`] before its division: `expm1(r) = 2 p / d` and `2^n`.
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' published coefficients
fn exp_pade(x: f64) -> (f64, f64, f64) {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const C1: f64 = 6.931_457_519_531_25e-1;
    const C2: f64 = 1.428_606_820_309_417_232_12e-6;
    // Adding 1.5 * 2^52 rounds to the nearest integer n and leaves n in the low mantissa bits.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let ni = t.to_bits().wrapping_sub(ROUND.to_bits());
    let r = x - n * C1 - n * C2;
    let z = r * r;
    let px = r
        * ((1.261_771_930_748_105_908_78e-4 * z + 3.029_944_077_074_419_613_00e-2) * z
            + 9.999_999_999_999_999_999_10e-1);
    let qx = ((3.001_985_051_386_644_550_42e-6 * z + 2.524_483_403_496_841_041_92e-3) * z
        + 2.272_655_482_081_550_287_66e-1)
        * z
        + 2.000_000_000_000_000_000_09;
    (px, qx - px, f64::from_bits(ni.wrapping_add(1023) << 52))
}

/// e^x for f64 without branches or library calls, so loops over it vectorise: `2^n (1 +
/// expm1(r))` from `exp_parts`. Inputs are clamped to [-708, 709] (results from about 3e-308
/// to 8e307); NaN stays NaN.
#[inline(always)]
pub fn exp_f64(x: f64) -> f64 {
    let (em1, scale) = exp_parts(x.clamp(-708.0, 709.0));
    scale * em1 + scale
}

/// tanh for f64 without branches: `tanh |x| = t / (t + 2)` with
/// `t = e^{2|x|} - 1 = 2^n expm1(r) + (2^n - 1)` from `exp_pade` (so small arguments keep
/// their relative accuracy), sign restored at the end. Arguments beyond 20 give exactly +-1;
/// NaN stays NaN.
#[inline(always)]
pub fn tanh_f64(x: f64) -> f64 {
    let y = 2.0 * x.abs();
    // A select that keeps NaN (f64::min would turn it into 40).
    let y = if y > 40.0 { 40.0 } else { y };
    // With t = scale expm1(r) + (scale - 1) and expm1(r) = 2 p / d, tanh = t / (t + 2) is
    // N / (N + 2 d) with N = t d: one division instead of two (divisions bound this loop).
    let (p, d, scale) = exp_pade(y);
    let n = 2.0 * scale * p + (scale - 1.0) * d;
    let th = n / (n + 2.0 * d);
    f64::from_bits(th.to_bits() | (x.to_bits() & 0x8000_0000_0000_0000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_f64_functions_are_accurate() {
        let ulp = |a: f64, b: f64| {
            let u = b.abs().max(f64::MIN_POSITIVE);
            (a - b).abs() / (f64::from_bits(u.to_bits() + 1) - u)
        };
        let (mut we, mut wt) = (0.0f64, 0.0f64);
        let mut x = -40.0f64;
        while x < 40.0 {
            we = we.max(ulp(exp_f64(x), x.exp()));
            wt = wt.max(ulp(tanh_f64(x), x.tanh()));
            x += 0.000_213;
        }
        for &x in &[1e-300, 1e-10, -3e-5, 0.624_999, 0.625, 700.0, -700.0] {
            wt = wt.max(ulp(tanh_f64(x), x.tanh()));
        }
        assert!(we <= 3.0, "exp worst {we} ulp");
        assert!(wt <= 4.0, "tanh worst {wt} ulp");
        assert_eq!(tanh_f64(0.0), 0.0);
        assert_eq!(tanh_f64(1e4), 1.0);
        assert_eq!(tanh_f64(-1e4), -1.0);
        assert!(tanh_f64(f64::NAN).is_nan());
    }

    fn ulp_err(a: f32, b: f64) -> f64 {
        let ulp = (b.abs() as f32).max(f32::MIN_POSITIVE);
        let ulp = (f32::from_bits(ulp.to_bits() + 1) - ulp) as f64;
        (a as f64 - b).abs() / ulp
    }

    #[test]
    fn fast_f32_functions_are_accurate() {
        let mut x = -30.0f32;
        let (mut worst_exp, mut worst_tanh, mut worst_sig) = (0.0f64, 0.0f64, 0.0f64);
        while x < 30.0 {
            let xd = x as f64;
            worst_exp = worst_exp.max(ulp_err(exp_f32(x), xd.exp()));
            worst_tanh = worst_tanh.max(ulp_err(tanh_f32(x), xd.tanh()));
            worst_sig = worst_sig.max(ulp_err(x.sigmoid(), xd.sigmoid()));
            x += 0.000_37;
        }
        assert!(worst_exp <= 3.0, "exp worst {worst_exp} ulp");
        assert!(worst_tanh <= 4.0, "tanh worst {worst_tanh} ulp");
        assert!(worst_sig <= 4.0, "sigmoid worst {worst_sig} ulp");
        assert_eq!(tanh_f32(0.0), 0.0);
        assert_eq!(tanh_f32(50.0), 1.0);
        assert_eq!(tanh_f32(-50.0), -1.0);
        assert!(exp_f32(-1000.0) >= 0.0 && exp_f32(1000.0).is_finite());
        assert!(f32::sigmoid(-200.0) >= 0.0 && f32::sigmoid(200.0) == 1.0);
        assert!(exp_f32(f32::NAN).is_nan() && tanh_f32(f32::NAN).is_nan());
        assert!(f32::sigmoid(f32::NAN).is_nan());
    }
}
