//! HTTP serving and the JSON endpoints (see the table in `mod.rs`).

use std::borrow::Cow;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, Semaphore};

use super::{metrics, now, Context};
use crate::sip::Uri;
use crate::store::{AorKey, Binding, ScanCursor, Transport};

type Body = BoxBody<Bytes, Infallible>;

/// Concurrent management connections; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 64;
/// A dump is written in chunks of about this size; a few chunks are in flight at most.
const CHUNK: usize = 64 * 1024;
const CHUNKS_IN_FLIGHT: usize = 4;
/// Largest page a paginated dump may ask for.
const MAX_LIMIT: usize = 1_000_000;

pub(super) struct State {
    pub(super) ctx: Arc<Context>,
    pub(super) token: Option<String>,
}

pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = &mut stop => return,
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "management accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(route(&state, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = conn.await;
            drop(permit);
        });
    }
}

async fn route(state: &State, req: Request<Incoming>) -> Response<Body> {
    let ctx = &state.ctx;
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match (&method, path.as_str()) {
        (&Method::GET, "/healthz") => return text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => {
            return match ctx.server.get() {
                Some(_) => text(StatusCode::OK, "ready\n"),
                None => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
            }
        }
        _ => {}
    }
    if !authorized(state, &req) {
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        r.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["metrics"]) => {
            let mut r = full(StatusCode::OK, metrics::render(ctx));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        (&Method::GET, ["v1", "stats"]) => json_response(StatusCode::OK, &metrics::stats_json(ctx)),
        (&Method::GET, ["v1", "aors", aor]) => match parse_aor(aor) {
            Ok(aor) => get_aor(ctx, &aor).await,
            Err(msg) => error(StatusCode::BAD_REQUEST, &msg),
        },
        (&Method::DELETE, ["v1", "aors", aor]) => match parse_aor(aor) {
            Ok(aor) => delete(ctx, &aor, None).await,
            Err(msg) => error(StatusCode::BAD_REQUEST, &msg),
        },
        (&Method::DELETE, ["v1", "aors", aor, "bindings", id]) => {
            match (parse_aor(aor), u64::from_str_radix(id, 16)) {
                (Ok(aor), Ok(id)) => delete(ctx, &aor, Some(id)).await,
                (Err(msg), _) => error(StatusCode::BAD_REQUEST, &msg),
                (_, Err(_)) => error(
                    StatusCode::BAD_REQUEST,
                    "binding id: 16 hex digits expected",
                ),
            }
        }
        (&Method::GET, ["v1", "bindings"]) => match DumpQuery::parse(req.uri().query()) {
            Ok(q) => match ctx.location.get() {
                Some(location) => dump_remote(location, q).await,
                None => dump(ctx, q),
            },
            Err(msg) => error(StatusCode::BAD_REQUEST, &msg),
        },
        (&Method::POST, ["v1", "reload"]) => {
            let ctx = Arc::clone(ctx);
            let result = tokio::task::spawn_blocking(move || (ctx.reload)()).await;
            match result {
                Ok(Ok(done)) => {
                    tracing::info!(reloaded = %done, "configuration reloaded (API)");
                    json_response(StatusCode::OK, &json!({ "reloaded": done }))
                }
                Ok(Err(why)) => {
                    tracing::error!(error = %why, "reload refused, the previous configuration stays in force");
                    error(StatusCode::UNPROCESSABLE_ENTITY, &why)
                }
                Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "reload failed"),
            }
        }
        (_, ["metrics" | "healthz" | "readyz"])
        | (_, ["v1", "stats" | "bindings" | "reload"])
        | (_, ["v1", "aors", _])
        | (_, ["v1", "aors", _, "bindings", _]) => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
        }
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

fn authorized(state: &State, req: &Request<Incoming>) -> bool {
    let Some(token) = &state.token else {
        return true;
    };
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    bool::from(given.as_bytes().ct_eq(token.as_bytes()))
}

