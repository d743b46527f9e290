//! Line ends (LF) of a message, found 64 bytes at a time, and a search for either of two bytes
//! 16 at a time.
//!
//! Written here rather than taken from `memchr`: memchr answers one search per call, and a
//! header block is a dozen lines of 15-130 bytes, so its per-call set-up (runtime CPU dispatch,
//! alignment, the short-haystack branch) cost more than the search itself — ~50 instructions
//! per line. memchr has no call that returns the positions of a block as a bit mask. Here one
//! SSE2 compare per 16 bytes (through the `safe_arch` crate: safe wrappers of the intrinsics)
//! gives a bit per byte, and each line end is one bit taken off that mask.

/// The LFs of a buffer in order. Blocks past the last requested line end are never scanned.
pub(crate) struct LineEnds<'a> {
    buf: &'a [u8],
    /// The bytes after the block `mask` describes.
    rest: &'a [u8],
    /// Offset of the 64-byte block `mask` describes.
    base: usize,
    /// One bit per LF of that block not yet returned.
    mask: u64,
}

impl<'a> LineEnds<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        let mut lines = Self {
            buf,
            rest: buf,
            base: 0,
            mask: 0,
        };
        lines.mask = lines.block_mask();
        lines
    }

    /// A bit per LF of the next (up to) 64 bytes, bit 0 for the first, stepping over them.
    /// (The remaining bytes are held as a slice: a whole block is one length check.)
    #[inline]
    fn block_mask(&mut self) -> u64 {
        match self.rest.split_first_chunk::<64>() {
            Some((block, rest)) => {
                self.rest = rest;
                lf_bits(block.as_chunks::<16>().0)
            }
            None => {
                self.rest = &[];
                lf_mask_short(self.buf, self.base)
            }
        }
    }
}

impl Iterator for LineEnds<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            if self.rest.is_empty() {
                return None;
            }
            self.base += 64;
            self.mask = self.block_mask();
        }
        let bit = self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(self.base + bit)
    }
}

/// [`block_mask`] for the last, shorter block: whole 16-byte chunks, then the 16 bytes that end
/// the buffer (overlapping what was already looked at) for the rest.
#[inline(never)]
fn lf_mask_short(buf: &[u8], at: usize) -> u64 {
    let rest = buf.get(at..).unwrap_or_default();
    let (chunks, tail) = rest.as_chunks::<16>();
    let tail = tail_bits(buf, tail.len(), |c| eq16(c, b'\n'), |b| b == b'\n');
    lf_bits(chunks) | u64::from(tail) << (16 * chunks.len())
}

/// A bit per LF of up to four 16-byte chunks, the first chunk's in the low bits.
#[inline]
fn lf_bits(chunks: &[[u8; 16]]) -> u64 {
    chunks
        .iter()
        .rev()
        .fold(0, |mask, chunk| mask << 16 | u64::from(eq16(*chunk, b'\n')))
}

/// A bit per byte of the last `n` (below 16) bytes of `hay`, the first of them in bit 0:
/// `chunk_bits` of the 16 bytes that end `hay` (overlapping bytes already looked at, shifted
/// out), or `is` byte by byte when `hay` is shorter than that.
#[inline]
fn tail_bits(
    hay: &[u8],
    n: usize,
    chunk_bits: impl Fn([u8; 16]) -> u32,
    is: impl Fn(u8) -> bool,
) -> u32 {
    match hay.last_chunk::<16>() {
        Some(last) => chunk_bits(*last) >> (16 - n),
        None => hay
            .get(hay.len().saturating_sub(n)..)
            .unwrap_or_default()
            .iter()
            .rev()
            .fold(0, |bits, &b| bits << 1 | u32::from(is(b))),
    }
}

