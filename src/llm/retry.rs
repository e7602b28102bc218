//! What to do about a failed call: classify the response or transport error, compute the
//! backoff, read the provider's "come back later" headers.
//!
//! The rules: 429 rate limits, 408, 409, 5xx, connection resets, timeouts and
//! bodies cut short are retried with full-jitter exponential backoff, never sooner than a
//! `Retry-After` allows. `insufficient_quota` (and 402, "out of credits"), 401, 403 and 404 stop
//! the run (every other call would fail the same way). A prompt the server finds too long, in any
//! server's wording ([`CONTEXT_WORDINGS`]), fails the call with a distinct error so that the
//! caller can split its input. A parameter the model refuses ([`Param`]) is dropped or renamed by
//! the client and the call sent again. A content filter fails the call (not the run), with the
//! filter named. Other 4xx fail the call.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::types::ApiError;

/// Why a model call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error(
        "the provider refused the API key ({status}): {message}. Set the environment variable \
         {key_env} to a valid key (the variable is named by endpoint.api_key_env)"
    )]
    Unauthorized {
        status: u16,
        message: String,
        key_env: String,
    },
    #[error(
        "the provider's quota is used up: {message}. Add credit or raise the quota with the \
         provider, or point endpoint.base_url at another endpoint"
    )]
    QuotaExceeded { message: String },
    #[error(
        "the endpoint answered 404 Not Found for model `{model}`: {message}. Check \
         endpoint.base_url (it should end before /chat/completions) and endpoint.model"
    )]
    NotFound { model: String, message: String },
    /// No connection could be made. `cause` is a few words ("connection refused", the host
    /// name that did not resolve); `attempts` is 1 when nothing had answered in this run (the
    /// call is not retried), more when a server that answered earlier went away.
    #[error(
        "cannot reach the endpoint at {url}: {cause}{}. Is the server running, and is \
         endpoint.base_url right?",
        after_attempts(*attempts)
    )]
    Unreachable {
        url: String,
        cause: String,
        attempts: u32,
    },
    #[error("the prompt is longer than the model's context window: {message}")]
    ContextLength { message: String },
    #[error("the endpoint rejected the request ({status}): {message}")]
    BadRequest { status: u16, message: String },
    #[error(
        "the reply was cut off at the {max_tokens}-token limit even with more room; raise \
         chunking.brief_max_tokens or use a model with a larger context"
    )]
    Truncated { max_tokens: u32 },
    #[error(
        "the model used its whole reply budget ({max_tokens} tokens, {reasoning_tokens} of them \
         on hidden reasoning) and wrote nothing, even after a retry with more room; set \
         endpoint.reasoning_effort = \"low\" (or \"minimal\"), or raise chunking.brief_max_tokens \
         and chunking.notes_max_tokens"
    )]
    EmptyAtLimit {
        max_tokens: u32,
        reasoning_tokens: u64,
    },
    #[error(
        "the provider's content filter blocked this request or its reply ({filter}): {message}. \
         The article is not briefed; it is asked again on the next run. If the filter is wrong \
         about news text, review the filter settings of the deployment (Azure OpenAI) or route \
         to another model"
    )]
    ContentFiltered { filter: String, message: String },
    #[error(
        "the model repeated itself until the {max_tokens}-token limit; a larger model, or a \
         repetition penalty (endpoint.repeat_penalty, endpoint.frequency_penalty) where the \
         server has one, may help"
    )]
    Looping { max_tokens: u32 },
    #[error("the model declined to answer: {0}")]
    Refusal(String),
    #[error("gave up after {attempts} attempts; last error: {last}")]
    RetriesExhausted { attempts: u32, last: String },
    #[error(
        "the endpoint's reply is larger than {limit_mb} MB, far beyond any chat completion, and \
         was not read further: check that endpoint.base_url points at a chat-completions API"
    )]
    ReplyTooLarge { limit_mb: usize },
    #[error("cancelled before the call could finish")]
    Cancelled,
    /// Batch mode: the call went into a request file for the provider's Batch API instead of
    /// being sent; its article waits for the batch.
    #[error("waiting for a batch: the call is in a request file for the provider's Batch API")]
    Deferred,
}

