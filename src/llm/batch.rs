//! The provider's Batch API, client side: the files endpoints (upload a JSONL file of requests,
//! download the output and error files) and the batches endpoints (create, retrieve, list,
//! cancel), for OpenAI (`/v1/files`, `/v1/batches`) and Azure OpenAI (`/openai/files`,
//! `/openai/batches` with `api-version`), plus the request and result lines of the JSONL files
//! and [`Deferral`], the hook through which the [`super::ChatClient`] hands a call to a batch
//! instead of sending it.
//!
//! The shapes follow OpenAI's API reference: "Upload file" (`POST /files`, multipart form with
//! `purpose` and `file`), "Create batch" (`POST /batches` with `input_file_id`, `endpoint`,
//! `completion_window` and `metadata`), "Retrieve batch", "List batches" (`after`, `limit`),
//! "Cancel batch", "Retrieve file content" (`GET /files/{id}/content`), and the Batch guide's
//! request input and output line formats (<https://platform.openai.com/docs/guides/batch>).
//! Azure's are the same under `/openai` (<https://learn.microsoft.com/en-us/azure/ai-foundry/openai/how-to/batch>).
//!
//! Errors are classified as for chat calls ([`super::retry::classify`]): rate limits, 5xx and
//! transport failures are retried with backoff; a refused key or quota stops the run.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::client::{ApiKey, ClientError, connect_cause, endpoint_headers, http_builder};
use super::retry::{LlmError, Verdict, backoff, classify, redact};
use super::types::{ApiError, ChatReply, ParsedReply, Purpose, parse_error, parse_reply};
use crate::config::{EndpointSettings, LimitSettings};

/// The only completion window the Batch API offers.
pub const COMPLETION_WINDOW: &str = "24h";

/// What the client does, in batch mode, with a call the cache cannot answer.
pub trait Deferral: Send + Sync {
    /// The outcome a batch brought back for the request with this cache key during this run:
    /// the reply, or the error the request ended in for good. `None`: nothing yet.
    fn collected(&self, key: &str) -> Option<Result<ChatReply, LlmError>>;
    /// Takes the request for the next batch and answers `true` (the call is then deferred), or
    /// answers `false`: send it now (it has failed in batches as often as allowed, or it is too
    /// large for the enqueued-token limit).
    fn defer(&self, request: DeferredRequest) -> bool;
}

/// A request handed to a batch: its cache key (the `custom_id`) and the body exactly as the
/// synchronous call would have sent it.
#[derive(Debug, Clone)]
pub struct DeferredRequest {
    pub key: String,
    pub purpose: Purpose,
    pub body: Value,
    /// The prompt's tokens (estimated as the server counts them): what the enqueued-token
    /// limit counts.
    pub prompt_tokens: u64,
    /// The reply budget in the body, and the most the window allows (for a retry of a reply cut
    /// off at the limit).
    pub budget: u32,
    pub room: u32,
    /// The caller can use a reply cut at the limit (see `ChatRequest::partial_ok`).
    pub partial_ok: bool,
}

/// An uploaded file.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FileObject {
    pub id: String,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub filename: String,
    #[serde(default)]
    pub purpose: String,
}

/// A batch as the provider describes it (fields hanbrief reads; others are ignored).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BatchObject {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub input_file_id: Option<String>,
    #[serde(default)]
    pub output_file_id: Option<String>,
    #[serde(default)]
    pub error_file_id: Option<String>,
    #[serde(default)]
    pub request_counts: Option<RequestCounts>,
    #[serde(default)]
    pub errors: Option<BatchErrors>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub created_at: Option<i64>,
    #[serde(default)]
    pub expires_at: Option<i64>,
}

impl BatchObject {
    /// Whether the batch will not change any more.
    pub fn is_terminal(&self) -> bool {
        is_terminal(&self.status)
    }

