//! Signals for the long-running commands: the first SIGINT/SIGTERM stops a run gracefully
//! through its [`Shutdown`] tokens, a second one exits at once.

use std::time::Duration;

use crate::pipeline::Shutdown;

/// After the grace, how long a command may take to write what finished before the process
/// exits anyway.
const AFTER_ABORT: Duration = Duration::from_secs(3);

/// The stop tokens of a command, cancelled by signals: the first SIGINT/SIGTERM starts nothing
/// new and lets calls in flight finish for up to `grace`, then drops them (the clients' abort
/// token) and, if the command has still not returned [`AFTER_ABORT`] later, exits with 130. A
/// second signal exits at once.
pub(super) fn shutdown_on_signals(grace: Duration) -> Shutdown {
    let shutdown = Shutdown::default();
    install(shutdown.clone(), grace);
    shutdown
}

fn install(shutdown: Shutdown, grace: Duration) {
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::warn!(
            "stopping: no new calls; waiting up to {} for calls in flight (signal again to quit now)",
            humantime::format_duration(grace)
        );
        shutdown.stop.cancel();
        let abort = shutdown.abort.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            abort.cancel();
            // Calls on the wire are dropped now and the command writes what finished. One
            // stuck where no token reaches (reading a pipe that never closes, a disk that hangs)
            // is ended here, so that every command stops within the grace and this margin.
            tokio::time::sleep(AFTER_ABORT).await;
            crate::console::warn(
                &format!(
                    "hanbrief: still busy {} after the signal; exiting now",
                    humantime::format_duration(grace + AFTER_ABORT)
                ),
                serde_json::Value::Null,
            );
            std::process::exit(crate::error::EXIT_INTERRUPTED as i32);
        });
        wait_for_signal().await;
        crate::console::warn(
            "hanbrief: second signal, exiting now",
            serde_json::Value::Null,
        );
        std::process::exit(crate::error::EXIT_INTERRUPTED as i32);
    });
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub(super) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
