//! The one client every model call goes through.
//!
//! `ChatClient::chat` owns, in order: the cache lookup (a hit costs no call), the reply budget
//! (sized to the replies seen so far, [`super::sizing`]; the caller's `max_tokens` is the
//! ceiling), the format instructions the output mode calls for, the budget check against the
//! context window (as configured, or as the server turned out to have), the in-flight limit, the
//! shared rate limiter (reserving the prompt and the sized budget), the HTTP call (cut short when
//! it is taken for hung, [`super::latency`]), the classification of what came back
//! (retry, pause everyone, drop or rename a refused parameter, step down the structured-output
//! mode, fail this call, or stop the run), usage accounting and calibration of token estimates,
//! and the cache write. What it learns about the server's habits ([`super::quirks`]) shapes every
//! later call and is remembered in the state store. A watchdog says, at the default log level,
//! why nothing has moved when a minute passes without a request sent or a reply received. The
//! pipeline's stages only say what they want said.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::batch::{Deferral, DeferredRequest};
use super::identity::{self, ModelIdentity};
use super::latency::{Deadlines, Latency};
use super::quirks::{Quirks, is_reasoning_model, reasoning_room};
use super::retry::{LlmError, Param, Verdict, backoff, classify, redact};
use super::sizing::{ReplySizes, is_looping};
use super::types::{
    ApiError, ChatReply, ChatRequest, FinishReason, FormatInstructions, Message, ParsedReply,
    ReplyFormat, Role, Usage, parse_error, parse_reply,
};
use crate::config::{AuthStyle, EndpointSettings, LimitSettings, MaxTokensField, StructuredOutput};
use crate::ratelimit::{Limiter, Limits, stated_limit};
use crate::tokens::{Calibration, Tokenizer};

/// The API key, read from the environment. It has no `Display`, and its `Debug` hides it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Reads the key from the environment variable `name`; `None` when unset or empty.
    pub fn from_env(name: &str) -> Option<ApiKey> {
        std::env::var(name)
            .ok()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .map(ApiKey)
    }

    /// A key given directly (tests, stdin).
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The key with all but its first three and last two characters hidden, for `config show`.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() <= 8 {
            return "****".to_string();
        }
        format!(
            "{}…{}",
            chars[..3].iter().collect::<String>(),
            chars[chars.len() - 2..].iter().collect::<String>()
        )
    }

    /// The key itself, for the headers of the chat and batch clients only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(****)")
    }
}

/// The state the client keeps between runs: finished calls, keyed by everything that shapes the
/// answer, and what it learned about an endpoint's habits ([`super::quirks`]). Lookups are
/// asynchronous, so that a cache on disk is never read on the runtime's workers (see `store`).
pub trait CallCache: Send + Sync {
    /// The reply stored under `key`, if any.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<ChatReply>>;
    /// Stores a finished call; `purpose` is for statistics.
    fn put<'a>(&'a self, key: &'a str, purpose: &'a str, reply: &'a ChatReply)
    -> BoxFuture<'a, ()>;
    /// Drops a stored call (its reply turned out unusable: a later run must ask again).
    fn forget<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()>;
    /// What earlier runs learned about `model` at `endpoint`, as key/value pairs.
    fn quirks<'a>(
        &'a self,
        _endpoint: &'a str,
        _model: &'a str,
    ) -> BoxFuture<'a, Vec<(String, String)>> {
        Box::pin(async { Vec::new() })
    }
    /// Remembers one thing learned about `model` at `endpoint`. Must not block: called from
    /// the middle of a call, it queues the write.
    fn learn(&self, _endpoint: &str, _model: &str, _key: &str, _value: &str) {}
    /// Which identity `model` at `endpoint` (normalised) has, as `described` by the server now
    /// (or as remembered), and what it mixes into keys; records it. See [`super::identity`].
    fn identify<'a>(
        &'a self,
        _model: &'a str,
        _endpoint: &'a str,
        _described: Option<String>,
    ) -> BoxFuture<'a, ModelIdentity> {
        Box::pin(async { ModelIdentity::default() })
    }
}

/// Counters for progress, the report and the bench.
#[derive(Debug, Default)]
pub struct ClientStats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
    pub in_flight: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    pub cache_hits: AtomicU64,
    pub failed_calls: AtomicU64,
    pub format_downgrades: AtomicU64,
    /// Attempts given up for hung after the learned deadline ([`super::latency`]).
    pub hangs_cut: AtomicU64,
    /// Replies cut at a sized budget and asked again with the whole one ([`super::sizing`]).
    pub resized: AtomicU64,
}

/// A plain copy of [`ClientStats`].
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub retries: u64,
    pub rate_limited: u64,
    pub in_flight: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cache_hits: u64,
    pub failed_calls: u64,
    pub hangs_cut: u64,
    pub resized: u64,
}

impl ClientStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: g(&self.requests),
            retries: g(&self.retries),
            rate_limited: g(&self.rate_limited),
            in_flight: g(&self.in_flight),
            prompt_tokens: g(&self.prompt_tokens),
            completion_tokens: g(&self.completion_tokens),
            cache_hits: g(&self.cache_hits),
            failed_calls: g(&self.failed_calls),
            hangs_cut: g(&self.hangs_cut),
            resized: g(&self.resized),
        }
    }
}

/// Structured-output modes, richest first. `Auto` walks down this ladder on refusal.
const MODE_JSON_SCHEMA: u8 = 0;
const MODE_JSON_OBJECT_SCHEMA: u8 = 1;
const MODE_JSON_OBJECT: u8 = 2;
const MODE_PLAIN: u8 = 3;

/// Whether the server counts a json_schema schema as prompt tokens: not seen yet (reserved, as
/// OpenAI bills it), yes, no (a grammar server).
const SCHEMA_UNKNOWN: u8 = 0;
const SCHEMA_BILLED: u8 = 1;
const SCHEMA_NOT_BILLED: u8 = 2;

fn mode_name(mode: u8) -> &'static str {
    match mode {
        MODE_JSON_SCHEMA => "json_schema",
        MODE_JSON_OBJECT_SCHEMA => "json_object+schema",
        MODE_JSON_OBJECT => "json_object",
        _ => "plain",
    }
}

fn mode_from_name(name: &str) -> Option<u8> {
    [
        MODE_JSON_SCHEMA,
        MODE_JSON_OBJECT_SCHEMA,
        MODE_JSON_OBJECT,
        MODE_PLAIN,
    ]
    .into_iter()
    .find(|m| mode_name(*m) == name)
}

/// A reply whose `usage.prompt_tokens` is below this share of what we sent was cut by the
/// server: tokenizers differ by well under this (Gemma counts Korean at about 0.8 of o200k),
/// while Ollama's cut keeps about half of its `num_ctx` of a prompt longer than `num_ctx`.
const CUT_RATIO: f64 = 0.55;
/// Prompts smaller than this (our count) are not judged for cuts: framing dominates them.
const CUT_MIN_TOKENS: usize = 400;
/// How long a server that is loading its model (llama.cpp's 503 "Loading model") is waited for.
const LOADING_PATIENCE: Duration = Duration::from_secs(600);
/// After this long without a request sent or a reply received, the watchdog says why.
const STALL_WARNING: Duration = Duration::from_secs(60);
/// Past its soft deadline, a call is taken for hung once the server has answered this many
/// requests sent after it ([`super::latency`]).
const OVERTAKEN: usize = 2;

/// What calls are doing, for the watchdog.
#[derive(Default)]
struct Activity {
    /// Calls inside `chat` now.
    pending: AtomicU64,
    /// Requests on the wire: id → when sent.
    on_wire: Mutex<BTreeMap<u64, Instant>>,
    next_id: AtomicU64,
    /// The last time a request went out or a reply (of any kind) came back.
    last_move: Mutex<Option<Instant>>,
    /// Calls sleeping before a retry: id → (until when, why).
    backoffs: Mutex<BTreeMap<u64, (Instant, String)>>,
    /// The ids (in sending order) of the latest requests the server answered, newest last.
    answered: Mutex<std::collections::VecDeque<u64>>,
}

impl Activity {
    fn moved(&self) {
        *self.last_move.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The server answered request `id` (with anything, an error status included).
    fn answered(&self, id: u64) {
        let mut answered = self.answered.lock().unwrap_or_else(|p| p.into_inner());
        answered.push_back(id);
        if answered.len() > 1024 {
            answered.pop_front();
        }
    }

    /// How many requests sent after request `id` the server has answered.
    fn answered_after(&self, id: u64) -> usize {
        self.answered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|a| **a > id)
            .count()
    }
}

/// Removes a map entry when dropped (a call that is cancelled mid-wait leaves no trace).
struct Entry<'a, V> {
    map: &'a Mutex<BTreeMap<u64, V>>,
    id: u64,
}

impl<'a, V> Entry<'a, V> {
    fn insert(map: &'a Mutex<BTreeMap<u64, V>>, id: u64, value: V) -> Entry<'a, V> {
        map.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, value);
        Entry { map, id }
    }
}

impl<V> Drop for Entry<'_, V> {
    fn drop(&mut self) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Counts a call as pending while it lives.
struct Pending<'a>(&'a AtomicU64);

