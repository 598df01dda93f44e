//! A minimal HTTP/1.1 client over one keep-alive connection, for generating load.
//!
//! The load generator shares the machine's cores with the service it measures, so whatever it
//! spends per request is taken from the service. A general client (`reqwest` over `hyper`:
//! connection pool, header maps, body streams) costs several times what writing one
//! preformatted request and reading one `Content-Length` response does; `pgbench`, the
//! baseline the booking figure is compared with, is such a lean client too. This one sends a
//! request, reads its answer, and keeps the connection for the next; it understands exactly
//! the answers the service gives (a status line, headers, a body of `Content-Length` bytes)
//! and refuses anything else with an error rather than guessing.

use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One connection to `addr` (`host:port`), opened on first use and again after the server
/// closes it.
pub struct KeepAlive {
    addr: String,
    conn: Option<TcpStream>,
    request: String,
    buf: Vec<u8>,
}

/// An answer: its status and body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl KeepAlive {
    /// A client for the server at `addr` (`host:port`).
    pub fn new(addr: &str) -> KeepAlive {
        KeepAlive {
            addr: addr.to_string(),
            conn: None,
            request: String::with_capacity(1024),
            buf: Vec::with_capacity(4096),
        }
    }

    /// `POST path` with a JSON body and a bearer token; waits for the whole answer.
    pub async fn post_json(&mut self, path: &str, bearer: &str, body: &str) -> Result<Answer> {
        self.request.clear();
        write!(
            self.request,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {bearer}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )?;
        let conn = match &mut self.conn {
            Some(conn) => conn,
            empty => {
                let conn = TcpStream::connect(&self.addr)
                    .await
                    .with_context(|| format!("connect to {}", self.addr))?;
                conn.set_nodelay(true)?;
                empty.insert(conn)
            }
        };
        conn.write_all(self.request.as_bytes()).await?;
        let (answer, keep) = read_answer(conn, &mut self.buf).await?;
        if !keep {
            self.conn = None;
        }
        Ok(answer)
    }
}

/// Reads one answer; also says whether the connection stays open.
async fn read_answer(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(Answer, bool)> {
    buf.clear();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if conn.read_buf(buf).await? == 0 {
            bail!("the server closed the connection before answering");
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("answer head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP status line: {status_line:?}"))?;
    let mut length = None;
    let mut keep = true;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().context("bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("unsupported Transfer-Encoding: {value}");
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            keep = false;
        }
    }
    let length = length.context("the answer has no Content-Length")?;
    while buf.len() < head_end + length {
        if conn.read_buf(buf).await? == 0 {
            bail!("the server closed the connection in the middle of an answer");
        }
    }
    if buf.len() > head_end + length {
        bail!("the server sent more than one answer");
    }
    let body = buf[head_end..].to_vec();
    Ok((Answer { status, body }, keep))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each request on one connection with the next canned answer, and
    /// hands back what it received.
    async fn serve(answers: Vec<&'static str>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let mut received = Vec::new();
            let (mut conn, _) = listener.accept().await.unwrap();
            for answer in answers {
                let mut buf = vec![0u8; 4096];
                let n = conn.read(&mut buf).await.unwrap();
                received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                conn.write_all(answer.as_bytes()).await.unwrap();
            }
            received
        });
        (addr, server)
    }

    #[tokio::test]
    async fn requests_share_one_connection_and_answers_are_read_whole() {
        let (addr, server) = serve(vec![
            "HTTP/1.1 201 Created\r\ncontent-length: 11\r\ncontent-type: application/json\r\n\r\n{\"id\":\"a\"}\n",
            "HTTP/1.1 409 Conflict\r\nContent-Length: 2\r\n\r\n{}",
        ])
        .await;
        let mut client = KeepAlive::new(&addr);
        let first = client
            .post_json("/v1/bookings", "tok", "{\"x\":1}")
            .await
            .unwrap();
        assert_eq!(
            (first.status, first.body.as_slice()),
            (201, &b"{\"id\":\"a\"}\n"[..])
        );
        let second = client.post_json("/v1/bookings", "tok", "{}").await.unwrap();
        assert_eq!((second.status, second.body.as_slice()), (409, &b"{}"[..]));
        // Both went over the one connection the server accepted, as whole requests.
        let received = server.await.unwrap();
        assert!(received[0].starts_with("POST /v1/bookings HTTP/1.1\r\n"));
        assert!(received[0].contains("\r\nAuthorization: Bearer tok\r\n"));
        assert!(received[0].ends_with("Content-Length: 7\r\n\r\n{\"x\":1}"));
        assert!(received[1].ends_with("\r\n\r\n{}"));
    }

    #[tokio::test]
    async fn a_connection_the_server_closes_is_opened_again() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let mut connections = 0;
            for answer in [
                "HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
            ] {
                let (mut conn, _) = listener.accept().await.unwrap();
                connections += 1;
                let mut buf = vec![0u8; 4096];
                let _ = conn.read(&mut buf).await.unwrap();
                conn.write_all(answer.as_bytes()).await.unwrap();
            }
            connections
        });
        let mut client = KeepAlive::new(&addr);
        for _ in 0..2 {
            let answer = client.post_json("/", "t", "{}").await.unwrap();
            assert_eq!((answer.status, answer.body.len()), (201, 0));
        }
        assert_eq!(
            server.await.unwrap(),
            2,
            "the second request opened a new connection"
        );
    }

    #[tokio::test]
    async fn answers_it_cannot_read_exactly_are_errors() {
        let (addr, _server) = serve(vec![
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        ])
        .await;
        let err = KeepAlive::new(&addr)
            .post_json("/", "t", "{}")
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("Transfer-Encoding"), "{err}");

        let (addr, _server) = serve(vec!["HTTP/1.1 204 No Content\r\n\r\n"]).await;
        let err = KeepAlive::new(&addr)
            .post_json("/", "t", "{}")
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("Content-Length"), "{err}");
    }
}
