//! Talking to an OpenAI-compatible chat-completions endpoint.
//!
//! - [`types`]: the request and reply types the pipeline uses, and the tolerant wire parsing;
//! - [`retry`]: what to do about each failure (retry, pause everyone, fail, stop the run), the
//!   backoff, and the provider's retry headers;
//! - [`quirks`]: what each server refuses or says differently, learned per endpoint and model;
//! - [`identity`]: which model answers (the endpoint and what its `/models` says), mixed into
//!   cache keys and settings fingerprints when it is not the one an output folder saw first;
//! - [`sizing`]: reply budgets sized to the replies seen, per kind of reply;
//! - [`latency`]: how long an honest call takes here, and when a call is taken for hung;
//! - [`client`]: [`ChatClient`], the single door every call goes through;
//! - [`batch`]: the provider's Batch API (files and batches), and the hook through which the
//!   client defers calls to a batch.

pub mod batch;
pub mod client;
pub mod identity;
pub mod latency;
pub mod quirks;
pub mod retry;
pub mod sizing;
pub mod types;

pub use client::{ApiKey, CallCache, ChatClient, ClientStats, StatsSnapshot};
pub use retry::LlmError;
pub use types::{
    ChatReply, ChatRequest, FinishReason, FormatInstructions, Message, Purpose, ReplyFormat, Role,
    Usage,
};
