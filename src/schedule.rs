//! The scheduled job: `summarize` on the configured input folder at the times of a cron
//! expression (5 fields, or 6 with seconds first) in a named time zone, each tick followed by a
//! digest of that tick's new briefs.
//!
//! Ticks never overlap: the loop runs one tick at a time, and a tick that runs past the next
//! scheduled time delays that tick (it starts as soon as the long one ends, logged) instead of
//! piling up. Each tick is an ordinary incremental run (lock, cache, manifest), so it costs only
//! what is new, and a tick that finds the folder locked by a manual run skips, logged. SIGTERM
//! between ticks ends the job at once (exit 0); during a tick it stops the tick as `summarize`
//! stops (calls in flight finish, everything finished is written, exit 130). Either way the lock
//! is released.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

use crate::config::Settings;
use crate::error::{EXIT_INTERRUPTED, EXIT_OK};
use crate::pipeline::{self, RunError, RunOptions, Shutdown};
use crate::report::Status;
use crate::store::StoreError;

/// The schedule could not start: a configuration problem (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "invalid cron expression {expr:?} (schedule.cron or --cron): {message}. Use 5 fields (minute hour day month weekday), or 6 with seconds first, e.g. \"0 7 * * *\""
    )]
    Cron { expr: String, message: String },
    #[error(
        "unknown time zone {0:?} (schedule.timezone or --tz); use an IANA name such as \"Asia/Seoul\""
    )]
    TimeZone(String),
    #[error("the cron expression {0:?} never fires")]
    Never(String),
    #[error(
        "the schedule's input folder {} (schedule.input) does not exist{}; every tick would fail. Create it or set schedule.input",
        path.display(),
        if path.is_relative() { " (relative paths in a config file are relative to its folder)" } else { "" }
    )]
    NoInput { path: PathBuf },
}

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
    expr: String,
}

impl Schedule {
    /// Parses a cron expression (seconds optional) and an IANA time zone.
    pub fn parse(expr: &str, tz: &str) -> Result<Schedule, ScheduleError> {
        let cron = Self::parse_cron(expr)?;
        let tz = Self::parse_tz(tz)?;
        Ok(Schedule {
            cron,
            tz,
            expr: expr.to_string(),
        })
    }

    fn parse_cron(expr: &str) -> Result<Cron, ScheduleError> {
        // croner also takes a seventh field (years) and says "5 to 7 fields"; hanbrief
        // documents 5 or 6 and keeps to it. Nicknames such as @daily have one.
        let fields = expr.split_whitespace().count();
        if !expr.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
            return Err(ScheduleError::Cron {
                expr: expr.to_string(),
                message: format!(
                    "it has {} field{}",
                    fields,
                    if fields == 1 { "" } else { "s" }
                ),
            });
        }
        CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(expr)
            .map_err(|e| ScheduleError::Cron {
                expr: expr.to_string(),
                message: e.to_string().trim_end_matches('.').to_string(),
            })
    }

    fn parse_tz(tz: &str) -> Result<Tz, ScheduleError> {
        Tz::from_str(tz).map_err(|_| ScheduleError::TimeZone(tz.to_string()))
    }

    /// The first firing strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Result<DateTime<Tz>, ScheduleError> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.tz), false)
            .map_err(|_| ScheduleError::Never(self.expr.clone()))
    }

    /// How many firing times fall strictly between `from` and `to` (bounded: for logs).
    pub fn missed(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> usize {
        let mut n = 0;
        let mut t = from;
        while n < 1000 {
            match self.next_after(t) {
                Ok(next) if next.with_timezone(&Utc) < to => {
                    n += 1;
                    t = next.with_timezone(&Utc);
                }
                _ => break,
            }
        }
        n
    }

    /// The schedule's period at `now`: the time between its last two firings before `now` (a
    /// day for a daily cron; three days on a Monday for a weekday one). `None` when it has not
    /// fired twice (a cron for one date).
    pub fn period(&self, now: DateTime<Utc>) -> Option<std::time::Duration> {
        let now = now.with_timezone(&self.tz);
        let last = self.cron.find_previous_occurrence(&now, false).ok()?;
        let before = self.cron.find_previous_occurrence(&last, false).ok()?;
        (last - before).to_std().ok()
    }

    /// "At 07:00." and the like.
    pub fn describe(&self) -> String {
        self.cron.describe()
    }

    /// The time zone.
    pub fn tz(&self) -> Tz {
        self.tz
    }
}

/// The schedule of `settings`, checked: the cron expression, the time zone, and the input
/// folder (a missing one would fail every tick, forever). The first problem.
pub fn check(settings: &Settings) -> Result<Schedule, ScheduleError> {
    let s = &settings.schedule;
    let schedule = Schedule::parse(&s.cron, &s.timezone)?;
    if !s.input.exists() {
        return Err(ScheduleError::NoInput {
            path: s.input.clone(),
        });
    }
    Ok(schedule)
}

