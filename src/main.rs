//! The `sipreg` binary.
fn main() {}
