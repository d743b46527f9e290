//! `sipreg`: command line -> configuration -> `runtime::run`, then wait for SIGINT/SIGTERM.
#![allow(clippy::disallowed_methods)]
#![allow(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use sipreg::config::Config;
use sipreg::engine::Shared;
use sipreg::runtime::{self, Backend};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A carrier-scale SIP registrar. Flags override the configuration file.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML); the embedded default when absent.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
    /// I/O backend: auto, uring or fallback (also SIPREG_BACKEND).
    #[arg(long, env = "SIPREG_BACKEND")]
    backend: Option<Backend>,
    /// Shard threads (0 = one per core).
    #[arg(long)]
    shards: Option<usize>,
    /// UDP listen address (repeatable; replaces the file's list).
    #[arg(long)]
    udp: Vec<SocketAddr>,
    /// TCP listen address (repeatable).
    #[arg(long)]
    tcp: Vec<SocketAddr>,
    /// TLS listen address (repeatable).
    #[arg(long)]
    tls: Vec<SocketAddr>,
    /// Domain served (repeatable).
    #[arg(long)]
    domain: Vec<String>,
    /// Credentials file (turns digest authentication on).
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Digest realm.
    #[arg(long)]
    realm: Option<String>,
    /// Log filter, e.g. `info` or `sipreg=debug`.
    #[arg(long)]
    log: Option<String>,
    /// Do not pin shard threads to cores.
    #[arg(long)]
    no_pin: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("sipreg: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    apply_flags(&mut config, &cli);
    if cli.print_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&config.runtime.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match serve(&config, &cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sipreg: {e}");
            ExitCode::from(1)
        }
    }
}

fn apply_flags(config: &mut Config, cli: &Cli) {
    if let Some(b) = cli.backend {
        config.runtime.backend = b;
    }
    if let Some(n) = cli.shards {
        config.runtime.shards = n;
    }
    if !cli.udp.is_empty() || !cli.tcp.is_empty() || !cli.tls.is_empty() {
        config.listen.udp.clone_from(&cli.udp);
        config.listen.tcp.clone_from(&cli.tcp);
        config.listen.tls.clone_from(&cli.tls);
    }
    if !cli.domain.is_empty() {
        config.registrar.domains.clone_from(&cli.domain);
    }
    if let Some(c) = &cli.credentials {
        config.auth.credentials = Some(c.clone());
    }
    if let Some(r) = &cli.realm {
        config.auth.realm.clone_from(r);
    }
    if let Some(l) = &cli.log {
        config.runtime.log.clone_from(l);
    }
    if cli.no_pin {
        config.runtime.pin = false;
    }
}

fn random_bytes() -> [u8; 40] {
    let mut buf = [0u8; 40];
    // SAFETY: getrandom writes at most buf.len() bytes into the live buffer.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if usize::try_from(n).ok() != Some(buf.len()) {
        // Never fall back to a predictable secret.
        eprintln!("sipreg: getrandom failed; refusing to start with a predictable nonce secret");
        std::process::exit(1);
    }
    buf
}

fn serve(config: &Config, cli: &Cli) -> Result<(), Box<dyn std::error::Error>> {
    let engine_config = config.engine_config(random_bytes())?;
    let runtime_config = config.runtime_config()?;
    let auth = match &engine_config.auth {
        Some(a) => format!("digest (realm {:?}, {})", a.realm, a.algorithms.join(", ")),
        None => {
            tracing::warn!(
                "no credentials file: serving OPEN registration (anyone can register any AOR)"
            );
            "none (open registration)".to_owned()
        }
    };
    warn_host_settings();
    let shared = Arc::new(Shared::new(engine_config)?);
    // Block SIGINT/SIGTERM/SIGHUP before the shards start so that only this thread gets them.
    let signals = block_signals();
    let server = runtime::run(runtime_config, Arc::clone(&shared))?;
    tracing::info!(
        backend = ?server.backend(),
        shards = server.stats().len(),
        udp = ?server.udp_addrs(),
        tcp = ?server.tcp_addrs(),
        tls = ?server.tls_addrs(),
        auth = %auth,
        "sipreg started"
    );
    let signal = loop {
        let signal = wait_signal(&signals);
        if signal != libc::SIGHUP {
            break signal;
        }
        match reload(cli, &shared, &server) {
            Ok(what) => tracing::info!(reloaded = %what, "configuration reloaded (SIGHUP)"),
            Err(e) => {
                tracing::error!(error = %e, "reload refused, the previous configuration stays in force")
            }
        }
    };
    tracing::info!(signal, "stopping");
    server.shutdown()?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP: re-reads the configuration file (flags still override it) and replaces the
/// credentials and the TLS certificate without touching bindings or open connections. Any
/// error leaves everything as it was.
fn reload(
    cli: &Cli,
    shared: &Shared,
    server: &runtime::Server,
) -> Result<String, Box<dyn std::error::Error>> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    apply_flags(&mut config, cli);
    // Validate everything before changing anything.
    let engine = config.engine_config(random_bytes())?;
    let runtime = config.runtime_config()?;
    let credentials = match (&engine.auth, shared.authenticator()) {
        (Some(a), Some(_)) => Some(sipreg::auth::Credentials::parse(
            &a.credentials_text,
            &a.credentials_name,
        )?),
        (None, None) => None,
        _ => return Err("turning authentication on or off needs a restart".into()),
    };
    let mut done = Vec::new();
    if !server.tls_addrs().is_empty() && runtime.tls_files.is_some() {
        let fingerprint = server.reload_tls(runtime.tls_files.as_ref(), &runtime.client_auth)?;
        done.push(format!("TLS certificate {fingerprint}"));
    }
    if let (Some(c), Some(auth)) = (credentials, shared.authenticator()) {
        done.push(format!("{} credentials", c.len()));
        auth.set_credentials(c);
    }
    Ok(done.join(", "))
}

/// The warnings of `tuning/check.sh`, at start.
fn warn_host_settings() {
    let read = |key: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/proc/sys/{}", key.replace('.', "/")))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    for (key, want) in [
        ("net.core.rmem_max", 16_777_216),
        ("net.core.wmem_max", 16_777_216),
        ("net.core.netdev_max_backlog", 250_000),
    ] {
        if let Some(cur) = read(key) {
            if cur < want {
                tracing::warn!(
                    setting = key,
                    current = cur,
                    recommended = want,
                    "host setting below recommendation (see tuning/)"
                );
            }
        }
    }
}

fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset operations on a zeroed, owned set; pthread_sigmask on this thread (the
    // mask is inherited by the shard threads spawned afterwards).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        libc::sigaddset(&raw mut set, libc::SIGINT);
        libc::sigaddset(&raw mut set, libc::SIGTERM);
        libc::sigaddset(&raw mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut());
        set
    }
}

fn wait_signal(set: &libc::sigset_t) -> i32 {
    let mut sig: libc::c_int = 0;
    // SAFETY: waits for one of the blocked signals in `set`.
    unsafe { libc::sigwait(set, &raw mut sig) };
    sig
}
