//! The command line, as clap derive types. Parsing only: `commands` acts on it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The environment variables hanbrief reads, for `--help` and the man page.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "OPENAI_API_KEY",
        "The API key of the default endpoint (OpenAI). Another provider's key is read from the variable endpoint.api_key_env names (AZURE_OPENAI_API_KEY, UPSTAGE_API_KEY, OPENROUTER_API_KEY in the recipes); a local server needs none. Keys are never read from files or flags.",
    ),
    (
        "HANBRIEF_CONFIG",
        "The config file when --config is not given (else ./config.toml if present, else the built-in defaults).",
    ),
    (
        "HANBRIEF_<SECTION>__<KEY>",
        "Overrides one config key, e.g. HANBRIEF_ENDPOINT__MODEL=gpt-4.1 (above the file, below flags).",
    ),
    (
        "HANBRIEF_LOG",
        "Log levels per module, e.g. hanbrief::llm=debug (RUST_LOG is read when it is unset).",
    ),
    (
        "HANBRIEF_PROGRESS_EVERY",
        "When stderr is not a terminal, how often progress is looked at (default 5s): a line when something moved, at least one a minute.",
    ),
    (
        "HANBRIEF_STALL_WARNING",
        "How long a run may make no progress before it says why (default 1m).",
    ),
];

/// The exit codes, for `--help` and the man page (see `crate::error`).
pub const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "0",
        "Every article written, unchanged, or skipped with a reason (other commands: done).",
    ),
    (
        "1",
        "Some articles failed (the others are written; _report.json says why), or eval missed a threshold.",
    ),
    (
        "2",
        "Usage or configuration error: arguments, config, prompts, inputs, an output folder among the inputs, another run holding the folder.",
    ),
    (
        "3",
        "The provider refused us: bad key, no quota, unknown model, endpoint unreachable.",
    ),
    (
        "4",
        "hanbrief could not finish its own work (the report or the state store could not be written).",
    ),
    (
        "130",
        "Interrupted by Ctrl-C or SIGTERM (finished briefs and the report are written).",
    ),
];

/// `--help`'s closing lines: where the key comes from, the other variables, the exit codes.
fn after_help() -> String {
    let mut out = String::from("Environment:\n");
    for (name, what) in ENVIRONMENT {
        out.push_str(&format!("  {name}\n      {what}\n"));
    }
    out.push_str("\nExit status:\n");
    for (code, what) in EXIT_STATUS {
        out.push_str(&format!("  {code}\n      {what}\n"));
    }
    out
}

/// For the commands that call the model.
const KEY_HELP: &str = "The API key is read from $OPENAI_API_KEY, or from the variable endpoint.api_key_env names (never from a file or a flag).";

/// Turn folders of (mostly Korean) news articles into short, faithful Korean-English briefs,
/// with any OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Parser)]
#[command(name = "hanbrief", version, about, long_about = None, propagate_version = true, after_help = after_help())]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Config file (default: $HANBRIEF_CONFIG, else ./config.toml if present, else built-in
    /// defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only warnings and errors on stderr: nothing at all when everything goes well (cron).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More detail on stderr: -v each article's plan and each call (tokens, time); -vv also
    /// every request as sent (the key masked) and every reply, for debugging prompts; -vvv also
    /// the HTTP client's own logs.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log line format on stderr: with json, every line on stderr is one JSON object.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line, for machines.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a brief (Markdown and JSON) for every article under the given paths.
    #[command(after_help = KEY_HELP)]
    Summarize(SummarizeArgs),
    /// Show how one file is decoded, cleaned and chunked (no network).
    Inspect(InspectArgs),
    /// Write one Korean-English digest of many briefs: the day's news by topic, same-event
    /// stories merged, the most important first.
    #[command(after_help = KEY_HELP)]
    Digest(DigestArgs),
    /// Measure brief quality on a set of articles with known facts: valid briefs, fact
    /// coverage, unsupported figures, bilingual completeness, tokens per article.
    Eval(EvalArgs),
    /// Run `summarize` on a schedule (cron, time zone) and write a digest of each run's new
    /// briefs. Runs until SIGTERM or Ctrl-C.
    Schedule(ScheduleArgs),
    /// Show or check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// List, show or copy the prompt templates.
    #[command(subcommand)]
    Prompts(PromptsCommand),
    /// Show, prune or clear the state store (cached calls, article manifest, run history).
    Cache(CacheArgs),
    /// Batch mode's batches of an output folder: list them, ask the provider where they stand,
    /// cancel them.
    Batch(BatchArgs),
    /// Print a shell completion script: `hanbrief completions bash > /etc/bash_completion.d/hanbrief`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `hanbrief man > hanbrief.1 && man ./hanbrief.1`.
    Man,
    /// Serve a simulated OpenAI-compatible endpoint on 127.0.0.1: test configs, prompts and
    /// schedules without a key or a bill (real rate-limit headers and 429s, injected faults,
    /// the Batch API's files and batches).
    MockProvider(MockProviderArgs),
}