impl<'a> Pending<'a> {
    fn new(n: &'a AtomicU64) -> Pending<'a> {
        n.fetch_add(1, Ordering::Relaxed);
        Pending(n)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Failing to build the client: a configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid value for endpoint.headers.{name}: {message}")]
    Header { name: String, message: String },
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// The chat-completions client of a run.
pub struct ChatClient {
    http: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    endpoint: EndpointSettings,
    limits: LimitSettings,
    key: Option<ApiKey>,
    limiter: Arc<Limiter>,
    tokenizer: Tokenizer,
    calibration: Calibration,
    mode: AtomicU8,
    in_flight: Semaphore,
    /// Stops new calls (and waits: for a permit, the limiter, a backoff).
    cancel: CancellationToken,
    /// Drops calls on the wire: the shutdown grace is over (see [`ChatClient::with_abort`]).
    abort: CancellationToken,
    cache: Option<Arc<dyn CallCache>>,
    stats: Arc<ClientStats>,
    /// Until one call has come back, calls go one at a time: a wrong key, model or URL then
    /// costs one call, not one per worker, and the first reply teaches the limiter and the
    /// structured-output mode before the others start.
    probe: tokio::sync::Mutex<()>,
    probed: std::sync::atomic::AtomicBool,
    /// Something at the endpoint has answered in this run (any HTTP status). Until then a
    /// connection that cannot be made fails at once: nothing is listening, or the name is wrong,
    /// and retrying for half a minute would only hide it. After, it is retried (a server
    /// restarting mid-run must not fail the run).
    answered: std::sync::atomic::AtomicBool,
    /// The first error that stops the run; every later call fails with it without sending.
    fatal: std::sync::OnceLock<LlmError>,
    /// Batch mode: where calls the cache cannot answer go instead of being sent.
    deferral: Option<Arc<dyn Deferral>>,
    /// What this endpoint and model refuse or say differently.
    quirks: Quirks,
    /// Which model answers, once [`ChatClient::identify`] has asked: what cache keys mix in.
    identity: ModelIdentity,
    /// The completion sizes seen, which size the reply budgets sent.
    sizes: ReplySizes,
    /// How long honest calls take here, which says when a call is hung.
    latency: Latency,
    /// Prompt tokens a format adds per output mode (see `format_tokens`).
    format_counts: Mutex<BTreeMap<(&'static str, u8), FormatTokens>>,
    /// Whether the server counts a json_schema schema as prompt tokens (`SCHEMA_*`).
    schema_billed: std::sync::atomic::AtomicU8,
    activity: Arc<Activity>,
    /// Stops the watchdog when the client is dropped.
    watchdog: CancellationToken,
}

impl Drop for ChatClient {
    fn drop(&mut self) {
        self.watchdog.cancel();
        self.sizes.flush(&self.quirks);
    }
}

impl std::fmt::Debug for ChatClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatClient")
            .field("url", &self.url.as_str())
            .field("model", &self.endpoint.model)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// An HTTP client for `endpoint`, chat and batch alike: its timeouts and our user agent.
pub(crate) fn http_builder(endpoint: &EndpointSettings) -> reqwest::ClientBuilder {
    // reqwest is built with rustls but no default crypto provider (ARCHITECTURE.md,
    // Dependencies): install ring once per process. A second install fails harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(endpoint.connect_timeout)
        .timeout(endpoint.request_timeout)
        .user_agent(concat!("hanbrief/", env!("CARGO_PKG_VERSION")))
}

/// The headers every request to `endpoint` carries, chat and batch alike: its configured
/// `headers`, and the key as `auth` says (marked sensitive, so that no debug output shows it).
pub(crate) fn endpoint_headers(
    endpoint: &EndpointSettings,
    key: Option<&ApiKey>,
) -> Result<HeaderMap, ClientError> {
    let mut headers = HeaderMap::new();
    for (name, value) in &endpoint.headers {
        let header_err = |message: String| ClientError::Header {
            name: name.clone(),
            message,
        };
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|e| header_err(e.to_string()))?;
        let v = HeaderValue::from_str(value).map_err(|e| header_err(e.to_string()))?;
        headers.insert(n, v);
    }
    if let Some(key) = key {
        let (name, value) = match endpoint.auth {
            AuthStyle::Bearer => (AUTHORIZATION, format!("Bearer {}", key.expose())),
            AuthStyle::ApiKeyHeader => {
                (HeaderName::from_static("api-key"), key.expose().to_string())
            }
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| ClientError::Header {
            name: name.to_string(),
            message: "the API key contains characters not allowed in a header".into(),
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(headers)
}

impl ChatClient {
    /// A client for `endpoint`, limited by `limits`, stopped from starting new calls by `cancel`.
    pub fn new(
        endpoint: &EndpointSettings,
        limits: &LimitSettings,
        tokenizer: Tokenizer,
        key: Option<ApiKey>,
        cancel: CancellationToken,
    ) -> Result<ChatClient, ClientError> {
        let http = http_builder(endpoint)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let mut url = reqwest::Url::parse(&format!("{}/chat/completions", endpoint.base_url))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        if !endpoint.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &endpoint.query {
                pairs.append_pair(k, v);
            }
        }
        let mut headers = endpoint_headers(endpoint, key.as_ref())?;
        // A Content-Type among the configured headers stands.
        headers
            .entry(CONTENT_TYPE)
            .or_insert(HeaderValue::from_static("application/json"));
        let mode = match endpoint.structured_output {
            StructuredOutput::Auto | StructuredOutput::JsonSchema => MODE_JSON_SCHEMA,
            StructuredOutput::JsonObjectSchema => MODE_JSON_OBJECT_SCHEMA,
            StructuredOutput::JsonObject => MODE_JSON_OBJECT,
            StructuredOutput::None => MODE_PLAIN,
        };
        let limiter = Arc::new(Limiter::new(Limits {
            requests_per_minute: limits.requests_per_minute,
            tokens_per_minute: limits.tokens_per_minute,
        }));
        let stats = Arc::new(ClientStats::default());
        let activity = Arc::new(Activity::default());
        let watchdog = CancellationToken::new();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(watch_stalls(
                activity.clone(),
                limiter.clone(),
                stall_warning(),
                watchdog.clone(),
            ));
        }
        Ok(ChatClient {
            http,
            url,
            headers,
            endpoint: endpoint.clone(),
            limits: limits.clone(),
            key,
            limiter,
            tokenizer,
            calibration: Calibration::default(),
            mode: AtomicU8::new(mode),
            in_flight: Semaphore::new(limits.max_in_flight.max(1)),
            cancel,
            abort: CancellationToken::new(),
            cache: None,
            stats,
            probe: tokio::sync::Mutex::new(()),
            probed: std::sync::atomic::AtomicBool::new(false),
            answered: std::sync::atomic::AtomicBool::new(false),
            fatal: std::sync::OnceLock::new(),
            deferral: None,
            quirks: Quirks::new(&endpoint.base_url, &endpoint.model),
            identity: ModelIdentity::default(),
            sizes: ReplySizes::default(),
            latency: Latency::default(),
            format_counts: Mutex::new(BTreeMap::new()),
            schema_billed: std::sync::atomic::AtomicU8::new(SCHEMA_UNKNOWN),
            activity,
            watchdog,
        })
    }

    /// Drops a call still on the wire when `abort` fires (a request cannot otherwise be
    /// stopped before its timeout, up to `endpoint.request_timeout`): it fails as cancelled. The
    /// `cancel` token of [`ChatClient::new`] only stops new calls.
    pub fn with_abort(mut self, abort: CancellationToken) -> ChatClient {
        self.abort = abort;
        self
    }

    /// Routes every call through `cache`, keyed by the model that answers ([`Self::identify`]),
    /// and starts from what earlier runs learned about this endpoint and model.
    pub async fn with_cache(mut self, cache: Arc<dyn CallCache>) -> ChatClient {
        self = self.identify(cache.as_ref(), true).await;
        self.quirks.attach(cache.clone()).await;
        self.sizes.load(&self.quirks);
        let learned = self.quirks.get();
        if self.endpoint.structured_output == StructuredOutput::Auto
            && let Some(mode) = learned
                .structured_output
                .as_deref()
                .and_then(mode_from_name)
        {
            self.mode.store(mode, Ordering::Relaxed);
        }
        if let Some(what) = learned.describe() {
            tracing::info!(
                "remembered from earlier runs for {} at {}: {what}",
                self.endpoint.model,
                self.endpoint.base_url
            );
        }
        self.cache = Some(cache);
        self
    }

    /// Works out which model answers (see [`super::identity`]): with `ask`, asks the server's
    /// `GET {base_url}/models` once (a short wait; any failure only means the description
    /// `memory` remembers is used; without `ask`, as for a dry run, which uses no network, the
    /// remembered one is) and lets `memory` decide what keys mix in. A model the output folder
    /// knows under another identity is said at the default log level, since every brief made
    /// with the other one is made again.
    pub async fn identify(mut self, memory: &dyn CallCache, ask: bool) -> ChatClient {
        let endpoint = identity::normalise_endpoint(&self.endpoint.base_url);
        let answer = match ask {
            true => self.describe_model().await,
            false => Err("not asked".to_string()),
        };
        let described = match answer {
            Ok(d) => Some(d),
            Err(why) => {
                tracing::debug!(
                    "{}/models does not describe {} ({why}); using what an earlier run saw",
                    self.endpoint.base_url,
                    self.endpoint.model
                );
                None
            }
        };
        let found = memory
            .identify(&self.endpoint.model, &endpoint, described)
            .await;
        let what = found.description.as_deref().unwrap_or("not described");
        if found.new && found.changed {
            tracing::info!(
                "{} at {} is not the model this output folder first saw under that name ({what}): \
                 its answers are cached apart, and briefs made with another model are made again",
                self.endpoint.model,
                endpoint
            );
        } else {
            tracing::debug!(model = %self.endpoint.model, %endpoint, mixed = found.mix.is_some(), "model identity: {what}");
        }
        self.identity = found;
        self
    }

    /// What the server's `/models` list says about the configured model, or why nothing.
    async fn describe_model(&self) -> Result<String, String> {
        // The chat URL's sibling, with the same query (Azure's `api-version`).
        let mut url = self.url.clone();
        let base = url.path().trim_end_matches("/chat/completions").to_string();
        url.set_path(&format!("{base}/models"));
        let mut headers = self.headers.clone();
        headers.remove(CONTENT_TYPE);
        let request = self
            .http
            .get(url)
            .headers(headers)
            .timeout(MODELS_TIMEOUT.min(self.endpoint.request_timeout))
            .send();
        let response = tokio::select! {
            r = request => r.map_err(|e| self.redacted(&e.without_url().to_string()))?,
            _ = self.cancel.cancelled() => return Err("interrupted".into()),
        };
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        let body = match read_capped(response, MAX_REPLY_BYTES).await {
            Ok(Capped::Whole(b)) => b,
            Ok(Capped::Cut(_)) => return Err(format!("a list over {MAX_REPLY_BYTES} bytes")),
            Err(e) => return Err(self.redacted(&e.without_url().to_string())),
        };
        let list: serde_json::Value =
            serde_json::from_str(&body).map_err(|_| "not a JSON list of models".to_string())?;
        identity::describe(&list, &self.endpoint.model).ok_or_else(|| {
            format!(
                "{} is not listed, and the list is not of one model",
                self.endpoint.model
            )
        })
    }

    /// What keys and fingerprints mix in for the model that answers: `None` for the first
    /// model an output folder saw under the configured name (or before [`Self::identify`]).
    pub fn identity(&self) -> Option<&str> {
        self.identity.mix.as_deref()
    }

    /// Batch mode: a call the cache cannot answer is handed to `deferral` (and fails with
    /// [`LlmError::Deferred`]) instead of being sent, unless `deferral` says to send it.
    pub fn with_deferral(mut self, deferral: Arc<dyn Deferral>) -> ChatClient {
        self.deferral = Some(deferral);
        self
    }

    /// What has been learned about this endpoint and model so far.
    pub fn learned(&self) -> super::quirks::Learned {
        self.quirks.get()
    }

    /// The context window to plan for: the configured one, or the server's, if it said it is
    /// smaller.
    pub fn context_window(&self) -> usize {
        let configured = self.endpoint.context_window;
        self.quirks
            .get()
            .context_window
            .map_or(configured, |w| w.min(configured))
    }

    /// The most prompt tokens (the server's count) a call may carry: a server that cut a longer
    /// prompt silently keeps no more than this.
    pub fn max_prompt_tokens(&self) -> Option<usize> {
        self.quirks.get().max_prompt_tokens
    }

    /// Reply tokens added to every budget for hidden reasoning: none unless the model reasons
    /// (known by name, asked to by `reasoning_effort`, or seen reporting reasoning tokens).
    pub fn reasoning_room(&self) -> u32 {
        let learned = self.quirks.get();
        let effort = self.endpoint.reasoning_effort.as_deref();
        let asked = effort.is_some() && !learned.no_reasoning_effort;
        if asked || learned.reasons || is_reasoning_model(&self.endpoint.model) {
            reasoning_room(effort)
        } else {
            0
        }
    }

    /// The reply budget a request of `purpose` covering `units` units would be sent with now,
    /// when the caller allows at most `ceiling` (see [`super::sizing`]).
    /// `prompt_tokens`: the prompt's size, which sizes the budget before any reply of its kind
    /// has been seen (0 when not known yet: the least a reply of this kind needs).
    pub fn reply_budget(
        &self,
        purpose: super::Purpose,
        units: u32,
        prompt_tokens: usize,
        ceiling: u32,
    ) -> u32 {
        self.sizes.budget(purpose, units, prompt_tokens, ceiling, 0)
    }

    /// The most tokens a reply in `format` can take when the server enforces its bounded schema
    /// as a grammar (`json_object` with a schema); 0 when nothing bounds it.
    fn grammar_bound(&self, format: &ReplyFormat) -> u32 {
        match format {
            ReplyFormat::Json { bounded, .. }
                if self.mode.load(Ordering::Relaxed) == MODE_JSON_OBJECT_SCHEMA =>
            {
                super::sizing::grammar_bound(bounded)
            }
            _ => 0,
        }
    }

    /// The most tokens (prompt and reply reservation, the provider's count) one request may
    /// carry: the tokens-per-minute limit in force. OpenAI refuses a request larger than its
    /// per-minute budget outright, since no amount of waiting would admit it.
    pub fn request_token_budget(&self) -> usize {
        self.limiter.current().tokens_per_minute as usize
    }

    /// Counters of this client's calls.
    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    /// The shared rate limiter.
    /// The counters, shared (for progress displays).
    pub fn stats_handle(&self) -> Arc<ClientStats> {
        self.stats.clone()
    }

    /// The shared rate limiter, for progress displays that outlive a borrow of the client.
    pub fn limiter_handle(&self) -> Arc<Limiter> {
        self.limiter.clone()
    }

    /// The shared rate limiter.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// What the server's token counts are, relative to ours, as learnt so far.
    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// The endpoint settings.
    pub fn endpoint(&self) -> &EndpointSettings {
        &self.endpoint
    }

    /// The tokenizer used for estimates.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The structured-output mode in use now (after any step down).
    pub fn structured_output_mode(&self) -> &'static str {
        mode_name(self.mode.load(Ordering::Relaxed))
    }

    /// Tokens the prompt of `messages` will take, as the server will count them (estimated).
    pub fn prompt_tokens(&self, messages: &[Message]) -> usize {
        let counted = self
            .tokenizer
            .count_messages(messages.iter().map(|m| m.content.as_str()));
        self.calibration.server_tokens(counted)
    }

    /// Drops the cached reply to `request`, if any: the caller found it unusable (not a valid
    /// brief), and a later run must ask the model again rather than fail the same way for free.
    pub async fn forget(&self, request: &ChatRequest) {
        if let Some(cache) = &self.cache {
            let messages = self.wire_messages(&request.messages);
            cache
                .forget(&cache_key(
                    &self.endpoint,
                    self.identity(),
                    &messages,
                    request,
                ))
                .await;
        }
    }

    /// Sends one request, with everything that entails (see the module docs).
    pub async fn chat(&self, request: ChatRequest) -> Result<ChatReply, LlmError> {
        let _pending = Pending::new(&self.activity.pending);
        if let Some(e) = self.fatal.get() {
            return Err(e.clone());
        }
        if !self.probed.load(Ordering::Acquire) {
            let _probe = tokio::select! {
                guard = self.probe.lock() => guard,
                _ = self.cancel.cancelled() => return Err(LlmError::Cancelled),
            };
            if !self.probed.load(Ordering::Acquire) {
                if let Some(e) = self.fatal.get() {
                    return Err(e.clone());
                }
                let result = self.chat_once(request).await;
                match &result {
                    Err(e) if e.is_fatal() => {
                        let _ = self.fatal.set(e.clone());
                    }
                    // A cache hit, a cancelled or a deferred call proved nothing about the
                    // endpoint.
                    Err(LlmError::Cancelled | LlmError::Deferred) => {}
                    Ok(reply) if reply.cached => {}
                    _ => self.probed.store(true, Ordering::Release),
                }
                return result;
            }
        }
        let result = self.chat_once(request).await;
        if let Err(e) = &result
            && e.is_fatal()
        {
            let _ = self.fatal.set(e.clone());
        }
        result
    }

    async fn chat_once(&self, request: ChatRequest) -> Result<ChatReply, LlmError> {
        if let Some(e) = self.fatal.get() {
            return Err(e.clone());
        }
        let messages = self.wire_messages(&request.messages);
        let key = cache_key(&self.endpoint, self.identity(), &messages, &request);
        if let Some(outcome) = self.deferral.as_ref().and_then(|d| d.collected(&key)) {
            return outcome;
        }
        if let Some(cache) = &self.cache
            && let Some(mut reply) = cache.get(&key).await
        {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            reply.cached = true;
            tracing::debug!(purpose = %request.purpose, "call answered from the cache");
            return Ok(reply);
        }
        let counted_messages = request.counted.unwrap_or_else(|| {
            self.tokenizer
                .count_messages(messages.iter().map(|m| m.content.as_str()))
        });
        if let Some(deferral) = &self.deferral
            && let Some(outcome) = self.defer(
                deferral.as_ref(),
                key.clone(),
                &messages,
                &request,
                counted_messages
                    + self
                        .format_tokens(&request.format, self.mode.load(Ordering::Relaxed))
                        .0,
            )
        {
            return outcome;
        }
        let mut call = Call {
            max_tokens: self.sizes.budget(
                request.purpose,
                request.units,
                counted_messages,
                request.max_tokens,
                self.grammar_bound(&request.format),
            ),
            ceiling: request.max_tokens,
            cuts: 0,
            grew: false,
            attempt: 0,
            connect_failures: 0,
            last_cause: String::new(),
            relearned: 0,
            loading_since: None,
            loading_waits: 0,
            last_error: String::new(),
        };
        loop {
            if self.cancel.is_cancelled() {
                return Err(LlmError::Cancelled);
            }
            let mode = self.mode.load(Ordering::Relaxed);
            let (instructions, schema) = self.format_tokens(&request.format, mode);
            // What the model's context holds: the messages and the instructions appended. A
            // json_schema schema is not in it on a grammar server (llama.cpp, vLLM turn it into
            // a grammar); OpenAI bills it as prompt tokens, so the limiter reserves it until the
            // replies show the server does not count it (`schema_billed`).
            let counted = counted_messages + instructions;
            let window = self.context_window();
            let prompt_estimate = self.calibration.server_tokens(counted);
            let billed = prompt_estimate
                + if self.schema_billed.load(Ordering::Relaxed) == SCHEMA_NOT_BILLED {
                    0
                } else {
                    schema
                };
            if let Some(max_prompt) = self.max_prompt_tokens()
                && prompt_estimate > max_prompt
            {
                return Err(LlmError::ContextLength {
                    message: format!(
                        "about {prompt_estimate} prompt tokens; this server cut a longer prompt to \
                         {max_prompt} tokens before, so the input is split to fit"
                    ),
                });
            }
            if prompt_estimate + 16 > window {
                return Err(LlmError::ContextLength {
                    message: format!(
                        "about {prompt_estimate} prompt tokens for a {window}-token window"
                    ),
                });
            }
            // Never ask for more reply than the window leaves; a reasoning model gets room to
            // think on top of the reply itself. A prompt that leaves less than half of the reply
            // wanted is as good as too long (the reply would be cut): the caller splits it.
            let room = (window - prompt_estimate) as u32;
            let reasoning = self.reasoning_room();
            let wanted = call.max_tokens.saturating_add(reasoning);
            if room < (wanted / 2).max(64).min(wanted) {
                return Err(LlmError::ContextLength {
                    message: format!(
                        "about {prompt_estimate} prompt tokens leave only {room} of the {wanted} \
                         reply tokens wanted in a {window}-token window"
                    ),
                });
            }
            let budget = wanted.min(room);
            let body = self.body(&messages, &request.format, budget, mode);

            let _permit = tokio::select! {
                p = self.in_flight.acquire() => p.expect("the semaphore is never closed"),
                _ = self.cancel.cancelled() => return Err(LlmError::Cancelled),
            };
            let reserve = (billed as u64 + budget as u64).min(u32::MAX as u64) as u32;
            if self.limiter.acquire(reserve, &self.cancel).await.is_err() {
                return Err(LlmError::Cancelled);
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
            let sent = Instant::now();
            let ahead = self
                .activity
                .on_wire
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len();
            // A call not back long after calls like it come back is hung: cut it and retry,
            // rather than hold the article for the whole request_timeout.
            let deadlines = self
                .latency
                .deadlines(prompt_estimate, budget, ahead, call.cuts)
                .filter(|d| d.soft < self.endpoint.request_timeout);
            let outcome = {
                let id = self.activity.id();
                let _on_wire = Entry::insert(&self.activity.on_wire, id, sent);
                self.activity.moved();
                let timed = async {
                    match deadlines {
                        None => self.send(&body).await,
                        Some(d) => {
                            let d = Deadlines {
                                hard: d.hard.min(self.endpoint.request_timeout),
                                ..d
                            };
                            let send = self.send(&body);
                            tokio::pin!(send);
                            let mut check = d.soft;
                            loop {
                                tokio::select! {
                                    outcome = &mut send => break outcome,
                                    _ = tokio::time::sleep_until(sent + check) => {
                                        let waited = sent.elapsed();
                                        let overtaken = self.activity.answered_after(id);
                                        if waited >= d.hard || overtaken >= OVERTAKEN {
                                            call.cuts += 1;
                                            self.stats.hangs_cut.fetch_add(1, Ordering::Relaxed);
                                            let expected = self
                                                .latency
                                                .expected(prompt_estimate, budget, ahead)
                                                .unwrap_or_default();
                                            let evidence = if overtaken >= OVERTAKEN {
                                                format!(
                                                    ", and the server has answered {overtaken} \
                                                     requests sent after it"
                                                )
                                            } else {
                                                String::new()
                                            };
                                            break Outcome::Transport {
                                                message: format!(
                                                    "no reply after {:.1} s, where a call of this \
                                                     size takes about {expected:.1} s here{evidence}: \
                                                     taken for hung and cut",
                                                    waited.as_secs_f64()
                                                ),
                                                connect: None,
                                            };
                                        }
                                        check = (waited + Duration::from_millis(250)).min(d.hard);
                                    }
                                }
                            }
                        }
                    }
                };
                let outcome = tokio::select! {
                    outcome = timed => Some(outcome),
                    _ = self.abort.cancelled() => None,
                };
                if matches!(
                    outcome,
                    Some(Outcome::Reply { .. } | Outcome::Status { .. })
                ) {
                    self.activity.answered(id);
                }
                self.activity.moved();
                outcome
            };
            self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
            drop(_permit);
            // Dropped on the wire: the grace after a signal is over.
            let Some(outcome) = outcome else {
                return Err(LlmError::Cancelled);
            };
            if let Outcome::Reply {
                parsed: Ok(ParsedReply::Reply { content, usage, .. }),
                ..
            } = &outcome
            {
                let reply_tokens = usage.map_or_else(
                    || self.tokenizer.count(content) as u64,
                    |u| u.completion_tokens,
                );
                self.latency
                    .observe(sent.elapsed(), prompt_estimate, reply_tokens, ahead);
            }

            let next = match outcome {
                Outcome::Reply { headers, parsed } => {
                    self.limiter.on_success(&headers, reserve);
                    match parsed {
                        Ok(ParsedReply::Reply {
                            content,
                            finish_reason,
                            usage,
                        }) => {
                            match self.on_reply(
                                &request,
                                &mut call,
                                Sent {
                                    counted,
                                    schema,
                                    prompt_estimate,
                                    budget,
                                    room,
                                },
                                content,
                                finish_reason,
                                usage,
                            ) {
                                Ok(reply) => {
                                    tracing::debug!(
                                        purpose = %request.purpose,
                                        prompt_tokens = reply.usage.prompt_tokens,
                                        completion_tokens = reply.usage.completion_tokens,
                                        finish = ?reply.finish_reason,
                                        ms = sent.elapsed().as_millis() as u64,
                                        "call"
                                    );
                                    if let Some(cache) = &self.cache {
                                        cache.put(&key, &request.purpose.to_string(), &reply).await;
                                    }
                                    return Ok(reply);
                                }
                                Err(next) => next,
                            }
                        }
                        Ok(ParsedReply::Refusal(text)) => {
                            Next::Fail(LlmError::Refusal(self.redacted(&text)))
                        }
                        Ok(ParsedReply::Error { status, api }) => {
                            let status = reqwest::StatusCode::from_u16(status)
                                .unwrap_or(reqwest::StatusCode::BAD_GATEWAY);
                            let api = ApiError {
                                message: self.redacted(&api.message),
                                ..api
                            };
                            call.last_error = format!(
                                "HTTP 200 with an error inside ({status}): {}",
                                api.message
                            );
                            self.on_error(
                                &request, &mut call, status, &headers, &api, &body, mode, sent,
                                counted,
                            )
                        }
                        Err(problem) => {
                            call.last_error = self.redacted(&problem);
                            Next::Retry {
                                wait: None,
                                loading: false,
                            }
                        }
                    }
                }
                Outcome::Status {
                    status,
                    headers,
                    body: text,
                } => {
                    let api = parse_error(&text);
                    let api = ApiError {
                        message: self.redacted(&api.message),
                        ..api
                    };
                    call.last_error = format!("{status}: {}", api.message);
                    self.on_error(
                        &request, &mut call, status, &headers, &api, &body, mode, sent, counted,
                    )
                }
                Outcome::Transport {
                    message,
                    connect: Some(cause),
                } if !self.answered.load(Ordering::Acquire) => {
                    // Nothing has ever answered: the same address will not answer a second
                    // later either. Fail now, with the cause in a few words.
                    tracing::debug!(error = %message, "cannot connect; nothing has answered yet");
                    Next::Fail(LlmError::Unreachable {
                        url: self.endpoint.base_url.clone(),
                        cause,
                        attempts: call.attempt + 1,
                    })
                }
                Outcome::Transport { message, connect } => {
                    call.last_error = match connect {
                        Some(cause) => {
                            call.connect_failures += 1;
                            call.last_cause = cause.clone();
                            format!("cannot connect: {cause}")
                        }
                        None => message,
                    };
                    Next::Retry {
                        wait: None,
                        loading: false,
                    }
                }
                Outcome::TooLarge => Next::Fail(LlmError::ReplyTooLarge {
                    limit_mb: MAX_REPLY_BYTES / (1024 * 1024),
                }),
            };

            let (wait, loading) = match next {
                Next::Again => continue,
                Next::Fail(e) => {
                    self.stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
                Next::Retry { wait, loading } => (wait, loading),
            };
            let delay = if loading {
                // A server loading its model answers 503 until it is ready, which can take
                // minutes: wait in steady steps, without spending the retries.
                let since = *call.loading_since.get_or_insert(Instant::now());
                if since.elapsed() > LOADING_PATIENCE {
                    self.stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                    return Err(LlmError::RetriesExhausted {
                        attempts: call.attempt + 1,
                        last: format!(
                            "{} (still loading after {} s)",
                            call.last_error,
                            since.elapsed().as_secs()
                        ),
                    });
                }
                if since.elapsed() < Duration::from_millis(50) {
                    tracing::info!(
                        purpose = %request.purpose,
                        "the model server is still loading its model ({}); waiting for it",
                        crate::text::one_line(&call.last_error, 200)
                    );
                }
                // Steps from the backoff base, doubling up to 10 s between looks.
                let step = self
                    .limits
                    .backoff_base
                    .saturating_mul(1 << call.loading_waits.min(10));
                call.loading_waits += 1;
                wait.unwrap_or(step)
                    .clamp(Duration::from_millis(250), Duration::from_secs(10))
            } else {
                call.attempt += 1;
                if call.attempt > self.limits.max_retries {
                    self.stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                    if call.connect_failures == call.attempt {
                        return Err(LlmError::Unreachable {
                            url: self.endpoint.base_url.clone(),
                            cause: call.last_cause,
                            attempts: call.attempt,
                        });
                    }
                    return Err(LlmError::RetriesExhausted {
                        attempts: call.attempt,
                        last: call.last_error,
                    });
                }
                let delay = backoff(
                    call.attempt - 1,
                    self.limits.backoff_base,
                    self.limits.backoff_max,
                );
                // A provider's "come back later" is honoured, up to the backoff cap (a 503
                // saying "in an hour" must not hold a run for an hour; 429s pause through the
                // limiter).
                let delay = wait.map_or(delay, |w| {
                    if w.is_zero() {
                        w
                    } else {
                        w.max(delay)
                            .min(self.limits.backoff_max.max(Duration::from_secs(60)))
                    }
                });
                if wait.is_some_and(|w| w.is_zero()) {
                    // A 429: the limiter's pause holds every worker, and says so itself.
                    tracing::debug!(purpose = %request.purpose, error = %call.last_error, "rate limited; retrying after the pause");
                } else {
                    tracing::info!(
                        "retrying a {} call in {:.1} s (retry {} of {}): {}",
                        request.purpose,
                        delay.as_secs_f64(),
                        call.attempt,
                        self.limits.max_retries,
                        crate::text::one_line(&call.last_error, 300)
                    );
                }
                delay
            };
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            let _backoff = Entry::insert(
                &self.activity.backoffs,
                self.activity.id(),
                (
                    Instant::now() + delay,
                    crate::text::one_line(&call.last_error, 200),
                ),
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.cancel.cancelled() => return Err(LlmError::Cancelled),
            }
        }
    }

    /// A reply came back: accept it, or say what to do instead.
    #[allow(clippy::too_many_arguments)]
    fn on_reply(
        &self,
        request: &ChatRequest,
        call: &mut Call,
        sent: Sent,
        content: String,
        finish_reason: FinishReason,
        usage: Option<Usage>,
    ) -> Result<ChatReply, Next> {
        let reported = usage.is_some();
        let usage = usage.unwrap_or_else(|| Usage {
            prompt_tokens: sent.prompt_estimate as u64,
            completion_tokens: self.tokenizer.count(&content) as u64,
            reasoning_tokens: 0,
        });
        self.stats
            .prompt_tokens
            .fetch_add(usage.prompt_tokens, Ordering::Relaxed);
        self.stats
            .completion_tokens
            .fetch_add(usage.completion_tokens, Ordering::Relaxed);
        if usage.reasoning_tokens > 0 && self.quirks.learn("reasoning", "seen") {
            tracing::info!(
                "{} spends hidden reasoning tokens ({} in this reply); its reply budgets get room \
                 for them from now on",
                self.endpoint.model,
                usage.reasoning_tokens
            );
        }
        if reported {
            // What the context held (a schema turned into a grammar is not in it).
            let expected = sent.prompt_estimate;
            if expected >= CUT_MIN_TOKENS
                && (usage.prompt_tokens as f64) < expected as f64 * CUT_RATIO
            {
                // The server dropped part of the prompt without saying so (Ollama past its
                // num_ctx): the reply is about a text we did not send. Prompts must stay under
                // what it kept.
                let kept = usage.prompt_tokens as usize;
                self.quirks.learn("max_prompt_tokens", &kept.to_string());
                tracing::warn!(
                    "the server read only {kept} of about {expected} prompt tokens: it cuts \
                     prompts past its context without an error (Ollama: num_ctx); the reply is \
                     discarded and the input split to fit"
                );
                return Err(Next::Fail(LlmError::ContextLength {
                    message: format!(
                        "the server silently kept {kept} of about {expected} prompt tokens"
                    ),
                }));
            }
            let mut counted = sent.counted;
            if sent.schema > 0 {
                // Does this server count the schema as prompt tokens (OpenAI does)? A reply whose
                // prompt is larger than the messages by more than half the schema says yes.
                let billed = usage.prompt_tokens as f64
                    >= sent.prompt_estimate as f64 + sent.schema as f64 / 2.0;
                self.schema_billed.store(
                    if billed {
                        SCHEMA_BILLED
                    } else {
                        SCHEMA_NOT_BILLED
                    },
                    Ordering::Relaxed,
                );
                if billed {
                    counted += sent.schema;
                }
            }
            self.calibration.observe(counted, usage.prompt_tokens);
        }
        if finish_reason == FinishReason::ContentFilter {
            return Err(Next::Fail(LlmError::ContentFiltered {
                filter: "finish_reason: content_filter".into(),
                message: "the reply was withheld".into(),
            }));
        }
        // A reply cut while repeating itself gets no more room, sized or not: it would only
        // repeat itself for longer (small local models do this).
        let looping = finish_reason == FinishReason::Length && is_looping(&content);
        if looping {
            tracing::info!(purpose = %request.purpose, max_tokens = sent.budget, "reply cut off at the token limit while repeating itself; not retrying it with more room");
        }
        if finish_reason == FinishReason::Length && call.max_tokens < call.ceiling && !looping {
            // The budget was sized to the replies seen so far and this one is longer: ask again
            // with all the caller allows (within the window), which is what the caller would have
            // sent without sizing. Its size then raises the sizes for later calls.
            let reasoning = self.reasoning_room();
            let whole = call.ceiling.saturating_add(reasoning).min(sent.room);
            if whole > sent.budget && call.attempt < self.limits.max_retries {
                if content.trim().is_empty() {
                    tracing::info!(purpose = %request.purpose, from = sent.budget, to = whole, reasoning_tokens = usage.reasoning_tokens, "empty reply cut off at the token limit (hidden reasoning used it up); asking again with the whole budget");
                } else {
                    tracing::debug!(purpose = %request.purpose, from = sent.budget, to = whole, "reply longer than the sized budget; asking again with the whole budget");
                }
                call.max_tokens = whole.saturating_sub(reasoning).max(1);
                call.attempt += 1;
                // An empty reply (hidden reasoning used the budget up) gets this one more room
                // only: the whole budget already holds the reasoning room it was short of.
                call.grew |= content.trim().is_empty();
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                self.stats.resized.fetch_add(1, Ordering::Relaxed);
                return Err(Next::Again);
            }
        }
        if finish_reason == FinishReason::Length {
            let empty = content.trim().is_empty();
            // A cut-off reply is never taken for a whole one: ask once more with twice the room
            // (within the window); a caller that can use a partial reply then gets it, others
            // get an error. An empty one (a reasoning model that thought until the limit) is
            // never useful.
            let grown = sent.budget.saturating_mul(2).min(sent.room);
            let may_grow = grown > sent.budget
                && call.attempt < self.limits.max_retries
                && !call.grew
                && !looping;
            if may_grow {
                call.grew = true;
                if empty {
                    tracing::info!(purpose = %request.purpose, from = sent.budget, to = grown, reasoning_tokens = usage.reasoning_tokens, "empty reply cut off at the token limit (hidden reasoning used it up); retrying with more room");
                } else {
                    tracing::info!(purpose = %request.purpose, from = sent.budget, to = grown, "reply cut off at the token limit; retrying with more room");
                }
                // The grown budget already holds the reasoning room, which the next attempt
                // adds again: take it out here.
                call.max_tokens = grown.saturating_sub(self.reasoning_room()).max(1);
                call.attempt += 1;
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                return Err(Next::Again);
            }
            if empty {
                return Err(Next::Fail(LlmError::EmptyAtLimit {
                    max_tokens: sent.budget,
                    reasoning_tokens: usage.reasoning_tokens,
                }));
            }
            if !request.partial_ok {
                return Err(Next::Fail(if looping {
                    LlmError::Looping {
                        max_tokens: sent.budget,
                    }
                } else {
                    LlmError::Truncated {
                        max_tokens: sent.budget,
                    }
                }));
            }
        }
        if finish_reason == FinishReason::Stop {
            let visible = usage
                .completion_tokens
                .saturating_sub(usage.reasoning_tokens);
            self.sizes
                .observe(request.purpose, request.units, visible, &self.quirks);
        }
        Ok(ChatReply {
            content,
            finish_reason,
            usage,
            usage_reported: reported,
            cached: false,
            batch: false,
        })
    }

    /// An error came back (an error status, or an error inside a 200): what to do next.
    #[allow(clippy::too_many_arguments)]
    fn on_error(
        &self,
        request: &ChatRequest,
        call: &mut Call,
        status: reqwest::StatusCode,
        headers: &HeaderMap,
        api: &ApiError,
        body: &serde_json::Value,
        mode: u8,
        sent: Instant,
        counted: usize,
    ) -> Next {
        match classify(
            status,
            headers,
            api,
            body,
            &self.endpoint.model,
            &self.endpoint.api_key_env,
        ) {
            Verdict::RateLimited { after } => {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                self.limiter
                    .on_rate_limited(after, stated_limit(&api.message), sent);
                // The limiter's pause holds every worker, this one included.
                Next::Retry {
                    wait: Some(Duration::ZERO),
                    loading: false,
                }
            }
            Verdict::Retry { after, loading, .. } => Next::Retry {
                wait: after,
                loading,
            },
            Verdict::Context {
                message,
                window,
                prompt,
            } => self.on_context_error(call, message, window, prompt, counted),
            Verdict::ParamRefused { param, message } => {
                // Each parameter is learned once; a server that keeps refusing after that
                // refuses something we do not understand.
                call.relearned += 1;
                if call.relearned > 4 {
                    return Next::Fail(LlmError::BadRequest {
                        status: status.as_u16(),
                        message,
                    });
                }
                let (key, value, doing) = match param {
                    Param::Temperature => ("drop:temperature", "1", "sending no temperature"),
                    Param::ReasoningEffort => {
                        ("drop:reasoning_effort", "1", "sending no reasoning_effort")
                    }
                    Param::MaxTokens => (
                        "max_tokens_field",
                        MaxTokensField::MaxCompletionTokens.as_str(),
                        "sending the reply budget as max_completion_tokens",
                    ),
                    Param::MaxCompletionTokens => (
                        "max_tokens_field",
                        MaxTokensField::MaxTokens.as_str(),
                        "sending the reply budget as max_tokens",
                    ),
                };
                if self.quirks.learn(key, value) {
                    tracing::info!(
                        "{} at {} refuses `{}` ({}); {doing} from now on (remembered for this \
                         endpoint and model)",
                        self.endpoint.model,
                        self.endpoint.base_url,
                        param.field(),
                        crate::text::one_line(&message, 200)
                    );
                }
                Next::Again
            }
            Verdict::FormatRefused { message } => {
                if self.endpoint.structured_output == StructuredOutput::Auto
                    && matches!(request.format, ReplyFormat::Json { .. })
                    && mode < MODE_PLAIN
                {
                    // Step down once for everyone; a racing worker may have already.
                    if self
                        .mode
                        .compare_exchange(mode, mode + 1, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                    {
                        self.quirks.learn("structured_output", mode_name(mode + 1));
                        self.stats.format_downgrades.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(from = mode_name(mode), to = mode_name(mode + 1), %message, "the endpoint refused the structured-output mode; stepping down");
                    }
                    return Next::Again;
                }
                Next::Fail(LlmError::BadRequest {
                    status: status.as_u16(),
                    message,
                })
            }
            Verdict::Fail(e) => Next::Fail(e),
        }
    }

    /// The server says the prompt does not fit. It often says how big its context is and how
    /// big the prompt was (in its tokens): both are learned. If the prompt fits and only the
    /// reply budget did not (vLLM's "'max_tokens' … is too large"), the call is sent again with
    /// what the window leaves, provided that is at least half of what was wanted; otherwise the
    /// caller splits its input.
    fn on_context_error(
        &self,
        call: &mut Call,
        message: String,
        window: Option<usize>,
        prompt: Option<usize>,
        counted: usize,
    ) -> Next {
        if let Some(w) = window
            && w < self.context_window()
            && self.quirks.learn("context_window", &w.to_string())
        {
            tracing::info!(
                "the server's context is {w} tokens, less than the {} configured \
                 (endpoint.context_window); planning for {w} from now on (remembered)",
                self.endpoint.context_window
            );
        }
        if let Some(p) = prompt {
            self.calibration.observe(counted, p as u64);
        }
        if let (Some(_), Some(_)) = (window, prompt) {
            let wanted = call.max_tokens.saturating_add(self.reasoning_room());
            let estimate = self.calibration.server_tokens(counted);
            let left = self.context_window().saturating_sub(estimate + 16) as u32;
            if left >= (wanted / 2).max(64) && call.relearned < 4 {
                call.relearned += 1;
                tracing::info!(
                    "the prompt fits the server's context but the reply budget did not; sending \
                     again with {left} reply tokens"
                );
                return Next::Again;
            }
        }
        Next::Fail(LlmError::ContextLength { message })
    }

    /// Batch mode: hands the request, with the body it would be sent with now, to `deferral`.
    /// `None`: send it after all. The budget is worked out as for an ordinary call.
    fn defer(
        &self,
        deferral: &dyn Deferral,
        key: String,
        messages: &[Message],
        request: &ChatRequest,
        counted: usize,
    ) -> Option<Result<ChatReply, LlmError>> {
        let window = self.context_window();
        let prompt_estimate = self.calibration.server_tokens(counted);
        if prompt_estimate + 16 > window {
            return Some(Err(LlmError::ContextLength {
                message: format!(
                    "about {prompt_estimate} prompt tokens for a {window}-token window"
                ),
            }));
        }
        let room = (window - prompt_estimate) as u32;
        let wanted = request.max_tokens.saturating_add(self.reasoning_room());
        if room < (wanted / 2).max(64).min(wanted) {
            return Some(Err(LlmError::ContextLength {
                message: format!(
                    "about {prompt_estimate} prompt tokens leave only {room} of the {wanted} \
                     reply tokens wanted in a {window}-token window"
                ),
            }));
        }
        let budget = wanted.min(room);
        let mode = self.mode.load(Ordering::Relaxed);
        let body = self.body(messages, &request.format, budget, mode);
        let deferred = deferral.defer(DeferredRequest {
            key,
            purpose: request.purpose,
            body,
            prompt_tokens: prompt_estimate as u64,
            budget,
            room,
            partial_ok: request.partial_ok,
        });
        deferred.then_some(Err(LlmError::Deferred))
    }

    /// The messages as sent: with the system prompt folded into the first user message when
    /// the endpoint's chat template would drop it.
    fn wire_messages(&self, messages: &[Message]) -> Vec<Message> {
        if !self.endpoint.merge_system_prompt {
            return messages.to_vec();
        }
        let system: Vec<&str> = messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        let mut out: Vec<Message> = messages
            .iter()
            .filter(|m| m.role != Role::System)
            .cloned()
            .collect();
        if let Some(first) = out.iter_mut().find(|m| m.role == Role::User)
            && !system.is_empty()
        {
            first.content = format!("{}\n\n{}", system.join("\n\n"), first.content);
        }
        out
    }

    /// Prompt tokens a request's format adds in `mode`, beyond its messages: the instructions
    /// appended, and (second) under json_schema the schema itself, which OpenAI bills as prompt
    /// tokens. Counted once per format and mode.
    fn format_tokens(&self, format: &ReplyFormat, mode: u8) -> FormatTokens {
        let ReplyFormat::Json { name, schema, .. } = format else {
            return (0, 0);
        };
        let key = (*name, mode);
        if let Some(n) = self
            .format_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return *n;
        }
        let instructions =
            instructions_for(format, mode).map_or(0, |t| self.tokenizer.count(t) + 1);
        let schema = if mode == MODE_JSON_SCHEMA {
            self.tokenizer.count(&schema.to_string())
        } else {
            0
        };
        self.format_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (instructions, schema));
        (instructions, schema)
    }

    fn body(
        &self,
        messages: &[Message],
        format: &ReplyFormat,
        max_tokens: u32,
        mode: u8,
    ) -> serde_json::Value {
        let learned = self.quirks.get();
        let field = learned
            .max_tokens_field
            .unwrap_or(self.endpoint.max_tokens_field);
        let messages = with_instructions(messages, format, mode);
        let mut body = json!({
            "model": self.endpoint.model,
            "messages": messages,
            field.as_str(): max_tokens,
        });
        if let Some(t) = self.endpoint.temperature
            && !learned.no_temperature
        {
            body["temperature"] = json!(t);
        }
        if let Some(effort) = &self.endpoint.reasoning_effort
            && !learned.no_reasoning_effort
        {
            body["reasoning_effort"] = json!(effort);
        }
        for (name, value) in [
            ("frequency_penalty", self.endpoint.frequency_penalty),
            ("presence_penalty", self.endpoint.presence_penalty),
            ("repeat_penalty", self.endpoint.repeat_penalty),
        ] {
            if let Some(v) = value {
                body[name] = json!(v);
            }
        }
        if let ReplyFormat::Json {
            name,
            schema,
            bounded,
            ..
        } = format
        {
            match mode {
                MODE_JSON_SCHEMA => {
                    body["response_format"] = json!({
                        "type": "json_schema",
                        "json_schema": {"name": name, "strict": true, "schema": schema},
                    });
                }
                MODE_JSON_OBJECT_SCHEMA => {
                    // llama.cpp servers constrain the output to `schema` by grammar.
                    body["response_format"] =
                        json!({"type": "json_object", "schema": compact(bounded)});
                }
                MODE_JSON_OBJECT => {
                    body["response_format"] = json!({"type": "json_object"});
                }
                _ => {}
            }
        }
        body
    }

    async fn send(&self, body: &serde_json::Value) -> Outcome {
        if tracing::enabled!(tracing::Level::TRACE) {
            tracing::trace!("request\n{}", self.describe_request(body));
        }
        let response = self
            .http
            .post(self.url.clone())
            .headers(self.headers.clone())
            .json(body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return self.transport(e),
        };
        self.answered.store(true, Ordering::Release);
        let status = response.status();
        let headers = response.headers().clone();
        // An error's body only gives its message: the first part is enough.
        let cap = if status.is_success() {
            MAX_REPLY_BYTES
        } else {
            MAX_ERROR_BYTES
        };
        let text = match read_capped(response, cap).await {
            Ok(Capped::Whole(t)) => t,
            Ok(Capped::Cut(t)) if !status.is_success() => t,
            Ok(Capped::Cut(_)) => return Outcome::TooLarge,
            Err(e) => return self.transport(e),
        };
        tracing::trace!(%status, "reply\n{}", self.redacted(&text));
        if status.is_success() {
            Outcome::Reply {
                headers,
                parsed: parse_reply(&text),
            }
        } else {
            Outcome::Status {
                status,
                headers,
                body: text,
            }
        }
    }

    /// A request as sent, for `-vv`: the URL, the headers (the key masked, as `config show`
    /// masks it) and the body with every message in full.
    fn describe_request(&self, body: &serde_json::Value) -> String {
        let mut out = format!("POST {}\n", self.url);
        for (name, value) in &self.headers {
            let lower = name.as_str();
            let secret_name = ["auth", "key", "token", "secret", "cookie", "password"]
                .iter()
                .any(|w| lower.contains(w));
            let shown = if value.is_sensitive() {
                let masked = self.key.as_ref().map_or("****".to_string(), ApiKey::masked);
                match self.endpoint.auth {
                    AuthStyle::Bearer if name == AUTHORIZATION => format!("Bearer {masked}"),
                    _ => masked,
                }
            } else if secret_name {
                "****".to_string()
            } else {
                value.to_str().unwrap_or("(not text)").to_string()
            };
            out.push_str(&format!("{name}: {shown}\n"));
        }
        // The parameters as JSON, then each message as the model reads it (real line breaks).
        let mut params = body.clone();
        let messages = params
            .as_object_mut()
            .and_then(|o| o.remove("messages"))
            .unwrap_or_default();
        out.push_str(&serde_json::to_string(&params).unwrap_or_default());
        for m in messages.as_array().into_iter().flatten() {
            let role = m["role"].as_str().unwrap_or("?");
            let content = match &m["content"] {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!("\n--- {role} ---\n{content}"));
        }
        self.redacted(&out)
    }

    fn transport(&self, e: reqwest::Error) -> Outcome {
        let kind = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "connection failed"
        } else if e.is_body() || e.is_decode() {
            "reply body cut short"
        } else {
            "connection error"
        };
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail = format!("{detail}: {s}");
            source = s.source();
        }
        Outcome::Transport {
            message: self.redacted(&format!("{kind} ({detail})")),
            connect: e
                .is_connect()
                .then(|| self.redacted(&connect_cause(&e, self.endpoint.connect_timeout))),
        }
    }

    fn redacted(&self, message: &str) -> String {
        redact(message, self.key.as_ref().map(ApiKey::expose))
    }
}

/// The grammar schema as sent under `json_object+schema`, asking for compact JSON. llama.cpp
/// built with llguidance (the prebuilt `xllamacpp` wheel the quickstart installs is) lets any
/// run of whitespace stand between two JSON tokens unless the schema's top-level `x-guidance`
/// says otherwise (llguidance `docs/json_schema.md`, "Whitespace handling":
/// `whitespace_flexible` defaults to true). Gemma 3 270M then wrote newlines until the token
/// limit inside an otherwise bounded brief: every loop the local eval saw was one. Compact JSON
/// is also fewer tokens to generate. llama.cpp's own converter (`json-schema-to-grammar.cpp`)
/// and llama-cpp-python's ignore the key; their whitespace rule is bounded already.
fn compact(bounded: &serde_json::Value) -> serde_json::Value {
    let mut schema = bounded.clone();
    if let Some(top) = schema.as_object_mut() {
        top.insert("x-guidance".into(), json!({"whitespace_flexible": false}));
    }
    schema
}

/// The format instructions to append for `mode`: the short variant when the endpoint enforces
/// the schema (json_schema, or json_object with a schema for a grammar), the full one otherwise;
/// `None` when there are none.
fn instructions_for(format: &ReplyFormat, mode: u8) -> Option<&str> {
    let ReplyFormat::Json { instructions, .. } = format else {
        return None;
    };
    let text = if mode <= MODE_JSON_OBJECT_SCHEMA {
        &instructions.enforced
    } else {
        &instructions.free
    };
    let text = text.trim();
    (!text.is_empty()).then_some(text)
}

/// `messages` with the format instructions for `mode` appended to the first user message (the
/// one with the article; a repair's follow-up comes later), unless that message already holds
/// either variant (a prompt override that still includes `format.md` itself).
fn with_instructions<'m>(
    messages: &'m [Message],
    format: &ReplyFormat,
    mode: u8,
) -> std::borrow::Cow<'m, [Message]> {
    let Some(text) = instructions_for(format, mode) else {
        return messages.into();
    };
    let Some(i) = messages.iter().position(|m| m.role == Role::User) else {
        return messages.into();
    };
    let holds = |t: &str| !t.trim().is_empty() && messages[i].content.contains(t.trim());
    if let ReplyFormat::Json { instructions, .. } = format
        && (holds(&instructions.enforced) || holds(&instructions.free))
    {
        return messages.into();
    }
    let mut out = messages.to_vec();
    out[i].content = format!("{}\n\n{text}", out[i].content.trim_end());
    out.into()
}

