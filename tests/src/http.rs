//! A deliberately small HTTP/1.1 client for the admin endpoints: one
//! request per connection (`Connection: close`), the reply read to EOF.
//! Enough for tests; the server side is hyper.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Any request in a test taking longer than this is a failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path`.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<Reply> {
    request(addr, "GET", path).await
}

/// `method path` with an empty body.
pub async fn request(addr: SocketAddr, method: &str, path: &str) -> anyhow::Result<Reply> {
    request_with(addr, method, path, &[]).await
}

/// `method path` with extra headers (`Authorization`, `Origin`, or a
/// `Host` of its own, which replaces the default one).
pub async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<Reply> {
    let mut extra = String::new();
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        extra.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        extra.push_str(&format!("{name}: {value}\r\n"));
    }
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        anyhow::Ok(raw)
    };
    let raw = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .with_context(|| format!("{method} http://{addr}{path} timed out"))?
        .with_context(|| format!("{method} http://{addr}{path}"))?;
    parse(&raw, method == "HEAD").with_context(|| {
        format!(
            "{method} http://{addr}{path}: bad reply {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

/// `answers_head`: the reply to a `HEAD`, whose `Content-Length` is the length of
/// the body a `GET` would have had.
fn parse(raw: &[u8], answers_head: bool) -> anyhow::Result<Reply> {
    let text = std::str::from_utf8(raw).context("reply is not UTF-8")?;
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().context("empty reply")?;
    let status = match status_line.split(' ').collect::<Vec<_>>()[..] {
        ["HTTP/1.1", code, ..] => code.parse().context("status code")?,
        _ => bail!("bad status line {status_line:?}"),
    };
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').context("header without ':'")?;
            Ok((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut reply = Reply {
        status,
        headers,
        body: body.to_owned(),
    };
    match reply.header("transfer-encoding") {
        None => {}
        Some(coding) if coding.eq_ignore_ascii_case("chunked") => {
            reply.body = dechunk(body)?;
            return Ok(reply);
        }
        Some(coding) => bail!("transfer-encoding {coding} is not supported by this test client"),
    }
    if let Some(length) = reply.header("content-length").filter(|_| !answers_head) {
        let length: usize = length.parse().context("content-length")?;
        if length != reply.body.len() {
            bail!(
                "body of {} bytes, content-length {length}",
                reply.body.len()
            );
        }
    }
    Ok(reply)
}

/// The body of a chunked reply (Prometheus answers large queries so).
fn dechunk(mut rest: &str) -> anyhow::Result<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").context("chunk size line")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .context("chunk size")?;
        if size == 0 {
            return Ok(body);
        }
        let chunk = after.get(..size).context("chunk shorter than its size")?;
        body.push_str(chunk);
        rest = after
            .get(size..)
            .and_then(|r| r.strip_prefix("\r\n"))
            .context("chunk not followed by CRLF")?;
    }
}