/// " (after N attempts)" when a call was retried; nothing for one attempt.
fn after_attempts(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

impl LlmError {
    /// Whether this error means the whole run must stop (exit code 3): no other call can succeed.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            LlmError::Unauthorized { .. }
                | LlmError::QuotaExceeded { .. }
                | LlmError::NotFound { .. }
                | LlmError::Unreachable { .. }
        )
    }
}

/// A request parameter that some models refuse, and what the client does instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// Reasoning models accept only their default temperature: leave it out.
    Temperature,
    /// OpenAI's newer models refuse `max_tokens`: send `max_completion_tokens` instead.
    MaxTokens,
    /// Older servers refuse `max_completion_tokens`: send `max_tokens` instead.
    MaxCompletionTokens,
    /// Models that do not reason refuse `reasoning_effort`: leave it out.
    ReasoningEffort,
}

impl Param {
    /// The request field.
    pub fn field(self) -> &'static str {
        match self {
            Param::Temperature => "temperature",
            Param::MaxTokens => "max_tokens",
            Param::MaxCompletionTokens => "max_completion_tokens",
            Param::ReasoningEffort => "reasoning_effort",
        }
    }

    const ALL: [Param; 4] = [
        Param::Temperature,
        Param::MaxTokens,
        Param::MaxCompletionTokens,
        Param::ReasoningEffort,
    ];
}

/// How a non-success response should be handled.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Provider rate limit: every worker pauses (`after`, if the provider said), then retry.
    RateLimited { after: Option<Duration> },
    /// A transient fault: retry after backoff (or `after`, if the provider said). `loading`: the
    /// server is still loading the model (llama.cpp's 503), which can take minutes and is not
    /// counted against the retries.
    Retry {
        after: Option<Duration>,
        reason: String,
        loading: bool,
    },
    /// The endpoint refused the structured-output mode: retry with a simpler one.
    FormatRefused { message: String },
    /// The model refused a parameter we sent: drop or rename it, and send again.
    ParamRefused { param: Param, message: String },
    /// The prompt does not fit. `window` and `prompt` are the server's own numbers when it says
    /// them (llama.cpp, vLLM, OpenAI): the context size, and the prompt's size in its tokens.
    Context {
        message: String,
        window: Option<usize>,
        prompt: Option<usize>,
    },
    /// The call fails; the run goes on (or stops, if the error is fatal).
    Fail(LlmError),
}

/// How each server says that a prompt does not fit its context, lowercased, and whose wording it
/// is. Matched against the error's code, type and message together. The fixtures under
/// `tests/data/providers/` hold each server's real answer; a unit test checks that every entry
/// here is used by one of them.
pub const CONTEXT_WORDINGS: &[(&str, &str)] = &[
    ("OpenAI, Upstage (code)", "context_length_exceeded"),
    (
        "OpenAI, vLLM, OpenRouter, llama-cpp-python",
        "maximum context length",
    ),
    ("llama.cpp server (type)", "exceed_context_size_error"),
    ("llama.cpp server", "exceeds the available context size"),
    ("vLLM 0.18+", "context length is only"),
    ("LiteLLM proxy", "contextwindowexceedederror"),
    ("Ollama", "longer than the context length"),
];

/// The wording in `api` that says the prompt does not fit, if any.
pub(crate) fn context_wording(api: &ApiError) -> Option<&'static str> {
    let haystack = context_haystack(api);
    CONTEXT_WORDINGS
        .iter()
        .find(|(_, needle)| haystack.contains(needle))
        .map(|(_, needle)| *needle)
}

/// Where [`CONTEXT_WORDINGS`] are looked for: the error's code, type and message, lowercased.
fn context_haystack(api: &ApiError) -> String {
    format!(
        "{} {} {}",
        api.code.as_deref().unwrap_or(""),
        api.kind.as_deref().unwrap_or(""),
        api.message
    )
    .to_ascii_lowercase()
}

