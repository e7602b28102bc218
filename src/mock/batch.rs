//! The simulated provider's Batch API: `POST /files` (multipart, `purpose=batch`),
//! `GET /files/{id}` and `/files/{id}/content`, `POST /batches`, `GET /batches` (newest first,
//! `limit` and `after`), `GET /batches/{id}`, `POST /batches/{id}/cancel`, under `/v1` (OpenAI)
//! or `/openai` (Azure). Shapes as in OpenAI's API reference and Batch guide.
//!
//! A batch is validated when it is created (every line JSON with a unique `custom_id`, `POST`,
//! the batch's `url` and a body with messages), then goes `validating` → `in_progress` (its
//! `request_counts` growing with time) → `finalizing` → `completed` over the configured
//! completion time; its results are computed then, with the same replies as the chat endpoint.
//! Faults on request: a share of lines failing (HTTP 500 in the error file), the first N batches
//! expiring (half their lines done, the rest `batch_expired` in the error file, as OpenAI
//! writes them), the first N batches failing outright, and an enqueued-token limit (a batch
//! beyond it fails with `token_limit_exceeded`, with OpenAI's wording).
//!
//! For the tests it counts uploads, batches, request lines, and lines whose `custom_id` was
//! already in flight or already answered in an earlier batch (work submitted twice).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::replies::reply_for;
use super::{Reply, State, error_response, json_response, measure, messages_of, raw_response};

type Resp = hyper::Response<http_body_util::Full<hyper::body::Bytes>>;

/// What a batch will do, decided when it is created.
#[derive(Debug, Clone, PartialEq)]
enum Fate {
    Complete,
    Expire,
    /// Fails with these errors (`code`, `message`) on its first check.
    Fail(Vec<(String, String)>),
}

struct MockFile {
    filename: String,
    purpose: String,
    bytes: Vec<u8>,
    created_at: i64,
}

struct MockBatch {
    id: String,
    input_file_id: String,
    endpoint: String,
    metadata: Value,
    created: Instant,
    created_at: i64,
    fate: Fate,
    status: String,
    lines: Vec<Value>,
    tokens: u64,
    counts: (u64, u64, u64),
    output_file_id: Option<String>,
    error_file_id: Option<String>,
    errors: Option<Value>,
    cancelled: Option<Instant>,
}

/// Where a `custom_id` stands, for counting work submitted twice.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Seen {
    InFlight,
    Answered,
    Failed,
}

/// The files and batches the simulated provider holds.
#[derive(Default)]
pub(super) struct Batches {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    files: HashMap<String, MockFile>,
    batches: BTreeMap<u64, MockBatch>,
    seen: HashMap<String, Seen>,
    created: u32,
    rng: Option<fastrand::Rng>,
}

impl Batches {
    /// The files and batches, whatever a panicking handler left behind.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    /// The key of the batch the provider calls `id`.
    fn batch_key(&self, id: &str) -> Option<u64> {
        self.batches
            .iter()
            .find(|(_, b)| b.id == id)
            .map(|(k, _)| *k)
    }

    fn id(&mut self, prefix: &str) -> (u64, String) {
        self.next_id += 1;
        (self.next_id, format!("{prefix}-mock{:08}", self.next_id))
    }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Whether this request is for the files or batches endpoints.
pub(super) fn is_batch_path(path: &str) -> bool {
    path.contains("/files") || path.contains("/batches")
}

/// Serves one files or batches request.
pub(super) async fn handle(state: &State, req: Request<Incoming>) -> Reply {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Err(std::io::Error::other(e)),
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let at = segments
        .iter()
        .position(|s| *s == "files" || *s == "batches")
        .unwrap_or(segments.len());
    let route: Vec<&str> = segments[at..].to_vec();
    let not_found = || {
        Ok(error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            "unknown path",
            &[],
        ))
    };
    match (&method, route.as_slice()) {
        (&Method::POST, ["files"]) => Ok(upload(state, &content_type, &bytes)),
        (&Method::GET, ["files", id]) => Ok(file_object(state, id)),
        (&Method::GET, ["files", id, "content"]) => Ok(file_content(state, id)),
        (&Method::POST, ["batches"]) => Ok(create(state, &bytes)),
        (&Method::GET, ["batches"]) => Ok(list(state, &query)),
        (&Method::GET, ["batches", id]) => Ok(retrieve(state, id)),
        (&Method::POST, ["batches", id, "cancel"]) => Ok(cancel(state, id)),
        _ => not_found(),
    }
}

fn bad_request(message: &str) -> Resp {
    error_response(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message,
        &[],
    )
}

