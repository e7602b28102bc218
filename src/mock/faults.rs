//! The faults the simulated provider injects into admitted requests.

/// What the dice decided for an admitted request.
pub(super) enum Fault {
    None,
    ServerError(u16),
    Reset,
    Malformed,
    Hang,
    Spurious429,
}