/// Every problem of the schedule of `settings` (for `config check`).
pub fn problems(settings: &Settings) -> Vec<ScheduleError> {
    let s = &settings.schedule;
    let mut out = Vec::new();
    out.extend(Schedule::parse_cron(&s.cron).err());
    out.extend(Schedule::parse_tz(&s.timezone).err());
    if !s.input.exists() {
        out.push(ScheduleError::NoInput {
            path: s.input.clone(),
        });
    }
    out
}

/// "2026-12-01 07:00:00 KST (in 6h 12m)".
fn when(at: &DateTime<Tz>) -> String {
    let wait = (at.with_timezone(&Utc) - Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO);
    format!(
        "{} (in {})",
        at.format("%Y-%m-%d %H:%M:%S %Z"),
        crate::console::duration(wait)
    )
}

/// Runs the scheduled job until a signal, or one tick now with `once` (to try a schedule
/// config); returns the exit code (with `once`, the tick's).
pub async fn run(
    settings: &Settings,
    shutdown: &Shutdown,
    once: bool,
) -> Result<u8, ScheduleError> {
    let s = &settings.schedule;
    let schedule = check(settings)?;
    tracing::info!(
        cron = %s.cron,
        tz = %s.timezone,
        input = %s.input.display(),
        output = %s.output.display(),
        "schedule: {}",
        schedule.describe()
    );
    if !settings.output.json {
        tracing::warn!(
            "output.formats has no \"json\": briefs are written, but the digests read JSON briefs, so there will be none"
        );
    }
    let mut planned = schedule.next_after(Utc::now())?;
    if once {
        tracing::info!(
            "--once: one tick now; the schedule would run next at {}",
            when(&planned)
        );
        let now = Utc::now().with_timezone(&schedule.tz());
        return Ok(tick(settings, shutdown, now).await);
    }
    tracing::info!(at = %planned.to_rfc3339(), "next run at {}", when(&planned));
    loop {
        // Sleep in slices, checking the wall clock: a suspended machine or a clock step must
        // not push a tick hours away from its time.
        loop {
            let now = Utc::now();
            let wait = (planned.with_timezone(&Utc) - now)
                .to_std()
                .unwrap_or(Duration::ZERO);
            if wait.is_zero() {
                break;
            }
            tracing::debug!(at = %planned.to_rfc3339(), "next tick");
            tokio::select! {
                _ = tokio::time::sleep(wait.min(Duration::from_secs(30))) => {}
                _ = shutdown.stop.cancelled() => {
                    tracing::info!("stopping between ticks");
                    return Ok(EXIT_OK);
                }
            }
        }
        if shutdown.stop.is_cancelled() {
            return Ok(EXIT_OK);
        }
        let code = tick(settings, shutdown, planned).await;
        if code == EXIT_INTERRUPTED {
            return Ok(EXIT_INTERRUPTED);
        }
        // The time after the tick just run. If it has passed (the tick ran long), that tick runs
        // now, delayed, and the times missed after it are not made up.
        let next = schedule.next_after(planned.with_timezone(&Utc))?;
        let now = Utc::now();
        planned = if next.with_timezone(&Utc) < now {
            let skipped = schedule.missed(next.with_timezone(&Utc), now);
            tracing::warn!(
                planned = %next.to_rfc3339(),
                skipped,
                "the tick ran past the next tick's time: starting that one now{}",
                if skipped > 0 { format!(", and skipping {skipped} time(s) missed after it") } else { String::new() }
            );
            now.with_timezone(&schedule.tz())
        } else {
            next
        };
        tracing::info!(at = %planned.to_rfc3339(), "next run at {}", when(&planned));
    }
}

