//! A small client of the Docker Engine API over its unix socket.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

/// What can go wrong talking to the engine.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The socket does not answer.
    #[error("connecting to the Docker engine at {socket}: {source}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("talking to the Docker engine: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("building a Docker API request: {0}")]
    Request(#[from] hyper::http::Error),
    /// The engine answered with an error status.
    #[error("Docker engine answered {status}: {message}")]
    Status { status: StatusCode, message: String },
    /// The engine's answer is not what the API documents.
    #[error("reading the Docker engine's answer: {0}")]
    Decode(#[from] serde_json::Error),
}

impl ApiError {
    /// Whether the engine said the object does not exist.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Status { status, .. } if *status == StatusCode::NOT_FOUND)
    }

    /// Whether the engine said the request conflicts with the object's state.
    pub(crate) fn is_conflict(&self) -> bool {
        matches!(self, ApiError::Status { status, .. } if *status == StatusCode::CONFLICT)
    }
}

/// The engine at one socket. Every request uses a connection of its own.
#[derive(Debug, Clone)]
pub(crate) struct DockerApi {
    socket: PathBuf,
}

/// A request body.
pub(crate) enum Body {
    Empty,
    Json(serde_json::Value),
    Tar(Vec<u8>),
}

impl DockerApi {
    pub(crate) fn new(socket: &Path) -> Self {
        Self {
            socket: socket.to_path_buf(),
        }
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends a request and returns the response with its body unread; an error status is
    /// turned into [`ApiError::Status`] with the engine's message.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Response<Incoming>, ApiError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ApiError::Connect {
                    socket: self.socket.clone(),
                    source,
                })?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the response has been read or dropped.
            let _ = connection.await;
        });
        let (content_type, bytes) = match body {
            Body::Empty => (None, Bytes::new()),
            Body::Json(value) => (
                Some("application/json"),
                Bytes::from(serde_json::to_vec(&value)?),
            ),
            Body::Tar(data) => (Some("application/x-tar"), Bytes::from(data)),
        };
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "docker");
        if let Some(content_type) = content_type {
            request = request.header(hyper::header::CONTENT_TYPE, content_type);
        }
        let response = sender.send_request(request.body(Full::new(bytes))?).await?;
        let status = response.status();
        if status.is_client_error() || status.is_server_error() {
            let body = response.into_body().collect().await?.to_bytes();
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
            return Err(ApiError::Status { status, message });
        }
        Ok(response)
    }

    /// Sends a request and returns the whole body.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Bytes, ApiError> {
        let response = self.send(method, path, body).await?;
        Ok(response.into_body().collect().await?.to_bytes())
    }

    /// Sends a request and decodes the JSON body.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<T, ApiError> {
        let bytes = self.call(method, path, body).await?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// Percent-encodes a query parameter value.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Splits a multiplexed log stream (8-byte frame headers: stream, 0, 0, 0, big-endian size)
/// into its frames; the bytes of an incomplete last frame stay in `buffer`.
pub(crate) fn take_frames(buffer: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    loop {
        if buffer.len() < 8 {
            return frames;
        }
        let size = u32::from_be_bytes([buffer[4], buffer[5], buffer[6], buffer[7]]) as usize;
        if buffer.len() < 8 + size {
            return frames;
        }
        let stream = buffer[0];
        let payload = buffer[8..8 + size].to_vec();
        buffer.drain(..8 + size);
        frames.push((stream, payload));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_query_values() {
        assert_eq!(encode("busybox"), "busybox");
        assert_eq!(encode("a/b:c d"), "a%2Fb%3Ac%20d");
    }

    #[test]
    fn splits_multiplexed_frames_across_reads() {
        let mut buffer = vec![
            1, 0, 0, 0, 0, 0, 0, 3, b'a', b'b', b'c', 2, 0, 0, 0, 0, 0, 0, 2, b'x',
        ];
        let frames = take_frames(&mut buffer);
        assert_eq!(frames, vec![(1, b"abc".to_vec())]);
        buffer.push(b'y');
        assert_eq!(take_frames(&mut buffer), vec![(2, b"xy".to_vec())]);
        assert!(buffer.is_empty());
    }
}
