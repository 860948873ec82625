//! Artifacts outside Kafka: `file:///abs/path` and `http://host[:port]/path`.
//!
//! HTTP is a plain HTTP/1.1 GET (`Connection: close`, identity or chunked body) over a
//! tokio socket: enough for an artifact server on the cluster's network, and no HTTP client
//! dependency. No TLS (`https://` is refused): the bytes are verified by sha256 anyway, and
//! a file server behind TLS can be mounted and read as `file://`.
use crate::error::{RegistryError, Result};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest artifact read from a URI: 4 GiB.
pub const MAX_URI_BYTES: u64 = 4 << 30;

/// A parsed artifact URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactUri {
    /// `file:///abs/path`.
    File(PathBuf),
    /// `http://host[:port]/path`.
    Http {
        /// `host:port` to connect to.
        authority: String,
        /// `Host` header value.
        host: String,
        /// Path and query, from `/`.
        path: String,
    },
}

impl ArtifactUri {
    /// Parses `uri`; [`RegistryError::BadUri`] says what is accepted.
    pub fn parse(uri: &str) -> Result<ArtifactUri> {
        let bad = |reason: &str| RegistryError::BadUri {
            uri: uri.into(),
            reason: reason.into(),
        };
        if let Some(path) = uri.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad("use file:///absolute/path"));
            }
            return Ok(ArtifactUri::File(PathBuf::from(path)));
        }
        if let Some(rest) = uri.strip_prefix("http://") {
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            if host.is_empty() || host.contains('@') {
                return Err(bad("use http://host[:port]/path (no user info)"));
            }
            let authority = if host
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                host.to_string()
            } else {
                format!("{host}:80")
            };
            let path = if path.is_empty() { "/" } else { path };
            return Ok(ArtifactUri::Http {
                authority,
                host: host.into(),
                path: path.into(),
            });
        }
        Err(bad("only file:// and http:// artifact URIs are read"))
    }
}

/// Reads the artifact at `uri`. A file that is not there, an HTTP status other than 200, a
/// connection refused: [`RegistryError::Missing`].
pub async fn read(name: &str, version: &str, uri: &str, timeout: Duration) -> Result<Vec<u8>> {
    let missing = |reason: String| RegistryError::Missing {
        name: name.into(),
        version: version.into(),
        uri: uri.into(),
        reason,
    };
    match ArtifactUri::parse(uri)? {
        ArtifactUri::File(path) => tokio::fs::read(&path)
            .await
            .map_err(|e| missing(e.to_string())),
        ArtifactUri::Http {
            authority,
            host,
            path,
        } => {
            let response = tokio::time::timeout(timeout, get(&authority, &host, &path))
                .await
                .map_err(|_| missing(format!("no answer within {timeout:?}")))?
                .map_err(|e| missing(e.to_string()))?;
            body(&response).map_err(missing)
        }
    }
}

async fn get(authority: &str, host: &str, path: &str) -> std::io::Result<Vec<u8>> {
    let mut stream = tokio::net::TcpStream::connect(authority).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: argus-registry\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut out = Vec::new();
    (&mut stream)
        .take(MAX_URI_BYTES + 65_536)
        .read_to_end(&mut out)
        .await?;
    Ok(out)
}

/// The body of a whole HTTP/1.1 response, or why not.
fn body(response: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no HTTP response header")?;
    let head = String::from_utf8_lossy(&response[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code != "200" {
        return Err(format!(
            "HTTP {}",
            status.split_once(' ').map_or(status, |(_, s)| s)
        ));
    }
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_ascii_lowercase())
        })
    };
    let raw = &response[end + 4..];
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return dechunk(raw);
    }
    match header("content-length").map(|v| v.parse::<usize>()) {
        Some(Ok(n)) if raw.len() < n => Err(format!(
            "connection closed after {} of {n} bytes",
            raw.len()
        )),
        Some(Ok(n)) => Ok(raw[..n].to_vec()),
        Some(Err(_)) => Err("bad Content-Length".into()),
        None => Ok(raw.to_vec()),
    }
}

fn dechunk(mut raw: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunked body")?;
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            return Err("truncated chunked body".into());
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn uris_parse_and_unsupported_ones_are_refused() {
        assert_eq!(
            ArtifactUri::parse("file:///srv/m.tar").unwrap(),
            ArtifactUri::File("/srv/m.tar".into())
        );
        assert_eq!(
            ArtifactUri::parse("http://art:8080/a/b.tar").unwrap(),
            ArtifactUri::Http {
                authority: "art:8080".into(),
                host: "art:8080".into(),
                path: "/a/b.tar".into()
            }
        );
        let ArtifactUri::Http {
            authority, path, ..
        } = ArtifactUri::parse("http://art").unwrap()
        else {
            panic!()
        };
        assert_eq!((authority.as_str(), path.as_str()), ("art:80", "/"));
        for bad in ["https://a/b", "file://rel", "s3://b/k", "http://u@h/x"] {
            let e = ArtifactUri::parse(bad).unwrap_err();
            assert!(e.is_usage(), "{bad}: {e}");
        }
    }

    #[test]
    fn http_bodies_are_read_whole_or_refused() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(body(ok).unwrap(), b"abc");
        let short = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nabc";
        assert!(body(short).unwrap_err().contains("3 of 5"));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n";
        assert_eq!(body(chunked).unwrap(), b"abc");
        assert_eq!(
            body(b"HTTP/1.0 404 Not Found\r\n\r\n").unwrap_err(),
            "HTTP 404 Not Found"
        );
    }

    #[tokio::test]
    async fn a_file_or_server_that_is_not_there_is_missing() {
        let e = read(
            "m",
            "1",
            "file:///nonexistent/argus.tar",
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, RegistryError::Missing { .. }), "{e}");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ntar!")
                .await
                .unwrap();
        });
        let got = read(
            "m",
            "1",
            &format!("http://{addr}/m.tar"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(got, b"tar!");
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let e = read(
            "m",
            "1",
            &format!("http://{addr}/m.tar"),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, RegistryError::Missing { .. }), "{e}");
    }
}