/// `--model` and `--base-url`: every command that calls an endpoint takes them.
#[derive(Debug, Args, Clone, Default)]
pub struct EndpointArgs {
    /// Model id (overrides [endpoint] model).
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Endpoint base URL, e.g. http://127.0.0.1:8080/v1 (overrides [endpoint] base_url).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
}

/// `hanbrief summarize`
#[derive(Debug, Args)]
pub struct SummarizeArgs {
    /// Article files or folders (walked recursively for .txt, .md, .html, .htm); - reads one
    /// article from standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output folder (default: [output] dir from config).
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    /// Plan only: tokens, chunks, calls and estimated cost per article; no network, no files.
    #[arg(long)]
    pub dry_run: bool,
    /// Ignore cached answers and existing briefs: redo every article.
    #[arg(long)]
    pub force: bool,
    /// Calls in flight at once (overrides [limits] max_in_flight).
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,
    /// What to write: md and/or json files (overrides [output] formats), or jsonl: each brief
    /// as one JSON line on stdout, for pipes (combine: --format md,jsonl).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "FORMAT")]
    pub format: Vec<OutputFormat>,
    /// Batch mode: every call goes through the provider's Batch API, at half the price, within
    /// 24 hours (sets [batch] enabled). Resumable: run the same command again after a stop.
    #[arg(long)]
    pub batch: bool,
    /// With --batch: submit the batches, print what was submitted and exit; the next run over
    /// the same folder picks them up.
    #[arg(long, requires = "batch")]
    pub no_wait: bool,
    /// How briefs are written (overrides [summary] strategy).
    #[arg(long, value_enum, value_name = "STRATEGY")]
    pub strategy: Option<StrategyArg>,
}

/// How briefs are written (`--strategy`, overrides [summary] strategy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// The model reads the article (or notes on its parts) and quotes it.
    Free,
    /// hanbrief picks the most informative sentences itself; the model shortens and translates
    /// them (for small local models).
    Select,
}

impl StrategyArg {
    /// The name `summary.strategy` takes.
    pub fn name(self) -> String {
        match self {
            StrategyArg::Free => "free".into(),
            StrategyArg::Select => "select".into(),
        }
    }
}

/// Output formats of `summarize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// `<name>.md` files.
    Md,
    /// `<name>.json` files.
    Json,
    /// One brief per line on stdout.
    Jsonl,
}

/// `hanbrief inspect`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The article file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// One JSON object on stdout instead of a report for people.
    #[arg(long)]
    pub json: bool,
    /// Model whose tokenizer and window to plan for (overrides [endpoint] model).
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// The strategy to plan for (overrides [summary] strategy): `select` shows the sentences
    /// it would pick.
    #[arg(long, value_enum, value_name = "STRATEGY")]
    pub strategy: Option<StrategyArg>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting, its value and where it came from (default, file, environment, flag).
    Show(ConfigShowArgs),
    /// Validate the configuration (and with --ping, make one tiny call to the endpoint).
    Check(ConfigCheckArgs),
}

#[derive(Debug, Args)]
pub struct ConfigShowArgs {
    #[command(flatten)]
    pub endpoint: EndpointArgs,
}

