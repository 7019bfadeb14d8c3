//! The errors of the server.

/// What can go wrong in the server; the HTTP API maps each to a status code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServerError {
    /// The log or its file could not be read or written.
    #[error("storage: {0}")]
    Storage(String),
    /// The server is stopping.
    #[error("server is shutting down")]
    ShuttingDown,
    /// This server does not lead and cannot accept writes.
    #[error("no cluster leader")]
    NoLeader,
    /// The object named does not exist (`job not found`, `node not found`, ...).
    #[error("{0} not found")]
    NotFound(String),
    /// The request is malformed or its values are wrong.
    #[error("{0}")]
    BadRequest(String),
    /// An evaluation's broker token no longer matches (it was redelivered).
    #[error("evaluation {0}: token does not match the outstanding delivery")]
    TokenMismatch(String),
    /// The evaluation is not outstanding in the broker.
    #[error("evaluation {0} is not outstanding")]
    NotOutstanding(String),
    /// The broker is disabled (this server does not lead).
    #[error("eval broker disabled")]
    BrokerDisabled,
}
