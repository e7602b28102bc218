//! `hanbrief cache`: shows the state store's statistics (a table or JSON), prunes old cached
//! calls or clears the store, under the run lock.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use super::output_store;
use crate::cli::CacheArgs;
use crate::error::EXIT_OK;

/// `hanbrief cache stats|prune|clear` on the state store of the output folder.
pub(super) async fn run(config_flag: &Option<PathBuf>, args: CacheArgs) -> Result<u8> {
    use crate::cli::CacheCommand;
    use crate::store::RunLock;
    let (settings, store) = output_store(config_flag, args.out, "hanbrief summarize -o").await?;
    let out = &settings.output.dir;
    let mut stdout = std::io::stdout().lock();
    match args.command {
        CacheCommand::Stats { json } => {
            let stats = store.stats().await?;
            if json {
                serde_json::to_writer_pretty(&mut stdout, &stats)?;
                writeln!(stdout)?;
                return Ok(EXIT_OK);
            }
            writeln!(
                stdout,
                "store      {} ({:.1} MB)",
                stats.path,
                stats.bytes as f64 / 1e6
            )?;
            writeln!(
                stdout,
                "calls      {} cached ({} prompt + {} completion tokens they saved from being paid again)",
                stats.calls, stats.cached_prompt_tokens, stats.cached_completion_tokens
            )?;
            let list = |v: &[(String, u64)]| {
                v.iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if stats.calls > 0 {
                writeln!(
                    stdout,
                    "           by step: {}",
                    list(&stats.calls_by_purpose)
                )?;
                writeln!(
                    stdout,
                    "           by model: {}",
                    list(&stats.calls_by_model)
                )?;
                writeln!(
                    stdout,
                    "           from {} to {}",
                    stats.oldest_call.as_deref().unwrap_or("-"),
                    stats.newest_call.as_deref().unwrap_or("-")
                )?;
            }
            writeln!(
                stdout,
                "articles   {}",
                if stats.articles_by_status.is_empty() {
                    "none".into()
                } else {
                    list(&stats.articles_by_status)
                }
            )?;
            writeln!(
                stdout,
                "runs       {} ({} interrupted)",
                stats.runs, stats.interrupted_runs
            )?;
            if let Some(r) = &stats.last_run {
                writeln!(
                    stdout,
                    "last run   #{} {} → {}: {} written, {} unchanged, {} skipped, {} failed; {} calls, {} cached; {}; exit {}",
                    r.id,
                    r.started_at,
                    r.finished_at.as_deref().unwrap_or("(did not finish)"),
                    r.written,
                    r.unchanged,
                    r.skipped,
                    r.failed,
                    r.calls,
                    r.cached_calls,
                    crate::pricing::usd(r.cost_usd),
                    r.exit_code.map_or("-".to_string(), |c| c.to_string())
                )?;
            }
        }
        CacheCommand::Prune { older_than } => {
            let _lock = RunLock::acquire(out)?;
            let n = store.prune(older_than).await?;
            let age = crate::console::duration(older_than);
            writeln!(stdout, "{} not used for {age}", removed(n))?;
        }
        CacheCommand::Clear { all } => {
            let _lock = RunLock::acquire(out)?;
            let n = store.clear(all).await?;
            let also = if all {
                ", the article manifest, the names registry, what was learned about endpoints and the run history"
            } else {
                ""
            };
            writeln!(stdout, "{}{also}", removed(n))?;
        }
    }
    Ok(EXIT_OK)
}

/// What `prune` and `clear` say first: how many cached calls went.
fn removed(n: usize) -> String {
    format!(
        "removed {}",
        crate::console::count(n as u64, "cached call", "cached calls")
    )
}
