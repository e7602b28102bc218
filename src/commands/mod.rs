//! Acting on the parsed command line: load the configuration, run the command, print its
//! result, and return the exit code. Results go to stdout, logs and errors to stderr.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::cli::{
    Cli, Command, ConfigCommand, GlobalArgs, InspectArgs, LogFormat, PromptsCommand, SummarizeArgs,
};
use crate::config::{self, Overrides, Settings};
use crate::error::{EXIT_ARTICLES_FAILED, EXIT_OK, EXIT_PROVIDER, EXIT_USAGE};
use crate::ingest::{self, InputFile};
use crate::llm::{ApiKey, ChatClient, ChatRequest, LlmError, Message, Purpose, ReplyFormat};
use crate::pipeline::{self, RunOptions, Shutdown};
use crate::progress::{Display, Mode, Progress};
use crate::prompt::{self, Prompts};
use crate::summarize::Summarizer;
use crate::tokens::Tokenizer;
use crate::{brief, clean};

/// Runs the command and returns the process exit code. Errors are usage or configuration
/// problems (exit code 2), already worded for the user.
pub async fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Summarize(args) => summarize(&cli.global, args).await,
        Command::Inspect(args) => inspect(&cli.global.config, args),
        Command::Config(ConfigCommand::Show(args)) => {
            let settings = load_settings(
                &cli.global.config,
                Overrides {
                    model: args.model,
                    base_url: args.base_url,
                    ..Default::default()
                },
            )?;
            print_config(&settings)?;
            Ok(EXIT_OK)
        }
        Command::Config(ConfigCommand::Check(args)) => {
            let settings = load_settings(
                &cli.global.config,
                Overrides {
                    model: args.model,
                    base_url: args.base_url,
                    ..Default::default()
                },
            )?;
            config_check(&settings, args.ping).await
        }
        Command::Prompts(cmd) => prompts(&cli.global.config, cmd),
        Command::MockProvider(args) => mock_provider(args).await,
        Command::Cache(args) => cache(&cli.global.config, args),
        Command::Digest(args) => digest(&cli.global.config, args).await,
        Command::Schedule(args) => schedule(&cli.global.config, args).await,
        Command::Eval(args) => eval(&cli.global.config, args).await,
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "hanbrief", &mut script);
            std::io::stdout().lock().write_all(&script)?;
            Ok(EXIT_OK)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
            Ok(EXIT_OK)
        }
    }
}

