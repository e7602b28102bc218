//! Error types shared across the crate, and the process exit codes they map to.
//!
//! Each domain has its own `thiserror` enum next to its code (`ConfigError` in `config.rs`,
//! `LlmError` in `llm/`, …); this module holds the cross-cutting pieces: the exit codes and the
//! per-article error that the pipeline records in the run report instead of stopping the run.

use std::path::PathBuf;

/// Every article was written (or skipped for a reason, or unchanged).
pub const EXIT_OK: u8 = 0;
/// Some articles failed; the others were written and the report says why.
pub const EXIT_ARTICLES_FAILED: u8 = 1;
/// The command line or the configuration is wrong.
pub const EXIT_USAGE: u8 = 2;
/// The provider refused us: bad key, no quota, endpoint unreachable.
pub const EXIT_PROVIDER: u8 = 3;
/// Interrupted by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Why one article could not be briefed. Recorded in the run report; never stops the run.
#[derive(Debug, thiserror::Error)]
pub enum ArticleError {
    /// The file could not be read from disk.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A model call failed for this article (after retries where retrying made sense).
    #[error("{0}")]
    Llm(#[from] crate::llm::LlmError),
    /// The model's reply could not be turned into a brief (or a digest), even after one repair
    /// attempt.
    #[error("the model's reply is not a valid {what} after a repair attempt: {problem}")]
    InvalidReply { what: &'static str, problem: String },
    /// The brief could not be written to the output folder.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A prompt template failed to render.
    #[error("{0}")]
    Prompt(#[from] crate::prompt::PromptError),
}
