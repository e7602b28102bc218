//! `hanbrief mock-provider`: the simulated provider ([`crate::mock`]) on 127.0.0.1, configured
//! from the flags; its base URL on stdout.

use std::io::Write;

use anyhow::{Context as _, Result};

use super::signal::wait_for_signal;
use crate::cli::MockProviderArgs;
use crate::error::EXIT_OK;

/// `hanbrief mock-provider`: serves until a signal, then prints the counters as JSON on stderr.
pub(super) async fn run(args: MockProviderArgs) -> Result<u8> {
    let share = |specific: Option<f64>, part: f64| {
        specific.unwrap_or(args.fail_rate * part).clamp(0.0, 1.0)
    };
    let config = crate::mock::MockConfig {
        requests_per_minute: args.rpm.max(1),
        tokens_per_minute: args.tpm.max(1),
        latency_base: args.latency,
        latency_per_token: args.latency_per_token,
        fail_5xx: share(args.fail_5xx, 0.5),
        fail_reset: share(args.fail_reset, 0.2),
        fail_malformed: share(args.fail_malformed, 0.1),
        fail_hang: share(args.fail_hang, 0.1),
        fail_429: share(args.fail_429, 0.1),
        hang: args.hang,
        rate_limit_headers: !args.no_rate_limit_headers,
        context_window: args.context_window,
        seed: args.seed,
        batch_completion: args.batch_completion,
        batch_fail_lines: args.batch_fail_lines.clamp(0.0, 1.0),
        batch_expire: args.batch_expire,
        batch_fail: args.batch_fail,
        batch_token_limit: args.batch_token_limit,
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], args.port));
    let provider = crate::mock::MockProvider::start(config, addr)
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    writeln!(std::io::stdout().lock(), "{}", provider.base_url())?;
    crate::console::info(
        &format!(
            "mock provider at {} ({} rpm, {} tpm, fail rate {}): use --base-url {} (any model name, no key needed, costs nothing); Ctrl-C to stop",
            provider.base_url(),
            args.rpm,
            args.tpm,
            args.fail_rate,
            provider.base_url()
        ),
        serde_json::json!({"base_url": provider.base_url()}),
    );
    wait_for_signal().await;
    let stats = serde_json::to_value(provider.stats())?;
    crate::console::info(&format!("mock provider stopped: {stats}"), stats);
    Ok(EXIT_OK)
}
