//! Configuration: the embedded defaults, a config file, `HANBRIEF_*` environment variables and
//! command-line flags, merged in that order into validated [`Settings`].
//!
//! The layers are merged as TOML tables first (so that every value remembers where it came from,
//! which `hanbrief config show` prints), then deserialised into the raw [`FileConfig`] (which
//! rejects unknown keys), then checked and converted into [`Settings`], the typed values the rest
//! of the crate uses. The default layer is the repository's own `config.toml`, embedded, so the
//! documented file and the built-in defaults can never drift apart.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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
}

// ---------------------------------------------------------------------------------------------
// Raw file model: the shape of config.toml, strict about unknown keys.

/// The configuration as written in TOML, before validation. Every key is required here because
/// the embedded defaults always provide it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub endpoint: EndpointFile,
    pub limits: LimitsFile,
    pub chunking: ChunkingFile,
    pub summary: SummaryFile,
    pub output: OutputFile,
    pub prompts: PromptsFile,
    pub schedule: ScheduleFile,
    pub digest: DigestFile,
    pub batch: BatchFile,
    pub pricing: BTreeMap<String, crate::pricing::Price>,
    pub glossary: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointFile {
    pub base_url: String,
    pub model: String,
    pub api_key_env: String,
    pub auth: String,
    pub structured_output: String,
    pub max_tokens_field: String,
    pub merge_system_prompt: bool,
    pub context_window: i64,
    pub temperature: f64,
    pub reasoning_effort: String,
    pub connect_timeout: String,
    pub request_timeout: String,
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub requests_per_minute: i64,
    pub tokens_per_minute: i64,
    pub max_in_flight: i64,
    pub max_retries: i64,
    pub backoff_base: String,
    pub backoff_max: String,
    pub shutdown_grace: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkingFile {
    pub encoding: String,
    pub chunk_tokens: i64,
    pub margin: f64,
    pub brief_max_tokens: i64,
    pub notes_max_tokens: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryFile {
    pub strategy: String,
    pub sentences: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputFile {
    pub dir: String,
    pub formats: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptsFile {
    pub dir: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleFile {
    pub cron: String,
    pub timezone: String,
    pub input: String,
    pub output: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestFile {
    pub max_tokens: i64,
    pub dir: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchFile {
    pub enabled: bool,
    pub base_url: String,
    pub url: String,
    pub model: String,
    pub enqueued_tokens: i64,
    pub max_requests_per_file: i64,
    pub max_file_mb: i64,
    pub poll_min: String,
    pub poll_max: String,
    pub max_attempts: i64,
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
        let raw: FileConfig = self
            .table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid {
                key: "(config)".to_string(),
                origin: file
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "default".into()),
                message: e.message().to_string(),
            })?;
        let v = Validator {
            layers: &self,
            base_dir,
        };
        let e = &raw.endpoint;
        let model = v.non_empty("endpoint.model", &e.model)?;
        let base_url = v.url("endpoint.base_url", &e.base_url)?;
        let auth = match e.auth.as_str() {
            "bearer" => AuthStyle::Bearer,
            "api-key" => AuthStyle::ApiKeyHeader,
            other => return Err(v.invalid("endpoint.auth", other, "\"bearer\" or \"api-key\"")),
        };
        let structured_output = match e.structured_output.as_str() {
            "auto" => StructuredOutput::Auto,
            "json_schema" => StructuredOutput::JsonSchema,
            "json_object+schema" => StructuredOutput::JsonObjectSchema,
            "json_object" => StructuredOutput::JsonObject,
            "none" => StructuredOutput::None,
            other => {
                return Err(v.invalid(
                    "endpoint.structured_output",
                    other,
                    "\"auto\", \"json_schema\", \"json_object+schema\", \"json_object\" or \"none\"",
                ));
            }
        };
        let max_tokens_field = match e.max_tokens_field.as_str() {
            "max_tokens" => MaxTokensField::MaxTokens,
            "max_completion_tokens" => MaxTokensField::MaxCompletionTokens,
            "auto" if is_openai_host(&base_url) => MaxTokensField::MaxCompletionTokens,
            "auto" => MaxTokensField::MaxTokens,
            other => {
                return Err(v.invalid(
                    "endpoint.max_tokens_field",
                    other,
                    "\"auto\", \"max_tokens\" or \"max_completion_tokens\"",
                ));
            }
        };
        let reasoning_effort = match e.reasoning_effort.trim() {
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
        let context_window = match usize::try_from(e.context_window) {
            Ok(0) => crate::tokens::context_window_for(&model).unwrap_or(8192),
            Ok(n) if n >= 512 => n,
            _ => {
                return Err(v.invalid(
                    "endpoint.context_window",
                    &e.context_window.to_string(),
                    "0 (known from the model) or at least 512",
                ));
            }
        };
        if e.api_key_env.trim().is_empty() {
            return Err(v.invalid(
                "endpoint.api_key_env",
                "",
                "the name of an environment variable",
            ));
        }
        for name in e.headers.keys() {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(v.invalid(
                    &format!("endpoint.headers.{name}"),
                    name,
                    "a valid HTTP header name",
                ));
            }
        }
        let endpoint = EndpointSettings {
            base_url,
            model: model.clone(),
            api_key_env: e.api_key_env.clone(),
            auth,
            structured_output,
            max_tokens_field,
            merge_system_prompt: e.merge_system_prompt,
            context_window,
            temperature: (e.temperature >= 0.0).then_some(e.temperature),
            reasoning_effort,
            connect_timeout: v.duration("endpoint.connect_timeout", &e.connect_timeout)?,
            request_timeout: v.duration("endpoint.request_timeout", &e.request_timeout)?,
            query: e
                .query
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            headers: e
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };

        let l = &raw.limits;
        let limits = LimitSettings {
            requests_per_minute: v.positive("limits.requests_per_minute", l.requests_per_minute)?,
            tokens_per_minute: v.positive("limits.tokens_per_minute", l.tokens_per_minute)?,
            max_in_flight: v.positive("limits.max_in_flight", l.max_in_flight)? as usize,
            max_retries: v.at_least("limits.max_retries", l.max_retries, 0)?,
            backoff_base: v.duration("limits.backoff_base", &l.backoff_base)?,
            backoff_max: v.duration("limits.backoff_max", &l.backoff_max)?,
            shutdown_grace: v.duration("limits.shutdown_grace", &l.shutdown_grace)?,
        };

        let c = &raw.chunking;
        let (encoding, exact_counts) = match c.encoding.as_str() {
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
        if !(0.0..=2.0).contains(&c.margin) {
            return Err(v.invalid(
                "chunking.margin",
                &c.margin.to_string(),
                "a fraction between 0 and 2",
            ));
        }
        let chunking = ChunkSettings {
            encoding,
            exact_counts,
            chunk_tokens: v.at_least("chunking.chunk_tokens", c.chunk_tokens, 200)? as usize,
            margin: c.margin as f32,
            brief_max_tokens: v.at_least("chunking.brief_max_tokens", c.brief_max_tokens, 200)?,
            notes_max_tokens: v.at_least("chunking.notes_max_tokens", c.notes_max_tokens, 100)?,
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
            strategy: match raw.summary.strategy.as_str() {
                "free" => Strategy::Free,
                "select" => Strategy::Select,
                other => {
                    return Err(v.invalid("summary.strategy", other, "\"free\" or \"select\""));
                }
            },
            sentences: v.at_least("summary.sentences", raw.summary.sentences, 1)? as usize,
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
        for f in &raw.output.formats {
            match f.as_str() {
                "md" | "markdown" => markdown = true,
                "json" => json = true,
                other => return Err(v.invalid("output.formats", other, "\"md\" or \"json\"")),
            }
        }
        if !markdown && !json {
            return Err(v.invalid("output.formats", "[]", "at least one of \"md\", \"json\""));
        }
        let output = OutputSettings {
            dir: v.path("output.dir", &raw.output.dir),
            markdown,
            json,
        };

        let prompts_dir =
            (!raw.prompts.dir.is_empty()).then(|| v.path("prompts.dir", &raw.prompts.dir));

        let s = &raw.schedule;
        let schedule = ScheduleSettings {
            cron: s.cron.clone(),
            timezone: s.timezone.clone(),
            input: v.path("schedule.input", &s.input),
            output: v.path("schedule.output", &s.output),
        };

        let d = &raw.digest;
        let digest_dir = PathBuf::from(d.dir.trim());
        if d.dir.trim().is_empty() || digest_dir.is_absolute() || d.dir.contains("..") {
            return Err(v.invalid(
                "digest.dir",
                &d.dir,
                "a folder name inside the briefs folder",
            ));
        }
        let digest = DigestSettings {
            max_tokens: v.at_least("digest.max_tokens", d.max_tokens, 500)?,
            dir: digest_dir,
        };

        let b = &raw.batch;
        let batch_url = b.url.trim();
        if !batch_url.starts_with('/') {
            return Err(v.invalid(
                "batch.url",
                &b.url,
                "a path such as \"/v1/chat/completions\" (OpenAI) or \"/chat/completions\" (Azure)",
            ));
        }
        let batch_limit = |key: &str, value: i64, max: i64| {
            if (1..=max).contains(&value) {
                Ok(value as usize)
            } else {
                Err(v.invalid(key, &value.to_string(), &format!("1 to {max}")))
            }
        };
        let batch = BatchSettings {
            enabled: b.enabled,
            base_url: match b.base_url.trim() {
                "" => endpoint.base_url.clone(),
                url => v.url("batch.base_url", url)?,
            },
            url: batch_url.to_string(),
            model: match b.model.trim() {
                "" => model.clone(),
                m => m.to_string(),
            },
            enqueued_tokens: match b.enqueued_tokens {
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
            max_requests_per_file: batch_limit(
                "batch.max_requests_per_file",
                b.max_requests_per_file,
                50_000,
            )?,
            max_file_bytes: batch_limit("batch.max_file_mb", b.max_file_mb, 200)? * 1_000_000,
            poll_min: v.duration("batch.poll_min", &b.poll_min)?,
            poll_max: v.duration("batch.poll_max", &b.poll_max)?,
            max_attempts: v.positive("batch.max_attempts", b.max_attempts)?,
        };
        if batch.poll_min.is_zero() || batch.poll_min > batch.poll_max {
            return Err(v.invalid(
                "batch.poll_min",
                &b.poll_min,
                "a duration above zero and at most batch.poll_max",
            ));
        }

        let pricing = crate::pricing::Pricing::new(raw.pricing.clone(), &endpoint.base_url);

        for (ko, en) in &raw.glossary {
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
            glossary: raw.glossary.clone(),
            config_file: file.map(Path::to_path_buf),
            provenance,
        })
    }
}

/// Turns raw values into typed ones, naming the key and its origin on failure.
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

    fn non_empty(&self, key: &str, value: &str) -> Result<String, ConfigError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(self.invalid(key, value, "a non-empty string"));
        }
        Ok(value.to_string())
    }

    fn url(&self, key: &str, value: &str) -> Result<String, ConfigError> {
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

    fn duration(&self, key: &str, value: &str) -> Result<Duration, ConfigError> {
        humantime::parse_duration(value.trim()).map_err(|_| {
            self.invalid(
                key,
                value,
                "a duration such as \"30s\", \"2m\" or \"500ms\"",
            )
        })
    }

    fn positive(&self, key: &str, value: i64) -> Result<u32, ConfigError> {
        self.at_least(key, value, 1)
    }

    fn at_least(&self, key: &str, value: i64, min: u32) -> Result<u32, ConfigError> {
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
    fn path(&self, key: &str, value: &str) -> PathBuf {
        let path = PathBuf::from(value);
        match self.layers.sources.get(key) {
            Some(Source::File { .. }) if path.is_relative() => self.base_dir.join(path),
            _ => path,
        }
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
        let err = load_text("[endpont]\nmodel = \"m\"\n").unwrap_err();
        assert!(err.to_string().contains("`endpont.model`"), "{err}");
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
        let err = load_text("[endpoint]\nrequest_timeout = \"soon\"\n").unwrap_err();
        assert!(
            err.to_string().contains("endpoint.request_timeout"),
            "{err}"
        );
        let err = load_text("[endpoint]\nauth = \"basic\"\n").unwrap_err();
        assert!(
            err.to_string().contains("\"bearer\" or \"api-key\""),
            "{err}"
        );
        let err = load_text("[output]\nformats = [\"pdf\"]\n").unwrap_err();
        assert!(err.to_string().contains("output.formats"), "{err}");
        let err = load_text("[limits]\nmax_in_flight = 0\n").unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
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
        let err = load_text("[endpoint]\nmodel = \"llama\"\ncontext_window = 1024\n").unwrap_err();
        assert!(err.to_string().contains("brief_max_tokens"), "{err}");
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

        let err = load_text("[pricing]\ninput_per_million = 0.4\n").unwrap_err();
        assert!(err.to_string().contains("per model now"), "{err}");
        let err = load_text("[pricing]\n\"m\" = 0.4\n").unwrap_err();
        assert!(
            err.to_string().contains("{ input = 0.40, output = 1.60 }"),
            "{err}"
        );
        let err = load_text("[pricing]\n\"m\" = { input = -1, output = 1 }\n").unwrap_err();
        assert!(err.to_string().contains("0 or more"), "{err}");
        let err = load_text("[pricing]\n\"m\" = { input = 1, outptu = 1 }\n").unwrap_err();
        assert!(err.to_string().contains("pricing.m"), "{err}");
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
