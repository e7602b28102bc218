//! Wire types of the chat-completions API, and the request/reply types the rest of the crate
//! uses instead of them.
//!
//! Replies are parsed tolerantly, because "OpenAI-compatible" servers differ: `usage` may be
//! missing, `content` may be `null` or a list of parts, fields may be added or dropped. What is
//! required is only what we use: one choice with text.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::text::one_line;

/// A provider's error message is kept as one log-friendly line of at most this many characters:
/// some servers put a whole Python traceback or an HTML page in the error body.
const MESSAGE_CHARS: usize = 300;

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Message {
        Message {
            role: Role::System,
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Message {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Message {
        Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// What shape of reply a request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyFormat {
    /// Free text (notes).
    Text,
    /// A JSON object. `schema` is the strict schema for endpoints that enforce one (OpenAI's
    /// structured outputs accept no length keywords); `bounded` adds `maxItems`/`maxLength`
    /// for grammar-constrained servers (llama.cpp), where they stop a small model from writing
    /// forever.
    Json {
        name: &'static str,
        schema: serde_json::Value,
        bounded: serde_json::Value,
        /// What the model is told about the fields; the client appends the variant the
        /// endpoint's output mode calls for to the first user message. Shared: every request
        /// of a run carries the same.
        instructions: std::sync::Arc<FormatInstructions>,
    },
}

/// The words that describe a reply's fields, in two variants: the schema enforces the shape
/// (`json_schema`, or a grammar from `json_object` with a schema), so the words need only say
/// what goes in each field; or nothing enforces it, so they also spell out the shape. Sending the
/// shape in words beside a schema that enforces it says the same thing twice, and OpenAI bills
/// the schema as prompt tokens. Both empty: nothing is appended (the prompt says it all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormatInstructions {
    pub enforced: String,
    pub free: String,
}

/// Which kind of step a call serves; for logs, stats and the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Brief,
    Map,
    Collapse,
    Reduce,
    Repair,
    DigestMap,
    Digest,
    Ping,
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Purpose::Brief => "brief",
            Purpose::Map => "map",
            Purpose::Collapse => "collapse",
            Purpose::Reduce => "reduce",
            Purpose::Repair => "repair",
            Purpose::DigestMap => "digest-map",
            Purpose::Digest => "digest",
            Purpose::Ping => "ping",
        };
        f.write_str(s)
    }
}

/// A request as the pipeline states it; the client turns it into the endpoint's wire format.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    /// The most reply tokens the caller allows (and part of the cache key). The client sends less
    /// when the replies seen so far are shorter ([`super::sizing`]), asks again with all of it
    /// when a reply is cut at the smaller budget, and may go past it (up to the context window)
    /// once when a reply is cut even then.
    pub max_tokens: u32,
    pub format: ReplyFormat,
    pub purpose: Purpose,
    /// The caller can use a reply cut at the token limit (notes, not a brief): after one retry
    /// with more room, such a reply comes back with `FinishReason::Length` instead of an error,
    /// and the caller must say that it was cut.
    pub partial_ok: bool,
    /// Tokens of the messages as the caller already counted them (our tokenizer, framing
    /// included); the client counts them itself when `None`. Tokenizing is most of a run's CPU,
    /// so an article's text is not tokenized twice.
    pub counted: Option<usize>,
    /// How many units of input the reply covers, for replies that grow with their input (the
    /// stories of a digest); 1 for everything else. The client sizes the reply budget it sends
    /// from the replies seen per unit ([`super::sizing`]); `max_tokens` stays the ceiling.
    pub units: u32,
}

impl ChatRequest {
    /// The smallest call that shows the endpoint answers (`config check --ping`, and the client's own
    /// tests): a one-word plain-text reply in at most 16 tokens.
    pub fn ping() -> Self {
        ChatRequest {
            messages: vec![Message::user("Reply with the single word: OK")],
            max_tokens: 16,
            format: ReplyFormat::Text,
            purpose: Purpose::Ping,
            partial_ok: false,
            counted: None,
            units: 1,
        }
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ContentFilter,
    Other(String),
}

impl FinishReason {
    fn parse(s: Option<&str>) -> FinishReason {
        match s {
            None | Some("stop") | Some("eos") | Some("end_turn") | Some("tool_calls") => {
                FinishReason::Stop
            }
            Some("length") | Some("max_tokens") => FinishReason::Length,
            Some("content_filter") => FinishReason::ContentFilter,
            Some(other) => FinishReason::Other(other.to_string()),
        }
    }
}

/// Tokens a call consumed, as the server reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Of `completion_tokens`, those a reasoning model spent thinking (never shown). Absent in
    /// replies cached before it was recorded, hence the default.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reasoning_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, rhs: Usage) {
        self.prompt_tokens += rhs.prompt_tokens;
        self.completion_tokens += rhs.completion_tokens;
        self.reasoning_tokens += rhs.reasoning_tokens;
    }
}

