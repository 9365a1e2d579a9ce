//! A deliberately small protocol client for tests that must see or send
//! exact bytes: BackendKeyData, notification pids, non-UTF-8 text, garbage.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Any single read in a test taking longer than this is a failure.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One backend message: tag and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub tag: u8,
    pub body: Vec<u8>,
}

impl Message {
    /// The SQLSTATE of an ErrorResponse/NoticeResponse.
    pub fn sqlstate(&self) -> Option<String> {
        self.field(b'C')
    }

    /// A field of an ErrorResponse/NoticeResponse.
    pub fn field(&self, code: u8) -> Option<String> {
        let mut rest = &self.body[..];
        while let Some((&c, tail)) = rest.split_first() {
            if c == 0 {
                break;
            }
            let end = tail.iter().position(|&b| b == 0)?;
            if c == code {
                return Some(String::from_utf8_lossy(&tail[..end]).into_owned());
            }
            rest = &tail[end + 1..];
        }
        None
    }

    /// The columns of a DataRow (None for NULL).
    pub fn data_row(&self) -> Vec<Option<Vec<u8>>> {
        let mut body = &self.body[..];
        let n = body.get_i16();
        (0..n)
            .map(|_| {
                let len = body.get_i32();
                if len < 0 {
                    None
                } else {
                    let v = body[..len as usize].to_vec();
                    body.advance(len as usize);
                    Some(v)
                }
            })
            .collect()
    }
}

/// Encodes a tagged frontend message.
pub fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![tag];
    f.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// Encodes a protocol 3.0 StartupMessage.
pub fn startup_packet(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = (3u32 << 16).to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut p = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    p.extend(body);
    p
}

pub struct RawClient {
    pub stream: TcpStream,
    buf: BytesMut,
    /// BackendKeyData as the proxy sent it.
    pub pid: i32,
    pub secret: i32,
    pub params: HashMap<String, String>,
}

impl RawClient {
    /// Logs in without a password (trust) with the given startup params.
    pub async fn connect(addr: SocketAddr, params: &[(&str, &str)]) -> anyhow::Result<RawClient> {
        match RawClient::login(addr, params, None).await? {
            Ok(client) => Ok(client),
            Err(refusal) => bail!("login refused: {:?}", refusal.field(b'M')),
        }
    }

    /// Sends a StartupMessage and nothing else: the test reads what the
    /// server answers itself.
    pub async fn start(addr: SocketAddr, params: &[(&str, &str)]) -> anyhow::Result<RawClient> {
        RawClient::start_raw(addr, &startup_packet(params)).await
    }