/// Index of the first `a` or `b` in `hay`, 16 bytes per step (for haystacks of a few dozen
/// bytes, where memchr's per-call set-up is most of its cost).
pub(crate) fn find2(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    let either = |chunk: [u8; 16]| eq16(chunk, a) | eq16(chunk, b);
    let (chunks, tail) = hay.as_chunks::<16>();
    for (k, chunk) in chunks.iter().enumerate() {
        let bits = either(*chunk);
        if bits != 0 {
            return Some(16 * k + bits.trailing_zeros() as usize);
        }
    }
    let bits = tail_bits(hay, tail.len(), either, |c| c == a || c == b);
    (bits != 0).then(|| 16 * chunks.len() + bits.trailing_zeros() as usize)
}

/// A bit per byte of `chunk` equal to `byte`.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
fn eq16(chunk: [u8; 16], byte: u8) -> u32 {
    use safe_arch::{cmp_eq_mask_i8_m128i, m128i, move_mask_i8_m128i, set_splat_i8_m128i};
    let splat = set_splat_i8_m128i(i8::from_ne_bytes([byte]));
    // The mask has 16 bits: the i32 is never negative.
    move_mask_i8_m128i(cmp_eq_mask_i8_m128i(m128i::from(chunk), splat)) as u32
}

/// A bit per byte of `chunk` equal to `byte` (other targets: the compiler vectorises what it
/// can).
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline]
fn eq16(chunk: [u8; 16], byte: u8) -> u32 {
    chunk
        .iter()
        .rev()
        .fold(0, |bits, &b| bits << 1 | u32::from(b == byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oracle(buf: &[u8]) -> Vec<usize> {
        buf.iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn every_length_and_position() {
        // Every buffer length up to three blocks, with an LF at each position in turn and at a
        // few fixed ones: block and chunk edges, the overlapping last chunk, short buffers.
        for len in 0..200 {
            for at in 0..len {
                let mut buf = vec![b'a'; len];
                buf[at] = b'\n';
                for fixed in [0, 15, 16, 63, 64, 65, len.saturating_sub(1)] {
                    if let Some(b) = buf.get_mut(fixed) {
                        *b = b'\n';
                    }
                }
                assert_eq!(
                    LineEnds::new(&buf).collect::<Vec<_>>(),
                    oracle(&buf),
                    "{len} {at}"
                );
            }
        }
    }

    #[test]
    fn a_message() {
        let msg = b"REGISTER sip:a SIP/2.0\r\nVia: x\r\n\r\nbody\nmore";
        assert_eq!(LineEnds::new(msg).collect::<Vec<_>>(), oracle(msg));
        assert_eq!(LineEnds::new(b"").next(), None);
        assert_eq!(
            LineEnds::new(b"no line end at all, longer than sixteen").next(),
            None
        );
    }

    #[test]
    fn find2_every_length_and_position() {
        for len in 0..80 {
            for at in 0..=len {
                for (pos, other) in [(at, b'"'), (at, b'\\')] {
                    let mut hay = vec![b'a'; len];
                    if let Some(b) = hay.get_mut(pos) {
                        *b = other;
                    }
                    let want = hay.iter().position(|&c| c == b'"' || c == b'\\');
                    assert_eq!(find2(b'"', b'\\', &hay), want, "{len} {pos}");
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn find2_finds_what_a_byte_loop_finds(
            hay in proptest::collection::vec(proptest::sample::select(vec![b'"', b'>', b'a', b'\n']), 0..100),
        ) {
            let want = hay.iter().position(|&c| c == b'"' || c == b'>');
            proptest::prop_assert_eq!(find2(b'"', b'>', &hay), want);
        }
    }

    proptest::proptest! {
        #[test]
        fn finds_what_a_byte_loop_finds(
            buf in proptest::collection::vec(proptest::sample::select(vec![b'\n', b'\r', b'a', 0xff]), 0..400),
        ) {
            proptest::prop_assert_eq!(LineEnds::new(&buf).collect::<Vec<_>>(), oracle(&buf));
        }
    }
}