/// The parts of a `multipart/form-data` body: name → (filename, content).
fn parse_multipart(content_type: &str, body: &[u8]) -> Option<HashMap<String, (String, Vec<u8>)>> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))?
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let mut parts = HashMap::new();
    let mut rest = body;
    // Skip to the first delimiter.
    let start = find(rest, delimiter.as_bytes())?;
    rest = &rest[start + delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            break;
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..head_end]).ok()?;
        let content_start = head_end + 4;
        let end = find(
            &rest[content_start..],
            format!("\r\n{delimiter}").as_bytes(),
        )?;
        let content = rest[content_start..content_start + end].to_vec();
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))?;
        let field = |key: &str| {
            disposition
                .split(';')
                .map(str::trim)
                .find_map(|p| p.strip_prefix(&format!("{key}=")))
                .map(|v| v.trim_matches('"').to_string())
        };
        parts.insert(
            field("name")?,
            (field("filename").unwrap_or_default(), content),
        );
        rest = &rest[content_start + end + 2 + delimiter.len()..];
    }
    Some(parts)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn upload(state: &State, content_type: &str, body: &[u8]) -> Resp {
    if !content_type.starts_with("multipart/form-data") {
        return bad_request("the file must be sent as multipart/form-data");
    }
    let Some(parts) = parse_multipart(content_type, body) else {
        return bad_request("the multipart body could not be parsed");
    };
    let Some((_, purpose)) = parts.get("purpose") else {
        return bad_request("'purpose' is a required property");
    };
    let Some((filename, content)) = parts.get("file") else {
        return bad_request("'file' is a required property");
    };
    let purpose = String::from_utf8_lossy(purpose).to_string();
    if purpose != "batch" {
        return bad_request(&format!(
            "this mock accepts purpose 'batch', not '{purpose}'"
        ));
    }
    state.counters.files.fetch_add(1, Ordering::Relaxed);
    let mut inner = state.batches.lock();
    let (_, id) = inner.id("file");
    let file = MockFile {
        filename: filename.clone(),
        purpose,
        bytes: content.clone(),
        created_at: unix_now(),
    };
    let object = file_json(&id, &file);
    inner.files.insert(id, file);
    json_response(StatusCode::OK, &object, &[])
}

fn file_json(id: &str, f: &MockFile) -> Value {
    json!({
        "id": id,
        "object": "file",
        "bytes": f.bytes.len(),
        "created_at": f.created_at,
        "filename": f.filename,
        "purpose": f.purpose,
    })
}

fn file_object(state: &State, id: &str) -> Resp {
    let inner = state.batches.lock();
    match inner.files.get(id) {
        Some(f) => json_response(StatusCode::OK, &file_json(id, f), &[]),
        None => error_response(StatusCode::NOT_FOUND, "not_found", "No such file", &[]),
    }
}

fn file_content(state: &State, id: &str) -> Resp {
    let inner = state.batches.lock();
    match inner.files.get(id) {
        Some(f) => raw_response(
            StatusCode::OK,
            String::from_utf8_lossy(&f.bytes).into_owned(),
            &[],
        ),
        None => error_response(StatusCode::NOT_FOUND, "not_found", "No such file", &[]),
    }
}

/// The prompt tokens of a request body, as OpenAI counts them for the enqueued-token limit.
fn prompt_tokens(state: &State, body: &Value) -> u64 {
    let messages = messages_of(body);
    state
        .tokenizer
        .count_messages(messages.iter().map(String::as_str)) as u64
}

/// Checks a request file as OpenAI does before it runs it; the lines, or the errors.
fn validate(text: &str, endpoint: &str) -> Result<Vec<Value>, Vec<(String, String)>> {
    let mut lines = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let err = |code: &str, message: String| Err(vec![(code.to_string(), message)]);
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return err(
                "invalid_json_line",
                format!("line {} is not valid JSON", n + 1),
            );
        };
        let Some(id) = v["custom_id"].as_str() else {
            return err(
                "missing_custom_id",
                format!("line {} has no custom_id", n + 1),
            );
        };
        if !ids.insert(id.to_string()) {
            return err(
                "duplicate_custom_id",
                format!("the custom_id '{id}' on line {} is not unique", n + 1),
            );
        }
        if v["method"].as_str() != Some("POST") {
            return err(
                "invalid_method",
                format!("line {}: method must be POST", n + 1),
            );
        }
        if v["url"].as_str() != Some(endpoint) {
            return err(
                "mismatched_url",
                format!(
                    "line {}: the url {} does not match the batch's endpoint {endpoint}",
                    n + 1,
                    v["url"]
                ),
            );
        }
        if messages_of(&v["body"]).is_empty() {
            return err(
                "invalid_request",
                format!("line {}: body.messages is required", n + 1),
            );
        }
        lines.push(v);
    }
    if lines.is_empty() {
        return Err(vec![(
            "empty_file".into(),
            "the input file has no requests".into(),
        )]);
    }
    Ok(lines)
}

