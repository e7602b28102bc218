//! `hanbrief summarize`: settings from the flags, the progress display, one
//! [`crate::pipeline::run`], and the summary table or the dry run's plan.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::load_settings;
use super::signal::shutdown_on_signals;
use crate::cli::{GlobalArgs, LogFormat, SummarizeArgs};
use crate::config::Overrides;
use crate::console::{self, count};
use crate::error::{EXIT_ARTICLES_FAILED, EXIT_OK};
use crate::llm::ApiKey;
use crate::pipeline::{self, RunOptions};
use crate::progress::{Display, Mode, Progress};
use crate::render;

/// `hanbrief summarize`: a run over the given paths with a progress display; the summary table
/// (or the dry run's plan) afterwards. The exit code is the run's.
pub(super) async fn run(global: &GlobalArgs, args: SummarizeArgs) -> Result<u8> {
    use crate::cli::OutputFormat;
    let mut settings = load_settings(
        &global.config,
        Overrides {
            max_in_flight: args.jobs,
            output_dir: args.out,
            batch: args.batch,
            strategy: args.strategy.map(crate::cli::StrategyArg::name),
            ..args.endpoint.into()
        },
    )?;
    if !args.format.is_empty() {
        // Files only for the formats asked for; jsonl alone writes no brief files.
        settings.output.markdown = args.format.contains(&OutputFormat::Md);
        settings.output.json = args.format.contains(&OutputFormat::Json);
    }
    let progress = Arc::new(Progress::default());
    let opts = RunOptions {
        inputs: args.paths,
        out: settings.output.dir.clone(),
        dry_run: args.dry_run,
        force: args.force,
        progress: Some(progress.clone()),
        jsonl: args.format.contains(&OutputFormat::Jsonl),
        no_wait: args.no_wait,
    };
    let shutdown = shutdown_on_signals(settings.limits.shutdown_grace);
    if !opts.dry_run && ApiKey::from_env(&settings.endpoint.api_key_env).is_none() {
        tracing::info!(
            "{} is not set: calling {} without an API key",
            settings.endpoint.api_key_env,
            settings.endpoint.base_url
        );
    }
    tracing::debug!(
        model = %settings.endpoint.model,
        base_url = %settings.endpoint.base_url,
        config = %settings.config_file.as_deref().map_or("none".into(), |p| p.display().to_string()),
        prompts = %settings.prompts_dir.as_deref().map_or("built-in".into(), |p| p.display().to_string()),
        price = %settings.pricing.describe(&settings.endpoint.model),
        "settings"
    );
    let display = Display::start(progress, progress_mode(global, opts.dry_run));
    let result = pipeline::run(&settings, &opts, &shutdown).await;
    display.finish().await;
    let report = result?;
    if opts.dry_run {
        print_plan(&report)?;
    } else {
        // Info lines all: what needs attention was logged as a warning or an error when it
        // happened, so `-q` says nothing more here.
        for (text, fields) in report.summary_lines() {
            console::info(&text, fields);
        }
        let files = settings.output.markdown || settings.output.json;
        if files && (report.exit_code == EXIT_OK || report.exit_code == EXIT_ARTICLES_FAILED) {
            console::info(
                &format!("briefs in {}", opts.out.display()),
                serde_json::json!({"out": opts.out.display().to_string()}),
            );
        }
    }
    Ok(report.exit_code)
}

/// A bar on a terminal; otherwise a log line when something moved, looked at every few seconds
/// (`HANBRIEF_PROGRESS_EVERY`, e.g. `10s`, sets how often), and at least once a minute; nothing
/// with `--quiet` or for a dry run.
fn progress_mode(global: &GlobalArgs, dry_run: bool) -> Mode {
    if global.quiet || dry_run {
        return Mode::Off;
    }
    if std::io::stderr().is_terminal() && global.log_format == LogFormat::Text {
        return Mode::Bar;
    }
    let every = std::env::var("HANBRIEF_PROGRESS_EVERY")
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .unwrap_or(Duration::from_secs(5))
        // `0s` would wake the display task about every millisecond.
        .max(Duration::from_millis(100));
    Mode::Lines { every }
}

fn print_plan(report: &crate::report::RunReport) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:>8} {:>7} {:>6} {:>10}  article",
        "tokens", "chunks", "calls", "est. cost"
    )?;
    for a in &report.articles {
        match a.status {
            crate::report::Status::Planned => writeln!(
                out,
                "{:>8} {:>7} {:>6} {:>10}  {}",
                render::group(a.tokens),
                a.chunks,
                a.calls,
                a.cost_usd
                    .map_or("unknown".to_string(), |c| format!("${c:.4}")),
                a.path
            )?,
            _ => writeln!(
                out,
                "{:>8} {:>7} {:>6} {:>10}  {} ({})",
                "-",
                "-",
                0,
                "-",
                a.path,
                a.reason.as_deref().unwrap_or("skipped")
            )?,
        }
    }
    let t = &report.totals;
    let batch = report.batch_plan.is_some();
    writeln!(
        out,
        "{} ({} skipped): {}, at most {} prompt + {} completion tokens, {} with model {}",
        count(t.articles as u64, "article", "articles"),
        t.skipped,
        count(t.calls, "call", "calls"),
        t.prompt_tokens,
        t.completion_tokens,
        match t.cost_usd {
            Some(c) if batch => format!("at most ${c:.4} at batch prices"),
            Some(c) => format!("at most ${c:.4}"),
            None => format!(
                "unknown cost ({})",
                crate::pricing::how_to_price(&report.model)
            ),
        },
        report.model
    )?;
    if let Some(phases) = &report.batch_plan {
        // Each phase waits for the one before: a long article's reduce needs its notes.
        writeln!(
            out,
            "batch mode: {} (each waits for the one before; results within 24 hours each)",
            count(phases.len() as u64, "phase", "phases")
        )?;
        for p in phases {
            let files = match p.files.len() {
                1 => "1 request file".to_string(),
                n => format!(
                    "{n} request files of {} requests",
                    p.files
                        .iter()
                        .map(|n| render::group(*n as usize))
                        .collect::<Vec<_>>()
                        .join(" + ")
                ),
            };
            writeln!(
                out,
                "  phase {}: {} in {files}, at most {} prompt tokens, about {} KB",
                p.phase,
                count(p.requests, "request", "requests"),
                render::group(p.prompt_tokens as usize),
                render::group(p.est_bytes.div_ceil(1000) as usize)
            )?;
        }
    }
    Ok(())
}