#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    /// Also make one tiny call to prove that the endpoint, key and model work.
    #[arg(long)]
    pub ping: bool,
    #[command(flatten)]
    pub endpoint: EndpointArgs,
}

#[derive(Debug, Subcommand)]
pub enum PromptsCommand {
    /// List the templates and where each comes from (built-in or your folder).
    List,
    /// Print one template as it will be used.
    Show {
        /// Template name, e.g. brief.md.
        name: String,
    },
    /// Copy the built-in templates into DIR to start customising them (existing files are kept).
    Init {
        /// Folder to write into; point [prompts] dir at it.
        dir: PathBuf,
    },
}

/// `hanbrief mock-provider`
#[derive(Debug, Args)]
pub struct MockProviderArgs {
    /// Port on 127.0.0.1 (0: any free port; the URL is printed).
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// Requests per minute before it answers 429.
    #[arg(long, default_value_t = 600)]
    pub rpm: u32,
    /// Tokens per minute (prompt + max_tokens, as OpenAI counts) before it answers 429.
    #[arg(long, default_value_t = 1_000_000)]
    pub tpm: u32,
    /// Share of requests that fail (split: half 5xx, 20 % resets, 10 % malformed bodies,
    /// 10 % hangs, 10 % spurious 429s).
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub fail_rate: f64,
    /// Latency before the first token, e.g. 200ms.
    #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
    pub latency: std::time::Duration,
    /// Extra latency per completion token, e.g. 2ms.
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
    pub latency_per_token: std::time::Duration,
    /// Share of requests answered 5xx (overrides the split of --fail-rate).
    #[arg(long, value_parser = share)]
    pub fail_5xx: Option<f64>,
    /// Share of requests whose connection is reset.
    #[arg(long, value_parser = share)]
    pub fail_reset: Option<f64>,
    /// Share of requests answered with a body cut short.
    #[arg(long, value_parser = share)]
    pub fail_malformed: Option<f64>,
    /// Share of requests that hang (until --hang is over).
    #[arg(long, value_parser = share)]
    pub fail_hang: Option<f64>,
    /// Share of requests answered 429 whatever the limits.
    #[arg(long, value_parser = share)]
    pub fail_429: Option<f64>,
    /// How long a hang lasts.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub hang: std::time::Duration,
    /// Leave out OpenAI's x-ratelimit-* headers (a provider that only ever says 429).
    #[arg(long)]
    pub no_rate_limit_headers: bool,
    /// Prompts longer than this many tokens get context_length_exceeded.
    #[arg(long, default_value_t = 128_000)]
    pub context_window: usize,
    /// Seed of the fault dice.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Batch API: how long a batch takes from creation to completed, e.g. 2s, 10m.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub batch_completion: std::time::Duration,
    /// Batch API: share of request lines that come back failed (HTTP 500 in the error file).
    #[arg(long, default_value_t = 0.0)]
    pub batch_fail_lines: f64,
    /// Batch API: the first N batches expire, half their requests done (the rest
    /// batch_expired in the error file).
    #[arg(long, default_value_t = 0)]
    pub batch_expire: u32,
    /// Batch API: the first N batches fail outright.
    #[arg(long, default_value_t = 0)]
    pub batch_fail: u32,
    /// Batch API: prompt tokens that may be enqueued at once (0: no limit); a batch beyond it
    /// fails with token_limit_exceeded.
    #[arg(long, default_value_t = 0)]
    pub batch_token_limit: u64,
}

/// A share of requests: a number from 0 to 1 (`0.1` = 10 %).
fn share(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number; give a share from 0 to 1, e.g. 0.1"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{v} is not a share; give a number from 0 to 1, e.g. 0.1 for 10 %"
        ))
    }
}

/// `hanbrief cache`
#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
    /// The output folder whose store to use (default: [output] dir from config).
    #[arg(short, long, global = true, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// What the store holds: cached calls, articles by status, runs.
    Stats {
        /// One JSON object instead of a report for people.
        #[arg(long)]
        json: bool,
    },
    /// Remove cached calls not used for a while.
    Prune {
        /// Remove calls last used longer ago than this, e.g. 30d, 12h.
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        older_than: std::time::Duration,
    },
    /// Remove every cached call (the next run pays for every call again).
    Clear {
        /// Also forget the article manifest, the names registry, what was learned about
        /// endpoints, the models seen (the next run's model becomes the baseline), and the run
        /// history.
        #[arg(long)]
        all: bool,
    },
}