/// The path segment as a canonical AOR, or why not.
fn parse_aor(segment: &str) -> Result<AorKey, String> {
    let bad = |why: &str| format!("aor: {why}");
    let decoded = percent_decode(segment).ok_or_else(|| bad("bad percent-encoding"))?;
    let text = if decoded.contains(':') {
        decoded
    } else {
        format!("sip:{decoded}")
    };
    let uri = Uri::parse(text.as_bytes()).map_err(|e| bad(&e.to_string()))?;
    let mut canonical = String::new();
    uri.write_aor(&mut canonical)
        .map_err(|_| bad("not a sip, sips or tel URI"))?;
    Ok(AorKey::new(&canonical))
}

/// RFC 3986 percent-decoding; `None` for a malformed escape or non-UTF-8 result. (Four lines do
/// what a dependency would.)
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// One binding as the API shows it.
#[derive(Serialize)]
struct BindingJson<'a> {
    aor: &'a str,
    id: String,
    contact: Cow<'a, str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    params: Cow<'a, str>,
    /// Seconds left.
    expires: u32,
    /// Unix seconds.
    expires_at: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    q: Option<f64>,
    source: String,
    transport: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    user_agent: Cow<'a, str>,
    call_id: Cow<'a, str>,
    cseq: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reg_id: Option<u32>,
    #[serde(skip_serializing_if = "str::is_empty")]
    path: Cow<'a, str>,
    registered_at: u32,
}

impl<'a> BindingJson<'a> {
    fn new(aor: &'a AorKey, b: &'a Binding, now_secs: u32) -> Self {
        let text = String::from_utf8_lossy;
        Self {
            aor: aor.as_str(),
            id: format!("{:016x}", b.id()),
            contact: text(b.contact()),
            params: text(b.params()),
            expires: b.remaining(now_secs),
            expires_at: b.expires_at(),
            q: b.q().map(|q| f64::from(q) / 1000.0),
            source: b.source().to_string(),
            transport: match b.transport() {
                Transport::Udp => "udp",
                Transport::Tcp => "tcp",
                Transport::Tls => "tls",
            },
            user_agent: text(b.user_agent()),
            call_id: text(b.call_id()),
            cseq: b.cseq(),
            instance: b.instance().map(text),
            reg_id: b.reg_id(),
            path: text(b.path()),
            registered_at: b.registered_at(),
        }
    }
}

fn now_secs() -> u32 {
    u32::try_from(now().as_secs()).unwrap_or(u32::MAX)
}