    /// Sends `packet` as the connection's first bytes, whatever they are.
    pub async fn start_raw(addr: SocketAddr, packet: &[u8]) -> anyhow::Result<RawClient> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(packet).await?;
        Ok(RawClient {
            stream,
            buf: BytesMut::new(),
            pid: 0,
            secret: 0,
            params: HashMap::new(),
        })
    }

    /// Logs in with the given startup params, answering md5 and SCRAM
    /// requests with `password` (as the startup's first `user`). The
    /// inner `Err` is the server's ErrorResponse refusing the login.
    pub async fn login(
        addr: SocketAddr,
        params: &[(&str, &str)],
        password: Option<&str>,
    ) -> anyhow::Result<Result<RawClient, Message>> {
        let mut client = RawClient::start(addr, params).await?;
        let user = params
            .iter()
            .find(|(k, _)| *k == "user")
            .map_or("", |(_, v)| *v);
        let mut scram: Option<postgres_protocol::authentication::sasl::ScramSha256> = None;
        loop {
            let m = client.read_message().await?;
            match m.tag {
                b'R' => {
                    let reply = auth_reply(&m.body, user, password, &mut scram)?;
                    if let Some(reply) = reply {
                        client.send(&frame(b'p', &reply)).await?;
                    }
                }
                b'S' => {
                    let mut parts = m.body.split(|&b| b == 0);
                    let k = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
                    let v = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
                    client.params.insert(k, v);
                }
                b'K' => {
                    let mut b = &m.body[..];
                    client.pid = b.get_i32();
                    client.secret = b.get_i32();
                }
                b'Z' => return Ok(Ok(client)),
                b'E' => return Ok(Err(m)),
                b'v' | b'N' => {}
                other => bail!("unexpected message {} at login", other as char),
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Reads one message; end of stream is an error.
    pub async fn read_message(&mut self) -> anyhow::Result<Message> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if self.buf.len() > len {
                    let tag = self.buf[0];
                    self.buf.advance(5);
                    let body = self.buf.split_to(len - 4).to_vec();
                    return Ok(Message { tag, body });
                }
            }
            let n = tokio::time::timeout(READ_TIMEOUT, self.stream.read_buf(&mut self.buf))
                .await
                .context("read timed out")??;
            if n == 0 {
                bail!("connection closed");
            }
        }
    }

    /// Sends a simple Query (raw bytes: any encoding) and returns every
    /// message up to and including ReadyForQuery.
    pub async fn simple_query(&mut self, sql: &[u8]) -> anyhow::Result<Vec<Message>> {
        let mut body = sql.to_vec();
        body.push(0);
        self.send(&frame(b'Q', &body)).await?;
        self.read_until_ready().await
    }

    pub async fn read_until_ready(&mut self) -> anyhow::Result<Vec<Message>> {
        let mut out = Vec::new();
        loop {
            let m = self.read_message().await?;
            let done = m.tag == b'Z';
            out.push(m);
            if done {
                return Ok(out);
            }
        }
    }

    /// True once the peer has closed the connection (reads 0 bytes).
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        let mut scratch = [0u8; 1024];
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut scratch)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// The answer to an authentication request (`'R'` body), if it needs one.
fn auth_reply(
    body: &[u8],
    user: &str,
    password: Option<&str>,
    scram: &mut Option<postgres_protocol::authentication::sasl::ScramSha256>,
) -> anyhow::Result<Option<Vec<u8>>> {
    use postgres_protocol::authentication::md5_hash;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
    let code = i32::from_be_bytes(body.get(..4).context("short auth")?.try_into()?);
    let data = &body[4..];
    let password = || password.context("the server asks for a password");
    Ok(match code {
        0 => None,
        3 => Some([password()?.as_bytes(), b"\0"].concat()),
        5 => {
            let salt: [u8; 4] = data.get(..4).context("md5 salt")?.try_into()?;
            let hash = md5_hash(user.as_bytes(), password()?.as_bytes(), salt);
            Some([hash.as_bytes(), b"\0"].concat())
        }
        10 => {
            let client = ScramSha256::new(password()?.as_bytes(), ChannelBinding::unsupported());
            let mut reply = b"SCRAM-SHA-256\0".to_vec();
            reply.extend_from_slice(&(client.message().len() as i32).to_be_bytes());
            reply.extend_from_slice(client.message());
            *scram = Some(client);
            Some(reply)
        }
        11 => {
            let client = scram.as_mut().context("SASLContinue before SASL")?;
            client.update(data)?;
            Some(client.message().to_vec())
        }
        12 => {
            scram
                .as_mut()
                .context("SASLFinal before SASL")?
                .finish(data)?;
            None
        }
        other => bail!("unsupported authentication request {other}"),
    })
}

/// Sends bytes on a fresh connection and returns everything the peer sent
/// back until it closed (or `timeout`), and whether it closed.
pub async fn exchange_raw(
    addr: SocketAddr,
    bytes: &[u8],
    timeout: Duration,
) -> anyhow::Result<(Vec<u8>, bool)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(bytes).await?;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut scratch = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut scratch)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok((got, true)),
            Ok(Ok(n)) => got.extend_from_slice(&scratch[..n]),
            Err(_) => return Ok((got, false)),
        }
    }
}

/// Extended-protocol frontend messages, unnamed portal, text formats.
pub mod msg {
    use super::frame;

    pub fn parse(name: &str, sql: &str) -> Vec<u8> {
        let mut body = name.as_bytes().to_vec();
        body.push(0);
        body.extend_from_slice(sql.as_bytes());
        body.extend_from_slice(&[0, 0, 0]);
        frame(b'P', &body)
    }

    /// Binds statement `name` (no parameters) to the unnamed portal.
    pub fn bind(name: &str) -> Vec<u8> {
        let mut body = vec![0];
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
        frame(b'B', &body)
    }

    pub fn describe_portal() -> Vec<u8> {
        frame(b'D', b"P\0")
    }

    pub fn execute() -> Vec<u8> {
        frame(b'E', &[0, 0, 0, 0, 0])
    }

    pub fn sync() -> Vec<u8> {
        frame(b'S', &[])
    }

    pub fn flush() -> Vec<u8> {
        frame(b'H', &[])
    }
}