/// Prompt tokens a reply format adds: the instructions appended, and a json_schema schema.
type FormatTokens = (usize, usize);

/// The state of one call across its attempts.
struct Call {
    /// The reply budget asked for (before any room for reasoning): sized to the replies seen,
    /// then grown when a reply is cut.
    max_tokens: u32,
    /// What the caller allows (`ChatRequest::max_tokens`).
    ceiling: u32,
    /// Attempts cut for hung: each doubles the next attempt's deadline.
    cuts: u32,
    /// The budget was already grown once for a reply cut at the limit.
    grew: bool,
    /// Retries spent.
    attempt: u32,
    connect_failures: u32,
    /// Why the last connection could not be made, in a few words.
    last_cause: String,
    /// Immediate re-sends after learning something (a refused parameter, the server's window).
    relearned: u32,
    /// When the server was first seen loading its model, and how often it was waited for.
    loading_since: Option<Instant>,
    loading_waits: u32,
    last_error: String,
}

/// What one attempt sent.
#[derive(Debug, Clone, Copy)]
struct Sent {
    /// The prompt's tokens in the model's context by our count (messages and instructions).
    counted: usize,
    /// Tokens of a json_schema schema sent beside it (0 in other modes), by our count.
    schema: usize,
    /// `counted` as we expect the server to count it.
    prompt_estimate: usize,
    /// The reply budget sent.
    budget: u32,
    /// The most reply the window left.
    room: u32,
}

