//! A simulated OpenAI-compatible provider, for the bench harness and `hanbrief mock-provider`: rate
//! limits that behave like a provider's, latency that grows with the reply, injected faults, and
//! deterministic replies in the shape that was asked for.
//!
//! **Limits** ([`limits`]). Two token buckets, refilled continuously: requests (one second's worth
//! of burst, at least 1) and tokens (ten seconds' worth). A request is charged its prompt tokens
//! (counted with o200k_base, as OpenAI counts; a `json_schema` response format's schema counts
//! too, as OpenAI bills it) plus its `max_tokens`, as OpenAI charges it; a
//! request larger than the token bucket is admitted when the bucket is full and leaves it in debt.
//! A request that does not fit gets 429 with `retry-after` (whole seconds, rounded up) and
//! `retry-after-ms`; with `rate_limit_headers` on, every reply carries OpenAI's
//! `x-ratelimit-limit-*`, `-remaining-*` and `-reset-*` headers.
//!
//! **Faults** ([`faults`]; per admitted request, by probability): HTTP 500/502/503, a connection
//! reset (the connection is closed without a reply), a malformed body (200 with JSON cut short), a
//! hang (no reply until the client gives up), and a spurious 429 with `Retry-After: 1`.
//!
//! **Replies** ([`replies`]) are built from the fenced article or notes in the prompt: a brief
//! (JSON) when a JSON reply is asked for, notes (lines starting with "- ") otherwise, a digest when
//! the schema says so. Figures in replies are copied from the source, so checks pass. A reply
//! longer than `max_tokens` is cut and finished with `"length"`, as real servers do.
//!
//! **Batches** ([`batch`]): the files and batches endpoints of OpenAI's Batch API, answering each
//! request line as the chat endpoint would, with a configurable completion time, failing lines,
//! expiring or failing batches and an enqueued-token limit.
//!
//! **Accounting** for the bench: requests, admissions, 429s, faults, tokens, requests that arrived
//! while a `Retry-After` the provider had sent was still running, and successful replies to a
//! request body already answered (a finished call repeated).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod batch;
mod faults;
mod limits;
mod replies;

use faults::Fault;
use limits::{Bucket, Limits, limit_headers};
use replies::reply_for;

use crate::tokens::{Encoding, Tokenizer};

/// How the simulated provider behaves.
#[derive(Debug, Clone)]
pub struct MockConfig {
    pub requests_per_minute: u32,
    pub tokens_per_minute: u32,
    /// Latency before the first token.
    pub latency_base: Duration,
    /// Latency per completion token.
    pub latency_per_token: Duration,
    /// Probabilities per admitted request.
    pub fail_5xx: f64,
    pub fail_reset: f64,
    pub fail_malformed: f64,
    pub fail_hang: f64,
    pub fail_429: f64,
    /// How long a hang lasts (the client should time out first).
    pub hang: Duration,
    /// Send OpenAI's `x-ratelimit-*` headers.
    pub rate_limit_headers: bool,
    /// Prompts longer than this get `context_length_exceeded`.
    pub context_window: usize,
    /// Seed for the fault dice (replies are deterministic whatever the seed).
    pub seed: u64,
    /// How long a batch takes from creation to `completed`.
    pub batch_completion: Duration,
    /// Share of a batch's request lines that come back failed (HTTP 500 in the error file).
    pub batch_fail_lines: f64,
    /// The first N batches (after the failing ones) expire with half their lines done.
    pub batch_expire: u32,
    /// The first N batches fail outright.
    pub batch_fail: u32,
    /// Prompt tokens that may be enqueued in batches at once (0: no limit); a batch beyond it
    /// fails with `token_limit_exceeded`.
    pub batch_token_limit: u64,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            requests_per_minute: 600,
            tokens_per_minute: 1_000_000,
            latency_base: Duration::from_millis(20),
            latency_per_token: Duration::ZERO,
            fail_5xx: 0.0,
            fail_reset: 0.0,
            fail_malformed: 0.0,
            fail_hang: 0.0,
            fail_429: 0.0,
            hang: Duration::from_secs(600),
            rate_limit_headers: true,
            context_window: 128_000,
            seed: 7,
            batch_completion: batch::DEFAULT_COMPLETION,
            batch_fail_lines: 0.0,
            batch_expire: 0,
            batch_fail: 0,
            batch_token_limit: 0,
        }
    }
}

