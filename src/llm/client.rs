//! The one client every model call goes through.
//!
//! `ChatClient::chat` owns, in order: the cache lookup (a hit costs no call), the budget check
//! against the context window, the in-flight limit, the shared rate limiter, the HTTP call, the
//! classification of what came back (retry, pause everyone, step down the structured-output
//! mode, fail this call, or stop the run), usage accounting and calibration of token estimates,
//! and the cache write. The pipeline's stages only say what they want said.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::retry::{LlmError, Verdict, backoff, classify, redact};
use super::types::{
    ChatReply, ChatRequest, FinishReason, Message, ParsedReply, ReplyFormat, Role, Usage,
    parse_error, parse_reply,
};
use crate::config::{AuthStyle, EndpointSettings, LimitSettings, StructuredOutput};
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

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(****)")
    }
}

/// A store of finished calls, keyed by everything that shapes the answer.
pub trait CallCache: Send + Sync {
    /// The reply stored under `key`, if any.
    fn get(&self, key: &str) -> Option<ChatReply>;
    /// Stores a finished call; `purpose` is for statistics.
    fn put(&self, key: &str, purpose: &str, reply: &ChatReply);
    /// Drops a stored call (its reply turned out unusable: a later run must ask again).
    fn forget(&self, key: &str);
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
        }
    }
}

/// Structured-output modes, richest first. `Auto` walks down this ladder on refusal.
const MODE_JSON_SCHEMA: u8 = 0;
const MODE_JSON_OBJECT_SCHEMA: u8 = 1;
const MODE_JSON_OBJECT: u8 = 2;
const MODE_PLAIN: u8 = 3;

