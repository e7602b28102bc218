//! hanbrief turns folders of (mostly Korean) news articles into short, faithful Korean-English
//! briefs with any OpenAI-compatible chat-completions endpoint.
//!
//! ```text
//!  folder ──ingest──▶ Article ──clean──▶ CleanArticle ──chunk──▶ [Chunk]
//!  (txt, md, html;      (bytes → text,      (body only: clutter     (≤ budget tokens,
//!   utf-8/16, cp949)     encoding, hash)      removed)               sentence boundaries)
//!                                                                         │
//!         ┌──────────── fits one call? ─────────────────────────────────┤
//!         │ yes: one "brief" call                                   no: map (chunk → notes)
//!         ▼                                                              ▼
//!       BriefContent ◀── reduce (collapse notes in a tree while they overflow) ◀── notes
//!         │
//!       check (figures and names vs the source) ──▶ write (md + json, atomic) ──▶ RunReport
//! ```
//!
//! Every model call goes through one [`llm::ChatClient`], which owns the shared rate limiter
//! ([`ratelimit`]), retries, structured-output fallbacks, usage accounting and the cache. The
//! stages are plain functions of their inputs (plus that client), so each is tested alone;
//! [`pipeline`] strings them together for a run.

pub mod batch;
pub mod brief;
pub mod check;
pub mod chunk;
pub mod clean;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod digest;
pub mod error;
pub mod eval;
pub mod figures;
pub mod ingest;
pub mod llm;
pub(crate) mod mock;
pub(crate) mod names;
pub(crate) mod output;
pub mod pipeline;
pub mod pricing;
pub mod progress;
pub mod prompt;
pub mod ratelimit;
pub mod render;
pub mod report;
pub mod schedule;
pub mod select;
pub mod store;
pub mod summarize;
pub(crate) mod text;
pub mod tokens;
