//! `sipreg`: command line -> configuration -> management API, `runtime::run`, then wait for
//! SIGINT/SIGTERM (SIGHUP reloads). `sipreg ctl ...` is a thin client of the management API.
#![allow(clippy::disallowed_methods)]
#![allow(unsafe_code)]

mod ctl;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use clap::Parser;
use sipreg::config::Config;
use sipreg::engine::Shared;
use sipreg::mgmt::{self, Management};
use sipreg::persist::{Durability, Persister};
use sipreg::remote::RedisLocation;
use sipreg::runtime::{self, Backend, TlsReloader};
use sipreg::store::ChangeFeed;
use sipreg::transport::tls::ServerTls;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A carrier-scale SIP registrar. Flags override the configuration file.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
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
    /// Management API listen address (`off` disables it).
    #[arg(long)]
    mgmt: Option<String>,
    /// Persistence: none, interval or ack.
    #[arg(long)]
    durability: Option<String>,
    /// Persistence data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep bindings in Redis at this URL (repeatable: cluster seed nodes), shared with every
    /// node pointed at it. Sets location.backend = "redis".
    #[arg(long)]
    redis: Vec<String>,
    /// The --redis URLs are Redis Cluster nodes.
    #[arg(long)]
    redis_cluster: bool,
}