/// The context size and the prompt size a context error states, in the server's tokens.
fn context_numbers(api: &ApiError) -> (Option<usize>, Option<usize>) {
    static WINDOW: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"(?i)maximum context length is (\d+)|context size \((\d+) tokens\)|context window of (\d+)|context length is only (\d+)",
        )
        .expect("valid regex")
    });
    static PROMPT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"(?i)request \((\d+) tokens\)|request has (\d+) input tokens|you passed (\d+) input tokens|requested tokens \((\d+)\)|(\d+) in the messages|input \((\d+) tokens\)|messages resulted in (\d+) tokens",
        )
        .expect("valid regex")
    });
    let first = |re: &regex::Regex| {
        re.captures(&api.message).and_then(|c| {
            c.iter()
                .skip(1)
                .flatten()
                .next()
                .and_then(|m| m.as_str().parse().ok())
        })
    };
    (
        api.n_ctx.or_else(|| first(&WINDOW)),
        api.n_prompt_tokens.or_else(|| first(&PROMPT)),
    )
}

/// The parameter `api` says the model refuses, if it is one we sent (`sent` is the request
/// body). OpenAI names it in `param`; others only in the message.
pub(crate) fn refused_param(
    status: u16,
    api: &ApiError,
    sent: &serde_json::Value,
) -> Option<Param> {
    if !matches!(status, 400 | 422 | 500 | 501) {
        return None;
    }
    let lower = api.message.to_ascii_lowercase();
    const REFUSALS: [&str; 10] = [
        "unsupported parameter",
        "unsupported value",
        "not supported",
        "does not support",
        "unrecognized request argument",
        "extra inputs are not permitted",
        "extra_forbidden",
        "unknown parameter",
        "unexpected keyword",
        "unsupported_parameter",
    ];
    let refusal = REFUSALS.iter().any(|r| lower.contains(r))
        || matches!(
            api.code.as_deref(),
            Some("unsupported_parameter" | "unsupported_value")
        );
    if !refusal {
        return None;
    }
    let by_param = api
        .param
        .as_deref()
        .and_then(|p| Param::ALL.into_iter().find(|q| q.field() == p));
    // Otherwise the first parameter the message names ("'max_tokens' is not supported … Use
    // 'max_completion_tokens' instead" names the refused one first).
    let by_message = || {
        Param::ALL
            .into_iter()
            .filter_map(|q| word_at(&lower, q.field()).map(|at| (at, q)))
            .min_by_key(|(at, _)| *at)
            .map(|(_, q)| q)
    };
    by_param
        .or_else(by_message)
        .filter(|q| sent.get(q.field()).is_some())
}

/// Where `word` appears in `text` as a whole identifier (not inside a longer one).
fn word_at(text: &str, word: &str) -> Option<usize> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// Which content filter `api` says blocked the call, if any.
fn content_filter(status: u16, api: &ApiError) -> Option<String> {
    let code = api.code.as_deref().unwrap_or("");
    let lower = api.message.to_ascii_lowercase();
    if code == "content_filter" || lower.contains("content management policy") {
        return Some("content_filter".into());
    }
    if code == "content_policy_violation" || lower.contains("contentpolicyviolationerror") {
        return Some("content_policy_violation".into());
    }
    if status == 403 && api.moderation {
        return Some("moderation".into());
    }
    None
}

/// Classifies an HTTP error response. `sent` is the request body that got it.
pub(crate) fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    api: &ApiError,
    sent: &serde_json::Value,
    model: &str,
    key_env: &str,
) -> Verdict {
    let code = api.code.as_deref().unwrap_or("");
    let kind = api.kind.as_deref().unwrap_or("");
    let message = api.message.clone();
    let lower = message.to_ascii_lowercase();
    let s = status.as_u16();
    let after = retry_after(headers);

    if code == "insufficient_quota" || kind == "insufficient_quota" || s == 402 {
        return Verdict::Fail(LlmError::QuotaExceeded { message });
    }
    // OpenAI's 429 "Request too large … on tokens per min (TPM): Limit N, Requested M. The input
    // or output tokens must be reduced": one request over the whole per-minute budget, which no
    // wait can fix; smaller requests can.
    let too_large_for_tpm = s == 429 && lower.contains("request too large");
    if (s == 413 || too_large_for_tpm || context_wording(api).is_some()) && s >= 400 {
        let (window, prompt) = context_numbers(api);
        return Verdict::Context {
            message,
            window,
            prompt,
        };
    }
    if let Some(filter) = content_filter(s, api) {
        return Verdict::Fail(LlmError::ContentFiltered { filter, message });
    }
    if let Some(param) = refused_param(s, api, sent) {
        return Verdict::ParamRefused { param, message };
    }
    // Servers that cannot do structured output say so in many ways: llama-cpp-python answers a
    // json_schema request with HTTP 500 and a validation error naming response_format. A strict
    // schema validator that refuses the grammar schema's `x-guidance` key (llguidance's, which
    // hanbrief adds under json_object+schema) gets the next mode down too.
    if matches!(s, 400 | 422 | 500 | 501)
        && (api.param.as_deref() == Some("response_format")
            || lower.contains("response_format")
            || lower.contains("json_schema")
            || lower.contains("x-guidance")
            || lower.contains("response format")
            || lower.contains("structured output"))
    {
        return Verdict::FormatRefused { message };
    }
    match s {
        429 => Verdict::RateLimited {
            after: after.or_else(|| try_again_in(&message)),
        },
        401 | 403 => Verdict::Fail(LlmError::Unauthorized {
            status: s,
            message,
            key_env: key_env.to_string(),
        }),
        404 => Verdict::Fail(LlmError::NotFound {
            model: model.to_string(),
            message,
        }),
        408 | 409 => Verdict::Retry {
            after,
            reason: format!("{status}"),
            loading: false,
        },
        s if s >= 500 => Verdict::Retry {
            after,
            reason: format!("{status}: {}", crate::text::truncate(&message, 160)),
            loading: s == 503 && lower.contains("loading"),
        },
        _ => Verdict::Fail(LlmError::BadRequest { status: s, message }),
    }
}

