//! `hanbrief schedule`: the cron and time zone flags over the settings, then
//! [`crate::schedule::run`] until a signal.

use std::path::PathBuf;

use anyhow::Result;

use super::load_settings;
use super::signal::shutdown_on_signals;
use crate::cli::ScheduleArgs;
use crate::config::Overrides;

/// `hanbrief schedule`: runs until a signal; the exit code is the scheduler's.
pub(super) async fn run(config_flag: &Option<PathBuf>, args: ScheduleArgs) -> Result<u8> {
    let settings = load_settings(
        config_flag,
        Overrides {
            cron: args.cron,
            timezone: args.tz,
            ..Default::default()
        },
    )?;
    let shutdown = shutdown_on_signals(settings.limits.shutdown_grace);
    Ok(crate::schedule::run(&settings, &shutdown, args.once).await?)
}
