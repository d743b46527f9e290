//! Byte-string helpers shared by the parser, the engine and the store.

/// The 128-bit product of `x` and `y`, its two halves XORed: foldhash's mixing step, used by
/// the one-shot hashes written for the request path (the store's AOR words, the To tag), where
/// a streaming `Hasher`'s per-write bookkeeping cost more than the hashing.
#[inline(always)]
pub(crate) fn folded_multiply(x: u64, y: u64) -> u64 {
    let product = u128::from(x) * u128::from(y);
    (product as u64) ^ ((product >> 64) as u64)
}

/// `a == b`, inline for the short strings the request path compares (hosts, domains, URI
/// prefixes, User-Agents): 4 to 32 bytes as their first and last 4, 8 or 16 bytes
/// (overlapping), longer ones eight bytes per step — where `==` on slices is a `memcmp` call
/// that costs more than comparing a few words.
#[inline(always)]
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    /// The first and last `N` bytes of two texts of one length (at least `N`) are equal.
    fn ends<const N: usize>(a: &[u8], b: &[u8]) -> bool {
        a.first_chunk::<N>() == b.first_chunk::<N>() && a.last_chunk::<N>() == b.last_chunk::<N>()
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0..4 => a == b,
        4..8 => ends::<4>(a, b),
        8..=16 => ends::<8>(a, b),
        17..=32 => ends::<16>(a, b),
        _ => {
            fn word(s: &[u8], at: usize) -> Option<&[u8; 8]> {
                s.get(at..).and_then(|w| w.first_chunk::<8>())
            }
            let mut at = 0;
            while at + 8 < n {
                if word(a, at) != word(b, at) {
                    return false;
                }
                at += 8;
            }
            ends::<8>(a, b)
        }
    }
}

/// The eight-byte little-endian words that cover `s`: its whole words, then the eight bytes
/// that end it (overlapping the words before unless its length is a multiple of eight, when
/// that last word is read twice). For checks that OR or AND words together, where reading a
/// byte twice changes nothing and there is no byte-by-byte tail. `None` when `s` is shorter
/// than a word.
pub(crate) fn covering_words(s: &[u8]) -> Option<impl Iterator<Item = u64> + '_> {
    let last = s.last_chunk::<8>()?;
    let (words, _) = s.as_chunks::<8>();
    Some(
        words
            .iter()
            .chain(std::iter::once(last))
            .map(|w| u64::from_le_bytes(*w)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the slice compare: every pair of lengths up to 70, equal and with one byte
    /// changed at each place.
    #[test]
    fn same_is_slice_equality() {
        let base: Vec<u8> = (0..70u8).map(|i| b'a' + i % 26).collect();
        for la in 0..=70 {
            for lb in 0..=70 {
                let (a, b) = (&base[..la], &base[..lb]);
                assert_eq!(same(a, b), a == b, "{la} {lb}");
            }
            let a = &base[..la];
            for at in 0..la {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same(a, &b), "{la} {at}");
            }
        }
    }

    /// Every byte is in some word, no word reaches outside `s`, and the words are those of
    /// `s` in order (the last one ending it).
    #[test]
    fn words_cover_every_byte() {
        for len in 0..40usize {
            let s: Vec<u8> = (1..=len).map(|i| i as u8).collect();
            let Some(words) = covering_words(&s) else {
                assert!(len < 8);
                continue;
            };
            let words: Vec<[u8; 8]> = words.map(u64::to_le_bytes).collect();
            assert_eq!(words.len(), len / 8 + 1);
            for (k, w) in words[..len / 8].iter().enumerate() {
                assert_eq!(&w[..], &s[8 * k..8 * k + 8]);
            }
            assert_eq!(&words[len / 8][..], &s[len - 8..]);
        }
    }
}
