//! Equality of short byte strings (invoice numbers, stock codes, countries, product
//! descriptions) without a `memcmp` call: hash tables confirm every hit on such a value, and
//! for strings of a few dozen bytes the call costs more than the comparison.

/// Whether `a` and `b` hold the same bytes. Up to 16 bytes, compares at most two pairs of
/// overlapping words; up to 64, word by word with the last word overlapping; longer
/// strings go to the slice comparison.
#[inline]
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => word32(a, 0) == word32(b, 0) && word32(a, n - 4) == word32(b, n - 4),
        8..=16 => word64(a, 0) == word64(b, 0) && word64(a, n - 8) == word64(b, n - 8),
        17..=64 => {
            let mut at = 0;
            while at + 8 < n {
                if word64(a, at) != word64(b, at) {
                    return false;
                }
                at += 8;
            }
            word64(a, n - 8) == word64(b, n - 8)
        }
        _ => a == b,
    }
}

/// A byte string whose `==` is [`equal`].
#[derive(Clone, Copy, Debug)]
pub struct Inline<'a>(pub &'a [u8]);

impl PartialEq for Inline<'_> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        equal(self.0, other.0)
    }
}

#[inline(always)]
fn word32(s: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&s[at..at + 4]);
    u32::from_ne_bytes(w)
}

#[inline(always)]
fn word64(s: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_ne_bytes(w)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn every_byte_of_every_length_counts() {
        for n in 0..80usize {
            let a: Vec<u8> = (0..n as u8).collect();
            assert!(equal(&a, &a.clone()), "length {n}");
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x40;
                assert!(!equal(&a, &b), "length {n}, byte {i}");
            }
            assert!(!equal(&a, &a[..n.saturating_sub(1)]) || n == 0);
        }
    }

    proptest! {
        /// Any string against itself, a one-byte change of it, and a prefix of it.
        #[test]
        fn agrees_with_slice_equality(
            a in proptest::collection::vec(any::<u8>(), 0..80),
            at in any::<usize>(),
            flip in 1u8..=255,
            cut in any::<usize>(),
        ) {
            let mut b = a.clone();
            prop_assert!(equal(&a, &b));
            if !b.is_empty() {
                let i = at % b.len();
                b[i] ^= flip;
                prop_assert!(!equal(&a, &b));
                prop_assert!(!equal(&b, &a));
            }
            let prefix = &a[..cut % (a.len() + 1)];
            prop_assert_eq!(equal(prefix, &a), prefix.len() == a.len());
        }
    }
}