/// A model's reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatReply {
    pub content: String,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    /// Whether `usage` was reported by the server (some servers omit it; we then estimate).
    pub usage_reported: bool,
    /// Served from the cache: no call was made.
    #[serde(skip)]
    pub cached: bool,
    /// Made through the provider's Batch API (billed at batch prices).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub batch: bool,
}

// ---------------------------------------------------------------------------------------------
// Wire format.

#[derive(Debug, Deserialize)]
pub(crate) struct WireResponse {
    #[serde(default)]
    pub choices: Vec<WireChoice>,
    pub usage: Option<WireUsage>,
    /// Gateways (OpenRouter) put an error here in an HTTP 200 when the model failed after the
    /// request was accepted.
    pub error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireChoice {
    pub message: Option<WireMessage>,
    /// Legacy completions-style servers put the text here.
    pub text: Option<String>,
    pub finish_reason: Option<String>,
    /// OpenRouter: a choice that ended with `finish_reason: "error"` says why here.
    pub error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireMessage {
    pub content: Option<WireContent>,
    pub refusal: Option<String>,
}

/// `content` is a string, or (some servers) a list of typed parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum WireContent {
    Text(String),
    Parts(Vec<WirePart>),
}

#[derive(Debug, Deserialize)]
pub(crate) struct WirePart {
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens_details: Option<WireCompletionDetails>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireCompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

/// A successfully parsed reply body, before the client decides what to do with it.
#[derive(Debug)]
pub(crate) enum ParsedReply {
    Reply {
        content: String,
        finish_reason: FinishReason,
        usage: Option<Usage>,
    },
    /// The model declined to answer (`message.refusal`).
    Refusal(String),
    /// An HTTP 200 whose body is an error (OpenRouter: "any error occurred while the LLM is
    /// producing the output will be emitted in the response body"); `status` is the error's own
    /// code when it is an HTTP status, else 502.
    Error { status: u16, api: ApiError },
}

/// Parses a 2xx body. Errors describe what is wrong with the body (for the retry log).
pub(crate) fn parse_reply(body: &str) -> Result<ParsedReply, String> {
    let wire: WireResponse = serde_json::from_str(body).map_err(|e| {
        if looks_like_html(body) {
            format!("reply is an HTML page, not JSON: {}", html_text(body))
        } else {
            format!("reply body is not valid JSON ({e})")
        }
    })?;
    if wire.choices.is_empty()
        && let Some(error) = &wire.error
    {
        return Ok(error_inside(error));
    }
    let choice = wire
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| "reply has no choices".to_string())?;
    if choice.finish_reason.as_deref() == Some("error")
        && let Some(error) = choice.error.as_ref().or(wire.error.as_ref())
    {
        return Ok(error_inside(error));
    }
    let finish_reason = FinishReason::parse(choice.finish_reason.as_deref());
    let content = match (choice.message, choice.text) {
        (Some(m), _) if m.refusal.as_deref().is_some_and(|r| !r.is_empty()) => {
            return Ok(ParsedReply::Refusal(m.refusal.unwrap_or_default()));
        }
        (
            Some(WireMessage {
                content: Some(WireContent::Text(t)),
                ..
            }),
            _,
        ) => t,
        (
            Some(WireMessage {
                content: Some(WireContent::Parts(parts)),
                ..
            }),
            _,
        ) => parts
            .into_iter()
            .filter_map(|p| p.text)
            .collect::<Vec<_>>()
            .join(""),
        (_, Some(text)) => text,
        _ => String::new(),
    };
    // An empty reply cut at the limit (a reasoning model that spent its budget thinking) and a
    // filtered one are the client's to judge; any other empty reply is a server fault.
    if content.trim().is_empty()
        && !matches!(
            finish_reason,
            FinishReason::Length | FinishReason::ContentFilter
        )
    {
        return Err("reply has no content".to_string());
    }
    let usage = wire
        .usage
        .and_then(|u| match (u.prompt_tokens, u.completion_tokens) {
            (None, None) => None,
            (p, c) => Some(Usage {
                prompt_tokens: p.unwrap_or(0),
                completion_tokens: c.unwrap_or(0),
                reasoning_tokens: u
                    .completion_tokens_details
                    .and_then(|d| d.reasoning_tokens)
                    .unwrap_or(0),
            }),
        });
    Ok(ParsedReply::Reply {
        content,
        finish_reason,
        usage,
    })
}

/// The error object of an error body: `{"error": {"message", "type", "param", "code"}}`, or
/// whatever looks like it, with what some servers add to it.
#[derive(Debug, Default, Clone)]
pub(crate) struct ApiError {
    pub message: String,
    pub kind: Option<String>,
    pub code: Option<String>,
    /// The request field the error is about (OpenAI, Upstage, vLLM): `temperature`, `max_tokens`…
    pub param: Option<String>,
    /// llama.cpp's `exceed_context_size_error` carries the slot's context size and the prompt's
    /// size as numbers beside the message.
    pub n_ctx: Option<usize>,
    pub n_prompt_tokens: Option<usize>,
    /// OpenRouter's moderation error: `error.metadata` names the flagged input and the reasons.
    pub moderation: bool,
}

/// Parses an error body (any status). Never fails: a body that is not JSON becomes the message,
/// and an HTML page becomes its title or its text, on one line.
pub(crate) fn parse_error(body: &str) -> ApiError {
    let value: serde_json::Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) => {
            let message = if looks_like_html(body) {
                html_text(body)
            } else {
                one_line(body, MESSAGE_CHARS)
            };
            return ApiError {
                message,
                ..Default::default()
            };
        }
    };
    api_error(value.get("error").unwrap_or(&value), &value, body)
}