async fn eval(config_flag: &Option<std::path::PathBuf>, args: crate::cli::EvalArgs) -> Result<u8> {
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

async fn digest(
    config_flag: &Option<std::path::PathBuf>,
    args: crate::cli::DigestArgs,
) -> Result<u8> {
    use crate::digest::{DigestError, Selection};
    let settings = load_settings(
        config_flag,
        Overrides {
            model: args.model,
            base_url: args.base_url,
            ..Default::default()
        },
    )?;
    let dir = args
        .briefs_dir
        .unwrap_or_else(|| settings.output.dir.clone());
    let tz: chrono_tz::Tz = settings.schedule.timezone.parse().map_err(|_| {
        anyhow::anyhow!(
            "unknown time zone {:?} (schedule.timezone), used to date the digest; use an IANA name such as \"Asia/Seoul\"",
            settings.schedule.timezone
        )
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
    // A period longer than history reaches back to the beginning.
    let since = args.since.map(|d| {
        chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| chrono::Utc::now().checked_sub_signed(d))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
            .fixed_offset()
    });
    let shutdown = Shutdown::default();
    install_signal_handlers(shutdown.clone(), settings.limits.shutdown_grace);
    match crate::digest::run(
        &settings,
        &dir,
        Selection::All(since),
        &today,
        &stem,
        &shutdown.stop,
    )
    .await
    {
        Ok(done) => {
            let d = &done.digest;
            let stories: usize = d.topics.iter().map(|t| t.stories.len()).sum();
            eprintln!(
                "digest of {} briefs: {} stories in {} topics · {} calls ({} cached) · ${:.4}",
                d.briefs,
                stories,
                d.topics.len(),
                d.usage.calls,
                d.usage.cached_calls,
                d.usage.cost_usd
            );
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{}", done.md.display())?;
            writeln!(stdout, "{}", done.json.display())?;
            Ok(EXIT_OK)
        }
        Err(DigestError::Empty(dir, _)) => {
            eprintln!(
                "hanbrief: no briefs in {}{}: nothing to digest{}",
                dir.display(),
                if since.is_some() {
                    " in that period"
                } else {
                    ""
                },
                if settings.output.json {
                    ""
                } else {
                    " (digests read the .json briefs, and output.formats has no \"json\")"
                }
            );
            Ok(EXIT_OK)
        }
        Err(DigestError::Article(crate::error::ArticleError::Llm(e))) if e.is_fatal() => {
            eprintln!("hanbrief: {e}");
            Ok(EXIT_PROVIDER)
        }
        Err(e @ (DigestError::Article(_) | DigestError::Write { .. })) => {
            eprintln!("hanbrief: the digest failed: {e}");
            Ok(EXIT_ARTICLES_FAILED)
        }
        Err(e) => Err(e.into()),
    }
}

async fn schedule(
    config_flag: &Option<std::path::PathBuf>,
    args: crate::cli::ScheduleArgs,
) -> Result<u8> {
    let settings = load_settings(
        config_flag,
        Overrides {
            cron: args.cron,
            timezone: args.tz,
            ..Default::default()
        },
    )?;
    let shutdown = Shutdown::default();
    install_signal_handlers(shutdown.clone(), settings.limits.shutdown_grace);
    Ok(crate::schedule::run(&settings, &shutdown).await?)
}

fn cache(config_flag: &Option<std::path::PathBuf>, args: crate::cli::CacheArgs) -> Result<u8> {
    use crate::cli::CacheCommand;
    use crate::store::{RunLock, Store};
    let settings = load_settings(
        config_flag,
        Overrides {
            output_dir: args.out,
            ..Default::default()
        },
    )?;
    let out = &settings.output.dir;
    let Some(store) = Store::open_existing(out)? else {
        bail!(
            "{} has no state store yet (it is created by the first `hanbrief summarize -o {}`)",
            out.display(),
            out.display()
        );
    };
    let mut stdout = std::io::stdout().lock();
    match args.command {
        CacheCommand::Stats { json } => {
            let stats = store.stats()?;
            if json {
                serde_json::to_writer_pretty(&mut stdout, &stats)?;
                writeln!(stdout)?;
                return Ok(EXIT_OK);
            }
            writeln!(
                stdout,
                "store      {} ({:.1} MB)",
                stats.path,
                stats.bytes as f64 / 1e6
            )?;
            writeln!(
                stdout,
                "calls      {} cached ({} prompt + {} completion tokens they saved from being paid again)",
                stats.calls, stats.cached_prompt_tokens, stats.cached_completion_tokens
            )?;
            let list = |v: &[(String, u64)]| {
                v.iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if stats.calls > 0 {
                writeln!(
                    stdout,
                    "           by step: {}",
                    list(&stats.calls_by_purpose)
                )?;
                writeln!(
                    stdout,
                    "           by model: {}",
                    list(&stats.calls_by_model)
                )?;
                writeln!(
                    stdout,
                    "           from {} to {}",
                    stats.oldest_call.as_deref().unwrap_or("-"),
                    stats.newest_call.as_deref().unwrap_or("-")
                )?;
            }
            writeln!(
                stdout,
                "articles   {}",
                if stats.articles_by_status.is_empty() {
                    "none".into()
                } else {
                    list(&stats.articles_by_status)
                }
            )?;
            writeln!(
                stdout,
                "runs       {} ({} interrupted)",
                stats.runs, stats.interrupted_runs
            )?;
            if let Some(r) = &stats.last_run {
                writeln!(
                    stdout,
                    "last run   #{} {} → {}: {} written, {} unchanged, {} skipped, {} failed; {} calls, {} cached; ${:.4}; exit {}",
                    r.id,
                    r.started_at,
                    r.finished_at.as_deref().unwrap_or("(did not finish)"),
                    r.written,
                    r.unchanged,
                    r.skipped,
                    r.failed,
                    r.calls,
                    r.cached_calls,
                    r.cost_usd,
                    r.exit_code.map_or("-".to_string(), |c| c.to_string())
                )?;
            }
        }
        CacheCommand::Prune { older_than } => {
            let _lock = RunLock::acquire(out)?;
            let n = store.prune(older_than)?;
            writeln!(
                stdout,
                "removed {n} cached calls not used for {}",
                humantime::format_duration(older_than)
            )?;
        }
        CacheCommand::Clear { all } => {
            let _lock = RunLock::acquire(out)?;
            let n = store.clear(all)?;
            writeln!(
                stdout,
                "removed {n} cached calls{}",
                if all {
                    ", the article manifest and the run history"
                } else {
                    ""
                }
            )?;
        }
    }
    Ok(EXIT_OK)
}

async fn mock_provider(args: crate::cli::MockProviderArgs) -> Result<u8> {
    let share = |specific: Option<f64>, part: f64| {
        specific.unwrap_or(args.fail_rate * part).clamp(0.0, 1.0)
    };
    let config = crate::mock::MockConfig {
        requests_per_minute: args.rpm.max(1),
        tokens_per_minute: args.tpm.max(1),
        latency_base: args.latency,
        latency_per_token: args.latency_per_token,
        fail_5xx: share(args.fail_5xx, 0.5),
        fail_reset: share(args.fail_reset, 0.2),
        fail_malformed: share(args.fail_malformed, 0.1),
        fail_hang: share(args.fail_hang, 0.1),
        fail_429: share(args.fail_429, 0.1),
        hang: args.hang,
        rate_limit_headers: !args.no_rate_limit_headers,
        context_window: args.context_window,
        seed: args.seed,
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], args.port));
    let provider = crate::mock::MockProvider::start(config, addr)
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    writeln!(std::io::stdout().lock(), "{}", provider.base_url())?;
    eprintln!(
        "mock provider at {} ({} rpm, {} tpm, fail rate {}): use --base-url {} (any model name, no key needed); Ctrl-C to stop",
        provider.base_url(),
        args.rpm,
        args.tpm,
        args.fail_rate,
        provider.base_url()
    );
    wait_for_signal().await;
    let stats = provider.stats();
    eprintln!("{}", serde_json::to_string(&stats)?);
    Ok(EXIT_OK)
}

/// Loads settings from the config file (flag, environment or ./config.toml) and overrides.
pub fn load_settings(
    config_flag: &Option<std::path::PathBuf>,
    overrides: Overrides,
) -> Result<Settings> {
    let env = config::process_env();
    let file = config::locate_config_file(config_flag.as_deref(), &env);
    Ok(config::load(file.as_deref(), &env, &overrides)?)
}

async fn summarize(global: &GlobalArgs, args: SummarizeArgs) -> Result<u8> {
    use crate::cli::OutputFormat;
    let mut settings = load_settings(
        &global.config,
        Overrides {
            model: args.model,
            base_url: args.base_url,
            max_in_flight: args.jobs,
            output_dir: args.out,
            ..Default::default()
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
    };
    let shutdown = Shutdown::default();
    install_signal_handlers(shutdown.clone(), settings.limits.shutdown_grace);
    if !opts.dry_run && ApiKey::from_env(&settings.endpoint.api_key_env).is_none() {
        tracing::info!(
            "{} is not set: calling {} without an API key",
            settings.endpoint.api_key_env,
            settings.endpoint.base_url
        );
    }
    let display = Display::start(progress, progress_mode(global, opts.dry_run));
    let result = pipeline::run(&settings, &opts, &shutdown).await;
    display.finish().await;
    let report = result?;
    if opts.dry_run {
        print_plan(&report)?;
    } else {
        eprint!("{}", report.summary_table());
        let files = settings.output.markdown || settings.output.json;
        if files && (report.exit_code == EXIT_OK || report.exit_code == EXIT_ARTICLES_FAILED) {
            eprintln!("briefs in {}", opts.out.display());
        }
    }
    Ok(report.exit_code)
}

/// A bar on a terminal; log lines every few seconds otherwise (`HANBRIEF_PROGRESS_EVERY`, e.g.
/// `10s`, sets how often); nothing with `--quiet` or for a dry run.
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
        .unwrap_or(Duration::from_secs(5));
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
                brief::group(a.tokens),
                a.chunks,
                a.calls,
                format!("${:.4}", a.cost_usd),
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
    writeln!(
        out,
        "{} articles ({} skipped): {} calls, at most {} prompt + {} completion tokens, at most ${:.4} with model {}",
        t.articles,
        t.skipped,
        t.calls,
        t.prompt_tokens,
        t.completion_tokens,
        t.cost_usd,
        report.model
    )?;
    Ok(())
}

/// First SIGINT/SIGTERM: start nothing new, let calls in flight finish for up to `grace`.
/// A second signal exits at once.
fn install_signal_handlers(shutdown: Shutdown, grace: Duration) {
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::warn!(
            "stopping: no new calls; waiting up to {} for calls in flight (signal again to quit now)",
            humantime::format_duration(grace)
        );
        shutdown.stop.cancel();
        let abort = shutdown.abort.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            abort.cancel();
        });
        wait_for_signal().await;
        eprintln!("hanbrief: second signal, exiting now");
        std::process::exit(crate::error::EXIT_INTERRUPTED as i32);
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The decoding, cleaning and chunk plan of one file, as `inspect` prints it.
#[derive(serde::Serialize)]
struct Inspection {
    path: String,
    encoding: String,
    format: String,
    bytes: usize,
    chars_raw: usize,
    chars_clean: usize,
    tokens: usize,
    tokenizer: String,
    exact_tokens: bool,
    title: Option<String>,
    one_call: bool,
    planned_calls: usize,
    cleaned: String,
    chunks: Vec<crate::chunk::Chunk>,
    removed: Vec<clean::Removed>,
}

