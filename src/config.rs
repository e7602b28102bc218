//! Configuration: the embedded defaults, a config file, `HANBRIEF_*` environment variables and
//! command-line flags, merged in that order into validated [`Settings`].
//!
//! The layers are merged as TOML tables first: every key a layer sets must exist in the defaults
//! (or sit in a free-form table) with the default's type, and remembers where it came from
//! (which `hanbrief config show` prints, and errors quote as file and line). The merged table is
//! then read key by key into [`Settings`], the typed values the rest of the crate uses: one
//! struct tree, and each key named once, where it is read and checked. The default layer is the repository's own `config.toml`, embedded, so the
//! documented file and the built-in defaults can never drift apart.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The repository's `config.toml`: documentation and built-in defaults in one.
pub const DEFAULT_CONFIG: &str = include_str!("../config.toml");

/// Prefix of environment variables that override config keys: `HANBRIEF_ENDPOINT__MODEL`.
pub const ENV_PREFIX: &str = "HANBRIEF_";
/// Environment variable naming a config file when `--config` is not given.
pub const ENV_CONFIG_FILE: &str = "HANBRIEF_CONFIG";

/// Tables whose keys are free-form (names chosen by the user) rather than a fixed schema. Their
/// keys may contain dots (`"gpt-4.1"`), so a dotted key is split at the table, not at its last
/// dot ([`split_key`]).
const FREE_TABLES: &[&str] = &["endpoint.query", "endpoint.headers", "glossary", "pricing"];

/// A configuration problem, named by key and, where it came from a file, by file and line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("unknown config key `{key}` ({origin}); `hanbrief config show` lists the valid keys")]
    UnknownKey { key: String, origin: String },
    #[error("config key `{key}` ({origin}) must be {expected}, not {found}")]
    WrongType {
        key: String,
        origin: String,
        expected: &'static str,
        found: String,
    },
    #[error("invalid value for `{key}` ({origin}): {message}")]
    Invalid {
        key: String,
        origin: String,
        message: String,
    },
}

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The embedded defaults.
    Default,
    /// A config file, with the line of the key where it could be found.
    File { path: PathBuf, line: Option<usize> },
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File {
                path,
                line: Some(line),
            } => write!(f, "{} line {line}", path.display()),
            Source::File { path, line: None } => write!(f, "{}", path.display()),
            Source::Env(var) => write!(f, "environment {var}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// Values given on the command line; each one overrides its config key.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub model: Option<String>,
    pub base_url: Option<String>,
    pub max_in_flight: Option<u32>,
    pub output_dir: Option<PathBuf>,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    /// `--batch`: batch mode for this run.
    pub batch: bool,
    /// `--strategy`: `free` or `select` (as `summary.strategy` spells them).
    pub strategy: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Validated settings.

/// How the API key is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStyle {
    /// `Authorization: Bearer KEY`
    Bearer,
    /// `api-key: KEY` (Azure OpenAI)
    ApiKeyHeader,
}

/// Which structured-output mode to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructuredOutput {
    /// Start with a JSON schema and step down when the endpoint refuses it.
    Auto,
    JsonSchema,
    /// `json_object` with the schema beside it: llama.cpp servers turn it into a grammar.
    JsonObjectSchema,
    JsonObject,
    None,
}

/// The request field that carries the reply budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTokensField {
    MaxTokens,
    MaxCompletionTokens,
}

impl MaxTokensField {
    /// The JSON field name.
    pub fn as_str(self) -> &'static str {
        match self {
            MaxTokensField::MaxTokens => "max_tokens",
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
        }
    }
}

/// Where and how to call the model.
#[derive(Debug, Clone)]
pub struct EndpointSettings {
    /// Base URL without a trailing slash.
    pub base_url: String,
    pub model: String,
    pub api_key_env: String,
    pub auth: AuthStyle,
    pub structured_output: StructuredOutput,
    pub max_tokens_field: MaxTokensField,
    pub merge_system_prompt: bool,
    /// The context window in tokens (resolved from the model when configured as 0).
    pub context_window: usize,
    /// The sampling temperature as written in the config (an `f64`, so that 0.2 goes out as
    /// 0.2 and not as the nearest `f32`, 0.20000000298023224).
    pub temperature: Option<f64>,
    /// `reasoning_effort` for reasoning models ("minimal", "low", "medium", "high", …), or `None`
    /// to leave it to the model.
    pub reasoning_effort: Option<String>,
    /// OpenAI's frequency and presence penalties (-2 to 2); `None`: not sent.
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    /// llama.cpp's (and vLLM's, Ollama's) multiplicative repetition penalty; `None`: not sent.
    pub repeat_penalty: Option<f64>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
}

/// Rate limits, concurrency and retries.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    pub requests_per_minute: u32,
    pub tokens_per_minute: u32,
    pub max_in_flight: usize,
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub shutdown_grace: Duration,
}

/// Token counting and chunk budgets.
#[derive(Debug, Clone)]
pub struct ChunkSettings {
    pub encoding: crate::tokens::Encoding,
    /// Whether counts are exact (an OpenAI model with its own encoding) or estimates.
    pub exact_counts: bool,
    pub chunk_tokens: usize,
    pub margin: f32,
    pub brief_max_tokens: u32,
    pub notes_max_tokens: u32,
}

/// How a brief is written (`[summary]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The model reads the article (or notes on its parts) and writes the brief with its quotes.
    Free,
    /// hanbrief picks the article's most informative sentences (no model), and the model only
    /// shortens and translates them; the picked sentences are the quotes. For small models.
    Select,
}