fn api_error(err: &serde_json::Value, whole: &serde_json::Value, body: &str) -> ApiError {
    let text = |v: Option<&serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let number = |v: Option<&serde_json::Value>| v.and_then(serde_json::Value::as_u64);
    let message = text(err.get("message"))
        .or_else(|| text(err.get("detail")))
        .or_else(|| text(whole.get("detail")))
        .or_else(|| err.as_str().map(str::to_string))
        .unwrap_or_else(|| body.to_string());
    let metadata = err.get("metadata");
    ApiError {
        message: one_line(&message, MESSAGE_CHARS),
        kind: text(err.get("type")),
        code: text(err.get("code")),
        param: text(err.get("param")),
        n_ctx: number(err.get("n_ctx")).map(|n| n as usize),
        n_prompt_tokens: number(err.get("n_prompt_tokens")).map(|n| n as usize),
        moderation: metadata
            .is_some_and(|m| m.get("flagged_input").is_some() || m.get("reasons").is_some()),
    }
}

/// An error inside an HTTP 200 body, with the status it stands for.
fn error_inside(error: &serde_json::Value) -> ParsedReply {
    let api = api_error(error, error, &error.to_string());
    let status = error
        .get("code")
        .and_then(|c| {
            c.as_u64()
                .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
        })
        .filter(|c| (400..600).contains(c))
        .unwrap_or(502) as u16;
    ParsedReply::Error { status, api }
}

fn looks_like_html(body: &str) -> bool {
    let head: String = body
        .trim_start()
        .chars()
        .take(64)
        .collect::<String>()
        .to_ascii_lowercase();
    head.starts_with("<!doctype html") || head.starts_with("<html") || head.starts_with("<head")
}

