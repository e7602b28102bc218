//! Wire types of the chat-completions API, and the request/reply types the rest of the crate
//! uses instead of them.
//!
//! Replies are parsed tolerantly, because "OpenAI-compatible" servers differ: `usage` may be
//! missing, `content` may be `null` or a list of parts, fields may be added or dropped. What is
//! required is only what we use: one choice with text.

use std::fmt;

use serde::{Deserialize, Serialize};

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
    },
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
    /// The reply budget. The client may raise it (up to the context window) when a reply is cut
    /// short by the limit.
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
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, rhs: Usage) {
        self.prompt_tokens += rhs.prompt_tokens;
        self.completion_tokens += rhs.completion_tokens;
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
}

// ---------------------------------------------------------------------------------------------
// Wire format.

#[derive(Debug, Deserialize)]
pub(crate) struct WireResponse {
    #[serde(default)]
    pub choices: Vec<WireChoice>,
    pub usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireChoice {
    pub message: Option<WireMessage>,
    /// Legacy completions-style servers put the text here.
    pub text: Option<String>,
    pub finish_reason: Option<String>,
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
}

/// Parses a 2xx body. Errors describe what is wrong with the body (for the retry log).
pub(crate) fn parse_reply(body: &str) -> Result<ParsedReply, String> {
    let wire: WireResponse =
        serde_json::from_str(body).map_err(|e| format!("reply body is not valid JSON ({e})"))?;
    let choice = wire
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| "reply has no choices".to_string())?;
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
    if content.trim().is_empty() && finish_reason != FinishReason::Length {
        return Err("reply has no content".to_string());
    }
    let usage = wire
        .usage
        .and_then(|u| match (u.prompt_tokens, u.completion_tokens) {
            (None, None) => None,
            (p, c) => Some(Usage {
                prompt_tokens: p.unwrap_or(0),
                completion_tokens: c.unwrap_or(0),
            }),
        });
    Ok(ParsedReply::Reply {
        content,
        finish_reason,
        usage,
    })
}

/// The error object of an error body: `{"error": {"message", "type", "code"}}`, or whatever
/// looks like it.
#[derive(Debug, Default, Clone)]
pub(crate) struct ApiError {
    pub message: String,
    pub kind: Option<String>,
    pub code: Option<String>,
}

pub(crate) fn parse_error(body: &str) -> ApiError {
    let value: serde_json::Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) => {
            return ApiError {
                message: one_line(body),
                ..Default::default()
            };
        }
    };
    let err = value.get("error").unwrap_or(&value);
    let text = |v: Option<&serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let message = text(err.get("message"))
        .or_else(|| text(err.get("detail")))
        .or_else(|| text(value.get("detail")))
        .or_else(|| err.as_str().map(str::to_string))
        .unwrap_or_else(|| body.to_string());
    ApiError {
        message: one_line(&message),
        kind: text(err.get("type")),
        code: text(err.get("code")),
    }
}

/// A provider message as one log-friendly line of at most 300 characters: some servers put a
/// whole Python traceback or an HTML page in the error body.
fn one_line(message: &str) -> String {
    const MAX: usize = 300;
    let mut out = String::with_capacity(message.len().min(MAX + 3));
    for (i, word) in message.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() > MAX {
            out = out.chars().take(MAX).collect();
            out.push('…');
            break;
        }
    }
    out
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
        let long = format!("<html>{}</html>", "x ".repeat(1000));
        let msg = parse_error(&long).message;
        assert_eq!(msg.chars().count(), 301);
        assert!(msg.ends_with('…'));
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
                        completion_tokens: 2
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