/// `[summary]`: the strategy, and how many sentences `select` picks.
#[derive(Debug, Clone, Copy)]
pub struct SummarySettings {
    pub strategy: Strategy,
    /// Sentences (= key points) the select strategy picks.
    pub sentences: usize,
}

/// Output formats.
#[derive(Debug, Clone)]
pub struct OutputSettings {
    pub dir: PathBuf,
    pub markdown: bool,
    pub json: bool,
}

/// The scheduled job.
#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    pub cron: String,
    pub timezone: String,
    pub input: PathBuf,
    pub output: PathBuf,
}

/// The daily digest.
#[derive(Debug, Clone)]
pub struct DigestSettings {
    /// Reply budget of a digest call.
    pub max_tokens: u32,
    /// Folder of digests, relative to the briefs folder.
    pub dir: PathBuf,
}

/// Batch mode: the provider's Batch API (see `crate::batch`).
#[derive(Debug, Clone)]
pub struct BatchSettings {
    /// Every run in batch mode (as with `--batch`).
    pub enabled: bool,
    /// Base URL of the files and batches endpoints.
    pub base_url: String,
    /// `url` of the request lines and `endpoint` of the batches.
    pub url: String,
    /// The model each request names (Azure: the global-batch deployment).
    pub model: String,
    /// Prompt tokens that may be enqueued at once; `None`: no limit known.
    pub enqueued_tokens: Option<u64>,
    pub max_requests_per_file: usize,
    pub max_file_bytes: usize,
    pub poll_min: Duration,
    pub poll_max: Duration,
    /// Batches a request may go in before it is sent as an ordinary call.
    pub max_attempts: u32,
}

/// Validated, typed configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoint: EndpointSettings,
    pub limits: LimitSettings,
    pub chunking: ChunkSettings,
    pub summary: SummarySettings,
    pub output: OutputSettings,
    /// A folder of prompt overrides, if any.
    pub prompts_dir: Option<PathBuf>,
    pub schedule: ScheduleSettings,
    pub digest: DigestSettings,
    pub batch: BatchSettings,
    /// Prices per model (`[pricing]`, OpenAI's list prices, free on this machine).
    pub pricing: crate::pricing::Pricing,
    /// Korean name → pinned English rendering.
    pub glossary: BTreeMap<String, String>,
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// Every leaf key with its effective value (as TOML) and where it came from.
    pub provenance: Vec<(String, String, Source)>,
}

// ---------------------------------------------------------------------------------------------
// Loading.

/// Which config file to read: `--config`, else `$HANBRIEF_CONFIG`, else `./config.toml` if it
/// exists, else none (the embedded defaults alone).
pub fn locate_config_file(flag: Option<&Path>, env: &BTreeMap<String, String>) -> Option<PathBuf> {
    if let Some(path) = flag {
        return Some(path.to_path_buf());
    }
    if let Some(path) = env.get(ENV_CONFIG_FILE).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let local = PathBuf::from("config.toml");
    local.is_file().then_some(local)
}

/// Loads settings from the defaults, an optional file, the given environment and flags.
pub fn load(
    file: Option<&Path>,
    env: &BTreeMap<String, String>,
    overrides: &Overrides,
) -> Result<Settings, ConfigError> {
    let mut layers = Layers::new();
    let base_dir = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            layers.merge_file(path, &text)?;
            path.parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."))
        }
        None => PathBuf::from("."),
    };
    layers.merge_env(env)?;
    layers.merge_flags(overrides)?;
    layers.into_settings(file, &base_dir)
}

/// The merged TOML table and the source of each leaf.
struct Layers {
    table: toml::Table,
    sources: BTreeMap<String, Source>,
}

impl Layers {
    fn new() -> Self {
        let table: toml::Table =
            toml::from_str(DEFAULT_CONFIG).expect("the embedded config.toml is valid TOML");
        let mut sources = BTreeMap::new();
        for (key, _) in leaves(&table, "") {
            sources.insert(key, Source::Default);
        }
        Layers { table, sources }
    }

    fn merge_file(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let user: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let lines = key_lines(text);
        for (key, value) in leaves(&user, "") {
            let source = Source::File {
                path: path.to_path_buf(),
                line: lines.get(&key).copied(),
            };
            self.set(&key, value, source)?;
        }
        Ok(())
    }

    fn merge_env(&mut self, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        for (var, raw) in env {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if !rest.contains("__") {
                continue; // HANBRIEF_CONFIG, HANBRIEF_LOG and the like are not config keys
            }
            let key = rest.to_ascii_lowercase().replace("__", ".");
            let source = Source::Env(var.clone());
            let Some(current) = lookup(&self.table, &key) else {
                return Err(ConfigError::UnknownKey {
                    key,
                    origin: source.to_string(),
                });
            };
            let value = parse_like(current, raw).map_err(|expected| ConfigError::WrongType {
                key: key.clone(),
                origin: source.to_string(),
                expected,
                found: format!("{raw:?}"),
            })?;
            self.set(&key, value, source)?;
        }
        Ok(())
    }