/// The title of an HTML error page (proxies, load balancers, captive portals), else its text,
/// as one bounded line.
fn html_text(body: &str) -> String {
    static TITLE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?is)<title[^>]*>(.*?)</title>").expect("valid regex")
    });
    static TAG: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?is)<(script|style)[^>]*>.*?</(script|style)>|<[^>]*>")
            .expect("valid regex")
    });
    let text = match TITLE.captures(body) {
        Some(c) if !c[1].trim().is_empty() => c[1].to_string(),
        _ => TAG.replace_all(body, " ").into_owned(),
    };
    format!("HTML page: {}", one_line(&text, MESSAGE_CHARS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_become_one_bounded_line() {
        let body = r#"{"error":{"message":"1 validation error:\n  {'type': 'literal_error'}\n\n  File \"app.py\", line 376\n    POST /v1/chat/completions","code":400}}"#;
        let err = parse_error(body);
        assert_eq!(
            err.message,
            "1 validation error: {'type': 'literal_error'} File \"app.py\", line 376 POST /v1/chat/completions"
        );
        assert_eq!(err.code.as_deref(), Some("400"));
        let long = format!("upstream said {}", "x ".repeat(1000));
        let msg = parse_error(&long).message;
        assert_eq!(msg.chars().count(), 301);
        assert!(msg.ends_with('…'));
    }

    #[test]
    fn html_error_pages_become_their_title() {
        let page = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title>\n<style>body{}</style></head>\n<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>";
        assert_eq!(parse_error(page).message, "HTML page: 502 Bad Gateway");
        let untitled =
            "<html><body><script>var x = 1;</script><p>Service\n  unavailable</p></body></html>";
        assert_eq!(
            parse_error(untitled).message,
            "HTML page: Service unavailable"
        );
        let err = parse_reply(page).unwrap_err();
        assert!(err.contains("HTML page: 502 Bad Gateway"), "{err}");
    }

    #[test]
    fn errors_inside_a_200_are_errors() {
        // OpenRouter: the error object in place of the choices.
        let body = r#"{"error":{"message":"Provider returned error","code":502,"metadata":{"raw":"boom","provider_name":"X"}},"user_id":"u"}"#;
        match parse_reply(body).unwrap() {
            ParsedReply::Error { status, api } => {
                assert_eq!(status, 502);
                assert_eq!(api.message, "Provider returned error");
            }
            other => panic!("{other:?}"),
        }
        // A choice that ended in an error.
        let body = r#"{"choices":[{"message":{"content":""},"finish_reason":"error","error":{"code":"429","message":"slow down"}}]}"#;
        assert!(matches!(
            parse_reply(body).unwrap(),
            ParsedReply::Error { status: 429, .. }
        ));
        // A code that is not an HTTP status stands for 502.
        let body = r#"{"error":{"message":"x","code":"server_error"}}"#;
        assert!(matches!(
            parse_reply(body).unwrap(),
            ParsedReply::Error { status: 502, .. }
        ));
    }

    #[test]
    fn reasoning_tokens_and_error_details_are_read() {
        let body = r#"{"choices":[{"message":{"content":""},"finish_reason":"length"}],"usage":{"prompt_tokens":100,"completion_tokens":2000,"completion_tokens_details":{"reasoning_tokens":2000}}}"#;
        match parse_reply(body).unwrap() {
            ParsedReply::Reply { usage, .. } => {
                assert_eq!(usage.unwrap().reasoning_tokens, 2000)
            }
            other => panic!("{other:?}"),
        }
        let e = parse_error(
            r#"{"error":{"code":400,"message":"request (9000 tokens) exceeds the available context size (4096 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":9000,"n_ctx":4096}}"#,
        );
        assert_eq!((e.n_ctx, e.n_prompt_tokens), (Some(4096), Some(9000)));
        let e = parse_error(
            r#"{"error":{"message":"Unsupported parameter","type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}}"#,
        );
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        let e = parse_error(
            r#"{"error":{"code":403,"message":"flagged","metadata":{"reasons":["x"],"flagged_input":"…","provider_name":null,"model_slug":"m"}}}"#,
        );
        assert!(e.moderation);
    }

    #[test]
    fn parses_a_normal_reply() {
        let body = r#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"안녕"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12}}"#;
        match parse_reply(body).unwrap() {
            ParsedReply::Reply {
                content,
                finish_reason,
                usage,
            } => {
                assert_eq!(content, "안녕");
                assert_eq!(finish_reason, FinishReason::Stop);
                assert_eq!(
                    usage,
                    Some(Usage {
                        prompt_tokens: 10,
                        completion_tokens: 2,
                        reasoning_tokens: 0,
                    })
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tolerates_missing_usage_parts_and_extra_fields() {
        let body = r#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},"finish_reason":"length","logprobs":null}],"system_fingerprint":"z"}"#;
        match parse_reply(body).unwrap() {
            ParsedReply::Reply {
                content,
                finish_reason,
                usage,
            } => {
                assert_eq!(content, "ab");
                assert_eq!(finish_reason, FinishReason::Length);
                assert_eq!(usage, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn null_content_is_an_error_and_refusals_are_recognised() {
        let err =
            parse_reply(r#"{"choices":[{"message":{"content":null},"finish_reason":"stop"}]}"#)
                .unwrap_err();
        assert!(err.contains("no content"));
        assert!(
            parse_reply("{\"choices\": [")
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(matches!(
            parse_reply(r#"{"choices":[{"message":{"content":null,"refusal":"no"}}]}"#).unwrap(),
            ParsedReply::Refusal(r) if r == "no"
        ));
    }

    #[test]
    fn parses_error_bodies_of_several_shapes() {
        let e = parse_error(
            r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
        );
        assert_eq!(e.code.as_deref(), Some("insufficient_quota"));
        let e = parse_error(r#"{"error":{"message":"too long","code":400}}"#);
        assert_eq!(e.code.as_deref(), Some("400"));
        let e = parse_error(r#"{"detail":"Not Found"}"#);
        assert_eq!(e.message, "Not Found");
        let e = parse_error("upstream timed out");
        assert_eq!(e.message, "upstream timed out");
    }
}
