//! The HTTP API.

use std::net::SocketAddr;

use crate::{Server, ServerError};

pub(crate) async fn serve(server: Server, addr: SocketAddr) -> Result<SocketAddr, ServerError> {
    let _ = server;
    Ok(addr)
}
