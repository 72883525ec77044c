//! `-v`: `tracing` events (this crate's, and the registry client's) as lines on stderr.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter for `-v` repeated `verbose` times: -v is info for oci2ext4 and warnings from
/// the crates below it, -vv debug for oci2ext4 and info for the rest, -vvv everything.
pub fn filter(verbose: u8) -> Targets {
    let (ours, others) = match verbose {
        0 => (LevelFilter::OFF, LevelFilter::OFF),
        1 => (LevelFilter::INFO, LevelFilter::WARN),
        2 => (LevelFilter::DEBUG, LevelFilter::INFO),
        _ => (LevelFilter::TRACE, LevelFilter::TRACE),
    };
    Targets::new()
        .with_default(others)
        .with_target("oci2ext4", ours)
}

/// Sends events to stderr as `-v` (or `RUST_LOG`, which wins when set) asks; nothing when
/// neither is given.
pub fn init(verbose: u8) -> Result<(), String> {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let targets = match from_env {
        Some(spec) => spec
            .parse::<Targets>()
            .map_err(|e| format!("RUST_LOG={spec:?}: {e}"))?,
        None if verbose == 0 => return Ok(()),
        None => filter(verbose),
    };
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(targets)
        .try_init()
        .map_err(|e| format!("cannot start logging: {e}"))
}
