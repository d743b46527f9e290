//! Byte-string helpers shared by the parser and the store.

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