/// "Try again in 5 seconds" in a 429's message (LiteLLM's router says when its cooldown ends
/// there, and sends no `Retry-After`).
fn try_again_in(message: &str) -> Option<Duration> {
    static RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?i)try again in (\d+(?:\.\d+)?) ?s(?:ec(?:ond)?s?)?\b")
            .expect("valid regex")
    });
    let c = RE.captures(message)?;
    let secs: f64 = c[1].parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| self::secs(secs))
}

/// Full-jitter exponential backoff: a random delay up to `min(max, base * 2^attempt)`.
/// `attempt` counts from 0 (the delay before the first retry).
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let ceiling = base
        .checked_mul(1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max);
    ceiling.mul_f64(fastrand::f64())
}

/// The provider's "retry after": `retry-after-ms` (OpenAI, milliseconds), else `retry-after`
/// (seconds, or an HTTP date).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(secs(ms / 1000.0));
    }
    let value = get("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| self::secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = when.signed_duration_since(chrono::Utc::now());
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// Parses OpenAI's reset durations: `1s`, `6m0s`, `20ms`, `1h2m3.5s`.
pub fn parse_reset(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| self::secs(secs));
    }
    let mut total = 0f64;
    let mut number = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let n: f64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            'h' => 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0.001
            }
            'm' => 60.0,
            's' => 1.0,
            _ => return None,
        };
        total += n * unit;
    }
    if !number.is_empty() {
        return None;
    }
    Some(secs(total))
}

/// The longest wait a header can say: a value past it (or absurd, `1e20`) is clamped.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Seconds from a header value, clamped to [`MAX_WAIT`] (`Duration::from_secs_f64` panics on
/// values that do not fit, and headers are not ours to trust).
fn secs(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0))
        .unwrap_or(MAX_WAIT)
        .min(MAX_WAIT)
}

