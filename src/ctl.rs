//! `sipreg ctl`: a thin client of the management API (see `sipreg::mgmt`) — lookup, delete,
//! dump, stats, reload — with human output or the API's JSON (`--json`).

use std::io::{BufRead, BufReader, Write};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

/// `sipreg ctl` arguments.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Args {
    /// Management API base URL.
    #[arg(long, env = "SIPREG_URL", default_value = "http://127.0.0.1:9060")]
    url: String,
    /// Bearer token (or SIPREG_TOKEN).
    #[arg(long, env = "SIPREG_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the API's JSON (NDJSON for dump) instead of text.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    op: Op,
}

#[derive(clap::Subcommand, Debug, Clone)]
enum Op {
    /// Show an AOR's bindings.
    Lookup {
        /// AOR, e.g. sip:alice@example.com.
        aor: String,
    },
    /// Remove an AOR's bindings (all, or the one with ID).
    Delete {
        /// AOR.
        aor: String,
        /// Binding id (from lookup).
        id: Option<String>,
    },
    /// Stream all bindings.
    Dump {
        /// Only AORs in this domain.
        #[arg(long)]
        domain: Option<String>,
        /// Only AORs whose user part (or, with a scheme, whole AOR) starts with this.
        #[arg(long)]
        prefix: Option<String>,
        /// At most this many AORs, then print the cursor to continue from.
        #[arg(long)]
        limit: Option<usize>,
        /// Continue after this cursor.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Counters and gauges.
    Stats,
    /// Reload the configuration (as SIGHUP does).
    Reload,
}

/// Runs one command; exit 0 on success, 1 on an API error, 2 when the API is unreachable.
pub(crate) fn run(args: &Args) -> ExitCode {
    match exec(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Api(status, msg)) => {
            eprintln!("sipreg ctl: {status}: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Transport(msg)) => {
            eprintln!("sipreg ctl: {msg}");
            ExitCode::from(2)
        }
    }
}

enum Failure {
    Api(u16, String),
    Transport(String),
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@+!$*,".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn exec(args: &Args) -> Result<(), Failure> {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .build(),
    );
    let base = args.url.trim_end_matches('/');
    let (method, path) = match &args.op {
        Op::Lookup { aor } => ("GET", format!("/v1/aors/{}", encode(aor))),
        Op::Delete { aor, id: None } => ("DELETE", format!("/v1/aors/{}", encode(aor))),
        Op::Delete { aor, id: Some(id) } => (
            "DELETE",
            format!("/v1/aors/{}/bindings/{}", encode(aor), encode(id)),
        ),
        Op::Dump {
            domain,
            prefix,
            limit,
            cursor,
        } => {
            let mut q = Vec::new();
            let mut add = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    q.push(format!("{k}={}", encode(&v)));
                }
            };
            add("domain", domain.clone());
            add("prefix", prefix.clone());
            add("limit", limit.map(|l| l.to_string()));
            add("cursor", cursor.clone());
            ("GET", format!("/v1/bindings?{}", q.join("&")))
        }
        Op::Stats => ("GET", "/v1/stats".to_owned()),
        Op::Reload => ("POST", "/v1/reload".to_owned()),
    };
    let url = format!("{base}{path}");
    let mut request = ureq::http::Request::builder().method(method).uri(&url);
    if let Some(t) = &args.token {
        request = request.header("Authorization", format!("Bearer {t}"));
    }
    let result = request
        .body(())
        .map_err(|e| Failure::Transport(format!("{url}: {e}")))
        .and_then(|r| {
            agent
                .run(r)
                .map_err(|e| Failure::Transport(format!("{url}: {e}")))
        });
    let response = result?;
    let status = response.status().as_u16();
    let mut reader = BufReader::new(response.into_body().into_reader());
    if status != 200 {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut reader, &mut text);
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
            .unwrap_or(text);
        return Err(Failure::Api(status, msg.trim().to_owned()));
    }
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut line = String::new();
    let mut count = 0u64;
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Err(Failure::Transport(format!("{url}: {e}"))),
        }
        if line.trim().is_empty() {
            continue;
        }
        let written = if args.json {
            out.write_all(line.as_bytes())
        } else {
            let v: Value = serde_json::from_str(&line)
                .map_err(|e| Failure::Transport(format!("{url}: not JSON: {e}")))?;
            if v.get("contact").is_some() {
                count += 1;
            }
            out.write_all(human(&args.op, &v).as_bytes())
        };
        // A closed pipe (`| head`) ends the output quietly.
        if written.is_err() {
            return Ok(());
        }
    }
    if matches!(args.op, Op::Dump { .. }) && !args.json {
        let _ = writeln!(out, "{count} bindings");
    }
    Ok(())
}

fn s<'v>(v: &'v Value, k: &str) -> &'v str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn binding_line(b: &Value) -> String {
    let ua = s(b, "user_agent");
    format!(
        "{:<40} {:<50} expires {:>5}s  {}/{}  {}  id {}\n",
        s(b, "aor"),
        s(b, "contact"),
        b.get("expires").and_then(Value::as_u64).unwrap_or(0),
        s(b, "transport"),
        s(b, "source"),
        if ua.is_empty() { "-" } else { ua },
        s(b, "id"),
    )
}

fn human(op: &Op, v: &Value) -> String {
    match op {
        Op::Lookup { .. } => v
            .get("bindings")
            .and_then(Value::as_array)
            .map(|list| list.iter().map(binding_line).collect())
            .unwrap_or_default(),
        Op::Delete { .. } => format!(
            "removed {} binding(s) of {}\n",
            v.get("removed").and_then(Value::as_u64).unwrap_or(0),
            s(v, "aor")
        ),
        Op::Dump { .. } => match v.get("next_cursor").and_then(Value::as_str) {
            Some(c) => format!("more: --cursor '{c}'\n"),
            None => binding_line(v),
        },
        Op::Stats => {
            let mut out = String::new();
            if let Some(map) = v.as_object() {
                for (k, val) in map {
                    if !val.is_array() && !val.is_object() {
                        out.push_str(&format!("{k:<16} {val}\n"));
                    }
                }
            }
            out
        }
        Op::Reload => format!("reloaded: {}\n", s(v, "reloaded")),
    }
}