    /// The value of a metadata key, if it is a string.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.metadata.as_ref()?.get(key)?.as_str()
    }

    /// The batch's errors (a failed batch says why here), as `(code, message)`.
    pub fn error_list(&self) -> Vec<(String, String)> {
        self.errors
            .as_ref()
            .map(|e| {
                e.data
                    .iter()
                    .map(|d| {
                        (
                            d.code.clone().unwrap_or_default(),
                            d.message.clone().unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Whether a batch status is final: `completed`, `failed`, `expired` or `cancelled`.
pub fn is_terminal(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "expired" | "cancelled")
}

/// `request_counts` of a batch.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct RequestCounts {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub completed: u64,
    #[serde(default)]
    pub failed: u64,
}

/// `errors` of a batch.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct BatchErrors {
    #[serde(default)]
    pub data: Vec<BatchErrorItem>,
}

/// One entry of `errors.data`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct BatchErrorItem {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub line: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct BatchList {
    #[serde(default)]
    data: Vec<BatchObject>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    last_id: Option<String>,
}

/// One line of a request file.
pub fn request_line(custom_id: &str, url: &str, body: &Value) -> String {
    json!({"custom_id": custom_id, "method": "POST", "url": url, "body": body}).to_string()
}

/// What one line of an output or error file says about one request.
#[derive(Debug)]
pub(crate) enum LineOutcome {
    /// A chat-completions reply (HTTP 200), parsed as a synchronous reply is.
    Reply(ParsedReply),
    /// The request failed: its HTTP status (0 when the provider gave none, e.g.
    /// `batch_expired`) and the error.
    Failed { status: u16, error: ApiError },
}

/// Parses one line of an output or error file into its `custom_id` and outcome.
pub(crate) fn parse_line(line: &str) -> Result<(String, LineOutcome), String> {
    let v: Value =
        serde_json::from_str(line).map_err(|e| format!("result line is not JSON ({e})"))?;
    let custom_id = v["custom_id"]
        .as_str()
        .ok_or_else(|| "result line has no custom_id".to_string())?
        .to_string();
    let response = &v["response"];
    if response.is_object() {
        let status = response["status_code"].as_u64().unwrap_or(0) as u16;
        let body = &response["body"];
        let text = match body {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if (200..300).contains(&status) {
            return Ok(match parse_reply(&text) {
                Ok(reply) => (custom_id, LineOutcome::Reply(reply)),
                Err(problem) => (
                    custom_id,
                    LineOutcome::Failed {
                        status: 502,
                        error: ApiError {
                            message: problem,
                            ..Default::default()
                        },
                    },
                ),
            });
        }
        return Ok((
            custom_id,
            LineOutcome::Failed {
                status,
                error: parse_error(&text),
            },
        ));
    }
    let error = &v["error"];
    let error = ApiError {
        message: error["message"]
            .as_str()
            .unwrap_or("the request failed without a reason")
            .to_string(),
        code: error["code"].as_str().map(str::to_string),
        ..Default::default()
    };
    Ok((custom_id, LineOutcome::Failed { status: 0, error }))
}

/// Where the files and batches endpoints are, and how to authenticate.
#[derive(Debug, Clone)]
pub struct BatchEndpoint {
    /// The base URL the files and batches paths go under: `https://api.openai.com/v1`, or
    /// `https://RESOURCE.openai.azure.com/openai`.
    pub base_url: String,
    /// The `url` of each request line and the `endpoint` of the batch: `/v1/chat/completions`
    /// (OpenAI), `/chat/completions` (Azure).
    pub url: String,
}

/// A client of the files and batches endpoints.
pub struct BatchApi {
    http: reqwest::Client,
    base: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    key: Option<ApiKey>,
    model: String,
    key_env: String,
    limits: LimitSettings,
    cancel: CancellationToken,
    connect_timeout: Duration,
    /// Something at `base` has answered (any status): until then a connection that cannot be
    /// made fails at once, as a chat call's does (see `ChatClient`).
    answered: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for BatchApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchApi")
            .field("base", &self.base)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl BatchApi {
    /// A client for the batch endpoints at `base_url`, authenticating as `endpoint` says (the
    /// same key, headers and query as chat calls), retrying as `limits` say.
    pub fn new(
        endpoint: &EndpointSettings,
        base_url: &str,
        limits: &LimitSettings,
        key: Option<ApiKey>,
        cancel: CancellationToken,
    ) -> Result<BatchApi, ClientError> {
        let http = http_builder(endpoint)
            .build()
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let headers = endpoint_headers(endpoint, key.as_ref())?;
        Ok(BatchApi {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            query: endpoint.query.clone(),
            headers,
            key,
            model: endpoint.model.clone(),
            key_env: endpoint.api_key_env.clone(),
            limits: limits.clone(),
            cancel,
            connect_timeout: endpoint.connect_timeout,
            answered: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The base URL of the files and batches endpoints.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str, extra: &[(&str, String)]) -> reqwest::Url {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .unwrap_or_else(|_| reqwest::Url::parse("http://invalid.invalid/").expect("valid"));
        if !self.query.is_empty() || !extra.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &self.query {
                pairs.append_pair(k, v);
            }
            for (k, v) in extra {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    /// Uploads a request file (`POST /files`, multipart: `purpose=batch` and the file).
    pub async fn upload(&self, filename: &str, jsonl: &[u8]) -> Result<FileObject, LlmError> {
        let (content_type, body) = multipart(filename, jsonl);
        let url = self.url("/files", &[]);
        self.json("upload the request file", || {
            self.request(Method::POST, &url)
                .header(CONTENT_TYPE, content_type.clone())
                .body(body.clone())
        })
        .await
    }

    /// Creates a batch over an uploaded file (`POST /batches`), tagged with `metadata`.
    pub async fn create(
        &self,
        input_file_id: &str,
        endpoint: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<BatchObject, LlmError> {
        let body = json!({
            "input_file_id": input_file_id,
            "endpoint": endpoint,
            "completion_window": COMPLETION_WINDOW,
            "metadata": metadata,
        });
        let url = self.url("/batches", &[]);
        self.json("create the batch", || {
            self.request(Method::POST, &url).json(&body)
        })
        .await
    }

    /// The batch with this id (`GET /batches/{id}`).
    pub async fn retrieve(&self, id: &str) -> Result<BatchObject, LlmError> {
        let url = self.url(&format!("/batches/{id}"), &[]);
        self.json("check the batch", || self.request(Method::GET, &url))
            .await
    }

    /// Cancels a batch (`POST /batches/{id}/cancel`); what finished is still returned.
    pub async fn cancel(&self, id: &str) -> Result<BatchObject, LlmError> {
        let url = self.url(&format!("/batches/{id}/cancel"), &[]);
        self.json("cancel the batch", || self.request(Method::POST, &url))
            .await
    }

    /// Looks through the account's batches, newest first (`GET /batches?limit=100&after=…`),
    /// for one whose metadata has `key` = `value`; stops after `max_pages` pages.
    pub async fn find_tagged(
        &self,
        key: &str,
        value: &str,
        max_pages: usize,
    ) -> Result<Option<BatchObject>, LlmError> {
        let mut after: Option<String> = None;
        for _ in 0..max_pages {
            let mut extra = vec![("limit", "100".to_string())];
            if let Some(a) = &after {
                extra.push(("after", a.clone()));
            }
            let url = self.url("/batches", &extra);
            let page: BatchList = self
                .json("list the batches", || self.request(Method::GET, &url))
                .await?;
            if let Some(b) = page.data.iter().find(|b| b.tag(key) == Some(value)) {
                return Ok(Some(b.clone()));
            }
            match (
                page.has_more,
                page.last_id.or(page.data.last().map(|b| b.id.clone())),
            ) {
                (true, Some(last)) => after = Some(last),
                _ => break,
            }
        }
        Ok(None)
    }

    /// The content of a file (`GET /files/{id}/content`): an output or error file.
    pub async fn content(&self, file_id: &str) -> Result<String, LlmError> {
        let url = self.url(&format!("/files/{file_id}/content"), &[]);
        self.send("download the results", || self.request(Method::GET, &url))
            .await
    }

    /// A request to `url` with the endpoint's headers (and key).
    fn request(&self, method: Method, url: &reqwest::Url) -> reqwest::RequestBuilder {
        self.http
            .request(method, url.clone())
            .headers(self.headers.clone())
    }

    /// Sends what `build` makes (as [`Self::send`] does) and reads the reply as the Batch API's
    /// JSON for `T`.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<T, LlmError> {
        let text = self.send(what, build).await?;
        self.decode(what, &text)
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        text: &str,
    ) -> Result<T, LlmError> {
        serde_json::from_str(text).map_err(|e| LlmError::BadRequest {
            status: 200,
            message: format!(
                "cannot {what}: the reply is not what the Batch API sends ({e}); is [batch] base_url right?"
            ),
        })
    }

    /// Sends a request (built anew for each attempt) with the retry rules of chat calls, and
    /// returns the body of a 2xx reply.
    async fn send(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<String, LlmError> {
        let mut attempt = 0u32;
        let mut connect_failures = 0u32;
        let mut last_cause = String::new();
        loop {
            if self.cancel.is_cancelled() {
                return Err(LlmError::Cancelled);
            }
            let mut wait: Option<Duration> = None;
            let last = match build().send().await {
                Ok(response) => {
                    self.answered
                        .store(true, std::sync::atomic::Ordering::Release);
                    let status = response.status();
                    let headers = response.headers().clone();
                    let text = response.text().await;
                    match text {
                        Ok(text) if status.is_success() => return Ok(text),
                        Ok(text) => {
                            let api = parse_error(&text);
                            let api = ApiError {
                                message: self.redacted(&api.message),
                                ..api
                            };
                            if status.as_u16() == 404 {
                                return Err(LlmError::BadRequest {
                                    status: 404,
                                    message: format!(
                                        "cannot {what}: {} answered 404 ({}). The endpoint may have no Batch API: batch mode needs OpenAI, Azure OpenAI or `hanbrief mock-provider`; check [batch] base_url",
                                        self.base, api.message
                                    ),
                                });
                            }
                            match classify(
                                status,
                                &headers,
                                &api,
                                &Value::Null,
                                &self.model,
                                &self.key_env,
                            ) {
                                Verdict::RateLimited { after } => {
                                    wait = after;
                                    format!("429 rate limited: {}", api.message)
                                }
                                Verdict::Retry { after, reason, .. } => {
                                    wait = after;
                                    reason
                                }
                                Verdict::FormatRefused { message }
                                | Verdict::ParamRefused { message, .. }
                                | Verdict::Context { message, .. } => {
                                    return Err(LlmError::BadRequest {
                                        status: status.as_u16(),
                                        message: format!("cannot {what}: {message}"),
                                    });
                                }
                                Verdict::Fail(LlmError::BadRequest { status, message }) => {
                                    return Err(LlmError::BadRequest {
                                        status,
                                        message: format!(
                                            "cannot {what}: {message}{}",
                                            api.code
                                                .as_deref()
                                                .map(|c| format!(" [{c}]"))
                                                .unwrap_or_default()
                                        ),
                                    });
                                }
                                Verdict::Fail(e) => return Err(e),
                            }
                        }
                        Err(e) => self.redacted(&format!("reply body cut short ({e})")),
                    }
                }
                Err(e) if e.is_connect() => {
                    let cause = self.redacted(&connect_cause(&e, self.connect_timeout));
                    if !self.answered.load(std::sync::atomic::Ordering::Acquire) {
                        return Err(LlmError::Unreachable {
                            url: self.base.clone(),
                            cause,
                            attempts: attempt + 1,
                        });
                    }
                    connect_failures += 1;
                    last_cause = cause.clone();
                    format!("cannot connect: {cause}")
                }
                Err(e) => self.redacted(&format!("connection error ({e})")),
            };
            attempt += 1;
            if attempt > self.limits.max_retries {
                if connect_failures == attempt {
                    return Err(LlmError::Unreachable {
                        url: self.base.clone(),
                        cause: last_cause,
                        attempts: attempt,
                    });
                }
                return Err(LlmError::RetriesExhausted {
                    attempts: attempt,
                    last: format!("cannot {what}: {last}"),
                });
            }
            let delay = backoff(
                attempt - 1,
                self.limits.backoff_base,
                self.limits.backoff_max,
            );
            let delay = wait.map_or(delay, |w| w.max(delay).min(self.limits.backoff_max));
            tracing::debug!(what, attempt, ?delay, error = %last, "retrying a Batch API request");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.cancel.cancelled() => return Err(LlmError::Cancelled),
            }
        }
    }

    fn redacted(&self, message: &str) -> String {
        redact(message, self.key.as_ref().map(ApiKey::expose))
    }
}

/// A `multipart/form-data` body with the fields of OpenAI's "Upload file": `purpose=batch`, then
/// `file` (the JSONL). Returns the content type (with its boundary) and the body.
pub fn multipart(filename: &str, content: &[u8]) -> (String, Vec<u8>) {
    // A boundary that does not occur in the content (JSONL of requests: practically never).
    let mut boundary = format!("hanbrief-{:016x}", fastrand::u64(..));
    while content
        .windows(boundary.len())
        .any(|w| w == boundary.as_bytes())
    {
        boundary = format!("hanbrief-{:016x}", fastrand::u64(..));
    }
    let mut body = Vec::with_capacity(content.len() + 400);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lines_become_replies_and_errors() {
        // The Batch guide's output line, and its expired line (platform.openai.com/docs/guides/batch).
        let ok = r#"{"id": "batch_req_123", "custom_id": "request-2", "response": {"status_code": 200, "request_id": "req_123", "body": {"id": "chatcmpl-123", "object": "chat.completion", "created": 1711652795, "model": "gpt-3.5-turbo-0125", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."}, "logprobs": null, "finish_reason": "stop"}], "usage": {"prompt_tokens": 22, "completion_tokens": 2, "total_tokens": 24}, "system_fingerprint": "fp_123"}}, "error": null}"#;
        let (id, outcome) = parse_line(ok).unwrap();
        assert_eq!(id, "request-2");
        match outcome {
            LineOutcome::Reply(ParsedReply::Reply { content, usage, .. }) => {
                assert_eq!(content, "Hello.");
                assert_eq!(usage.unwrap().prompt_tokens, 22);
            }
            other => panic!("{other:?}"),
        }
        let expired = r#"{"id": "batch_req_123", "custom_id": "request-3", "response": null, "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}}"#;
        match parse_line(expired).unwrap() {
            (id, LineOutcome::Failed { status: 0, error }) => {
                assert_eq!(id, "request-3");
                assert_eq!(error.code.as_deref(), Some("batch_expired"));
            }
            other => panic!("{other:?}"),
        }
        let failed = r#"{"id": "batch_req_9", "custom_id": "r9", "response": {"status_code": 500, "request_id": "req_9", "body": {"error": {"message": "The server had an error", "type": "server_error", "param": null, "code": null}}}, "error": null}"#;
        assert!(matches!(
            parse_line(failed).unwrap(),
            (_, LineOutcome::Failed { status: 500, .. })
        ));
        assert!(parse_line("{}").is_err());
    }

    #[test]
    fn multipart_bodies_carry_purpose_then_file() {
        let (ct, body) = multipart("x.jsonl", b"{\"a\":1}\n");
        let boundary = ct.strip_prefix("multipart/form-data; boundary=").unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("name=\"purpose\"\r\n\r\nbatch\r\n"));
        assert!(text.contains("name=\"file\"; filename=\"x.jsonl\""));
        assert!(text.ends_with(&format!("{{\"a\":1}}\n\r\n--{boundary}--\r\n")));
    }
}