fn mode_name(mode: u8) -> &'static str {
    match mode {
        MODE_JSON_SCHEMA => "json_schema",
        MODE_JSON_OBJECT_SCHEMA => "json_object+schema",
        MODE_JSON_OBJECT => "json_object",
        _ => "plain",
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
    cancel: CancellationToken,
    cache: Option<Arc<dyn CallCache>>,
    stats: Arc<ClientStats>,
    /// Until one call has come back, calls go one at a time: a wrong key, model or URL then
    /// costs one call, not one per worker, and the first reply teaches the limiter and the
    /// structured-output mode before the others start.
    probe: tokio::sync::Mutex<()>,
    probed: std::sync::atomic::AtomicBool,
    /// The first error that stops the run; every later call fails with it without sending.
    fatal: std::sync::OnceLock<LlmError>,
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

impl ChatClient {
    /// A client for `endpoint`, limited by `limits`, stopped from starting new calls by `cancel`.
    pub fn new(
        endpoint: &EndpointSettings,
        limits: &LimitSettings,
        tokenizer: Tokenizer,
        key: Option<ApiKey>,
        cancel: CancellationToken,
    ) -> Result<ChatClient, ClientError> {
        // reqwest is built with rustls but no default crypto provider (CRATES.md P1): install
        // ring once per process. A second install fails harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(endpoint.connect_timeout)
            .timeout(endpoint.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("hanbrief/", env!("CARGO_PKG_VERSION")))
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
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in &endpoint.headers {
            let header_err = |message: String| ClientError::Header {
                name: name.clone(),
                message,
            };
            let n =
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| header_err(e.to_string()))?;
            let v = HeaderValue::from_str(value).map_err(|e| header_err(e.to_string()))?;
            headers.insert(n, v);
        }
        if let Some(key) = &key {
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
        let mode = match endpoint.structured_output {
            StructuredOutput::Auto | StructuredOutput::JsonSchema => MODE_JSON_SCHEMA,
            StructuredOutput::JsonObjectSchema => MODE_JSON_OBJECT_SCHEMA,
            StructuredOutput::JsonObject => MODE_JSON_OBJECT,
            StructuredOutput::None => MODE_PLAIN,
        };
        Ok(ChatClient {
            http,
            url,
            headers,
            endpoint: endpoint.clone(),
            limits: limits.clone(),
            key,
            limiter: Arc::new(Limiter::new(Limits {
                requests_per_minute: limits.requests_per_minute,
                tokens_per_minute: limits.tokens_per_minute,
            })),
            tokenizer,
            calibration: Calibration::default(),
            mode: AtomicU8::new(mode),
            in_flight: Semaphore::new(limits.max_in_flight.max(1)),
            cancel,
            cache: None,
            stats: Arc::new(ClientStats::default()),
            probe: tokio::sync::Mutex::new(()),
            probed: std::sync::atomic::AtomicBool::new(false),
            fatal: std::sync::OnceLock::new(),
        })
    }

    /// Routes every call through `cache`.
    pub fn with_cache(mut self, cache: Arc<dyn CallCache>) -> ChatClient {
        self.cache = Some(cache);
        self
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
    pub fn forget(&self, request: &ChatRequest) {
        if let Some(cache) = &self.cache {
            let messages = self.wire_messages(&request.messages);
            cache.forget(&cache_key(&self.endpoint, &messages, request));
        }
    }

    /// Sends one request, with everything that entails (see the module docs).
    pub async fn chat(&self, request: ChatRequest) -> Result<ChatReply, LlmError> {
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
                    // A cache hit or a cancelled call proved nothing about the endpoint.
                    Err(LlmError::Cancelled) => {}
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
        let key = cache_key(&self.endpoint, &messages, &request);
        if let Some(cache) = &self.cache
            && let Some(mut reply) = cache.get(&key)
        {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            reply.cached = true;
            return Ok(reply);
        }
        let counted = request.counted.unwrap_or_else(|| {
            self.tokenizer
                .count_messages(messages.iter().map(|m| m.content.as_str()))
        });
        let mut max_tokens = request.max_tokens;
        let mut grew = false;
        let mut attempt: u32 = 0;
        let mut last_error: String;
        let mut connect_failures = 0u32;
        loop {
            if self.cancel.is_cancelled() {
                return Err(LlmError::Cancelled);
            }
            let prompt_estimate = self.calibration.server_tokens(counted);
            if prompt_estimate + 16 > self.endpoint.context_window {
                return Err(LlmError::ContextLength {
                    message: format!(
                        "about {prompt_estimate} prompt tokens for a {}-token window",
                        self.endpoint.context_window
                    ),
                });
            }
            // Never ask for more reply than the window leaves.
            let room = (self.endpoint.context_window - prompt_estimate) as u32;
            let budget = max_tokens.min(room);
            let mode = self.mode.load(Ordering::Relaxed);
            let body = self.body(&messages, &request.format, budget, mode);

            let _permit = tokio::select! {
                p = self.in_flight.acquire() => p.expect("the semaphore is never closed"),
                _ = self.cancel.cancelled() => return Err(LlmError::Cancelled),
            };
            let reserve = (prompt_estimate as u64 + budget as u64).min(u32::MAX as u64) as u32;
            if self.limiter.acquire(reserve, &self.cancel).await.is_err() {
                return Err(LlmError::Cancelled);
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
            let sent = tokio::time::Instant::now();
            let outcome = self.send(&body).await;
            self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
            drop(_permit);

            let mut wait = None;
            match outcome {
                Outcome::Reply { headers, parsed } => {
                    self.limiter.on_success(&headers, reserve);
                    match parsed {
                        Ok(ParsedReply::Reply {
                            content,
                            finish_reason,
                            usage,
                        }) => {
                            let reported = usage.is_some();
                            let usage = usage.unwrap_or_else(|| Usage {
                                prompt_tokens: prompt_estimate as u64,
                                completion_tokens: self.tokenizer.count(&content) as u64,
                            });
                            if reported {
                                self.calibration.observe(counted, usage.prompt_tokens);
                            }
                            self.stats
                                .prompt_tokens
                                .fetch_add(usage.prompt_tokens, Ordering::Relaxed);
                            self.stats
                                .completion_tokens
                                .fetch_add(usage.completion_tokens, Ordering::Relaxed);
                            if finish_reason == FinishReason::Length {
                                // A cut-off reply is never taken for a whole one: ask once more
                                // with twice the room (within the window); a caller that can use
                                // a partial reply then gets it, others get an error.
                                let grown = budget.saturating_mul(2).min(room);
                                let may_grow =
                                    grown > budget && attempt < self.limits.max_retries && !grew;
                                if may_grow {
                                    grew = true;
                                    tracing::info!(purpose = %request.purpose, from = budget, to = grown, "reply cut off at the token limit; retrying with more room");
                                    max_tokens = grown;
                                    attempt += 1;
                                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                                    continue;
                                }
                                if !request.partial_ok {
                                    self.stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                                    return Err(LlmError::Truncated { max_tokens: budget });
                                }
                            }
                            let reply = ChatReply {
                                content,
                                finish_reason,
                                usage,
                                usage_reported: reported,
                                cached: false,
                            };
                            if let Some(cache) = &self.cache {
                                cache.put(&key, &request.purpose.to_string(), &reply);
                            }

                            return Ok(reply);
                        }
                        Ok(ParsedReply::Refusal(text)) => {
                            self.stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                            return Err(LlmError::Refusal(self.redacted(&text)));
                        }
                        Err(problem) => {
                            last_error = problem;
                        }
                    }
                }
                Outcome::Status {
                    status,
                    headers,
                    body,
                } => {
                    let api = parse_error(&body);
                    let api = super::types::ApiError {
                        message: self.redacted(&api.message),
                        ..api
                    };
                    match classify(
                        status,
                        &headers,
                        &api,
                        &self.endpoint.model,
                        &self.endpoint.api_key_env,
                    ) {
                        Verdict::RateLimited { after } => {
                            self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                            self.limiter
                                .on_rate_limited(after, stated_limit(&api.message), sent);

                            last_error = format!("429 rate limited: {}", api.message);
                            // The limiter's pause holds every worker, this one included.
                            wait = Some(Duration::ZERO);
                        }
                        Verdict::Retry { after, reason } => {
                            last_error = reason;
                            wait = after;
                        }
                        Verdict::FormatRefused { message } => {
                            if self.endpoint.structured_output == StructuredOutput::Auto
                                && matches!(request.format, ReplyFormat::Json { .. })
                                && mode < MODE_PLAIN
                            {
                                // Step down once for everyone; a racing worker may have already.
                                let _ = self.mode.compare_exchange(
                                    mode,
                                    mode + 1,
                                    Ordering::Relaxed,
                                    Ordering::Relaxed,
                                );
                                self.stats.format_downgrades.fetch_add(1, Ordering::Relaxed);
                                tracing::info!(from = mode_name(mode), to = mode_name(mode + 1), %message, "the endpoint refused the structured-output mode; stepping down");
                                continue;
                            }
                            self.stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                            return Err(LlmError::BadRequest {
                                status: status.as_u16(),
                                message,
                            });
                        }
                        Verdict::Fail(e) => {
                            self.stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                }
                Outcome::Transport { message, connect } => {
                    if connect {
                        connect_failures += 1;
                    }
                    last_error = message;
                }
            }

            attempt += 1;
            if attempt > self.limits.max_retries {
                self.stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                if connect_failures == attempt {
                    return Err(LlmError::Unreachable {
                        url: self.endpoint.base_url.clone(),
                        attempts: attempt,
                        message: last_error,
                    });
                }
                return Err(LlmError::RetriesExhausted {
                    attempts: attempt,
                    last: last_error,
                });
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            let delay = backoff(
                attempt - 1,
                self.limits.backoff_base,
                self.limits.backoff_max,
            );
            // A provider's "come back later" is honoured, up to the backoff cap (a 503 saying
            // "in an hour" must not hold a run for an hour; 429s pause through the limiter).
            let delay = wait.map_or(delay, |w| {
                if w.is_zero() {
                    w
                } else {
                    w.max(delay)
                        .min(self.limits.backoff_max.max(Duration::from_secs(60)))
                }
            });
            tracing::debug!(purpose = %request.purpose, attempt, ?delay, error = %last_error, "retrying");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.cancel.cancelled() => return Err(LlmError::Cancelled),
            }
        }
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

    fn body(
        &self,
        messages: &[Message],
        format: &ReplyFormat,
        max_tokens: u32,
        mode: u8,
    ) -> serde_json::Value {
        let mut body = json!({
            "model": self.endpoint.model,
            "messages": messages,
            self.endpoint.max_tokens_field.as_str(): max_tokens,
        });
        if let Some(t) = self.endpoint.temperature {
            body["temperature"] = json!(t);
        }
        if let ReplyFormat::Json {
            name,
            schema,
            bounded,
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
                    body["response_format"] = json!({"type": "json_object", "schema": bounded});
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
        let status = response.status();
        let headers = response.headers().clone();
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) => return self.transport(e),
        };
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
            connect: e.is_connect(),
        }
    }

    fn redacted(&self, message: &str) -> String {
        redact(message, self.key.as_ref().map(ApiKey::expose))
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
        connect: bool,
    },
}

/// The cache key of a request: a hash of everything that shapes the answer (model, messages as
/// sent, reply budget, format and schema, temperature), never of the key or the URL.
fn cache_key(endpoint: &EndpointSettings, messages: &[Message], request: &ChatRequest) -> String {
    let format = match &request.format {
        ReplyFormat::Text => json!("text"),
        ReplyFormat::Json { name, schema, .. } => json!({"name": name, "schema": schema}),
    };
    let canonical = json!({
        "v": "hanbrief.call/1",
        "model": endpoint.model,
        "messages": messages,
        "max_tokens": request.max_tokens,
        "format": format,
        "temperature": endpoint.temperature,
    });
    blake3::hash(canonical.to_string().as_bytes())
        .to_hex()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_never_print() {
        let k = ApiKey::new("sk-test-1234567890abcdef");
        assert_eq!(format!("{k:?}"), "ApiKey(****)");
        assert_eq!(k.masked(), "sk-…ef");
        assert_eq!(ApiKey::new("short").masked(), "****");
    }
}