    fn merge_flags(&mut self, o: &Overrides) -> Result<(), ConfigError> {
        let mut flag = |key: &str, flag: &'static str, value: toml::Value| {
            self.set(key, value, Source::Flag(flag))
        };
        if let Some(model) = &o.model {
            flag("endpoint.model", "--model", model.clone().into())?;
        }
        if let Some(url) = &o.base_url {
            flag("endpoint.base_url", "--base-url", url.clone().into())?;
        }
        if let Some(jobs) = o.max_in_flight {
            flag("limits.max_in_flight", "--jobs", i64::from(jobs).into())?;
        }
        if let Some(dir) = &o.output_dir {
            flag("output.dir", "--out", dir.display().to_string().into())?;
        }
        if let Some(cron) = &o.cron {
            flag("schedule.cron", "--cron", cron.clone().into())?;
        }
        if let Some(tz) = &o.timezone {
            flag("schedule.timezone", "--tz", tz.clone().into())?;
        }
        if o.batch {
            flag("batch.enabled", "--batch", true.into())?;
        }
        if let Some(strategy) = &o.strategy {
            flag("summary.strategy", "--strategy", strategy.clone().into())?;
        }
        Ok(())
    }

    /// Sets one leaf, checking that the key exists (or lives in a free-form table) and that the
    /// value has the type of the default.
    fn set(&mut self, key: &str, value: toml::Value, source: Source) -> Result<(), ConfigError> {
        let (parent, leaf) = split_key(key);
        let free = FREE_TABLES.contains(&parent);
        if parent == "pricing" {
            check_price(leaf, &value).map_err(|message| ConfigError::Invalid {
                key: key.to_string(),
                origin: source.to_string(),
                message,
            })?;
        } else if free {
            if !value.is_str() {
                return Err(ConfigError::WrongType {
                    key: key.to_string(),
                    origin: source.to_string(),
                    expected: "a string",
                    found: value.type_str().to_string(),
                });
            }
        } else {
            let Some(current) = lookup(&self.table, key) else {
                return Err(ConfigError::UnknownKey {
                    key: key.to_string(),
                    origin: source.to_string(),
                });
            };
            let value_ok = same_kind(current, &value);
            if !value_ok {
                return Err(ConfigError::WrongType {
                    key: key.to_string(),
                    origin: source.to_string(),
                    expected: kind_name(current),
                    found: describe(&value),
                });
            }
        }
        let table = table_at(&mut self.table, parent).ok_or_else(|| ConfigError::UnknownKey {
            key: key.to_string(),
            origin: source.to_string(),
        })?;
        // An integer where a float is expected is fine (`margin = 0` means 0.0).
        let value = match (table.get(leaf), value) {
            (Some(toml::Value::Float(_)), toml::Value::Integer(i)) => toml::Value::Float(i as f64),
            (_, v) => v,
        };
        table.insert(leaf.to_string(), value);
        self.sources.insert(key.to_string(), source);
        Ok(())
    }

    fn origin(&self, key: &str) -> String {
        self.sources
            .get(key)
            .map(ToString::to_string)
            .unwrap_or_else(|| "default".to_string())
    }

    fn into_settings(self, file: Option<&Path>, base_dir: &Path) -> Result<Settings, ConfigError> {
        let v = Validator {
            layers: &self,
            base_dir,
        };
        let model = v.non_empty("endpoint.model")?;
        let base_url = v.url("endpoint.base_url")?;
        let auth = v.choice(
            "endpoint.auth",
            &[
                ("bearer", AuthStyle::Bearer),
                ("api-key", AuthStyle::ApiKeyHeader),
            ],
        )?;
        let structured_output = v.choice(
            "endpoint.structured_output",
            &[
                ("auto", StructuredOutput::Auto),
                ("json_schema", StructuredOutput::JsonSchema),
                ("json_object+schema", StructuredOutput::JsonObjectSchema),
                ("json_object", StructuredOutput::JsonObject),
                ("none", StructuredOutput::None),
            ],
        )?;
        let max_tokens_field = v
            .choice(
                "endpoint.max_tokens_field",
                &[
                    ("auto", None),
                    ("max_tokens", Some(MaxTokensField::MaxTokens)),
                    (
                        "max_completion_tokens",
                        Some(MaxTokensField::MaxCompletionTokens),
                    ),
                ],
            )?
            .unwrap_or(if is_openai_host(&base_url) {
                MaxTokensField::MaxCompletionTokens
            } else {
                MaxTokensField::MaxTokens
            });
        let reasoning_effort = match v.string("endpoint.reasoning_effort")?.trim() {
            "" => None,
            effort @ ("none" | "minimal" | "low" | "medium" | "high" | "xhigh") => {
                Some(effort.to_string())
            }
            other => {
                return Err(v.invalid(
                    "endpoint.reasoning_effort",
                    other,
                    "\"\" (not sent), \"none\", \"minimal\", \"low\", \"medium\", \"high\" or \"xhigh\"",
                ));
            }
        };
        let window = v.int("endpoint.context_window")?;
        let context_window = match usize::try_from(window) {
            Ok(0) => crate::tokens::context_window_for(&model).unwrap_or(8192),
            Ok(n) if n >= 512 => n,
            _ => {
                return Err(v.invalid(
                    "endpoint.context_window",
                    &window.to_string(),
                    "0 (known from the model) or at least 512",
                ));
            }
        };
        let api_key_env = v.string("endpoint.api_key_env")?;
        if api_key_env.trim().is_empty() {
            return Err(v.invalid(
                "endpoint.api_key_env",
                "",
                "the name of an environment variable",
            ));
        }
        let headers = v.string_table("endpoint.headers")?;
        for (name, _) in &headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(v.invalid(
                    &format!("endpoint.headers.{name}"),
                    name,
                    "a valid HTTP header name",
                ));
            }
        }
        let temperature = v.float("endpoint.temperature")?;
        let penalty = |key: &str, range: std::ops::RangeInclusive<f64>, expected: &str| {
            let value = v.float(key)?;
            if !range.contains(&value) {
                return Err(v.invalid(key, &value.to_string(), expected));
            }
            Ok::<_, ConfigError>((value != 0.0).then_some(value))
        };
        let frequency_penalty = penalty(
            "endpoint.frequency_penalty",
            -2.0..=2.0,
            "a number from -2 to 2",
        )?;
        let presence_penalty = penalty(
            "endpoint.presence_penalty",
            -2.0..=2.0,
            "a number from -2 to 2",
        )?;
        let repeat_penalty = penalty(
            "endpoint.repeat_penalty",
            0.0..=10.0,
            "a number from 0 (not sent) to 10; 1 means no penalty",
        )?;
        let endpoint = EndpointSettings {
            base_url,
            model: model.clone(),
            api_key_env: api_key_env.to_string(),
            auth,
            structured_output,
            max_tokens_field,
            merge_system_prompt: v.bool("endpoint.merge_system_prompt")?,
            context_window,
            temperature: (temperature >= 0.0).then_some(temperature),
            reasoning_effort,
            frequency_penalty,
            presence_penalty,
            repeat_penalty,
            connect_timeout: v.duration("endpoint.connect_timeout")?,
            request_timeout: v.duration("endpoint.request_timeout")?,
            query: v.string_table("endpoint.query")?,
            headers,
        };

        let limits = LimitSettings {
            requests_per_minute: v.at_least("limits.requests_per_minute", 1)?,
            tokens_per_minute: v.at_least("limits.tokens_per_minute", 1)?,
            max_in_flight: v.at_least("limits.max_in_flight", 1)? as usize,
            max_retries: v.at_least("limits.max_retries", 0)?,
            backoff_base: v.duration("limits.backoff_base")?,
            backoff_max: v.duration("limits.backoff_max")?,
            shutdown_grace: v.duration("limits.shutdown_grace")?,
        };

        let (encoding, exact_counts) = match v.string("chunking.encoding")? {
            "auto" => crate::tokens::encoding_for_model(&model),
            name => match crate::tokens::Encoding::from_name(name) {
                Some(enc) => (
                    enc,
                    crate::tokens::encoding_for_model(&model) == (enc, true),
                ),
                None => {
                    return Err(v.invalid(
                        "chunking.encoding",
                        name,
                        "\"auto\", \"o200k_base\" or \"cl100k_base\"",
                    ));
                }
            },
        };
        let margin = v.float("chunking.margin")?;
        if !(0.0..=2.0).contains(&margin) {
            return Err(v.invalid(
                "chunking.margin",
                &margin.to_string(),
                "a fraction between 0 and 2",
            ));
        }
        let chunking = ChunkSettings {
            encoding,
            exact_counts,
            // 0: no cap (one call whenever the article fits); otherwise at least 200.
            chunk_tokens: match v.int("chunking.chunk_tokens")? {
                0 => 0,
                _ => v.at_least("chunking.chunk_tokens", 200)? as usize,
            },
            margin: margin as f32,
            brief_max_tokens: v.at_least("chunking.brief_max_tokens", 200)?,
            notes_max_tokens: v.at_least("chunking.notes_max_tokens", 100)?,
        };
        let reserve = chunking.brief_max_tokens as usize + 1200;
        if context_window <= reserve {
            return Err(v.invalid(
                "endpoint.context_window",
                &context_window.to_string(),
                &format!(
                    "more than brief_max_tokens plus room for the prompt ({reserve} tokens); \
                     lower chunking.brief_max_tokens or raise the window"
                ),
            ));
        }

        let summary = SummarySettings {
            strategy: v.choice(
                "summary.strategy",
                &[("free", Strategy::Free), ("select", Strategy::Select)],
            )?,
            sentences: v.at_least("summary.sentences", 1)? as usize,
        };
        if summary.sentences > 12 {
            return Err(v.invalid(
                "summary.sentences",
                &summary.sentences.to_string(),
                "at most 12 (a brief has a few key points)",
            ));
        }

        let mut markdown = false;
        let mut json = false;
        for f in v.strings("output.formats")? {
            match f {
                "md" | "markdown" => markdown = true,
                "json" => json = true,
                other => return Err(v.invalid("output.formats", other, "\"md\" or \"json\"")),
            }
        }
        if !markdown && !json {
            return Err(v.invalid("output.formats", "[]", "at least one of \"md\", \"json\""));
        }
        let output = OutputSettings {
            dir: v.path("output.dir")?,
            markdown,
            json,
        };

        let prompts_dir = match v.string("prompts.dir")? {
            "" => None,
            _ => Some(v.path("prompts.dir")?),
        };

        let schedule = ScheduleSettings {
            cron: v.string("schedule.cron")?.to_string(),
            timezone: v.string("schedule.timezone")?.to_string(),
            input: v.path("schedule.input")?,
            output: v.path("schedule.output")?,
        };

        let dir = v.string("digest.dir")?;
        let digest_dir = PathBuf::from(dir.trim());
        if dir.trim().is_empty() || digest_dir.is_absolute() || dir.contains("..") {
            return Err(v.invalid("digest.dir", dir, "a folder name inside the briefs folder"));
        }
        let digest = DigestSettings {
            max_tokens: v.at_least("digest.max_tokens", 500)?,
            dir: digest_dir,
        };

        let batch_url = v.string("batch.url")?;
        if !batch_url.trim().starts_with('/') {
            return Err(v.invalid(
                "batch.url",
                batch_url,
                "a path such as \"/v1/chat/completions\" (OpenAI) or \"/chat/completions\" (Azure)",
            ));
        }
        let batch_limit = |key: &str, max: i64| {
            let value = v.int(key)?;
            if (1..=max).contains(&value) {
                Ok(value as usize)
            } else {
                Err(v.invalid(key, &value.to_string(), &format!("1 to {max}")))
            }
        };
        let batch = BatchSettings {
            enabled: v.bool("batch.enabled")?,
            base_url: match v.string("batch.base_url")?.trim() {
                "" => endpoint.base_url.clone(),
                _ => v.url("batch.base_url")?,
            },
            url: batch_url.trim().to_string(),
            model: match v.string("batch.model")?.trim() {
                "" => model.clone(),
                m => m.to_string(),
            },
            enqueued_tokens: match v.int("batch.enqueued_tokens")? {
                0 => crate::batch::published_enqueued_limit(&model),
                n if n > 0 => Some(n as u64),
                n => {
                    return Err(v.invalid(
                        "batch.enqueued_tokens",
                        &n.to_string(),
                        "0 (OpenAI's figure for the model) or a number of tokens",
                    ));
                }
            },
            max_requests_per_file: batch_limit("batch.max_requests_per_file", 50_000)?,
            max_file_bytes: batch_limit("batch.max_file_mb", 200)? * 1_000_000,
            poll_min: v.duration("batch.poll_min")?,
            poll_max: v.duration("batch.poll_max")?,
            max_attempts: v.at_least("batch.max_attempts", 1)?,
        };
        if batch.poll_min.is_zero() || batch.poll_min > batch.poll_max {
            return Err(v.invalid(
                "batch.poll_min",
                v.string("batch.poll_min")?,
                "a duration above zero and at most batch.poll_max",
            ));
        }

        let pricing = crate::pricing::Pricing::new(v.prices("pricing")?, &endpoint.base_url);

        let glossary: BTreeMap<String, String> = v.string_table("glossary")?.into_iter().collect();
        for (ko, en) in &glossary {
            if ko.trim().is_empty() || en.trim().is_empty() {
                return Err(v.invalid(
                    &format!("glossary.{ko}"),
                    en,
                    "a non-empty Korean name and English rendering",
                ));
            }
        }

        let provenance = leaves(&self.table, "")
            .into_iter()
            .map(|(key, value)| {
                let source = self.sources.get(&key).cloned().unwrap_or(Source::Default);
                (key, value.to_string(), source)
            })
            .collect();

        Ok(Settings {
            endpoint,
            limits,
            chunking,
            summary,
            output,
            prompts_dir,
            schedule,
            digest,
            batch,
            pricing,
            glossary,
            config_file: file.map(Path::to_path_buf),
            provenance,
        })
    }
}

