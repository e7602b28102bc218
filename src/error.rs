//! Error types shared across the crate, and the process exit codes they map to.
//!
//! Each domain has its own `thiserror` enum next to its code (`ConfigError` in `config.rs`,
//! `LlmError` in `llm/`, …); this module holds the cross-cutting pieces: the exit codes, which
//! error that stops a command maps to which of them ([`exit_code`]), and the per-article error
//! that the pipeline records in the run report instead of stopping the run.

use std::path::PathBuf;

/// Every article was written (or skipped for a reason, or unchanged).
pub const EXIT_OK: u8 = 0;
/// Some articles failed; the others were written and the report says why.
pub const EXIT_ARTICLES_FAILED: u8 = 1;
/// `hanbrief eval`: a quality threshold (`--min-coverage`, `--max-unsupported`, …) was missed.
/// The same code as failed articles: the command ran, and its result is not good enough.
pub const EXIT_QUALITY: u8 = 1;
/// The command line or the configuration is wrong.
pub const EXIT_USAGE: u8 = 2;
/// The provider refused us: bad key, no quota, endpoint unreachable.
pub const EXIT_PROVIDER: u8 = 3;
/// Interrupted by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;
/// hanbrief could not finish its own work: writing the run report, the state store or another
/// output failed (disk full, permissions, a damaged store), or something went wrong inside
/// hanbrief. Nothing in the command line would fix it; briefs already written are kept.
pub const EXIT_INTERNAL: u8 = 4;

/// A problem the user fixes in the command line, the configuration or the inputs, found by a
/// command itself (domain errors say so through [`exit_code`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code of an error that stopped a command: [`EXIT_USAGE`] when the user can fix it
/// in the command line, the configuration or the inputs (the first cause that says so wins),
/// [`EXIT_INTERNAL`] for anything else (an I/O error on an output, the state store, a bug).
pub fn exit_code(e: &anyhow::Error) -> u8 {
    e.chain()
        .find_map(|cause| {
            use crate::{config, digest, eval, ingest, llm, pipeline, prompt, schedule, store};
            if cause.is::<UsageError>()
                || cause.is::<config::ConfigError>()
                || cause.is::<ingest::IngestError>()
                || cause.is::<prompt::PromptError>()
                || cause.is::<llm::client::ClientError>()
                || cause.is::<schedule::ScheduleError>()
            {
                Some(EXIT_USAGE)
            } else if let Some(e) = cause.downcast_ref::<pipeline::RunError>() {
                Some(e.exit_code())
            } else if let Some(e) = cause.downcast_ref::<store::StoreError>() {
                Some(e.exit_code())
            } else if let Some(e) = cause.downcast_ref::<eval::EvalError>() {
                Some(e.exit_code())
            } else {
                cause
                    .downcast_ref::<digest::DigestError>()
                    .map(digest::DigestError::exit_code)
            }
        })
        .unwrap_or(EXIT_INTERNAL)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_problems_exit_2_and_failures_to_write_exit_4() {
        let usage = anyhow::Error::new(UsageError("no prompt named x".into()));
        assert_eq!(exit_code(&usage), EXIT_USAGE);
        let among = crate::pipeline::RunError::OutputAmongInputs {
            out: "a".into(),
            what: "is the input folder a".into(),
            hint: "",
            suggestion: "a-briefs".into(),
        };
        assert_eq!(exit_code(&among.into()), EXIT_USAGE);
        let locked = crate::store::StoreError::Locked {
            path: "out".into(),
            holder: "pid 1".into(),
        };
        let locked = anyhow::Error::new(crate::pipeline::RunError::from(locked));
        assert_eq!(exit_code(&locked), EXIT_USAGE);

        // The report could not be written after the briefs were: not the user's command line.
        let report = crate::pipeline::RunError::Output {
            path: "out/_report.json".into(),
            source: std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left"),
        };
        assert_eq!(exit_code(&report.into()), EXIT_INTERNAL);
        let db = crate::store::StoreError::Db {
            path: "state.db".into(),
            source: rusqlite::Error::InvalidQuery,
        };
        assert_eq!(
            exit_code(&crate::pipeline::RunError::from(db).into()),
            EXIT_INTERNAL
        );
        let io = anyhow::Error::new(std::io::Error::other("boom")).context("cannot write x");
        assert_eq!(exit_code(&io), EXIT_INTERNAL);
        // Context on a usage problem keeps it one.
        let wrapped = anyhow::Error::new(UsageError("bad".into())).context("while loading");
        assert_eq!(exit_code(&wrapped), EXIT_USAGE);
    }
}