/// `hanbrief batch`
#[derive(Debug, Args)]
pub struct BatchArgs {
    #[command(subcommand)]
    pub command: BatchCommand,
    /// The output folder whose batches to use (default: [output] dir from config).
    #[arg(short, long, global = true, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum BatchCommand {
    /// Every batch submitted for this output folder, newest first (from the state store; no
    /// network).
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Ask the provider where the batches not yet collected stand (status, request counts).
    Status {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Cancel batches in flight (every one, or the one named). Results that finished are still
    /// collected by the next run; the rest is submitted afresh by the next `--batch` run.
    Cancel {
        /// hanbrief's number (`batch list`) or the provider's batch id.
        id: Option<String>,
    },
}

/// `hanbrief digest`
#[derive(Debug, Args)]
pub struct DigestArgs {
    /// Folder of briefs (default: [output] dir from config).
    #[arg(value_name = "BRIEFS_DIR")]
    pub briefs_dir: Option<PathBuf>,
    /// Where to write: FILE.md and FILE.json (default: BRIEFS_DIR/_digest/<date>).
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Only briefs written within this long, e.g. 24h, 7d. Default: the schedule's period (the
    /// time between schedule.cron's last two runs: 24h with the default daily cron, 3 days on a
    /// Monday for a weekday cron).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub since: Option<std::time::Duration>,
    /// Every brief in the folder, however old (instead of the default window).
    #[arg(long, conflicts_with = "since")]
    pub all: bool,
    /// Ignore cached answers: ask the model again (after editing digest.md, or to get another
    /// take on the day).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    /// Batch mode: the digest's calls go through the provider's Batch API (half the price,
    /// within 24 hours).
    #[arg(long)]
    pub batch: bool,
}

/// `hanbrief schedule`
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Cron expression: 5 fields, or 6 with seconds first (overrides [schedule] cron).
    #[arg(long, value_name = "EXPR")]
    pub cron: Option<String>,
    /// IANA time zone of the cron expression (overrides [schedule] timezone).
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// Run one tick now (summarize, then the digest of its new briefs) and exit with its code:
    /// to try a schedule config.
    #[arg(long)]
    pub once: bool,
}

/// `hanbrief eval`
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The set: a folder with articles/ and facts.toml.
    #[arg(value_name = "SET", default_value = "examples/eval")]
    pub set: PathBuf,
    /// Keep the briefs (and the cache, so an unchanged rerun is free) in DIR; default: a
    /// temporary folder.
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// One JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    /// Exit 1 when fact coverage is below RATE (0.8 or 80%).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub min_coverage: Option<f64>,
    /// Exit 1 when the share of unsupported figures is above RATE (0.05 or 5%).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub max_unsupported: Option<f64>,
    /// Exit 1 when the valid-brief rate is below RATE.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub min_valid: Option<f64>,
    /// Exit 1 when bilingual completeness is below RATE.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub min_bilingual: Option<f64>,
    /// Batch mode: the set's calls go through the provider's Batch API.
    #[arg(long)]
    pub batch: bool,
    /// How briefs are written (overrides [summary] strategy): compare `free` and `select` on
    /// the same set.
    #[arg(long, value_enum, value_name = "STRATEGY")]
    pub strategy: Option<StrategyArg>,
}

/// A rate between 0 and 1, written as a fraction (`0.8`) or a percentage (`80%`).
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (number, scale) = match t.strip_suffix('%') {
        Some(p) => (p.trim(), 100.0),
        None => (t, 1.0),
    };
    let rate = number
        .parse::<f64>()
        .ok()
        .map(|v| v / scale)
        .filter(|v| (0.0..=1.0).contains(v))
        .ok_or_else(|| format!("{s:?} is not a rate between 0 and 1 (0.8) or 0% and 100% (80%)"))?;
    Ok(rate)
}
