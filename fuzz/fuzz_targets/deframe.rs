//! Stream deframer: the same bytes fed whole or split at fuzzer-chosen points give the same
//! message boundaries (a connection reads whatever TCP hands it).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sipreg::sip::{self, Limits, Status};

#[derive(Arbitrary, Debug)]
struct Input {
    data: Vec<u8>,
    splits: Vec<u16>,
}

/// Feeds chunks like a connection: keepalives and complete messages are consumed from the front.
fn frames(chunks: &[&[u8]]) -> (Vec<usize>, bool) {
    let limits = Limits { max_message_size: 4096, ..Limits::default() };
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        loop {
            match sip::keepalive_len(&buf) {
                Status::Partial => break,
                Status::Complete(Some(n)) => {
                    out.push(n);
                    buf.drain(..n);
                    continue;
                }
                Status::Complete(None) => {}
            }
            if buf.is_empty() {
                break;
            }
            match sip::frame_stream(&buf, &limits) {
                Ok(Status::Complete(n)) => {
                    assert!(n > 0 && n <= buf.len());
                    out.push(n);
                    buf.drain(..n);
                }
                Ok(Status::Partial) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|input: Input| {
    let whole = frames(&[&input.data]);
    let mut cuts: Vec<usize> = input.splits.iter().map(|&s| usize::from(s) % (input.data.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut chunks = Vec::new();
    let mut prev = 0;
    for c in cuts {
        chunks.push(&input.data[prev..c]);
        prev = c;
    }
    chunks.push(&input.data[prev..]);
    let split = frames(&chunks);
    // A framing error may surface earlier or later depending on what is buffered, but the
    // messages framed before it must be the same.
    let n = whole.0.len().min(split.0.len());
    assert_eq!(whole.0[..n], split.0[..n]);
    if !whole.1 && !split.1 {
        assert_eq!(whole.0, split.0);
    }
});
