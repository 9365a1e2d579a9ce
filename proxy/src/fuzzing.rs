//! Entry points for the fuzz driver (`fuzz/` in the workspace): each takes
//! arbitrary bytes, as a client or a node could send them, and must
//! neither panic nor hang. They call the same code the proxy runs; only
//! the I/O around it is left out.

use crate::scram::{
    ClientBinding, ClientCredential, DEFAULT_ITERATIONS, SCRAM_SHA_256, SCRAM_SHA_256_PLUS,
    ScramClient, ScramSecret, ScramServer,
};
use crate::wire::{fe, frame, startup};

pub use crate::session::fuzzing::{client_stream, server_stream};

/// A client's first packet: length, then decoding.
pub fn startup(data: &[u8]) {
    if let Ok(Some(len)) = startup::packet_len(data)
        && data.len() >= len
        && let Ok(startup::StartupRequest::Startup(params)) = startup::parse(&data[..len])
    {
        let _ = params.user();
        let _ = params.database();
        let _ = params.protocol_options().count();
    }
}

/// A statement's sqlcommenter `traceparent` (read when tracing is on),
/// and the verb a span is named after.
pub fn traceparent(data: &[u8]) {
    let _ = crate::otel::traceparent::find(data);
    let mut note = crate::otel::TraceNote::default();
    note.parsed(b"", data, true);
    note.bound(b"");
}

/// Tagged frames, and the login messages read from them.
pub fn login_messages(data: &[u8]) {
    let mut rest = data;
    while let Ok(Some(f)) = frame::split_frame(rest) {
        let _ = fe::password(f.body);
        let _ = fe::sasl_initial_response(f.body);
        let _ = fe::parse_fields(f.body);
        let _ = fe::bind_fields(f.body);
        let _ = fe::target_fields(f.body);
        rest = &rest[f.len..];
    }
}

/// The two SCRAM messages a client sends, split at the first `0xff`
/// (which SCRAM text never holds); the first byte picks the mechanism and
/// whether the link is TLS.
pub fn scram_server(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (first, last) = split_at_ff(rest);
    let secret = fixed_secret();
    let hash = [7u8; 32];
    let server = ScramServer {
        secret: &secret,
        doomed: flags & 4 != 0,
        mechanism: if flags & 1 != 0 {
            SCRAM_SHA_256_PLUS
        } else {
            SCRAM_SHA_256
        },
        cert_hash: (flags & 2 != 0).then_some(&hash[..]),
    };
    if let Ok(first) = server.first(first) {
        let _ = first.finish(last);
    }
}

/// The two SCRAM messages a node sends to pgrelay's client, split at the
/// first `0xff`; the client's nonce is ours, so a server-first that
/// extends it is made up from the input's tail.
pub fn scram_client(data: &[u8]) {
    let (first, last) = split_at_ff(data);
    let credential = ClientCredential::ClientKey {
        client_key: [1; 32],
        server_key: [2; 32],
    };
    let binding = match data.first().map(|b| b % 3) {
        Some(0) => ClientBinding::NoTls,
        Some(1) => ClientBinding::NotOffered,
        _ => ClientBinding::Bind(vec![9; 32]),
    };
    let client = ScramClient::new(credential, binding);
    let nonce = client_nonce(&client.first_message());
    // Half the time the node's nonce extends ours, so parsing goes on.
    let mut server_first = Vec::new();
    if first.first().is_some_and(|b| b % 2 == 0) {
        server_first.extend_from_slice(b"r=");
        server_first.extend_from_slice(nonce.as_bytes());
    }
    server_first.extend_from_slice(first);
    if let Ok(last_step) = client.on_server_first(&server_first) {
        let _ = last_step.on_server_final(last);
    }
}

/// Stored verifiers and secrets: `pg_authid` text, TLS certificates.
pub fn secrets(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ScramSecret::parse(text);
        let _ = crate::passthrough::StoredSecret::parse(text);
        let _ = pgrelay_health::conninfo::parse(text);
        let _ = pgrelay_health::conninfo::redact(text);
    }
    let _ = pgrelay_health::node_tls::end_point_hash(data);
}

/// What a node says during login, watched for a cleartext request; the
/// first byte is the size of the pieces it arrives in.
pub fn auth_guard(data: &[u8]) {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let mut guard = pgrelay_health::node_tls::AuthGuard::new(chunk & 1 != 0);
    for piece in rest.chunks(usize::from(chunk).max(1)) {
        if guard.feed(piece).is_err() {
            return;
        }
    }
}

fn split_at_ff(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// The `r=` value of a client-first message.
fn client_nonce(first: &str) -> String {
    first
        .split(',')
        .find_map(|attr| attr.strip_prefix("r="))
        .unwrap_or_default()
        .to_owned()
}

/// Made once: PBKDF2 per input would be all the fuzzer measured.
fn fixed_secret() -> ScramSecret {
    static SECRET: std::sync::OnceLock<ScramSecret> = std::sync::OnceLock::new();
    SECRET
        .get_or_init(|| {
            ScramSecret::from_password("pencil", b"saltsalt".to_vec(), DEFAULT_ITERATIONS)
        })
        .clone()
}