/// Reads typed values out of the merged table by key, naming the key and its origin on failure.
/// Every key exists and has its default's type (`Layers::set` checked both), so the typed
/// getters fail only if the embedded defaults and this code disagree.
struct Validator<'a> {
    layers: &'a Layers,
    base_dir: &'a Path,
}

impl Validator<'_> {
    fn invalid(&self, key: &str, value: &str, expected: &str) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_string(),
            origin: self.layers.origin(key),
            message: format!("{value:?} is not valid; expected {expected}"),
        }
    }

    fn value(&self, key: &str, expected: &'static str) -> Result<&toml::Value, ConfigError> {
        lookup(&self.layers.table, key).ok_or_else(|| ConfigError::Invalid {
            key: key.to_string(),
            origin: "default".to_string(),
            message: format!("missing from the built-in defaults (expected {expected})"),
        })
    }

    fn mistyped(&self, key: &str, expected: &'static str, found: &toml::Value) -> ConfigError {
        ConfigError::WrongType {
            key: key.to_string(),
            origin: self.layers.origin(key),
            expected,
            found: describe(found),
        }
    }

    fn string(&self, key: &str) -> Result<&str, ConfigError> {
        match self.value(key, "a string")? {
            toml::Value::String(s) => Ok(s),
            other => Err(self.mistyped(key, "a string", other)),
        }
    }

    fn int(&self, key: &str) -> Result<i64, ConfigError> {
        match self.value(key, "a whole number")? {
            toml::Value::Integer(i) => Ok(*i),
            other => Err(self.mistyped(key, "a whole number", other)),
        }
    }

    fn float(&self, key: &str) -> Result<f64, ConfigError> {
        match self.value(key, "a number")? {
            toml::Value::Float(f) => Ok(*f),
            toml::Value::Integer(i) => Ok(*i as f64),
            other => Err(self.mistyped(key, "a number", other)),
        }
    }

    fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        match self.value(key, "true or false")? {
            toml::Value::Boolean(b) => Ok(*b),
            other => Err(self.mistyped(key, "true or false", other)),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<&str>, ConfigError> {
        let expected = "a list of strings";
        match self.value(key, expected)? {
            toml::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().ok_or_else(|| self.mistyped(key, expected, i)))
                .collect(),
            other => Err(self.mistyped(key, expected, other)),
        }
    }

    /// A free-form table of strings (`endpoint.headers`, `glossary`), in key order.
    fn string_table(&self, key: &str) -> Result<Vec<(String, String)>, ConfigError> {
        let expected = "a table of strings";
        match self.value(key, expected)? {
            toml::Value::Table(t) => t
                .iter()
                .map(|(k, v)| match v {
                    toml::Value::String(s) => Ok((k.clone(), s.clone())),
                    other => Err(self.mistyped(&format!("{key}.{k}"), "a string", other)),
                })
                .collect(),
            other => Err(self.mistyped(key, expected, other)),
        }
    }

    /// `[pricing]`: model → price (`Layers::set` checked each entry with [`check_price`]).
    fn prices(&self, key: &str) -> Result<BTreeMap<String, crate::pricing::Price>, ConfigError> {
        let expected = "a table of { input, output } prices";
        match self.value(key, expected)? {
            toml::Value::Table(t) => t
                .iter()
                .map(|(model, v)| {
                    v.clone()
                        .try_into()
                        .map(|price| (model.clone(), price))
                        .map_err(|_| self.mistyped(&format!("{key}.{model}"), expected, v))
                })
                .collect(),
            other => Err(self.mistyped(key, expected, other)),
        }
    }

    /// One of a fixed set of words; the error lists them.
    fn choice<T: Copy>(&self, key: &str, choices: &[(&str, T)]) -> Result<T, ConfigError> {
        let value = self.string(key)?;
        if let Some((_, t)) = choices.iter().find(|(name, _)| *name == value) {
            return Ok(*t);
        }
        let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
        let expected = match names.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        Err(self.invalid(key, value, &expected))
    }

    fn non_empty(&self, key: &str) -> Result<String, ConfigError> {
        let value = self.string(key)?.trim();
        if value.is_empty() {
            return Err(self.invalid(key, value, "a non-empty string"));
        }
        Ok(value.to_string())
    }

    fn url(&self, key: &str) -> Result<String, ConfigError> {
        let value = self.string(key)?;
        let trimmed = value.trim().trim_end_matches('/');
        match reqwest::Url::parse(trimmed) {
            // Credentials in a URL end up in logs and reports: they belong in the key variable.
            Ok(url) if !url.username().is_empty() || url.password().is_some() => Err(ConfigError::Invalid {
                key: key.to_string(),
                origin: self.layers.origin(key),
                message: "the URL carries credentials; remove them and put the key in the environment variable named by endpoint.api_key_env".to_string(),
            }),
            Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(trimmed.to_string()),
            _ => Err(self.invalid(key, value, "an http:// or https:// URL")),
        }
    }

    fn duration(&self, key: &str) -> Result<Duration, ConfigError> {
        let value = self.string(key)?;
        humantime::parse_duration(value.trim()).map_err(|_| {
            self.invalid(
                key,
                value,
                "a duration such as \"30s\", \"2m\" or \"500ms\"",
            )
        })
    }

    fn at_least(&self, key: &str, min: u32) -> Result<u32, ConfigError> {
        let value = self.int(key)?;
        u32::try_from(value)
            .ok()
            .filter(|v| *v >= min)
            .ok_or_else(|| {
                self.invalid(
                    key,
                    &value.to_string(),
                    &format!("a whole number of at least {min}"),
                )
            })
    }

    /// A path from a file is relative to the file's folder; from a flag or the environment it is
    /// relative to the working directory.
    fn path(&self, key: &str) -> Result<PathBuf, ConfigError> {
        let path = PathBuf::from(self.string(key)?);
        Ok(match self.layers.sources.get(key) {
            Some(Source::File { .. }) if path.is_relative() => self.base_dir.join(path),
            _ => path,
        })
    }
}