/// What the provider saw and did.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    admitted: AtomicU64,
    rate_limited: AtomicU64,
    injected_429: AtomicU64,
    server_errors: AtomicU64,
    resets: AtomicU64,
    malformed: AtomicU64,
    hangs: AtomicU64,
    context_exceeded: AtomicU64,
    ok: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    charged_tokens: AtomicU64,
    early: AtomicU64,
    repeated: AtomicU64,
    files: AtomicU64,
    batches: AtomicU64,
    batch_lines: AtomicU64,
    batch_answered: AtomicU64,
    batch_repeated: AtomicU64,
    truncated: AtomicU64,
    admitted_prompt_tokens: AtomicU64,
}

/// A copy of the provider's counters.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct MockStats {
    /// Requests received.
    pub requests: u64,
    /// Requests that passed the rate limits (and were charged).
    pub admitted: u64,
    /// 429s for exceeding the limits.
    pub rate_limited: u64,
    /// 429s injected as faults.
    pub injected_429: u64,
    pub server_errors: u64,
    pub resets: u64,
    pub malformed: u64,
    pub hangs: u64,
    pub context_exceeded: u64,
    /// Well-formed 200 replies.
    pub ok: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Tokens charged against the limit (prompt + max_tokens of admitted requests).
    pub charged_tokens: u64,
    /// Requests that arrived while a Retry-After sent earlier was still running (50 ms grace
    /// for requests already on their way).
    pub early: u64,
    /// Successful replies to a request body that had already been answered successfully.
    pub repeated: u64,
    /// Files uploaded to the files endpoint.
    pub files: u64,
    /// Batches accepted (created and not failed at once).
    pub batches: u64,
    /// Request lines in accepted batches, and those answered successfully.
    pub batch_lines: u64,
    pub batch_answered: u64,
    /// Request lines whose `custom_id` was already in flight, or already answered, in an
    /// earlier batch: work submitted twice.
    pub batch_repeated: u64,
    /// Of `ok`, replies cut at `max_tokens` (`finish_reason: "length"`).
    pub truncated: u64,
    /// Prompt tokens of every admitted request (`prompt_tokens` counts those of `ok` replies
    /// only): what the provider processed, wasted attempts included.
    pub admitted_prompt_tokens: u64,
}

struct State {
    config: MockConfig,
    limits: Mutex<Limits>,
    counters: Counters,
    answered: Mutex<HashSet<blake3::Hash>>,
    tokenizer: Tokenizer,
    batches: batch::Batches,
}

/// A running simulated provider.
pub struct MockProvider {
    addr: SocketAddr,
    state: Arc<State>,
    stop: CancellationToken,
}

impl MockProvider {
    /// Starts serving on `addr` (port 0 picks a free port).
    pub async fn start(config: MockConfig, addr: SocketAddr) -> std::io::Result<MockProvider> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let now = Instant::now();
        let rpm = config.requests_per_minute.max(1) as f64;
        let tpm = config.tokens_per_minute.max(1) as f64;
        let state = Arc::new(State {
            limits: Mutex::new(Limits {
                requests: Bucket::new(rpm, (rpm / 60.0).max(1.0), now),
                tokens: Bucket::new(tpm, tpm / 6.0, now),
                blocked: None,
                rng: fastrand::Rng::with_seed(config.seed),
            }),
            config,
            counters: Counters::default(),
            answered: Mutex::new(HashSet::new()),
            tokenizer: Tokenizer::new(Encoding::O200kBase),
            batches: batch::Batches::default(),
        });
        let stop = CancellationToken::new();
        let (s, st) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                    _ = st.cancelled() => return,
                };
                let _ = stream.set_nodelay(true);
                let io = hyper_util::rt::TokioIo::new(stream);
                let s = s.clone();
                let st = st.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(s.clone(), req));
                    let conn =
                        hyper::server::conn::http1::Builder::new().serve_connection(io, service);
                    tokio::select! {
                        _ = conn => {}
                        _ = st.cancelled() => {}
                    }
                });
            }
        });
        Ok(MockProvider { addr, state, stop })
    }

    /// The base URL to configure: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// What it has seen so far (also served as JSON at `GET /v1/_mock/stats`).
    pub fn stats(&self) -> MockStats {
        snapshot(&self.state.counters)
    }
}