fn inspect(config_flag: &Option<std::path::PathBuf>, args: InspectArgs) -> Result<u8> {
    let settings = load_settings(
        config_flag,
        Overrides {
            model: args.model,
            ..Default::default()
        },
    )?;
    let input = InputFile {
        path: args.file.clone(),
        rel: args
            .file
            .file_name()
            .map(Into::into)
            .unwrap_or_else(|| args.file.clone()),
    };
    if !args.file.is_file() {
        bail!("{} is not a file", args.file.display());
    }
    let article = match ingest::read(&input) {
        Ok(a) => a,
        Err(ingest::ReadError::Skip(skip)) => {
            bail!("{}: {skip}; hanbrief would skip it", args.file.display())
        }
        Err(ingest::ReadError::Io(e)) => bail!("cannot read {}: {e}", args.file.display()),
    };
    let cleaned = clean::clean(&article.text, article.html_title.as_deref());
    let prompts = Prompts::load(settings.prompts_dir.as_deref())?;
    let tokenizer = Tokenizer::new(settings.chunking.encoding);
    // A client that never calls: the planner needs its window and token estimates.
    let client = ChatClient::new(
        &settings.endpoint,
        &settings.limits,
        tokenizer,
        None,
        Default::default(),
    )?;
    let summarizer = Summarizer::new(&client, &prompts, &settings.chunking, &settings.glossary)?;
    let plan = summarizer.plan(&cleaned);
    let report = Inspection {
        path: args.file.display().to_string(),
        encoding: article.encoding.to_string(),
        format: format!("{:?}", article.format).to_lowercase(),
        bytes: article.bytes,
        chars_raw: article.text.chars().count(),
        chars_clean: cleaned.chars(),
        tokens: plan.tokens,
        tokenizer: settings.chunking.encoding.name().to_string(),
        exact_tokens: settings.chunking.exact_counts,
        title: cleaned.title.clone(),
        one_call: plan.one_call,
        planned_calls: plan.planned_calls,
        cleaned: cleaned.text.clone(),
        chunks: plan.chunks,
        removed: cleaned.removed,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(EXIT_OK);
    }
    writeln!(out, "{}", report.path)?;
    writeln!(
        out,
        "  encoding   {} ({}, {} bytes)",
        report.encoding,
        report.format,
        brief::group(report.bytes)
    )?;
    writeln!(
        out,
        "  text       {} chars → {} after cleaning ({} lines removed)",
        brief::group(report.chars_raw),
        brief::group(report.chars_clean),
        report.removed.len()
    )?;
    writeln!(
        out,
        "  tokens     {} ({}{})",
        brief::group(report.tokens),
        report.tokenizer,
        if report.exact_tokens {
            ""
        } else {
            ", an estimate for this model"
        }
    )?;
    writeln!(
        out,
        "  title      {}",
        report.title.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "  plan       {} ({} chunk{}, {} call{})",
        if report.one_call {
            "one call"
        } else {
            "map-reduce"
        },
        report.chunks.len(),
        if report.chunks.len() == 1 { "" } else { "s" },
        report.planned_calls,
        if report.planned_calls == 1 { "" } else { "s" }
    )?;
    if !report.removed.is_empty() {
        writeln!(out, "\nremoved:")?;
        for r in &report.removed {
            let text: String = r.text.chars().take(70).collect();
            writeln!(
                out,
                "  {:>4}  {:<13} {}",
                r.line,
                format!("{:?}", r.reason).to_lowercase(),
                text
            )?;
        }
    }
    for c in &report.chunks {
        writeln!(
            out,
            "\n── chunk {} · {} tokens ──\n{}",
            c.index, c.tokens, c.text
        )?;
    }
    Ok(EXIT_OK)
}