/// What to do after an attempt that did not give a usable reply.
enum Next {
    /// Send again at once: something was learned that changes the request.
    Again,
    /// Send again after a wait (`Some(ZERO)`: the limiter's pause), `loading` if the server is
    /// loading its model.
    Retry {
        wait: Option<Duration>,
        loading: bool,
    },
    /// The call fails.
    Fail(LlmError),
}

/// How long a run may go without a request sent or a reply received before the watchdog says
/// why: a minute, or `HANBRIEF_STALL_WARNING` (e.g. "5s") for the impatient and for tests.
fn stall_warning() -> Duration {
    std::env::var("HANBRIEF_STALL_WARNING")
        .ok()
        .and_then(|v| humantime::parse_duration(v.trim()).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(STALL_WARNING)
}

/// Says why, at the default log level, whenever calls are pending and nothing has moved (no
/// request sent, no reply received) for `after`; again every `after` while it lasts.
async fn watch_stalls(
    activity: Arc<Activity>,
    limiter: Arc<Limiter>,
    after: Duration,
    stop: CancellationToken,
) {
    let tick = (after / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut warned_at: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.cancelled() => return,
        }
        let now = Instant::now();
        if activity.pending.load(Ordering::Relaxed) == 0 {
            warned_at = None;
            continue;
        }
        let last = {
            let mut last = activity.last_move.lock().unwrap_or_else(|p| p.into_inner());
            *last.get_or_insert(now)
        };
        let quiet_since = warned_at.map_or(last, |w| w.max(last));
        if now - quiet_since < after {
            continue;
        }
        warned_at = Some(now);
        let mut why = Vec::new();
        {
            let wire = activity.on_wire.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(oldest) = wire.values().min() {
                why.push(format!(
                    "{} request(s) sent and waiting for the endpoint's answer, the oldest for {} s (a CPU-only server can take minutes; endpoint.request_timeout cuts a hung one)",
                    wire.len(),
                    (now - *oldest).as_secs()
                ));
            }
        }
        if let Some(wait) = limiter.waiting() {
            why.push(wait);
        }
        {
            let backoffs = activity.backoffs.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((until, error)) = backoffs.values().min_by_key(|(until, _)| *until) {
                why.push(format!(
                    "{} call(s) waiting to retry, the next in {} s, after: {error}",
                    backoffs.len(),
                    until.saturating_duration_since(now).as_secs()
                ));
            }
        }
        if why.is_empty() {
            why.push(format!(
                "{} call(s) queued behind calls in progress",
                activity.pending.load(Ordering::Relaxed)
            ));
        }
        tracing::warn!(
            "nothing has moved for {} s: {}",
            (now - last).as_secs(),
            why.join("; ")
        );
    }
}

