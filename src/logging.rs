//! Logging to stderr at `log.level`, as text or JSON lines (`log.format`).

use crate::config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// Install the global logger. `RUST_LOG`, when set, refines the level per module.
pub fn init(config: &LogConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests calling twice) keeps the first logger.
    let _ = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