/// Whether requests go to OpenAI or Azure OpenAI (which want `max_completion_tokens`).
fn is_openai_host(base_url: &str) -> bool {
    reqwest::Url::parse(base_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .is_some_and(|h| h == "api.openai.com" || h.ends_with(".openai.azure.com"))
}

/// Every leaf (non-table value) with its dotted key. Free-form tables count as leaves' parents:
/// each of their entries is a leaf, even a table (`[pricing]`'s `{ input, output }`).
fn leaves(table: &toml::Table, prefix: &str) -> Vec<(String, toml::Value)> {
    let mut out = Vec::new();
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) if !FREE_TABLES.contains(&prefix) => out.extend(leaves(t, &key)),
            other => out.push((key, other.clone())),
        }
    }
    out
}

/// A dotted key as (table, leaf): at the free-form table it belongs to (whose keys may hold
/// dots, `pricing.gpt-4.1`), else at its last dot.
fn split_key(key: &str) -> (&str, &str) {
    for table in FREE_TABLES {
        if let Some(rest) = key.strip_prefix(table).and_then(|r| r.strip_prefix('.')) {
            return (table, rest);
        }
    }
    key.rsplit_once('.').unwrap_or(("", key))
}

/// A `[pricing]` entry must be `{ input = …, output = … }`, in dollars per million tokens.
fn check_price(model: &str, value: &toml::Value) -> Result<(), String> {
    let example = "{ input = 0.40, output = 1.60 } (US dollars per million tokens)";
    if matches!(model, "input_per_million" | "output_per_million") {
        return Err(format!(
            "prices are per model now: write [pricing] \"MODEL\" = {example}; known OpenAI models need no entry"
        ));
    }
    let price: crate::pricing::Price = value
        .clone()
        .try_into()
        .map_err(|_| format!("expected {example}, not {}", describe(value)))?;
    if [price.input, price.output]
        .iter()
        .any(|p| !p.is_finite() || *p < 0.0)
    {
        return Err(format!("prices must be 0 or more: {example}"));
    }
    Ok(())
}

