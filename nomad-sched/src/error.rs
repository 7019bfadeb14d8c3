//! Errors of the scheduler.

/// What can go wrong while processing an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    /// The evaluation names a scheduler type this crate does not have.
    #[error("evaluation {eval}: unknown scheduler type {kind:?}")]
    UnknownType {
        /// The evaluation.
        eval: String,
        /// Its type.
        kind: String,
    },
    /// The planner could not take the plan or the evaluation.
    #[error("planner: {0}")]
    Planner(String),
    /// A plan kept being refused.
    #[error("evaluation {eval}: plan refused {attempts} times")]
    TooManyAttempts {
        /// The evaluation.
        eval: String,
        /// How many plans were submitted.
        attempts: u32,
    },
}