enum Outcome {
    Reply {
        headers: HeaderMap,
        parsed: Result<ParsedReply, String>,
    },
    Status {
        status: reqwest::StatusCode,
        headers: HeaderMap,
        body: String,
    },
    Transport {
        message: String,
        /// Why no connection could be made, in a few words; `None` when one was (a timeout or
        /// a reset after it).
        connect: Option<String>,
    },
    /// A success whose body passed [`MAX_REPLY_BYTES`]: not read further, not retried.
    TooLarge,
}

/// Why a connection could not be made, in a few words a user can act on: "connection refused
/// (nothing listens at host:port)", "the host name `x` does not resolve (…)", "no connection
/// within 10 s", or else the innermost error's own words. reqwest's message for these is a
/// chain of five wrappers around one of them.
pub(crate) fn connect_cause(e: &reqwest::Error, connect_timeout: Duration) -> String {
    let url = e.url();
    let host = url.and_then(|u| u.host_str()).unwrap_or("the host");
    let port = url.and_then(|u| u.port_or_known_default());
    let place = port.map_or(host.to_string(), |p| format!("{host}:{p}"));
    let chain: Vec<&(dyn std::error::Error + 'static)> =
        std::iter::successors(std::error::Error::source(e), |s| s.source()).collect();
    // hyper-util wraps a resolver's failure in a `ConnectError` that reads "dns error"
    // (hyper-util, src/client/legacy/connect/http.rs: `ConnectError::dns`).
    if let Some(i) = chain.iter().position(|s| s.to_string() == "dns error") {
        // The innermost cause is the resolver's own words (reqwest puts one more wrapper,
        // "error resolving DNS", in between).
        let why = chain[i + 1..].last().map(|s| s.to_string());
        return match why {
            Some(why) => format!("the host name `{host}` does not resolve (DNS: {why})"),
            None => format!("the host name `{host}` does not resolve (DNS)"),
        };
    }
    for s in &chain {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            match io.kind() {
                ErrorKind::ConnectionRefused => {
                    return format!("connection refused (nothing listens at {place})");
                }
                ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
                    return format!("no route to {place} ({io})");
                }
                ErrorKind::TimedOut => {
                    return format!("no connection to {place} within the time allowed ({io})");
                }
                _ => {}
            }
        }
    }
    if e.is_timeout() {
        return format!(
            "no connection to {place} within {} s (endpoint.connect_timeout)",
            connect_timeout.as_secs()
        );
    }
    match chain.last() {
        Some(inner) => format!("{inner} ({place})"),
        None => format!("{e}"),
    }
}

