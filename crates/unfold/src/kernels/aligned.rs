//! A growable buffer whose contents start on a 64-byte (cache-line) boundary.
//!
//! The fused time loops split rows of the gate, output and state buffers between threads at
//! block boundaries of 32 values; if a buffer started in the middle of a cache line, the lines
//! on those boundaries would be written by two cores at every step (false sharing), which on a
//! virtual machine costs more than the step's arithmetic. `Vec` cannot promise the alignment,
//! so this keeps a little slack and views the aligned part.

use crate::float::Float;
use std::ops::{Deref, DerefMut};

const ALIGN: usize = 64;

/// Cuts `N` pieces of the given lengths from `buf`, each starting on a 64-byte boundary (up to
/// 15 values are skipped before each). Panics if `buf` is too short.
pub(crate) fn carve_aligned<const N: usize>(
    mut buf: &mut [f32],
    lens: [usize; N],
) -> [&mut [f32]; N] {
    lens.map(|len| {
        let addr = buf.as_ptr() as usize;
        let off = (addr.next_multiple_of(ALIGN) - addr) / 4;
        let (piece, rest) = std::mem::take(&mut buf)[off..].split_at_mut(len);
        buf = rest;
        piece
    })
}

/// A `Vec` viewed from its first 64-byte boundary; dereferences to the `len()` values there.
#[derive(Debug, Clone, Default)]
pub struct AlignedBuf<T> {
    data: Vec<T>,
    len: usize,
}

impl<T: Float> AlignedBuf<T> {
    /// Sets the length to `n` (new values zero; existing values are kept only when the
    /// buffer does not move, so treat the contents as undefined after a resize that grows).
    pub fn resize(&mut self, n: usize) {
        let slack = ALIGN / std::mem::size_of::<T>();
        if self.data.len() < n + slack {
            self.data.resize(n + slack, T::ZERO);
        }
        self.len = n;
    }

    fn offset(&self) -> usize {
        let addr = self.data.as_ptr() as usize;
        (addr.next_multiple_of(ALIGN) - addr) / std::mem::size_of::<T>()
    }

    /// Bytes allocated.
    pub fn bytes(&self) -> usize {
        self.data.capacity() * std::mem::size_of::<T>()
    }
}

impl<T: Float> Deref for AlignedBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        let o = self.offset();
        &self.data[o..o + self.len]
    }
}

impl<T: Float> DerefMut for AlignedBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        let o = self.offset();
        &mut self.data[o..o + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_start_on_a_cache_line() {
        let mut b = AlignedBuf::<f32>::default();
        for n in [0usize, 1, 17, 1000, 5] {
            b.resize(n);
            assert_eq!(b.len(), n);
            if n > 0 {
                assert_eq!(b.as_ptr() as usize % ALIGN, 0);
            }
            b.fill(1.5);
            assert!(b.iter().all(|&v| v == 1.5));
        }
    }
}
