fn main() { eprintln!("sipreg-loadgen: not built yet (see issue 5)"); std::process::exit(2) }
