//! Errors every layer shares.

/// A user-input problem (a malformed file, a contradictory request): reported as is, exit
/// code 2. The library raises it; the command line maps it to the exit code.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);