fn lookup<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let mut parts = key.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

fn table_at<'a>(table: &'a mut toml::Table, key: &str) -> Option<&'a mut toml::Table> {
    if key.is_empty() {
        return Some(table);
    }
    let mut current = table;
    for part in key.split('.') {
        current = current.get_mut(part)?.as_table_mut()?;
    }
    Some(current)
}

fn same_kind(expected: &toml::Value, found: &toml::Value) -> bool {
    use toml::Value::*;
    match (expected, found) {
        (Float(_), Integer(_)) => true,
        (Array(_), Array(items)) => items.iter().all(toml::Value::is_str),
        (a, b) => a.same_type(b),
    }
}

fn kind_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "a whole number",
        toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "true or false",
        toml::Value::Array(_) => "a list of strings",
        toml::Value::Table(_) => "a table",
        toml::Value::Datetime(_) => "a date",
    }
}

fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::Table(_) => "a table".to_string(),
        other => format!("{} {}", other.type_str(), other),
    }
}

/// Parses an environment variable's text as a value of the same type as `like`.
fn parse_like(like: &toml::Value, raw: &str) -> Result<toml::Value, &'static str> {
    let raw = raw.trim();
    Ok(match like {
        toml::Value::String(_) => toml::Value::String(raw.to_string()),
        toml::Value::Integer(_) => raw
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| "a whole number")?,
        toml::Value::Float(_) => raw
            .parse::<f64>()
            .map(toml::Value::Float)
            .map_err(|_| "a number")?,
        toml::Value::Boolean(_) => match raw {
            "true" | "1" | "yes" => toml::Value::Boolean(true),
            "false" | "0" | "no" => toml::Value::Boolean(false),
            _ => return Err("true or false"),
        },
        toml::Value::Array(_) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
        toml::Value::Table(_) | toml::Value::Datetime(_) => return Err("a value in a file"),
    })
}

