//! The load generator of the serve bench: `clients` closed-loop clients, each on its own
//! keep-alive HTTP/1.1 connection, send `requests` POSTs in total (the bodies cycled in
//! order) and time each from the first byte written to the last byte read. The same code
//! and the same bodies go to every server.
use crate::error::runtime;
use crate::BenchError;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One POST's answer.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// A keep-alive HTTP/1.1 connection.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    addr: SocketAddr,
    buf: Vec<u8>,
}

impl Connection {
    /// Connects to `addr`.
    pub async fn open(addr: SocketAddr) -> Result<Self, BenchError> {
        let stream = TcpStream::connect(addr).await.map_err(runtime)?;
        stream.set_nodelay(true).map_err(runtime)?;
        Ok(Connection {
            stream,
            addr,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// `method path` with a JSON `body` (may be empty); reads the answer (`Content-Length`
    /// framed, as both servers answer).
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Answer, BenchError> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let mut msg = Vec::with_capacity(head.len() + body.len());
        msg.extend_from_slice(head.as_bytes());
        msg.extend_from_slice(body);
        self.stream.write_all(&msg).await.map_err(runtime)?;
        self.buf.clear();
        let (end, length, status) = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| runtime(format!("bad status line: {head}")))?;
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| runtime(format!("answer without content-length: {head}")))?;
                break (end + 4, length, status);
            }
            self.read_more().await?;
        };
        while self.buf.len() < end + length {
            self.read_more().await?;
        }
        Ok(Answer {
            status,
            body: self.buf[end..end + length].to_vec(),
        })
    }

    async fn read_more(&mut self) -> Result<(), BenchError> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await.map_err(runtime)?;
        if n == 0 {
            return Err(runtime("connection closed mid-answer"));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Requests answered 200.
    pub ok: usize,
    /// Requests answered otherwise.
    pub errors: usize,
    /// Wall time of the run.
    pub wall: Duration,
    /// Latency per request (200s), sorted, ms.
    pub latencies_ms: Vec<f64>,
}

impl LoadResult {
    /// Requests per second (200s).
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64()
    }
}

/// `clients` closed-loop clients send `requests` POSTs to `path` in total, cycling `bodies`.
pub async fn run(
    addr: SocketAddr,
    path: &str,
    bodies: Arc<Vec<Vec<u8>>>,
    clients: usize,
    requests: usize,
) -> Result<LoadResult, BenchError> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients.max(1))
        .map(|_| {
            let (next, bodies, path) = (next.clone(), bodies.clone(), path.to_owned());
            tokio::spawn(async move {
                let mut conn = Connection::open(addr).await?;
                let (mut lat, mut errors) = (Vec::new(), 0usize);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        break;
                    }
                    let t = Instant::now();
                    let a = conn
                        .request("POST", &path, &bodies[i % bodies.len()])
                        .await?;
                    if a.status == 200 {
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                    } else {
                        errors += 1;
                    }
                }
                Ok::<_, BenchError>((lat, errors))
            })
        })
        .collect();
    let mut latencies_ms = Vec::with_capacity(requests);
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.map_err(runtime)??;
        latencies_ms.extend(lat);
        errors += e;
    }
    let wall = started.elapsed();
    latencies_ms.sort_by(f64::total_cmp);
    Ok(LoadResult {
        ok: latencies_ms.len(),
        errors,
        wall,
        latencies_ms,
    })
}
