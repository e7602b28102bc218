//! `hanbrief digest`: dates the digest in the schedule's time zone, picks its file names, runs
//! [`crate::digest::run`] and maps its outcome to an exit code.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use super::load_settings;
use super::signal::shutdown_on_signals;
use crate::cli::DigestArgs;
use crate::config::Overrides;
use crate::console::{self, count};
use crate::error::{EXIT_ARTICLES_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_PROVIDER};

/// `hanbrief digest`: one digest of the briefs folder (or those since `--since`); the paths of
/// the written files on stdout, the summary on stderr.
pub(super) async fn run(config_flag: &Option<PathBuf>, args: DigestArgs) -> Result<u8> {
    use crate::digest::{DigestError, Selection};
    let settings = load_settings(
        config_flag,
        Overrides {
            batch: args.batch,
            ..args.endpoint.into()
        },
    )?;
    let dir = args
        .briefs_dir
        .unwrap_or_else(|| settings.output.dir.clone());
    let tz: chrono_tz::Tz = settings.schedule.timezone.parse().map_err(|_| {
        crate::error::UsageError(format!(
            "unknown time zone {:?} (schedule.timezone), used to date the digest; use an IANA name such as \"Asia/Seoul\"",
            settings.schedule.timezone
        ))
    })?;
    let today = chrono::Utc::now()
        .with_timezone(&tz)
        .format("%Y-%m-%d")
        .to_string();
    let stem = match args.out {
        Some(p) if p.extension().is_some_and(|e| e == "md" || e == "json") => p.with_extension(""),
        Some(p) => p,
        None => dir.join(&settings.digest.dir).join(&today),
    };
    let window = match (args.since, args.all) {
        (_, true) => None,
        (Some(d), false) => Some((d, "--since")),
        (None, false) => Some((default_window(&settings), "the schedule's period")),
    };
    // A period longer than history reaches back to the beginning.
    let since = window.map(|(d, _)| {
        chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| chrono::Utc::now().checked_sub_signed(d))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
            .fixed_offset()
    });
    let period = match window {
        Some((d, why)) => format!(" written in the last {} ({why})", console::duration(d)),
        None => String::new(),
    };
    let shutdown = shutdown_on_signals(settings.limits.shutdown_grace);
    match crate::digest::run(
        &settings,
        &dir,
        Selection::All(since),
        &today,
        &stem,
        &shutdown,
        args.force,
    )
    .await
    {
        Ok(done) => {
            let d = &done.digest;
            let stories: usize = d.topics.iter().map(|t| t.stories.len()).sum();
            console::info(
                &format!(
                    "digest of {}{period}: {} in {} · {} ({} cached) · {}",
                    count(d.briefs as u64, "brief", "briefs"),
                    count(stories as u64, "story", "stories"),
                    count(d.topics.len() as u64, "topic", "topics"),
                    count(d.usage.calls, "call", "calls"),
                    d.usage.cached_calls,
                    crate::pricing::usd(d.usage.cost_usd)
                ),
                json!({
                    "briefs": d.briefs,
                    "stories": stories,
                    "topics": d.topics.len(),
                    "calls": d.usage.calls,
                    "cached_calls": d.usage.cached_calls,
                    "cost_usd": d.usage.cost_usd,
                    "since": since.map(|s| s.to_rfc3339()),
                    "md": done.md.display().to_string(),
                    "json": done.json.display().to_string(),
                }),
            );
            // The files written, for scripts; `-q` (cron) keeps quiet.
            if !console::get().quiet {
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{}", done.md.display())?;
                writeln!(stdout, "{}", done.json.display())?;
            }
            Ok(EXIT_OK)
        }
        Err(DigestError::Empty(dir, _)) => {
            console::info(
                &format!(
                    "hanbrief: no briefs in {}{}: nothing to digest{}",
                    dir.display(),
                    if window.is_some() {
                        format!("{period}; --since 7d or --all reach further back")
                    } else {
                        String::new()
                    },
                    if settings.output.json {
                        ""
                    } else {
                        " (digests read the .json briefs, and output.formats has no \"json\")"
                    }
                ),
                json!({"briefs": 0}),
            );
            Ok(EXIT_OK)
        }
        Err(DigestError::Article(crate::error::ArticleError::Llm(e))) if e.is_fatal() => {
            console::error(&format!("hanbrief: {e}"), json!(null));
            Ok(EXIT_PROVIDER)
        }
        // Stopped by a signal before the digest was written (a call still on the wire after
        // the grace is dropped): nothing is written.
        Err(DigestError::Article(_)) if shutdown.stop.is_cancelled() => {
            console::error(
                "hanbrief: interrupted; no digest written",
                json!({"interrupted": true}),
            );
            Ok(EXIT_INTERRUPTED)
        }
        Err(e @ (DigestError::Article(_) | DigestError::Write { .. })) => {
            console::error(&format!("hanbrief: the digest failed: {e}"), json!(null));
            Ok(EXIT_ARTICLES_FAILED)
        }
        Err(e) => Err(e.into()),
    }
}

/// The window of a `digest` without `--since`: the schedule's period (the digest the schedule
/// would make), or a day when the schedule's cron cannot say (invalid, or a cron for one date).
/// Loading every brief ever written made a digest of a long-used folder ever slower and larger
/// than one call.
fn default_window(settings: &crate::config::Settings) -> std::time::Duration {
    const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);
    crate::schedule::Schedule::parse(&settings.schedule.cron, &settings.schedule.timezone)
        .ok()
        .and_then(|s| s.period(chrono::Utc::now()))
        .filter(|d| !d.is_zero())
        .unwrap_or(DAY)
}
