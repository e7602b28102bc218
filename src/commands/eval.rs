//! `hanbrief eval`: runs the real pipeline over an evaluation set (into `--out` or a temporary
//! folder), prints the scores as a table or JSON, and turns the run's outcome and the optional
//! quality thresholds into the exit code, so that a CI job can fail on it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result};

use super::load_settings;
use super::signal::shutdown_on_signals;
use crate::cli::{EvalArgs, StrategyArg};
use crate::config::Overrides;
use crate::error::{EXIT_INTERRUPTED, EXIT_OK, EXIT_PROVIDER, EXIT_QUALITY};
use crate::eval::EvalReport;

/// `hanbrief eval`: the real pipeline over a set with known facts, scored; the report on stdout.
/// Exit 3 or 130 as the run's (the provider refused us, or a signal stopped it: the scores
/// are then partial), else 1 when a threshold is missed, else 0.
pub(super) async fn run(config_flag: &Option<PathBuf>, args: EvalArgs) -> Result<u8> {
    let settings = load_settings(
        config_flag,
        Overrides {
            batch: args.batch,
            strategy: args.strategy.map(StrategyArg::name),
            ..args.endpoint.clone().into()
        },
    )?;
    let temp;
    let out = match &args.out {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary folder")?;
            temp.path().to_path_buf()
        }
    };
    let shutdown = shutdown_on_signals(settings.limits.shutdown_grace);
    let report = crate::eval::run(&settings, &args.set, &out, &shutdown).await?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", report.table())?;
    }
    if report.exit_code == EXIT_PROVIDER || report.exit_code == EXIT_INTERRUPTED {
        crate::console::error(
            &format!(
                "hanbrief: the eval run stopped early ({}); the scores above are partial",
                // The provider's error was logged when it happened: not twice.
                if report.exit_code == EXIT_PROVIDER {
                    "on the error above"
                } else {
                    report.stopped.as_deref().unwrap_or("see the log")
                }
            ),
            serde_json::json!({"exit_code": report.exit_code}),
        );
        return Ok(report.exit_code);
    }
    let missed = missed_thresholds(&report, &args);
    for m in &missed {
        crate::console::error(
            &format!("hanbrief: {m}"),
            serde_json::json!({"threshold_missed": true}),
        );
    }
    Ok(if missed.is_empty() {
        EXIT_OK
    } else {
        EXIT_QUALITY
    })
}

/// The thresholds the report misses, one sentence each.
fn missed_thresholds(report: &EvalReport, args: &EvalArgs) -> Vec<String> {
    let pct = |v: f64| format!("{:.1} %", 100.0 * v);
    let mut missed = Vec::new();
    let mut at_least = |name: &str, flag: &str, value: f64, limit: Option<f64>| {
        if let Some(limit) = limit
            && value < limit
        {
            missed.push(format!(
                "{name} {} is below {flag} {}",
                pct(value),
                pct(limit)
            ));
        }
    };
    at_least(
        "fact coverage",
        "--min-coverage",
        report.fact_coverage,
        args.min_coverage,
    );
    at_least(
        "the valid-brief rate",
        "--min-valid",
        report.valid_brief_rate,
        args.min_valid,
    );
    at_least(
        "bilingual completeness",
        "--min-bilingual",
        report.bilingual_completeness,
        args.min_bilingual,
    );
    if let Some(limit) = args.max_unsupported
        && report.unsupported_figure_rate > limit
    {
        missed.push(format!(
            "the unsupported-figure rate {} is above --max-unsupported {}",
            pct(report.unsupported_figure_rate),
            pct(limit)
        ));
    }
    missed
}