fn print_config(settings: &Settings) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match &settings.config_file {
        Some(f) => writeln!(out, "# config file: {}", f.display())?,
        None => writeln!(out, "# config file: none (built-in defaults)")?,
    }
    let width = settings
        .provenance
        .iter()
        .map(|(k, _, _)| k.len())
        .max()
        .unwrap_or(10);
    for (key, value, source) in &settings.provenance {
        // A header that carries a credential is shown masked, like the key.
        let name = key.to_ascii_lowercase();
        let secret = name.starts_with("endpoint.headers.")
            && ["auth", "key", "token", "secret", "cookie", "password"]
                .iter()
                .any(|w| name.contains(w));
        let value = if secret {
            "\"****\"".to_string()
        } else {
            value.clone()
        };
        writeln!(out, "{key:<width$} = {value:<30} # {source}")?;
    }
    let key_line = match ApiKey::from_env(&settings.endpoint.api_key_env) {
        Some(k) => format!("set ({}) in {}", k.masked(), settings.endpoint.api_key_env),
        None => format!(
            "not set ({} is empty or unset)",
            settings.endpoint.api_key_env
        ),
    };
    writeln!(out, "{:<width$} = {key_line}", "api key")?;
    writeln!(
        out,
        "# resolved: context window {} tokens, tokenizer {} ({}), reply field {}",
        settings.endpoint.context_window,
        settings.chunking.encoding.name(),
        if settings.chunking.exact_counts {
            "exact"
        } else {
            "estimates"
        },
        settings.endpoint.max_tokens_field.as_str()
    )?;
    Ok(())
}