/// The line (1-based) of every dotted key set in a TOML text, from the TOML parser's own spans:
/// `[section]` + `key =`, dotted keys and inline tables alike. For error messages and
/// `config show`.
fn key_lines(text: &str) -> BTreeMap<String, usize> {
    fn walk(
        table: &toml::de::DeTable<'_>,
        prefix: &str,
        line_of: &dyn Fn(usize) -> usize,
        out: &mut BTreeMap<String, usize>,
    ) {
        for (key, value) in table {
            let name = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            out.insert(name.clone(), line_of(key.span().start));
            if let toml::de::DeValue::Table(inner) = value.get_ref() {
                walk(inner, &name, line_of, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    // The text already parsed as a table; an error here only leaves the lines unknown.
    if let Ok(doc) = toml::de::DeTable::parse(text) {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        walk(doc.get_ref(), "", &line_of, &mut out);
    }
    out
}

/// Snapshot of the process environment, for [`load`].
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_text(text: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        load(Some(&path), &BTreeMap::new(), &Overrides::default())
    }

    /// Loading `text` fails with an error that says `wanted`.
    #[track_caller]
    fn assert_refused(text: &str, wanted: &str) {
        let err = load_text(text).unwrap_err();
        assert!(err.to_string().contains(wanted), "{err}");
    }

    #[test]
    fn defaults_alone_are_valid() {
        let s = load(None, &BTreeMap::new(), &Overrides::default()).unwrap();
        assert_eq!(s.endpoint.base_url, "https://api.openai.com/v1");
        assert_eq!(s.endpoint.api_key_env, "OPENAI_API_KEY");
        assert_eq!(
            s.endpoint.max_tokens_field,
            MaxTokensField::MaxCompletionTokens
        );
        assert!(s.chunking.exact_counts);
        assert_eq!(s.schedule.timezone, "Asia/Seoul");
        assert!(
            s.provenance
                .iter()
                .all(|(_, _, src)| *src == Source::Default)
        );
    }

    #[test]
    fn layers_apply_in_order_and_remember_their_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("my.toml");
        std::fs::write(
            &path,
            "[endpoint]\nmodel = \"file-model\"\nbase_url = \"http://127.0.0.1:9/v1/\"\n\n[limits]\nrequests_per_minute = 60\n",
        )
        .unwrap();
        let e = env(&[
            ("HANBRIEF_ENDPOINT__MODEL", "env-model"),
            ("HANBRIEF_LIMITS__TOKENS_PER_MINUTE", "1234"),
            ("UNRELATED", "x"),
        ]);
        let o = Overrides {
            model: Some("flag-model".into()),
            ..Default::default()
        };
        let s = load(Some(&path), &e, &o).unwrap();
        assert_eq!(s.endpoint.model, "flag-model");
        assert_eq!(s.endpoint.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(s.endpoint.max_tokens_field, MaxTokensField::MaxTokens);
        assert_eq!(s.limits.requests_per_minute, 60);
        assert_eq!(s.limits.tokens_per_minute, 1234);
        assert!(
            !s.chunking.exact_counts,
            "a non-OpenAI model gives estimates"
        );
        let source = |k: &str| {
            s.provenance
                .iter()
                .find(|(key, _, _)| key == k)
                .unwrap()
                .2
                .clone()
        };
        assert_eq!(source("endpoint.model"), Source::Flag("--model"));
        assert_eq!(
            source("limits.tokens_per_minute"),
            Source::Env("HANBRIEF_LIMITS__TOKENS_PER_MINUTE".into())
        );
        assert_eq!(
            source("limits.requests_per_minute"),
            Source::File {
                path: path.clone(),
                line: Some(6)
            }
        );
        assert_eq!(source("chunking.margin"), Source::Default);
    }

    #[test]
    fn unknown_key_names_key_file_and_line() {
        let err = load_text("[endpoint]\nmodel = \"m\"\nmodle = \"typo\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`endpoint.modle`"), "{msg}");
        assert!(msg.contains("config.toml line 3"), "{msg}");
    }

    #[test]
    fn unknown_section_is_an_error() {
        assert_refused("[endpont]\nmodel = \"m\"\n", "`endpont.model`");
    }

    #[test]
    fn wrong_type_names_the_expected_type() {
        let err = load_text("[limits]\nrequests_per_minute = \"fast\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("limits.requests_per_minute"), "{msg}");
        assert!(msg.contains("a whole number"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn bad_values_are_named() {
        assert_refused(
            "[endpoint]\nrequest_timeout = \"soon\"\n",
            "endpoint.request_timeout",
        );
        assert_refused(
            "[endpoint]\nauth = \"basic\"\n",
            "\"bearer\" or \"api-key\"",
        );
        assert_refused("[output]\nformats = [\"pdf\"]\n", "output.formats");
        assert_refused("[limits]\nmax_in_flight = 0\n", "at least 1");
    }

    #[test]
    fn syntax_errors_name_the_file() {
        let err = load_text("[endpoint\nmodel = 1\n").unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }));
        assert!(err.to_string().contains("config.toml"), "{err}");
    }

    #[test]
    fn env_keys_are_checked() {
        let e = env(&[("HANBRIEF_ENDPOINT__MODLE", "x")]);
        let err = load(None, &e, &Overrides::default()).unwrap_err();
        assert!(
            err.to_string().contains("HANBRIEF_ENDPOINT__MODLE"),
            "{err}"
        );
        let e = env(&[("HANBRIEF_LIMITS__MAX_RETRIES", "many")]);
        let err = load(None, &e, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("a whole number"), "{err}");
    }

    #[test]
    fn free_tables_accept_any_key_and_paths_are_relative_to_the_file() {
        let s = load_text(
            "[endpoint.query]\napi-version = \"2024-10-21\"\n[endpoint.headers]\nX-Title = \"hanbrief\"\n[glossary]\n\"최태원\" = \"Chey Tae-won\"\n[prompts]\ndir = \"my-prompts\"\n",
        )
        .unwrap();
        assert_eq!(
            s.endpoint.query,
            vec![("api-version".into(), "2024-10-21".into())]
        );
        assert_eq!(s.endpoint.headers[0].0, "X-Title");
        assert_eq!(s.glossary["최태원"], "Chey Tae-won");
        let dir = s.prompts_dir.unwrap();
        assert!(dir.ends_with("my-prompts") && dir.is_absolute(), "{dir:?}");
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_echoing_them() {
        let err = load_text("[endpoint]\nbase_url = \"https://user:s3cret@proxy.example/v1\"\n")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("carries credentials"), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");
    }

    #[test]
    fn context_window_follows_the_model() {
        let s = load_text("[endpoint]\nmodel = \"gpt-4o\"\n").unwrap();
        assert_eq!(s.endpoint.context_window, 128_000);
        let s = load_text("[endpoint]\nmodel = \"llama\"\n").unwrap();
        assert_eq!(s.endpoint.context_window, 8192);
        assert_refused(
            "[endpoint]\nmodel = \"llama\"\ncontext_window = 1024\n",
            "brief_max_tokens",
        );
    }

    #[test]
    fn prices_are_per_model_with_dotted_names() {
        let s = load_text(
            "[endpoint]\nmodel = \"gpt-4.1\"\n[pricing]\n\"gpt-4.1\" = { input = 1, output = 3.5 }\n\"*\" = { input = 0, output = 0 }\n",
        )
        .unwrap();
        let (price, _) = s.pricing.price("gpt-4.1").unwrap();
        assert_eq!((price.input, price.output), (1.0, 3.5));
        assert_eq!(s.pricing.price("other").unwrap().0.input, 0.0);
        let (key, value, source) = s
            .provenance
            .iter()
            .find(|(k, _, _)| k == "pricing.gpt-4.1")
            .expect("a dotted model name is one key");
        assert!(value.contains("3.5"), "{key} = {value}");
        assert!(
            matches!(source, Source::File { line: Some(4), .. }),
            "{source:?}"
        );

        assert_refused("[pricing]\ninput_per_million = 0.4\n", "per model now");
        assert_refused(
            "[pricing]\n\"m\" = 0.4\n",
            "{ input = 0.40, output = 1.60 }",
        );
        assert_refused(
            "[pricing]\n\"m\" = { input = -1, output = 1 }\n",
            "0 or more",
        );
        assert_refused(
            "[pricing]\n\"m\" = { input = 1, outptu = 1 }\n",
            "pricing.m",
        );
    }

    #[test]
    fn key_lines_handle_sections_dotted_keys_and_inline_tables() {
        let text = "# c\n[a]\nx = 1\n[b]\nx = 2\ny = { z = 1 }\nw.v = \"s\"\n\"q.k\" = 3\n";
        let lines = key_lines(text);
        assert_eq!(lines.get("a.x"), Some(&3));
        assert_eq!(lines.get("b.x"), Some(&5));
        assert_eq!(lines.get("b.y.z"), Some(&6));
        assert_eq!(lines.get("b.w.v"), Some(&7));
        assert_eq!(lines.get("b.q.k"), Some(&8));
        assert_eq!(lines.get("c.x"), None);
    }
}
