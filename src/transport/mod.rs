//! Stream transports: TLS sessions (`tls`, the only module that uses rustls). Framing of SIP
//! over streams (Content-Length) is the sans-IO parser's (`sip::parse_stream`), driven by
//! `engine::Engine::handle_stream`.

pub mod tls;