/// Removes anything that looks like an API key from a message: the key itself, and `sk-…`
/// tokens (providers echo a masked key in 401 messages).
pub fn redact(message: &str, key: Option<&str>) -> String {
    static SK: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"sk-[A-Za-z0-9_\-*.]{4,}").expect("valid regex")
    });
    let mut out = message.to_string();
    if let Some(key) = key.filter(|k| k.len() >= 4) {
        out = out.replace(key, "[redacted]");
    }
    SK.replace_all(&out, "sk-[redacted]").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn verdict(status: u16, code: Option<&str>, message: &str) -> Verdict {
        let api = ApiError {
            message: message.to_string(),
            code: code.map(str::to_string),
            ..Default::default()
        };
        classify(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            &api,
            &serde_json::json!({"temperature": 0.2, "max_tokens": 10}),
            "m",
            "OPENAI_API_KEY",
        )
    }

    #[test]
    fn classification_follows_the_rules() {
        assert!(matches!(
            verdict(429, None, "slow down"),
            Verdict::RateLimited { .. }
        ));
        assert!(matches!(
            verdict(429, Some("insufficient_quota"), "quota"),
            Verdict::Fail(LlmError::QuotaExceeded { .. })
        ));
        assert!(matches!(verdict(500, None, "boom"), Verdict::Retry { .. }));
        assert!(matches!(verdict(503, None, ""), Verdict::Retry { .. }));
        assert!(matches!(verdict(408, None, ""), Verdict::Retry { .. }));
        assert!(matches!(verdict(409, None, ""), Verdict::Retry { .. }));
        assert!(matches!(
            verdict(400, Some("context_length_exceeded"), "too long"),
            Verdict::Context { .. }
        ));
        assert!(matches!(
            verdict(
                500,
                None,
                "1 validation error: response_format.json_schema unsupported"
            ),
            Verdict::FormatRefused { .. }
        ));
        assert!(matches!(
            verdict(400, None, "Unrecognized schema keyword: x-guidance"),
            Verdict::FormatRefused { .. }
        ));
        assert!(matches!(
            verdict(400, None, "bad"),
            Verdict::Fail(LlmError::BadRequest { status: 400, .. })
        ));
        for s in [401, 403] {
            let Verdict::Fail(e) = verdict(s, None, "no") else {
                panic!()
            };
            assert!(e.is_fatal());
            assert!(e.to_string().contains("OPENAI_API_KEY"));
        }
        let Verdict::Fail(e) = verdict(404, None, "model not found") else {
            panic!()
        };
        assert!(e.is_fatal());
    }

    /// Every server's context error in `tests/data/providers` is recognised, and every wording
    /// in [`CONTEXT_WORDINGS`] is some server's (no guessed patterns).
    #[test]
    fn context_wordings_are_the_servers_own() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/providers");
        let mut used = std::collections::BTreeSet::new();
        let mut context_fixtures = 0;
        for server in std::fs::read_dir(&root).unwrap() {
            let server = server.unwrap().path();
            if !server.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(server).unwrap() {
                let path = file.unwrap().path();
                let fixture: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                let mut recognised = false;
                for reply in fixture["replies"].as_array().into_iter().flatten() {
                    // Placeholders stand for numbers; any will do here.
                    let body = reply["body"]
                        .to_string()
                        .replace("{{prompt_tokens}}", "5000")
                        .replace("{{budget}}", "2000")
                        .replace("{{total}}", "7000");
                    let api = super::super::types::parse_error(&body);
                    let haystack = context_haystack(&api);
                    for (_, needle) in CONTEXT_WORDINGS {
                        if haystack.contains(needle) {
                            used.insert(*needle);
                        }
                    }
                    let status =
                        StatusCode::from_u16(reply["status"].as_u64().unwrap_or(200) as u16)
                            .unwrap();
                    recognised |= matches!(
                        classify(
                            status,
                            &HeaderMap::new(),
                            &api,
                            &serde_json::json!({}),
                            "m",
                            "K"
                        ),
                        Verdict::Context { .. }
                    );
                }
                if fixture["behaviour"] == "context error" {
                    context_fixtures += 1;
                    assert!(recognised, "{}: not recognised", path.display());
                }
            }
        }
        assert!(context_fixtures >= 6);
        for (server, needle) in CONTEXT_WORDINGS {
            assert!(
                used.contains(needle),
                "{needle:?} ({server}) is in no fixture: a guessed wording"
            );
        }
    }

    #[test]
    fn refused_parameters_are_named_by_param_or_message() {
        let sent =
            serde_json::json!({"temperature": 0.2, "max_tokens": 100, "reasoning_effort": "low"});
        let api = |message: &str, param: Option<&str>| ApiError {
            message: message.to_string(),
            param: param.map(str::to_string),
            ..Default::default()
        };
        let refused = |a: &ApiError| refused_param(400, a, &sent);
        assert_eq!(
            refused(&api(
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
                None
            )),
            Some(Param::MaxTokens)
        );
        assert_eq!(
            refused(&api(
                "Unsupported value: 'temperature' does not support 0.2",
                Some("temperature")
            )),
            Some(Param::Temperature)
        );
        assert_eq!(
            refused(&api(
                "Unrecognized request argument supplied: reasoning_effort",
                None
            )),
            Some(Param::ReasoningEffort)
        );
        // Not a refusal: a value out of range is the user's to fix.
        assert_eq!(
            refused(&api("Invalid value for 'temperature': 3", None)),
            None
        );
        // Refusing what was not sent teaches nothing.
        assert_eq!(
            refused(&api("Unsupported parameter: 'max_completion_tokens'", None)),
            None
        );
        assert_eq!(
            refused_param(429, &api("unsupported parameter temperature", None), &sent),
            None
        );
    }

    #[test]
    fn numbers_in_context_errors_and_waits_in_429_messages() {
        let api = |message: &str| ApiError {
            message: message.to_string(),
            ..Default::default()
        };
        // (message, (the window, the prompt's tokens)) as each server words it.
        for (message, numbers) in [
            (
                "request (9000 tokens) exceeds the available context size (4096 tokens), try increasing it",
                (Some(4096), Some(9000)),
            ),
            (
                "This model's maximum context length is 4097 tokens. However, your messages resulted in 5203 tokens.",
                (Some(4097), Some(5203)),
            ),
            (
                "'max_tokens' or 'max_completion_tokens' is too large: 2000. This model's maximum context length is 4096 tokens and your request has 2850 input tokens (2000 > 4096 - 2850).",
                (Some(4096), Some(2850)),
            ),
        ] {
            assert_eq!(context_numbers(&api(message)), numbers, "{message}");
        }
        assert_eq!(
            try_again_in(
                "No deployments available for selected model, Try again in 2.0 seconds. Passed model=x"
            ),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            try_again_in("No deployments available for selected model."),
            None
        );
        // (status, code, message, what it must be taken for): a 429 that no wait can cure is a
        // context error, not a rate limit.
        type Case = (
            u16,
            Option<&'static str>,
            &'static str,
            fn(&Verdict) -> bool,
        );
        let cases: [Case; 6] = [
            (
                429,
                Some("rate_limit_exceeded"),
                "Request too large for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Requested 30601. The input or output tokens must be reduced in order to run successfully.",
                |v| matches!(v, Verdict::Context { .. }),
            ),
            (
                429,
                Some("rate_limit_exceeded"),
                "Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29000, Requested 1500.",
                |v| matches!(v, Verdict::RateLimited { .. }),
            ),
            (402, None, "Insufficient credits", |v| {
                matches!(v, Verdict::Fail(LlmError::QuotaExceeded { .. }))
            }),
            (
                400,
                Some("content_filter"),
                "The response was filtered",
                |v| matches!(v, Verdict::Fail(LlmError::ContentFiltered { .. })),
            ),
            (503, None, "Loading model", |v| {
                matches!(v, Verdict::Retry { loading: true, .. })
            }),
            (503, None, "upstream gone", |v| {
                matches!(v, Verdict::Retry { loading: false, .. })
            }),
        ];
        for (status, code, message, expected) in cases {
            let v = verdict(status, code, message);
            assert!(expected(&v), "{status} {message}: {v:?}");
        }
    }

    #[test]
    fn retry_after_headers() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2")])),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&headers(&[
                ("retry-after-ms", "1500"),
                ("retry-after", "9")
            ])),
            Some(Duration::from_millis(1500))
        );
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let d = retry_after(&headers(&[("retry-after", &soon)])).unwrap();
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30));
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
        // Absurd values are clamped, never a panic.
        assert_eq!(
            retry_after(&headers(&[("retry-after", "1e20")])),
            Some(MAX_WAIT)
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "1e300")])),
            Some(MAX_WAIT)
        );
        assert_eq!(parse_reset("99999999999999999999h"), Some(MAX_WAIT));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn reset_durations() {
        assert_eq!(parse_reset("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_reset("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_reset("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(
            parse_reset("1h2m3.5s"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(parse_reset("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_reset("x"), None);
        assert_eq!(parse_reset("5"), Some(Duration::from_secs(5)));
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for attempt in 0..40 {
            let d = backoff(attempt, base, max);
            assert!(d <= max);
            assert!(d <= base * 2u32.saturating_pow(attempt.min(20)));
        }
    }

    #[test]
    fn redaction_hides_keys() {
        let msg = "Incorrect API key provided: sk-proj-abc***wxyz. You can find your key at …";
        assert!(!redact(msg, None).contains("abc"));
        assert_eq!(
            redact("key secret123 here", Some("secret123")),
            "key [redacted] here"
        );
    }
}