async fn config_check(settings: &Settings, ping: bool) -> Result<u8> {
    Prompts::load(settings.prompts_dir.as_deref())?;
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "config ok: {} at {} ({})",
        settings.endpoint.model,
        settings.endpoint.base_url,
        settings
            .config_file
            .as_deref()
            .map_or("built-in defaults".to_string(), |p| p.display().to_string())
    )?;
    if !ping {
        return Ok(EXIT_OK);
    }
    let key = ApiKey::from_env(&settings.endpoint.api_key_env);
    if key.is_none() {
        writeln!(
            err,
            "note: {} is not set; calling without a key",
            settings.endpoint.api_key_env
        )?;
    }
    let mut limits = settings.limits.clone();
    limits.max_retries = limits.max_retries.min(2);
    let client = ChatClient::new(
        &settings.endpoint,
        &limits,
        Tokenizer::new(settings.chunking.encoding),
        key,
        Default::default(),
    )?;
    let started = std::time::Instant::now();
    let reply = client
        .chat(ChatRequest {
            messages: vec![Message::user("Reply with the single word: OK")],
            max_tokens: 16,
            format: ReplyFormat::Text,
            purpose: Purpose::Ping,
            partial_ok: false,
            counted: None,
        })
        .await;
    match reply {
        Ok(r) => {
            writeln!(
                err,
                "ping ok: {} answered {:?} in {:.1}s ({} prompt + {} completion tokens)",
                settings.endpoint.model,
                r.content.trim().chars().take(40).collect::<String>(),
                started.elapsed().as_secs_f64(),
                r.usage.prompt_tokens,
                r.usage.completion_tokens
            )?;
            Ok(EXIT_OK)
        }
        // A model that talks past the tiny budget still answered: the endpoint works.
        Err(LlmError::Truncated { .. }) => {
            writeln!(
                err,
                "ping ok: {} answered in {:.1}s",
                settings.endpoint.model,
                started.elapsed().as_secs_f64()
            )?;
            Ok(EXIT_OK)
        }
        Err(e) => {
            writeln!(err, "ping failed: {e}")?;
            Ok(if e.is_fatal() {
                EXIT_PROVIDER
            } else {
                EXIT_USAGE
            })
        }
    }
}