async fn get_aor(ctx: &Context, aor: &AorKey) -> Response<Body> {
    let secs = now_secs();
    let to_json = |live: &mut dyn Iterator<Item = &Binding>| {
        live.map(|b| serde_json::to_value(BindingJson::new(aor, b, secs)))
            .collect::<Result<Vec<_>, _>>()
    };
    let bindings = match ctx.location.get() {
        None => ctx.shared.store().lookup(aor, now(), to_json),
        Some(location) => match location.get(aor).await {
            Err(why) => return error(StatusCode::SERVICE_UNAVAILABLE, &why),
            Ok(None) => None,
            Ok(Some(value)) => match crate::engine::decode_value(&value) {
                Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                Ok((_, list)) => {
                    let mut live = list.iter().filter(|b| b.expires_at() > secs).peekable();
                    live.peek().is_some().then(|| to_json(&mut live))
                }
            },
        },
    };
    match bindings {
        Some(Ok(list)) => json_response(
            StatusCode::OK,
            &json!({ "aor": aor.as_str(), "bindings": list }),
        ),
        Some(Err(_)) => error(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed"),
        None => error(StatusCode::NOT_FOUND, "no bindings for this AOR"),
    }
}

/// Removes all of the AOR's bindings, or the one with `id`. The change goes through the store
/// like any REGISTER (change feed, persistence).
async fn delete(ctx: &Context, aor: &AorKey, id: Option<u64>) -> Response<Body> {
    if let Some(location) = ctx.location.get() {
        return match location.delete(aor, id).await {
            Err(why) => error(StatusCode::SERVICE_UNAVAILABLE, &why),
            Ok(removed) => deleted(aor, removed),
        };
    }
    let removed = ctx.shared.store().modify(aor, now(), |bindings| {
        let mut removed = 0;
        let mut i = 0;
        while let Some(b) = bindings.get(i) {
            if id.is_none_or(|id| b.id() == id) {
                bindings.remove(i);
                removed += 1;
            } else {
                i += 1;
            }
        }
        removed
    });
    deleted(aor, removed)
}

fn deleted(aor: &AorKey, removed: usize) -> Response<Body> {
    if removed == 0 {
        return error(StatusCode::NOT_FOUND, "no such binding");
    }
    tracing::info!(aor = aor.as_str(), removed, "bindings removed (API)");
    json_response(
        StatusCode::OK,
        &json!({ "aor": aor.as_str(), "removed": removed }),
    )
}

/// `GET /v1/bindings` parameters.
#[derive(Debug, Default)]
struct DumpQuery {
    domain: Option<String>,
    prefix: Option<String>,
    limit: Option<usize>,
    cursor: Option<ScanCursor>,
}

impl DumpQuery {
    fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut q = Self::default();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(&value.replace('+', " "))
                .ok_or_else(|| format!("{key}: bad percent-encoding"))?;
            match key {
                "domain" => q.domain = Some(value.to_ascii_lowercase()),
                "prefix" => q.prefix = Some(value),
                "limit" => {
                    let n: usize = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| format!("limit: 1 to {MAX_LIMIT}"))?;
                    q.limit = Some(n);
                }
                "cursor" => {
                    q.cursor =
                        Some(ScanCursor::decode(&value).ok_or_else(|| {
                            "cursor: not a cursor from a previous page".to_owned()
                        })?);
                }
                other => return Err(format!("unknown parameter {other:?}")),
            }
        }
        Ok(q)
    }

    fn matches(&self, aor: &str) -> bool {
        let (scheme_len, rest) = match aor.split_once(':') {
            Some((scheme, rest)) => (scheme.len() + 1, rest),
            None => (0, aor),
        };
        if let Some(d) = &self.domain {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            let host = host.split([':', ';']).next().unwrap_or_default();
            if !host.eq_ignore_ascii_case(d) {
                return false;
            }
        }
        match &self.prefix {
            // With a scheme the prefix applies to the whole AOR, else to what follows it.
            Some(p) if p.contains(':') => aor.starts_with(p.as_str()),
            Some(p) => aor
                .get(scheme_len..)
                .is_some_and(|r| r.starts_with(p.as_str())),
            None => true,
        }
    }
}

/// Streams NDJSON, one binding per line, from a blocking thread through a bounded channel:
/// memory stays at a few chunks whatever the store holds, and no map lock is held while a
/// chunk waits for a slow client. With `limit`, at most that many AORs, then a last line
/// `{"next_cursor": "..."}` when more remain.
fn dump(ctx: &Arc<Context>, q: DumpQuery) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    let ctx = Arc::clone(ctx);
    tokio::task::spawn_blocking(move || {
        let store = ctx.shared.store();
        let (now, secs) = (now(), now_secs());
        // Both callbacks write the chunk: one under the AOR's lock, one between AORs.
        let buf = std::cell::RefCell::new(Vec::with_capacity(CHUNK + 4096));
        let mut gone = false;
        let filter = |aor: &str| q.matches(aor);
        let next = store.scan(
            q.cursor.as_ref(),
            q.limit.unwrap_or(usize::MAX),
            now,
            &filter,
            &mut |aor, live| {
                let mut buf = buf.borrow_mut();
                for b in live {
                    if serde_json::to_writer(&mut *buf, &BindingJson::new(aor, b, secs)).is_ok() {
                        buf.push(b'\n');
                    }
                }
            },
            // Between AORs, with no lock held: hand over a full chunk (waits for the client).
            &mut || {
                let mut buf = buf.borrow_mut();
                if buf.len() >= CHUNK {
                    let chunk = std::mem::replace(&mut *buf, Vec::with_capacity(CHUNK + 4096));
                    gone = tx.blocking_send(Bytes::from(chunk)).is_err();
                }
                !gone
            },
        );
        if gone {
            return;
        }
        let mut buf = buf.into_inner();
        if let (Some(_), Some(c)) = (q.limit, next) {
            let line = json!({ "next_cursor": c.encode() });
            if serde_json::to_writer(&mut buf, &line).is_ok() {
                buf.push(b'\n');
            }
        }
        if !buf.is_empty() {
            let _ = tx.blocking_send(Bytes::from(buf));
        }
    });
    let mut r = Response::new(ChannelBody(rx).boxed());
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    r
}