fn create(state: &State, body: &[u8]) -> Resp {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return bad_request("the body is not valid JSON");
    };
    let (Some(file_id), Some(endpoint), Some(window)) = (
        req["input_file_id"].as_str(),
        req["endpoint"].as_str(),
        req["completion_window"].as_str(),
    ) else {
        return bad_request("input_file_id, endpoint and completion_window are required");
    };
    if window != "24h" {
        return bad_request("completion_window must be 24h");
    }
    if !matches!(endpoint, "/v1/chat/completions" | "/chat/completions") {
        return bad_request(&format!("the endpoint {endpoint} is not supported"));
    }
    let cfg = &state.config;
    let mut inner = state.batches.lock();
    let Some(file) = inner.files.get(file_id) else {
        return error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("No such File object: {file_id}"),
            &[],
        );
    };
    let text = String::from_utf8_lossy(&file.bytes).into_owned();
    let now = Instant::now();
    advance_all(state, &mut inner, now);
    let (lines, mut fate) = match validate(&text, endpoint) {
        Ok(lines) => (lines, Fate::Complete),
        Err(errors) => (Vec::new(), Fate::Fail(errors)),
    };
    let tokens: u64 = lines.iter().map(|l| prompt_tokens(state, &l["body"])).sum();
    inner.created += 1;
    let n = inner.created;
    if fate == Fate::Complete {
        let enqueued: u64 = inner
            .batches
            .values()
            .filter(|b| {
                matches!(
                    b.status.as_str(),
                    "validating" | "in_progress" | "finalizing"
                )
            })
            .map(|b| b.tokens)
            .sum();
        let model = lines[0]["body"]["model"]
            .as_str()
            .unwrap_or("mock")
            .to_string();
        if cfg.batch_token_limit > 0 && enqueued + tokens > cfg.batch_token_limit {
            fate = Fate::Fail(vec![(
                "token_limit_exceeded".into(),
                format!(
                    "Enqueued token limit reached for {model} in organization org-mock. Limit: {} enqueued tokens. Please try again once some in_progress batches have been completed.",
                    group(cfg.batch_token_limit)
                ),
            )]);
        } else if n <= cfg.batch_fail {
            fate = Fate::Fail(vec![(
                "server_error".into(),
                "The batch failed (simulated).".into(),
            )]);
        } else if n <= cfg.batch_fail + cfg.batch_expire {
            fate = Fate::Expire;
        }
    }
    if !matches!(fate, Fate::Fail(_)) {
        state.counters.batches.fetch_add(1, Ordering::Relaxed);
        for line in &lines {
            let id = line["custom_id"].as_str().unwrap_or_default().to_string();
            state.counters.batch_lines.fetch_add(1, Ordering::Relaxed);
            let before = inner.seen.insert(id, Seen::InFlight);
            if matches!(before, Some(Seen::InFlight | Seen::Answered)) {
                state
                    .counters
                    .batch_repeated
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let (_, id) = inner.id("batch");
    let key = inner.next_id;
    let batch = MockBatch {
        id: id.clone(),
        input_file_id: file_id.to_string(),
        endpoint: endpoint.to_string(),
        metadata: req.get("metadata").cloned().unwrap_or(Value::Null),
        created: now,
        created_at: unix_now(),
        fate,
        status: "validating".into(),
        counts: (lines.len() as u64, 0, 0),
        lines,
        tokens,
        output_file_id: None,
        error_file_id: None,
        errors: None,
        cancelled: None,
    };
    let object = batch_json(&batch);
    inner.batches.insert(key, batch);
    json_response(StatusCode::OK, &object, &[])
}

fn group(n: u64) -> String {
    crate::render::group(n as usize)
}

fn batch_json(b: &MockBatch) -> Value {
    json!({
        "id": b.id,
        "object": "batch",
        "endpoint": b.endpoint,
        "errors": b.errors,
        "input_file_id": b.input_file_id,
        "completion_window": "24h",
        "status": b.status,
        "output_file_id": b.output_file_id,
        "error_file_id": b.error_file_id,
        "created_at": b.created_at,
        "expires_at": b.created_at + 86_400,
        "request_counts": {"total": b.counts.0, "completed": b.counts.1, "failed": b.counts.2},
        "metadata": b.metadata,
    })
}

fn advance_all(state: &State, inner: &mut Inner, now: Instant) {
    let keys: Vec<u64> = inner.batches.keys().copied().collect();
    for k in keys {
        advance(state, inner, k, now);
    }
}

/// Moves a batch along its life as time has passed.
fn advance(state: &State, inner: &mut Inner, key: u64, now: Instant) {
    let completion = state.config.batch_completion;
    let Some(b) = inner.batches.get_mut(&key) else {
        return;
    };
    if crate::llm::batch::is_terminal(&b.status) {
        return;
    }
    let elapsed = now.saturating_duration_since(b.created);
    if let Fate::Fail(errors) = &b.fate {
        b.status = "failed".into();
        b.errors = Some(json!({
            "object": "list",
            "data": errors.iter().map(|(code, message)| json!({"code": code, "message": message, "param": null, "line": null})).collect::<Vec<_>>(),
        }));
        return;
    }
    let cancelled = b.cancelled.is_some();
    let finished = elapsed >= completion || cancelled;
    if !finished {
        let share = (elapsed.as_secs_f64() / completion.as_secs_f64().max(1e-9)).min(1.0);
        b.status = if elapsed < completion / 5 {
            "validating".into()
        } else {
            "in_progress".into()
        };
        b.counts.1 = ((b.counts.0 as f64) * share) as u64;
        return;
    }
    // Finalize: answer the lines that got done, fail or expire the rest.
    let total = b.lines.len();
    let done_until = match (&b.fate, b.cancelled) {
        (_, Some(at)) => {
            let share = at.saturating_duration_since(b.created).as_secs_f64()
                / completion.as_secs_f64().max(1e-9);
            ((total as f64) * share.min(1.0)) as usize
        }
        (Fate::Expire, None) => total / 2,
        _ => total,
    };
    let rng = inner
        .rng
        .get_or_insert_with(|| fastrand::Rng::with_seed(state.config.seed));
    let mut output = String::new();
    let mut errors = String::new();
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut outcomes = Vec::new();
    for (i, line) in b.lines.iter().enumerate() {
        let custom_id = line["custom_id"].as_str().unwrap_or_default().to_string();
        let request_id = format!("req_mock_{key}_{i}");
        if i >= done_until {
            let (code, message) = if cancelled {
                (
                    "batch_cancelled",
                    "This request was not executed because the batch was cancelled.",
                )
            } else {
                (
                    "batch_expired",
                    "This request could not be executed before the completion window expired.",
                )
            };
            errors.push_str(&json!({"id": format!("batch_req_{request_id}"), "custom_id": custom_id, "response": null, "error": {"code": code, "message": message}}).to_string());
            errors.push('\n');
            failed += 1;
            outcomes.push((custom_id, Seen::Failed));
            continue;
        }
        if rng.f64() < state.config.batch_fail_lines {
            let body = json!({"error": {"message": "The server had an error while processing your request (simulated).", "type": "server_error", "param": null, "code": null}});
            errors.push_str(&json!({"id": format!("batch_req_{request_id}"), "custom_id": custom_id, "response": {"status_code": 500, "request_id": request_id, "body": body}, "error": null}).to_string());
            errors.push('\n');
            failed += 1;
            outcomes.push((custom_id, Seen::Failed));
            continue;
        }
        let (status, body) = answer(state, &line["body"], &request_id);
        let text = json!({"id": format!("batch_req_{request_id}"), "custom_id": custom_id, "response": {"status_code": status, "request_id": request_id, "body": body}, "error": null}).to_string();
        if status == 200 {
            output.push_str(&text);
            output.push('\n');
            ok += 1;
            outcomes.push((custom_id, Seen::Answered));
        } else {
            errors.push_str(&text);
            errors.push('\n');
            failed += 1;
            outcomes.push((custom_id, Seen::Failed));
        }
    }
    b.counts = (total as u64, ok, failed);
    b.status = match (&b.fate, cancelled) {
        (_, true) => "cancelled".into(),
        (Fate::Expire, _) => "expired".into(),
        _ => "completed".into(),
    };
    let batch_id = b.id.clone();
    state
        .counters
        .batch_answered
        .fetch_add(ok, Ordering::Relaxed);
    for (id, seen) in outcomes {
        inner.seen.insert(id, seen);
    }
    let file = |inner: &mut Inner, text: String, kind: &str| -> Option<String> {
        if text.is_empty() {
            return None;
        }
        let (_, id) = inner.id("file");
        inner.files.insert(
            id.clone(),
            MockFile {
                filename: format!("{batch_id}_{kind}.jsonl"),
                purpose: format!("batch_{kind}"),
                bytes: text.into_bytes(),
                created_at: unix_now(),
            },
        );
        Some(id)
    };
    let output_id = file(inner, output, "output");
    let error_id = file(inner, errors, "error");
    if let Some(b) = inner.batches.get_mut(&key) {
        b.output_file_id = output_id;
        b.error_file_id = error_id;
    }
}

/// A request line's body answered as the chat endpoint answers it: (status, body).
fn answer(state: &State, body: &Value, request_id: &str) -> (u16, Value) {
    let messages = messages_of(body);
    let (max_tokens, prompt_tokens) = match measure(state, body, &messages) {
        Ok(sizes) => sizes,
        Err(message) => {
            return (
                400,
                json!({"error": {"message": message, "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
            );
        }
    };
    let (content, finish) = reply_for(&state.tokenizer, body, &messages, max_tokens);
    let completion_tokens = state.tokenizer.count(&content) as u64;
    (
        200,
        json!({
            "id": format!("chatcmpl-{request_id}"),
            "object": "chat.completion",
            "created": unix_now(),
            "model": body["model"].as_str().unwrap_or("mock"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
        }),
    )
}

fn retrieve(state: &State, id: &str) -> Resp {
    let mut inner = state.batches.lock();
    let Some(key) = inner.batch_key(id) else {
        return error_response(StatusCode::NOT_FOUND, "not_found", "No such batch", &[]);
    };
    advance(state, &mut inner, key, Instant::now());
    json_response(StatusCode::OK, &batch_json(&inner.batches[&key]), &[])
}

fn cancel(state: &State, id: &str) -> Resp {
    let mut inner = state.batches.lock();
    let Some(key) = inner.batch_key(id) else {
        return error_response(StatusCode::NOT_FOUND, "not_found", "No such batch", &[]);
    };
    let now = Instant::now();
    advance(state, &mut inner, key, now);
    let b = inner.batches.get_mut(&key).expect("found above");
    if crate::llm::batch::is_terminal(&b.status) {
        return bad_request(&format!("cannot cancel a batch that is {}", b.status));
    }
    b.cancelled = Some(now);
    b.status = "cancelling".into();
    json_response(StatusCode::OK, &batch_json(b), &[])
}

fn list(state: &State, query: &str) -> Resp {
    let params: HashMap<&str, &str> = query.split('&').filter_map(|p| p.split_once('=')).collect();
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let mut inner = state.batches.lock();
    advance_all(state, &mut inner, Instant::now());
    let newest_first: Vec<&MockBatch> = inner.batches.values().rev().collect();
    let start = match params.get("after") {
        Some(after) => newest_first
            .iter()
            .position(|b| b.id == *after)
            .map_or(newest_first.len(), |i| i + 1),
        None => 0,
    };
    let page: Vec<Value> = newest_first
        .iter()
        .skip(start)
        .take(limit)
        .map(|b| batch_json(b))
        .collect();
    let has_more = start + page.len() < newest_first.len();
    let body = json!({
        "object": "list",
        "first_id": page.first().map(|b| b["id"].clone()),
        "last_id": page.last().map(|b| b["id"].clone()),
        "has_more": has_more,
        "data": page,
    });
    json_response(StatusCode::OK, &body, &[])
}

/// How long a batch takes when none is configured.
pub(super) const DEFAULT_COMPLETION: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_bodies_are_parsed_back() {
        let (ct, body) = crate::llm::batch::multipart("in.jsonl", b"{\"x\":1}\n{\"y\":2}\n");
        let parts = parse_multipart(&ct, &body).unwrap();
        assert_eq!(parts["purpose"].1, b"batch");
        assert_eq!(parts["file"].0, "in.jsonl");
        assert_eq!(parts["file"].1, b"{\"x\":1}\n{\"y\":2}\n");
    }

    #[test]
    fn request_files_are_validated_as_openai_does() {
        let ok = r#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"hi"}]}}"#;
        assert_eq!(validate(ok, "/v1/chat/completions").unwrap().len(), 1);
        let twice = format!("{ok}\n{ok}\n");
        let err = validate(&twice, "/v1/chat/completions").unwrap_err();
        assert_eq!(err[0].0, "duplicate_custom_id");
        let err = validate(ok, "/chat/completions").unwrap_err();
        assert_eq!(err[0].0, "mismatched_url");
    }
}
