//! Acting on the parsed command line: one module per command, each loading its settings,
//! running, printing its result and returning the exit code. Results go to stdout, logs and
//! errors to stderr. This file is only the table from [`Command`] to those modules.

mod batch;
mod cache;
mod config;
mod digest;
mod eval;
mod inspect;
mod man;
mod mock_provider;
mod prompts;
mod schedule;
mod signal;
mod summarize;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use crate::cli::{Cli, Command, EndpointArgs};
use crate::config::{Overrides, Settings};
use crate::error::{EXIT_OK, UsageError};

/// Runs the command and returns the process exit code. Errors are usage or configuration
/// problems (exit code 2), already worded for the user.
pub async fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Summarize(args) => summarize::run(&cli.global, args).await,
        Command::Inspect(args) => inspect::run(&cli.global.config, args),
        Command::Config(cmd) => config::run(&cli.global.config, cmd).await,
        Command::Prompts(cmd) => prompts::run(&cli.global.config, cmd),
        Command::MockProvider(args) => mock_provider::run(args).await,
        Command::Cache(args) => cache::run(&cli.global.config, args).await,
        Command::Batch(args) => batch::run(&cli.global.config, args).await,
        Command::Digest(args) => digest::run(&cli.global.config, args).await,
        Command::Schedule(args) => schedule::run(&cli.global.config, args).await,
        Command::Eval(args) => eval::run(&cli.global.config, args).await,
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "hanbrief", &mut script);
            std::io::stdout().lock().write_all(&script)?;
            Ok(EXIT_OK)
        }
        Command::Man => {
            man::render(&mut std::io::stdout().lock())?;
            Ok(EXIT_OK)
        }
    }
}

/// Loads settings from the config file (flag, environment or ./config.toml) and overrides.
fn load_settings(config_flag: &Option<PathBuf>, overrides: Overrides) -> Result<Settings> {
    let env = crate::config::process_env();
    let file = crate::config::locate_config_file(config_flag.as_deref(), &env);
    Ok(crate::config::load(file.as_deref(), &env, &overrides)?)
}

/// The settings with `-o DIR` applied, and the state store of that output folder (`cache` and
/// `batch` work on it; neither creates one). A folder without one is a usage error that names
/// `creator`, the command that would have made it (`hanbrief summarize -o`).
async fn output_store(
    config_flag: &Option<PathBuf>,
    out: Option<PathBuf>,
    creator: &str,
) -> Result<(Settings, crate::store::Store)> {
    let settings = load_settings(
        config_flag,
        Overrides {
            output_dir: out,
            ..Default::default()
        },
    )?;
    let dir = &settings.output.dir;
    let Some(store) = crate::store::Store::open_existing(dir).await? else {
        return Err(UsageError(format!(
            "{} has no state store yet (the first `{creator} {}` creates it)",
            dir.display(),
            dir.display()
        ))
        .into());
    };
    Ok((settings, store))
}

impl From<EndpointArgs> for Overrides {
    fn from(a: EndpointArgs) -> Overrides {
        Overrides {
            model: a.model,
            base_url: a.base_url,
            ..Default::default()
        }
    }
}