/// The most of a reply body that is read. A chat completion is far smaller (a 128k-token
/// reply, every character escaped as `\uXXXX`, is under 2 MB); a body past this is not one
/// (a wrong `base_url` serving a file, a broken proxy), and reading it whole could exhaust
/// memory. The call fails, naming the limit, and is not retried.
pub const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;
/// The longest wait for `GET /models` (a run waits for it once, before its first call).
const MODELS_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an error body that is read: its message is cut to one line anyway.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// A body read up to a cap.
enum Capped {
    Whole(String),
    /// The first `cap` bytes (lossily decoded); the rest was not read.
    Cut(String),
}

/// Reads `response`'s body, at most `cap` bytes of it (a larger `Content-Length` is refused
/// before reading anything).
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Capped, reqwest::Error> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Ok(Capped::Cut(String::new()));
    }
    let mut body: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > cap {
            body.extend_from_slice(&chunk[..cap - body.len()]);
            return Ok(Capped::Cut(String::from_utf8_lossy(&body).into_owned()));
        }
        body.extend_from_slice(&chunk);
    }
    // As `Response::text` does for a JSON body: UTF-8, invalid bytes replaced.
    Ok(Capped::Whole(match String::from_utf8(body) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }))
}

/// The cache key of a request: a hash of everything that shapes the answer (model, messages as
/// sent, reply budget, format and schema, temperature), never of the API key. The model is its
/// name plus, when it is not the first model the output folder saw under that name, its
/// `identity` (the endpoint and what the server says about it: [`super::identity`]).
fn cache_key(
    endpoint: &EndpointSettings,
    identity: Option<&str>,
    messages: &[Message],
    request: &ChatRequest,
) -> String {
    let format = match &request.format {
        ReplyFormat::Text => json!("text"),
        ReplyFormat::Json {
            name,
            schema,
            instructions,
            ..
        } => {
            let mut f = json!({"name": name, "schema": schema});
            // Only when set, so that keys of calls without them are unchanged.
            if **instructions != FormatInstructions::default() {
                f["instructions"] = json!([instructions.enforced, instructions.free]);
            }
            f
        }
    };
    let canonical = json!({
        "v": "hanbrief.call/1",
        "model": endpoint.model,
        "messages": messages,
        "max_tokens": request.max_tokens,
        "format": format,
        // Hashed as the f32 it used to be, so that calls cached before the f64 fix still hit.
        "temperature": endpoint.temperature.map(|t| t as f32),
    });
    let mut canonical = canonical;
    // Only when set, so that keys of calls made without it are unchanged.
    if let Some(effort) = &endpoint.reasoning_effort {
        canonical["reasoning_effort"] = json!(effort);
    }
    // Only when set, so that the keys of calls made before these settings existed still match.
    let penalties = [
        endpoint.frequency_penalty,
        endpoint.presence_penalty,
        endpoint.repeat_penalty,
    ];
    if penalties.iter().any(Option::is_some) {
        canonical["penalties"] = json!(penalties);
    }
    // Likewise only for a model other than the folder's first under this name.
    if let Some(identity) = identity {
        canonical["identity"] = json!(identity);
    }
    blake3::hash(canonical.to_string().as_bytes())
        .to_hex()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeMap;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use crate::config::{Overrides, Settings, load};

    fn settings(base_url: &str) -> Settings {
        let mut s = load(
            None,
            &BTreeMap::new(),
            &Overrides {
                base_url: Some(base_url.to_string()),
                model: Some("test-model".into()),
                ..Default::default()
            },
        )
        .expect("the defaults load");
        s.limits.max_retries = 8;
        s.limits.backoff_base = Duration::from_millis(50);
        s.limits.backoff_max = Duration::from_millis(300);
        s.endpoint.connect_timeout = Duration::from_secs(5);
        s
    }

    fn client(s: &Settings) -> ChatClient {
        ChatClient::new(
            &s.endpoint,
            &s.limits,
            Tokenizer::new(s.chunking.encoding),
            None,
            CancellationToken::new(),
        )
        .expect("the client builds")
    }

    /// A port on loopback that nothing listens on (bound, then closed).
    async fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    }

    /// Answers one chat completion on `listener`'s next connection, then closes it.
    async fn answer_once(listener: &TcpListener) {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // The request's headers, then as many body bytes as Content-Length says.
        loop {
            let n = socket.read(&mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if seen.len() >= end + 4 + length {
                    break;
                }
            }
            assert!(n > 0, "the client hung up mid-request");
        }
        let body = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"네"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1}}"#;
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(reply.as_bytes()).await.unwrap();
        socket.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_refused_connection_fails_at_once_when_nothing_has_answered() {
        let port = closed_port().await;
        let client = client(&settings(&format!("http://127.0.0.1:{port}/v1")));
        let e = client.chat(ChatRequest::ping()).await.unwrap_err();
        match &e {
            LlmError::Unreachable {
                cause, attempts, ..
            } => {
                assert_eq!(*attempts, 1, "{e}");
                assert!(cause.starts_with("connection refused"), "{cause}");
                assert!(cause.contains(&format!("127.0.0.1:{port}")), "{cause}");
            }
            other => panic!("not unreachable: {other}"),
        }
        assert_eq!(client.stats().retries.load(Ordering::Relaxed), 0);
        assert!(e.is_fatal());
        // One sentence, without reqwest's chain of wrappers.
        assert!(!e.to_string().contains("error sending request"), "{e}");
    }

    #[tokio::test]
    async fn a_host_name_that_does_not_resolve_is_named() {
        // A resolver that fails, as the system's does for an unknown name: reqwest wraps its
        // error as it wraps getaddrinfo's, and nothing leaves loopback.
        struct NoSuchHost;
        impl reqwest::dns::Resolve for NoSuchHost {
            fn resolve(&self, _: reqwest::dns::Name) -> reqwest::dns::Resolving {
                Box::pin(async {
                    Err::<reqwest::dns::Addrs, _>(
                        std::io::Error::other("Name or service not known").into(),
                    )
                })
            }
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(NoSuchHost))
            .build()
            .unwrap();
        let e = http
            .get("http://no-such-host.example/v1/models")
            .send()
            .await
            .unwrap_err();
        assert!(e.is_connect(), "{e:?}");
        let cause = connect_cause(&e, Duration::from_secs(10));
        assert_eq!(
            cause,
            "the host name `no-such-host.example` does not resolve (DNS: Name or service not \
             known)"
        );
    }

    #[tokio::test]
    async fn a_server_that_answered_and_restarts_is_waited_for() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = client(&settings(&format!("http://{addr}/v1")));
        let first = tokio::spawn(async move {
            answer_once(&listener).await;
            // The server goes away: connections are refused until it is back.
        });
        client
            .chat(ChatRequest::ping())
            .await
            .expect("the first call");
        first.await.unwrap();
        let back = tokio::spawn(async move {
            // Back after a few refused attempts (the backoff starts at 50 ms).
            tokio::time::sleep(Duration::from_millis(400)).await;
            let listener = TcpListener::bind(addr).await.expect("the port again");
            answer_once(&listener).await;
        });
        let reply = client.chat(ChatRequest::ping()).await;
        back.await.unwrap();
        assert_eq!(reply.expect("the call after the restart").content, "네");
        assert!(client.stats().retries.load(Ordering::Relaxed) >= 1);
    }

    #[test]
    fn a_request_is_overtaken_by_later_ones_answered_not_by_earlier_ones() {
        let a = Activity::default();
        let (first, second, third) = (a.id(), a.id(), a.id());
        a.answered(first);
        assert_eq!(a.answered_after(second), 0);
        a.answered(third);
        assert_eq!(a.answered_after(second), 1);
        assert_eq!(a.answered_after(first), 1);
        a.answered(a.id());
        assert_eq!(a.answered_after(second), 2);
    }

    #[test]
    fn format_instructions_follow_the_mode_and_are_never_sent_twice() {
        let format = ReplyFormat::Json {
            name: "brief",
            schema: json!({}),
            bounded: json!({}),
            instructions: Arc::new(crate::llm::FormatInstructions {
                enforced: "Fields: title.".into(),
                free: "Fields: title, as {\"ko\", \"en\"}.".into(),
            }),
        };
        let messages = vec![
            Message::system("sys"),
            Message::user("article"),
            Message::assistant("reply"),
            Message::user("repair"),
        ];
        let sent = with_instructions(&messages, &format, MODE_JSON_SCHEMA);
        assert_eq!(sent[1].content, "article\n\nFields: title.");
        assert_eq!(sent[3].content, "repair", "the first user message only");
        let sent = with_instructions(&messages, &format, MODE_JSON_OBJECT);
        assert_eq!(
            sent[1].content,
            "article\n\nFields: title, as {\"ko\", \"en\"}."
        );
        // A prompt that already holds either variant gets nothing more.
        let own = vec![Message::user(
            "article\n\nFields: title, as {\"ko\", \"en\"}.",
        )];
        assert_eq!(
            with_instructions(&own, &format, MODE_JSON_SCHEMA)[0],
            own[0]
        );
        // Text replies and formats without instructions are left alone.
        assert_eq!(
            with_instructions(&messages, &ReplyFormat::Text, MODE_PLAIN)[1].content,
            "article"
        );
    }

    #[test]
    fn api_keys_never_print() {
        let k = ApiKey::new("sk-test-1234567890abcdef");
        assert_eq!(format!("{k:?}"), "ApiKey(****)");
        assert_eq!(k.masked(), "sk-…ef");
        assert_eq!(ApiKey::new("short").masked(), "****");
    }
}