/// The dump with the Redis backend: a walk over Redis (every master of a cluster), decoded and
/// filtered here, streamed through the same bounded channel. `limit` cuts it; there is no
/// cursor (Redis SCAN cursors are per server and may repeat an AOR).
async fn dump_remote(location: &crate::remote::RedisLocation, q: DumpQuery) -> Response<Body> {
    if q.cursor.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "cursor: not supported with the Redis backend (use limit, or filter by domain/prefix)",
        );
    }
    let (scan_tx, mut scan_rx) = mpsc::channel(256);
    if let Err(why) = location.scan(scan_tx).await {
        return error(StatusCode::SERVICE_UNAVAILABLE, &why);
    }
    let (tx, rx) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    tokio::spawn(async move {
        let secs = now_secs();
        let mut buf = Vec::with_capacity(CHUNK + 4096);
        let mut left = q.limit.unwrap_or(usize::MAX);
        while let Some(item) = scan_rx.recv().await {
            let (aor, value) = match item {
                Ok(item) => item,
                Err(why) => {
                    // The walk broke off: say so in the stream (the status is already sent).
                    if serde_json::to_writer(&mut buf, &json!({ "error": why })).is_ok() {
                        buf.push(b'\n');
                    }
                    break;
                }
            };
            if !q.matches(&aor) {
                continue;
            }
            let Ok((_, list)) = crate::engine::decode_value(&value) else {
                continue;
            };
            let key = AorKey::new(&aor);
            for b in list.iter().filter(|b| b.expires_at() > secs).take(left) {
                if serde_json::to_writer(&mut buf, &BindingJson::new(&key, b, secs)).is_ok() {
                    buf.push(b'\n');
                    left -= 1;
                }
            }
            if left == 0 {
                break;
            }
            if buf.len() >= CHUNK {
                let chunk = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK + 4096));
                if tx.send(Bytes::from(chunk)).await.is_err() {
                    return; // the client went away; dropping the receiver stops the walk
                }
            }
        }
        if !buf.is_empty() {
            let _ = tx.send(Bytes::from(buf)).await;
        }
    });
    let mut r = Response::new(ChannelBody(rx).boxed());
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    r
}

/// A response body fed by a bounded channel.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = full(status, body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut body = value.to_string();
    body.push('\n');
    let mut r = full(status, body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, &json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aor_paths_are_canonicalised() {
        let key = |s: &str| parse_aor(s).map(|k| k.as_str().to_owned()).ok();
        assert_eq!(
            key("sip:Alice@Example.COM").as_deref(),
            Some("sip:Alice@example.com")
        );
        assert_eq!(
            key("alice@example.com").as_deref(),
            Some("sip:alice@example.com")
        );
        assert_eq!(
            key("sip%3Aalice%40example.com%3Btransport%3Dtcp").as_deref(),
            Some("sip:alice@example.com")
        );
        assert_eq!(key("%zz"), None);
        assert_eq!(key("mailto:alice@example.com"), None);
    }

    #[test]
    fn dump_query() {
        let q = DumpQuery::parse(Some("domain=Example.com&prefix=%2B4930&limit=10")).unwrap();
        assert!(q.matches("sip:+493012@example.com"));
        assert!(!q.matches("sip:+493112@example.com"));
        assert!(!q.matches("sip:+493012@example.org"));
        assert!(q.matches("sip:+493012@example.com:5070"));
        assert_eq!(q.limit, Some(10));
        let scheme = DumpQuery::parse(Some("prefix=sips:a")).unwrap();
        assert!(scheme.matches("sips:ab@x"));
        assert!(!scheme.matches("sip:ab@x"));
        for bad in [
            "limit=0",
            "limit=x",
            "cursor=nope",
            "colour=red",
            "prefix=%g0",
        ] {
            assert!(DumpQuery::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