/// One tick: an incremental run, then a digest of its new briefs. Returns the run's exit code.
async fn tick(settings: &Settings, shutdown: &Shutdown, at: DateTime<Tz>) -> u8 {
    let s = &settings.schedule;
    // The tick's own tokens: a signal (on the job's tokens) reaches them, but a provider that
    // refuses us stops this tick only, not the job; the next tick tries again.
    let tick_shutdown = Shutdown {
        stop: shutdown.stop.child_token(),
        abort: shutdown.abort.child_token(),
    };
    let opts = RunOptions {
        no_wait: false,
        inputs: vec![s.input.clone()],
        out: s.output.clone(),
        dry_run: false,
        force: false,
        progress: None,
        jsonl: false,
    };
    let started = std::time::Instant::now();
    let report = match pipeline::run(settings, &opts, &tick_shutdown).await {
        Ok(r) => r,
        Err(RunError::Store(e @ StoreError::Locked { .. })) => {
            tracing::warn!("skipping this tick: {e}");
            return EXIT_OK;
        }
        Err(e) => {
            tracing::error!("this tick could not run: {e}");
            return crate::error::EXIT_USAGE;
        }
    };
    let t = &report.totals;
    tracing::info!(
        written = t.written,
        unchanged = t.unchanged,
        skipped = t.skipped,
        failed = t.failed,
        calls = t.calls,
        cost_usd = %t.cost_usd.map_or("unknown".to_string(), |c| format!("{c:.4}")),
        took = %crate::console::duration(started.elapsed()),
        "tick done"
    );
    if shutdown.stop.is_cancelled() {
        return EXIT_INTERRUPTED;
    }
    if report.exit_code == crate::error::EXIT_PROVIDER {
        // The error itself was logged when it happened.
        tracing::error!("this tick stopped early on the error above; the next tick tries again");
    }
    let new: Vec<PathBuf> = report
        .articles
        .iter()
        .filter(|a| a.status == Status::Written)
        .flat_map(|a| {
            a.outputs
                .iter()
                .filter(|o| o.ends_with(".json"))
                .map(PathBuf::from)
        })
        .collect();
    if new.is_empty() {
        tracing::info!("nothing new: no digest this tick");
        return report.exit_code;
    }
    let stem = s
        .output
        .join(&settings.digest.dir)
        .join(at.format("%Y-%m-%d-%H%M%S").to_string());
    let date = at.format("%Y-%m-%d").to_string();
    let selection = crate::digest::Selection::Files(new);
    match crate::digest::run(
        settings,
        &s.output,
        selection,
        &date,
        &stem,
        &tick_shutdown,
        false,
    )
    .await
    {
        Ok(done) => {
            tracing::info!(briefs = done.digest.briefs, digest = %done.json.display(), "digest written")
        }
        Err(e) => tracing::error!("the digest of this tick failed: {e}"),
    }
    report.exit_code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_is_the_time_between_the_last_two_firings() {
        let day = std::time::Duration::from_secs(86_400);
        let daily = Schedule::parse("0 7 * * *", "Asia/Seoul").unwrap();
        // 2026-11-30 is a Monday; 13:00 KST.
        let monday: DateTime<Utc> = "2026-11-30T04:00:00Z".parse().unwrap();
        assert_eq!(daily.period(monday), Some(day));
        // A weekday cron on a Monday reaches back over the weekend, to Friday's run.
        let weekdays = Schedule::parse("0 7 * * 1-5", "Asia/Seoul").unwrap();
        assert_eq!(weekdays.period(monday), Some(3 * day));
        let tuesday: DateTime<Utc> = "2026-12-01T04:00:00Z".parse().unwrap();
        assert_eq!(weekdays.period(tuesday), Some(day));
        let hourly = Schedule::parse("0 * * * *", "UTC").unwrap();
        assert_eq!(
            hourly.period(monday),
            Some(std::time::Duration::from_secs(3600))
        );
    }

    #[test]
    fn five_and_six_field_expressions_in_a_time_zone() {
        let s = Schedule::parse("0 7 * * *", "Asia/Seoul").unwrap();
        let from: DateTime<Utc> = "2026-11-23T23:30:00Z".parse().unwrap(); // 08:30 KST
        let next = s.next_after(from).unwrap();
        assert_eq!(next.to_rfc3339(), "2026-11-25T07:00:00+09:00");
        assert_eq!(
            next.with_timezone(&Utc).to_rfc3339(),
            "2026-11-24T22:00:00+00:00"
        );
        let s = Schedule::parse("*/2 * * * * *", "UTC").unwrap();
        let next = s.next_after(from).unwrap();
        assert_eq!(
            next.with_timezone(&Utc).to_rfc3339(),
            "2026-11-23T23:30:02+00:00"
        );
    }

    #[test]
    fn field_counts_are_the_documented_ones() {
        for (expr, fields) in [("every minute", 2), ("0 0 7 * * * 2027", 7), ("* * *", 3)] {
            let e = Schedule::parse(expr, "UTC").unwrap_err().to_string();
            assert!(e.contains(&format!("it has {fields} fields")), "{e}");
            assert!(!e.contains("5 and 7") && !e.contains(".."), "{e}");
            assert!(
                e.contains("5 fields") && e.contains("6 with seconds first"),
                "{e}"
            );
        }
        assert!(Schedule::parse("@daily", "UTC").is_ok());
        assert!(Schedule::parse("30 0 7 * * *", "UTC").is_ok());
    }

    #[test]
    fn bad_expressions_and_zones_are_named() {
        let e = Schedule::parse("61 * * * *", "Asia/Seoul").unwrap_err();
        assert!(e.to_string().contains("\"61 * * * *\""), "{e}");
        let e = Schedule::parse("0 7 * * *", "Asia/Busan").unwrap_err();
        assert!(e.to_string().contains("Asia/Busan"), "{e}");
    }
}