fn snapshot(c: &Counters) -> MockStats {
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    MockStats {
        requests: g(&c.requests),
        admitted: g(&c.admitted),
        rate_limited: g(&c.rate_limited),
        injected_429: g(&c.injected_429),
        server_errors: g(&c.server_errors),
        resets: g(&c.resets),
        malformed: g(&c.malformed),
        hangs: g(&c.hangs),
        context_exceeded: g(&c.context_exceeded),
        ok: g(&c.ok),
        prompt_tokens: g(&c.prompt_tokens),
        completion_tokens: g(&c.completion_tokens),
        charged_tokens: g(&c.charged_tokens),
        early: g(&c.early),
        repeated: g(&c.repeated),
        files: g(&c.files),
        batches: g(&c.batches),
        batch_lines: g(&c.batch_lines),
        batch_answered: g(&c.batch_answered),
        batch_repeated: g(&c.batch_repeated),
        truncated: g(&c.truncated),
        admitted_prompt_tokens: g(&c.admitted_prompt_tokens),
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

type Reply = Result<Response<Full<Bytes>>, std::io::Error>;

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Reply {
    let c = &state.counters;
    let arrived = Instant::now();
    if batch::is_batch_path(req.uri().path()) {
        // The Batch API has its own counters: `requests` counts chat calls only.
        return batch::handle(&state, req).await;
    }
    // The model list is not a chat call (hanbrief asks for it once per run).
    if req.method() == hyper::Method::GET && req.uri().path().ends_with("/models") {
        return Ok(json_response(
            StatusCode::OK,
            &json!({"object": "list", "data": [{"id": "mock", "object": "model"}]}),
            &[],
        ));
    }
    c.requests.fetch_add(1, Ordering::Relaxed);
    if req.method() == hyper::Method::GET && req.uri().path().ends_with("/_mock/stats") {
        c.requests.fetch_sub(1, Ordering::Relaxed);
        let stats = serde_json::to_value(snapshot(c)).expect("stats serialise");
        return Ok(json_response(StatusCode::OK, &stats, &[]));
    }
    if req.method() != hyper::Method::POST || !req.uri().path().ends_with("/chat/completions") {
        return Ok(error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            "unknown path",
            &[],
        ));
    }
    let bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Err(std::io::Error::other(e)),
    };
    let body: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return Ok(error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("invalid JSON: {e}"),
                &[],
            ));
        }
    };
    let messages = messages_of(&body);
    if messages.is_empty() {
        return Ok(error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "messages is required",
            &[],
        ));
    }
    let (max_tokens, prompt_tokens) = match measure(&state, &body, &messages) {
        Ok(sizes) => sizes,
        Err(message) => {
            c.context_exceeded.fetch_add(1, Ordering::Relaxed);
            return Ok(error_response(
                StatusCode::BAD_REQUEST,
                "context_length_exceeded",
                &message,
                &[],
            ));
        }
    };
    let charge = (prompt_tokens + max_tokens) as f64;

    // Rate limits, then the dice.
    let (admitted, headers, fault, tokens_bound) = {
        let mut l = state.limits.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((until, sent)) = l.blocked
            && arrived < until
            && arrived > sent + Duration::from_millis(50)
        {
            c.early.fetch_add(1, Ordering::Relaxed);
        }
        l.requests.refill(arrived);
        l.tokens.refill(arrived);
        let (wait_r, wait_t) = (l.requests.wait_for(1.0), l.tokens.wait_for(charge));
        let wait = wait_r.max(wait_t);
        if wait > 0.0 {
            let until = arrived + Duration::from_secs_f64(wait);
            l.blocked = Some((until, arrived));
            let headers = limit_headers(&state.config, &l, Some(wait));
            (false, headers, Fault::None, wait_t > wait_r)
        } else {
            l.requests.level -= 1.0;
            l.tokens.level -= charge;
            let cfg = &state.config;
            let roll = l.rng.f64();
            let mut edge = 0.0;
            let mut hit = |p: f64| {
                edge += p;
                roll < edge
            };
            let fault = if hit(cfg.fail_5xx) {
                Fault::ServerError([500, 502, 503][l.rng.usize(0..3)])
            } else if hit(cfg.fail_reset) {
                Fault::Reset
            } else if hit(cfg.fail_malformed) {
                Fault::Malformed
            } else if hit(cfg.fail_hang) {
                Fault::Hang
            } else if hit(cfg.fail_429) {
                Fault::Spurious429
            } else {
                Fault::None
            };
            if matches!(fault, Fault::Spurious429) {
                l.blocked = Some((arrived + Duration::from_secs(1), arrived));
            }
            (true, limit_headers(&state.config, &l, None), fault, false)
        }
    };
    if !admitted {
        c.rate_limited.fetch_add(1, Ordering::Relaxed);
        let cfg = &state.config;
        // With headers on, the message states the limit the way OpenAI's does; without, it is
        // a bare 429 that says nothing about the limit.
        let message = match (cfg.rate_limit_headers, tokens_bound) {
            (true, false) => format!(
                "Rate limit reached for mock on requests per min (RPM): Limit {}, Used {}, Requested 1.",
                cfg.requests_per_minute, cfg.requests_per_minute
            ),
            (true, true) => format!(
                "Rate limit reached for mock on tokens per min (TPM): Limit {}, Used {}, Requested {}.",
                cfg.tokens_per_minute, cfg.tokens_per_minute, charge as u64
            ),
            (false, _) => "Too many requests (simulated).".to_string(),
        };
        return Ok(error_response(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            &message,
            &headers,
        ));
    }
    c.admitted.fetch_add(1, Ordering::Relaxed);
    c.charged_tokens.fetch_add(charge as u64, Ordering::Relaxed);
    c.admitted_prompt_tokens
        .fetch_add(prompt_tokens, Ordering::Relaxed);
    match fault {
        Fault::None => {}
        Fault::ServerError(code) => {
            c.server_errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(state.config.latency_base).await;
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Ok(error_response(
                status,
                "server_error",
                "The server had an error while processing your request (simulated).",
                &headers,
            ));
        }
        Fault::Reset => {
            c.resets.fetch_add(1, Ordering::Relaxed);
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "simulated reset",
            ));
        }
        Fault::Hang => {
            c.hangs.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(state.config.hang).await;
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "simulated hang",
            ));
        }
        Fault::Spurious429 => {
            c.injected_429.fetch_add(1, Ordering::Relaxed);
            let mut h = headers.clone();
            h.push(("retry-after", "1".to_string()));
            h.push(("retry-after-ms", "1000".to_string()));
            return Ok(error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                "Rate limit reached (simulated spike).",
                &h,
            ));
        }
        Fault::Malformed => {}
    }

    let (content, finish) = reply_for(&state.tokenizer, &body, &messages, max_tokens);
    let completion_tokens = state.tokenizer.count(&content) as u64;
    let latency =
        state.config.latency_base + state.config.latency_per_token * completion_tokens as u32;
    tokio::time::sleep(latency).await;
    let response = json!({
        "id": format!("chatcmpl-mock-{}", c.requests.load(Ordering::Relaxed)),
        "object": "chat.completion",
        "created": 0,
        "model": body["model"].as_str().unwrap_or("mock"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
    });
    if matches!(fault, Fault::Malformed) {
        c.malformed.fetch_add(1, Ordering::Relaxed);
        let text = response.to_string();
        let cut = text.len() / 2;
        let mut cut_at = cut;
        while !text.is_char_boundary(cut_at) {
            cut_at -= 1;
        }
        return Ok(raw_response(
            StatusCode::OK,
            text[..cut_at].to_string(),
            &headers,
        ));
    }
    c.ok.fetch_add(1, Ordering::Relaxed);
    if finish == "length" {
        c.truncated.fetch_add(1, Ordering::Relaxed);
    }
    c.prompt_tokens.fetch_add(prompt_tokens, Ordering::Relaxed);
    c.completion_tokens
        .fetch_add(completion_tokens, Ordering::Relaxed);
    let fresh = state
        .answered
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(blake3::hash(&bytes));
    if !fresh {
        c.repeated.fetch_add(1, Ordering::Relaxed);
    }
    Ok(json_response(StatusCode::OK, &response, &headers))
}