#[derive(clap::Subcommand, Debug, Clone)]
enum Command {
    /// Query and manage a running sipreg through its management API (the kamcmd equivalent).
    Ctl(ctl::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Ctl(args)) = &cli.command {
        return ctl::run(args);
    }
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
    if let Err(e) = apply_flags(&mut config, &cli) {
        eprintln!("sipreg: {e}");
        return ExitCode::from(2);
    }
    if cli.print_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    // The storage engine's own info lines (journal rotation, flushes) are noise for operators
    // unless asked for explicitly (e.g. `--log info,fjall=info`).
    let quiet_storage = |f: &str| {
        if f.contains("fjall") || f.contains("lsm_tree") {
            f.to_owned()
        } else {
            format!("{f},fjall=warn,lsm_tree=warn")
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(quiet_storage(&config.runtime.log))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(quiet_storage("info")));
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

impl Cli {
    /// The flags a reload re-applies (the subcommand is irrelevant there).
    fn clone_args(&self) -> Self {
        Self {
            command: None,
            ..self.clone()
        }
    }
}

fn apply_flags(config: &mut Config, cli: &Cli) -> Result<(), String> {
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
    if let Some(d) = &cli.durability {
        config.persistence.durability.clone_from(d);
    }
    if let Some(d) = &cli.data_dir {
        config.persistence.dir.clone_from(d);
    }
    if !cli.redis.is_empty() {
        config.location.backend = "redis".into();
        config.location.redis_urls.clone_from(&cli.redis);
    }
    if cli.redis_cluster {
        config.location.redis_cluster = true;
    }
    match cli.mgmt.as_deref() {
        None => {}
        Some("off") => config.management.enabled = false,
        Some(addr) => {
            config.management.enabled = true;
            config.management.listen = addr
                .parse()
                .map_err(|_| format!("--mgmt: {addr:?} is not an address (or `off`)"))?;
        }
    }
    Ok(())
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
    // Block SIGINT/SIGTERM/SIGHUP before any thread starts (the persistence keyspace starts
    // its own workers when opened), so that only this thread gets them: a thread without the
    // mask would take the signal's default action and kill the process mid-write.
    let signals = block_signals();
    let engine_config = config.engine_config(random_bytes())?;
    let mut runtime_config = config.runtime_config()?;
    let mgmt_config = config.management_config()?;
    let redis_config = config.redis_config()?;
    // With Redis, Redis is the durable store: no local persistence.
    let persist_config = match redis_config {
        Some(_) => None,
        None => config.persist_config()?,
    };
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
    let drop_flows = engine_config.remove_on_close;
    let persister = persist_config.as_ref().map(Persister::open).transpose()?;
    let feed = persister
        .as_ref()
        .map(|p| Arc::clone(p) as Arc<dyn ChangeFeed>);
    let shared = Arc::new(Shared::with_feed(engine_config, feed)?);
    // The management API comes first (/healthz answers while bindings load; /readyz once the
    // SIP listeners are open).
    let tls: Arc<OnceLock<TlsReloader>> = Arc::new(OnceLock::new());
    let ctx = {
        let (cli_args, shared, tls) = (cli.clone_args(), Arc::clone(&shared), Arc::clone(&tls));
        mgmt::Context::new(
            Arc::clone(&shared),
            Box::new(move || reload(&cli_args, &shared, tls.get()).map_err(|e| e.to_string())),
        )
    };
    if let Some(p) = &persister {
        ctx.set_persister(Arc::clone(p));
    }
    let management = mgmt_config
        .map(|m| {
            Management::start(&m, Arc::clone(&ctx))
                .map_err(|e| format!("management API on {}: {e}", m.listen))
        })
        .transpose()?;
    // Bindings are loaded before the SIP listeners open.
    if let (Some(p), Some(c)) = (&persister, &persist_config) {
        let loaded = p.load_into(shared.store(), runtime::wall_clock(), drop_flows)?;
        tracing::info!(
            dir = %c.dir.display(),
            durability = ?c.durability,
            loaded = loaded.loaded,
            expired = loaded.expired,
            flows = loaded.flows,
            corrupt = loaded.corrupt,
            seconds = loaded.elapsed.as_secs_f64(),
            "bindings loaded"
        );
        if c.durability == Durability::Ack {
            runtime_config.ack_gate = Some(Arc::clone(p) as Arc<dyn runtime::AckGate>);
        }
    } else if redis_config.is_none() {
        tracing::warn!("persistence off: bindings live in memory only and are lost at restart");
    }
    let location = match &redis_config {
        Some(r) => {
            let location = RedisLocation::start(r, runtime::shard_count(runtime_config.shards))?;
            runtime_config.remote = Some(Arc::clone(&location) as Arc<dyn runtime::RemoteStore>);
            ctx.set_location(Arc::clone(&location));
            tracing::info!(
                urls = ?r.urls,
                cluster = r.cluster,
                "bindings live in Redis ([persistence] is unused: run Redis with AOF)"
            );
            Some(location)
        }
        None => None,
    };
    let server = runtime::run(runtime_config, Arc::clone(&shared))?;
    let _ = tls.set(server.tls_reloader());
    ctx.set_ready(mgmt::ServerInfo {
        backend: server.backend(),
        shards: server.stats().to_vec(),
    });
    tracing::info!(
        backend = ?server.backend(),
        shards = server.stats().len(),
        udp = ?server.udp_addrs(),
        tcp = ?server.tcp_addrs(),
        tls = ?server.tls_addrs(),
        management = ?management.as_ref().map(Management::local_addr),
        auth = %auth,
        "sipreg started"
    );
    let signal = loop {
        let signal = wait_signal(&signals);
        if signal != libc::SIGHUP {
            break signal;
        }
        match reload(&cli.clone_args(), &shared, tls.get()) {
            Ok(what) => tracing::info!(reloaded = %what, "configuration reloaded (SIGHUP)"),
            Err(e) => {
                tracing::error!(error = %e, "reload refused, the previous configuration stays in force")
            }
        }
    };
    tracing::info!(signal, "stopping");
    if let Some(m) = management {
        m.shutdown();
    }
    server.shutdown()?;
    if let Some(l) = &location {
        l.close();
    }
    if let Some(p) = &persister {
        p.close()?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP and `POST /v1/reload`: re-reads the configuration file (flags still override it) and
/// applies limits, registrar policy, defences, credentials and the TLS certificate without
/// touching bindings or open connections. Any error leaves everything as it was.
fn reload(
    cli: &Cli,
    shared: &Shared,
    tls: Option<&TlsReloader>,
) -> Result<String, Box<dyn std::error::Error>> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    apply_flags(&mut config, cli)?;
    // Validate everything before changing anything: the new certificate is loaded first and
    // swapped in only after the engine accepted its part.
    let engine = config.engine_config(random_bytes())?;
    let runtime = config.runtime_config()?;
    let certificate = match (&runtime.tls_files, tls) {
        (Some(f), Some(t)) if t.enabled() => Some((
            t,
            ServerTls::from_pem_files_with(&f.cert, &f.key, &runtime.client_auth)?,
        )),
        _ => None,
    };
    let mut done = vec![shared.reload(engine)?];
    if let Some((t, certificate)) = certificate {
        done.push(format!("TLS certificate {}", t.install(certificate)));
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