fn prompts(config_flag: &Option<std::path::PathBuf>, cmd: PromptsCommand) -> Result<u8> {
    let settings = load_settings(config_flag, Overrides::default())?;
    let dir = settings.prompts_dir.as_deref();
    let loaded = Prompts::load(dir)?;
    let mut out = std::io::stdout().lock();
    match cmd {
        PromptsCommand::List => {
            for b in prompt::BUILTINS {
                writeln!(
                    out,
                    "{:<16} {:<40} {}",
                    b.name,
                    loaded.origin(b.name),
                    b.purpose
                )?;
            }
        }
        PromptsCommand::Show { name } => {
            let Some(b) = prompt::BUILTINS
                .iter()
                .find(|b| b.name == name || b.name == format!("{name}.md"))
            else {
                bail!(
                    "no prompt named {name}; `hanbrief prompts list` shows them ({})",
                    prompt::BUILTINS
                        .iter()
                        .map(|b| b.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            let text = match dir.map(|d| d.join(b.name)).filter(|p| p.is_file()) {
                Some(p) => std::fs::read_to_string(&p)
                    .with_context(|| format!("cannot read {}", p.display()))?,
                None => b.text.to_string(),
            };
            write!(out, "{text}")?;
        }
        PromptsCommand::Init { dir } => {
            let written = prompt::init_dir(&dir)
                .with_context(|| format!("cannot write prompts to {}", dir.display()))?;
            for p in &written {
                writeln!(out, "wrote {}", p.display())?;
            }
            writeln!(
                out,
                "{} templates in {} ({} new). Point [prompts] dir at it in your config:\n\n[prompts]\ndir = \"{}\"",
                prompt::BUILTINS.len(),
                dir.display(),
                written.len(),
                display_for_config(&dir)
            )?;
        }
    }
    Ok(EXIT_OK)
}

fn display_for_config(p: &Path) -> String {
    p.display().to_string().replace('\\', "/")
}
