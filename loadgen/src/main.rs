//! `sipreg-loadgen`: SIP registration load generator (placeholder until its issue lands).
fn main() {
    eprintln!("sipreg-loadgen: not built yet (see issue 5)");
    std::process::exit(2)
}