fn json_response(
    status: StatusCode,
    body: &Value,
    headers: &[(&'static str, String)],
) -> Response<Full<Bytes>> {
    raw_response(status, body.to_string(), headers)
}

fn raw_response(
    status: StatusCode,
    body: String,
    headers: &[(&'static str, String)],
) -> Response<Full<Bytes>> {
    let mut r = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    r.body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

/// The text of a request's messages, in order.
fn messages_of(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["content"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A request's reply budget and prompt tokens, or (the prompt is over the context window) the
/// message OpenAI sends for that. The chat endpoint and batch lines measure alike.
fn measure(state: &State, body: &Value, messages: &[String]) -> Result<(u64, u64), String> {
    let max_tokens = body["max_tokens"]
        .as_u64()
        .or_else(|| body["max_completion_tokens"].as_u64())
        .unwrap_or(4096);
    // A json_schema response format is billed as prompt tokens, as OpenAI bills it (the schema
    // is placed in the model's context): counted here as its compact JSON.
    let schema_tokens = if body["response_format"]["type"] == "json_schema" {
        state
            .tokenizer
            .count(&body["response_format"]["json_schema"]["schema"].to_string())
    } else {
        0
    };
    let prompt_tokens = (state
        .tokenizer
        .count_messages(messages.iter().map(String::as_str))
        + schema_tokens) as u64;
    if prompt_tokens as usize > state.config.context_window {
        return Err(format!(
            "This model's maximum context length is {} tokens. However, your messages resulted in {prompt_tokens} tokens.",
            state.config.context_window
        ));
    }
    Ok((max_tokens, prompt_tokens))
}

fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    headers: &[(&'static str, String)],
) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({"error": {"message": message, "type": code, "code": code}}),
        headers,
    )
}
