//! `hanbrief batch list|status|cancel`: the batches an output folder has at the provider (batch
//! mode), from the state store; `status` asks the provider where they stand, `cancel` cancels
//! them (under the run lock, so that no run is waiting for them meanwhile).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use super::output_store;
use crate::batch::state::{self, BatchRow};
use crate::cli::{BatchArgs, BatchCommand};
use crate::error::{EXIT_OK, UsageError};
use crate::llm::ApiKey;
use crate::llm::batch::BatchApi;
use crate::store::RunLock;

/// `hanbrief batch …` on the state store of the output folder.
pub(super) async fn run(config_flag: &Option<PathBuf>, args: BatchArgs) -> Result<u8> {
    let (settings, store) =
        output_store(config_flag, args.out, "hanbrief summarize --batch -o").await?;
    let out = &settings.output.dir;
    let api = || {
        BatchApi::new(
            &settings.endpoint,
            &settings.batch.base_url,
            &settings.limits,
            ApiKey::from_env(&settings.endpoint.api_key_env),
            CancellationToken::new(),
        )
    };
    match args.command {
        BatchCommand::List { json } => {
            let rows = state::batches(&store, 1000).await?;
            print(&rows, json)?;
        }
        BatchCommand::Status { json } => {
            let api = api()?;
            let mut rows = state::open_batches(&store).await?;
            for b in rows.iter_mut() {
                let Some(id) = b.provider_id.clone() else {
                    continue;
                };
                let obj = api.retrieve(&id).await?;
                let counts = obj.request_counts.unwrap_or_default();
                b.status = obj.status;
                b.completed = counts.completed as i64;
                b.failed = counts.failed as i64;
                state::update_batch(&store, b).await?;
            }
            if rows.is_empty() && !json {
                writeln!(
                    std::io::stdout().lock(),
                    "no batches in flight for {}",
                    out.display()
                )?;
                return Ok(EXIT_OK);
            }
            print(&rows, json)?;
            if !json && rows.iter().any(|b| !b.in_flight()) {
                writeln!(
                    std::io::stdout().lock(),
                    "finished batches are collected by the next `hanbrief summarize --batch` over this folder"
                )?;
            }
        }
        BatchCommand::Cancel { id } => {
            // A run waiting for these batches would resubmit what they cancel: none may run.
            let _lock = RunLock::acquire(out)?;
            let open = state::open_batches(&store).await?;
            // Cancelling already asked for is not asked again.
            let cancellable = |b: &BatchRow| b.in_flight() && b.status != "cancelling";
            let chosen: Vec<BatchRow> = match &id {
                Some(id) => match state::find_batch(&store, id).await? {
                    Some(b) if cancellable(&b) => vec![b],
                    Some(b) => {
                        return Err(UsageError(format!(
                            "batch {id} is {}: nothing to cancel",
                            b.status
                        ))
                        .into());
                    }
                    None => {
                        return Err(UsageError(format!(
                            "no batch {id} in {}; `hanbrief batch list -o {}` shows them",
                            out.display(),
                            out.display()
                        ))
                        .into());
                    }
                },
                None => open.into_iter().filter(|b| cancellable(b)).collect(),
            };
            if chosen.is_empty() {
                writeln!(std::io::stdout().lock(), "no batches in flight to cancel")?;
                return Ok(EXIT_OK);
            }
            let api = api()?;
            for mut b in chosen {
                match b.provider_id.clone() {
                    Some(pid) => {
                        let obj = api.cancel(&pid).await?;
                        b.status = obj.status;
                        state::update_batch(&store, &b).await?;
                        writeln!(
                            std::io::stdout().lock(),
                            "cancelling {pid} ({} requests): what finished is kept by the next run",
                            b.requests
                        )?;
                    }
                    None => {
                        // Never handed over: nothing to tell the provider.
                        state::drop_unsent(&store, &b).await?;
                        writeln!(
                            std::io::stdout().lock(),
                            "dropped batch #{} ({} requests), which was never submitted",
                            b.id,
                            b.requests
                        )?;
                    }
                }
            }
        }
    }
    Ok(EXIT_OK)
}

fn print(rows: &[BatchRow], json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, rows)?;
        writeln!(out)?;
        return Ok(());
    }
    if rows.is_empty() {
        writeln!(out, "no batches")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>4}  {:<28} {:>5}  {:<11} {:>8} {:>8} {:>7} {:>11}  created",
        "#", "batch", "phase", "status", "requests", "done", "failed", "tokens"
    )?;
    for b in rows {
        let created = chrono::DateTime::from_timestamp(b.created_at, 0)
            .map(|d| {
                d.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_default();
        let status = if b.collected && !b.in_flight() {
            format!("{} ✓", b.status)
        } else {
            b.status.clone()
        };
        writeln!(
            out,
            "{:>4}  {:<28} {:>5}  {:<11} {:>8} {:>8} {:>7} {:>11}  {created}",
            b.id,
            b.provider_id.as_deref().unwrap_or("(not submitted)"),
            b.phase,
            status,
            crate::render::group(b.requests as usize),
            crate::render::group(b.completed as usize),
            crate::render::group(b.failed as usize),
            crate::render::group(b.tokens as usize),
        )?;
        if let Some(e) = &b.error {
            writeln!(out, "      {e}")?;
        }
    }
    Ok(())
}
