//! Crate-level errors. Per-boundary errors live with their module: `store::StoreError`,
//! `ephemeral::EphemeralError`, `crypto::CryptoError`, `push::PushError`, `service::Error`.

/// Why [`crate::MeloBuilder::build`] refused.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A setting is out of range.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// `build` must run inside a Tokio runtime (it starts background tasks).
    #[error("Melo::builder(..).build() must be called within a Tokio runtime")]
    NoRuntime,
    /// The metric families could not be registered (a name clash in a shared registry).
    #[error("{0}")]
    Metrics(#[from] crate::metrics::MetricsError),
    /// The route table is inconsistent (a bug; reported rather than panicking).
    #[error("route table: {0}")]
    Routes(String),
}
