//! The `hanbrief` binary: parse the command line, set up logging, run, exit with the code the
//! library chose. Everything else lives in the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use hanbrief::cli::{Cli, LogFormat};
use hanbrief::console::{self, Console};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    console::init(Console {
        quiet: cli.global.quiet,
        json: cli.global.log_format == LogFormat::Json,
    });
    init_logging(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            console::error(
                &format!("hanbrief: cannot start the async runtime: {e}"),
                serde_json::Value::Null,
            );
            return ExitCode::from(hanbrief::error::EXIT_INTERNAL);
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
            console::error(&format!("hanbrief: {e:#}"), serde_json::Value::Null);
            ExitCode::from(hanbrief::error::exit_code(&e))
        }
    }
}

/// A command line clap refused (or `--help`/`--version`, which go to stdout as usual). With
/// `--log-format json` among the arguments, the error is one JSON line like every other.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) || !json_asked()
    {
        e.exit();
    }
    let text = e.render().to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ");
    let line = console::json_line(
        console::Level::Error,
        &format!("hanbrief: {first}"),
        serde_json::json!({"usage": text.trim_end()}),
    );
    eprint!("{line}");
    ExitCode::from(hanbrief::error::EXIT_USAGE)
}

/// Whether the raw arguments ask for JSON logs (the parse failed, so look for the flag itself).
fn json_asked() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().enumerate().any(|(i, a)| {
        a == "--log-format=json"
            || (a == "--log-format" && args.get(i + 1).is_some_and(|v| v == "json"))
    })
}

/// `-q`: warnings and errors. Default: what happens to each article. `-v`: each call and each
/// article's plan. `-vv`: also every request as sent (the key masked) and every reply, for
/// debugging a prompt. `-vvv`: also the HTTP client's own logs (connections, TLS).
fn init_logging(global: &hanbrief::cli::GlobalArgs) {
    let directives = match (global.quiet, global.verbose) {
        (true, _) => "warn,hanbrief=warn",
        (false, 0) => "warn,hanbrief=info",
        (false, 1) => "warn,hanbrief=debug",
        (false, 2) => "warn,hanbrief=trace",
        (false, _) => "debug,hanbrief=trace",
    };
    // HANBRIEF_LOG (or RUST_LOG) refines the level per module, e.g. HANBRIEF_LOG=hanbrief::llm=debug.
    let filter = std::env::var("HANBRIEF_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(directives));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(hanbrief::progress::LogWriter)
        .with_target(global.verbose >= 3);
    match global.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .without_time()
            .init(),
    }
}
