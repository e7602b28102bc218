//! The `hanbrief` binary: parse the command line, set up logging, run, exit with the code the
//! library chose. Everything else lives in the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use hanbrief::cli::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hanbrief: cannot start the async runtime: {e}");
            return ExitCode::from(hanbrief::error::EXIT_USAGE);
        }
    };
    match runtime.block_on(hanbrief::commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        // The reader of our output went away (`hanbrief inspect x | head`): not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hanbrief: {e:#}");
            ExitCode::from(hanbrief::error::EXIT_USAGE)
        }
    }
}

fn init_logging(global: &hanbrief::cli::GlobalArgs) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    // HANBRIEF_LOG (or RUST_LOG) refines the level per module, e.g. HANBRIEF_LOG=hanbrief::llm=debug.
    let filter = std::env::var("HANBRIEF_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("warn,hanbrief={level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(hanbrief::progress::LogWriter)
        .with_target(false);
    match global.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .without_time()
            .init(),
    }
}
