//! `hanbrief eval`: runs the real pipeline over an evaluation set (into `--out` or a temporary
//! folder) and prints the scores as a table or JSON.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result};

use super::load_settings;
use super::signal::install_signal_handlers;
use crate::cli::EvalArgs;
use crate::config::Overrides;
use crate::error::EXIT_OK;
use crate::pipeline::Shutdown;

/// `hanbrief eval`: the real pipeline over a set with known facts, scored; the report on stdout.
pub(super) async fn run(config_flag: &Option<PathBuf>, args: EvalArgs) -> Result<u8> {
    let settings = load_settings(
        config_flag,
        Overrides {
            model: args.model,
            base_url: args.base_url,
            ..Default::default()
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
    let shutdown = Shutdown::default();
    install_signal_handlers(shutdown.clone(), settings.limits.shutdown_grace);
    let report = crate::eval::run(&settings, &args.set, &out, &shutdown).await?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", report.table())?;
    }
    Ok(EXIT_OK)
}
