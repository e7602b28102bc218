//! The pipeline of one `summarize` run: find the articles, then for each one (several at once)
//! ingest → clean → plan → summarize → check → write, and finally the run report.
//!
//! One broken article never stops the run: whatever goes wrong with it becomes its line in the
//! report. Only two things stop a run early: the provider refusing us (a bad key, no quota, an
//! unreachable or wrong endpoint: every other call would fail the same way), and a signal. Either
//! way, articles already finished are written, and so is the report.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::brief::{self, Brief, BriefUsage, SourceInfo};
use crate::clean;
use crate::config::Settings;
use crate::error::{ArticleError, EXIT_ARTICLES_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_PROVIDER};
use crate::ingest::{self, InputFile, ReadError, Skip};
use crate::llm::{ApiKey, ChatClient, LlmError};
use crate::output::{output_stems, with_suffix, write_atomic};
use crate::prompt::Prompts;
use crate::report::{ArticleReport, RunReport, Status};
use crate::summarize::{Summarizer, Tally};
use crate::tokens::Tokenizer;

/// The schema tag of `_report.json`.
pub const REPORT_SCHEMA: &str = "hanbrief.report/1";
/// File name of the run report in the output folder.
pub const REPORT_FILE: &str = "_report.json";

/// What a `summarize` run is asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    pub dry_run: bool,
    pub force: bool,
}

/// The two stages of stopping: `stop` (first signal: start nothing new) and `abort` (grace over
/// or a second signal: drop what is still running).
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    pub stop: CancellationToken,
    pub abort: CancellationToken,
}

/// A run could not start: a usage or configuration problem (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Ingest(#[from] ingest::IngestError),
    #[error(transparent)]
    Prompt(#[from] crate::prompt::PromptError),
    #[error(transparent)]
    Client(#[from] crate::llm::client::ClientError),
    #[error("cannot write to the output folder {}: {source}", path.display())]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The objects a run shares between its articles.
struct Context<'a> {
    settings: &'a Settings,
    opts: &'a RunOptions,
    summarizer: Summarizer<'a>,
    shutdown: &'a Shutdown,
    /// The first fatal provider error, which stops the run.
    fatal: Mutex<Option<LlmError>>,
}

/// Runs `summarize` and returns its report (already written to the output folder, unless dry).
pub async fn run(
    settings: &Settings,
    opts: &RunOptions,
    shutdown: &Shutdown,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let started_at = now_rfc3339();
    let found = ingest::discover(&opts.inputs, std::slice::from_ref(&opts.out))?;
    for p in &found.passed {
        tracing::warn!(path = %p.path.display(), reason = %p.reason, "passed over");
    }
    let prompts = Prompts::load(settings.prompts_dir.as_deref())?;
    let tokenizer = Tokenizer::new(settings.chunking.encoding);
    let key = ApiKey::from_env(&settings.endpoint.api_key_env);
    let client = ChatClient::new(
        &settings.endpoint,
        &settings.limits,
        tokenizer,
        key,
        shutdown.stop.clone(),
    )?;
    let summarizer = Summarizer::new(&client, &prompts, &settings.chunking, &settings.glossary)
        .map_err(|e| match e {
            ArticleError::Prompt(p) => RunError::Prompt(p),
            other => RunError::Prompt(crate::prompt::PromptError::Render {
                name: "system.md".into(),
                origin: "built-in".into(),
                message: other.to_string(),
            }),
        })?;
    if !opts.dry_run {
        std::fs::create_dir_all(&opts.out).map_err(|source| RunError::Output {
            path: opts.out.clone(),
            source,
        })?;
    }
    let ctx = Context {
        settings,
        opts,
        summarizer,
        shutdown,
        fatal: Mutex::new(None),
    };

    let stems = output_stems(&found.files);
    let results: Arc<Mutex<Vec<Option<ArticleReport>>>> =
        Arc::new(Mutex::new(vec![None; found.files.len()]));
    let work = futures::stream::iter(found.files.iter().zip(&stems).enumerate())
        .for_each_concurrent(settings.limits.max_in_flight, |(i, (input, stem))| {
            let ctx = &ctx;
            let results = results.clone();
            async move {
                let report = ctx.article(input, stem).await;
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(report);
            }
        });
    tokio::select! {
        _ = work => {}
        _ = shutdown.abort.cancelled() => {
            tracing::warn!("stopping now: calls still in flight are dropped");
        }
    }

    let fatal = ctx.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let interrupted = shutdown.stop.is_cancelled() && fatal.is_none();
    let articles: Vec<ArticleReport> = results
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .zip(&found.files)
        .map(|(r, input)| {
            r.clone().unwrap_or_else(|| {
                ArticleReport::new(input.path.display().to_string(), Status::NotDone)
                    .because("the run stopped first")
            })
        })
        .collect();
    let stats = client.stats().snapshot();
    let totals = RunReport::tally(&articles, stats.requests, stats.retries, stats.rate_limited);
    let exit_code = if fatal.is_some() {
        EXIT_PROVIDER
    } else if interrupted {
        EXIT_INTERRUPTED
    } else if totals.failed > 0 {
        EXIT_ARTICLES_FAILED
    } else {
        EXIT_OK
    };
    let report = RunReport {
        schema: REPORT_SCHEMA.to_string(),
        started_at,
        finished_at: now_rfc3339(),
        elapsed_s: started.elapsed().as_secs_f64(),
        model: settings.endpoint.model.clone(),
        base_url: settings.endpoint.base_url.clone(),
        dry_run: opts.dry_run,
        stopped: match (&fatal, interrupted) {
            (Some(e), _) => Some(format!("the provider refused us: {e}")),
            (None, true) => Some("interrupted by a signal".to_string()),
            _ => None,
        },
        exit_code,
        totals,
        articles,
    };
    if !opts.dry_run {
        let json =
            serde_json::to_string_pretty(&report).expect("a report always serialises") + "\n";
        let path = opts.out.join(REPORT_FILE);
        write_atomic(&path, json.as_bytes()).map_err(|source| RunError::Output { path, source })?;
    }
    Ok(report)
}

impl Context<'_> {
    /// One article, start to finish. Never fails: what goes wrong is in the report line.
    async fn article(&self, input: &InputFile, stem: &Path) -> ArticleReport {
        let started = Instant::now();
        let path = input.path.display().to_string();
        if self.shutdown.stop.is_cancelled() {
            return ArticleReport::new(path, Status::NotDone).because("the run stopped first");
        }
        let mut report = self.article_inner(input, stem, &path).await;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        match report.status {
            Status::Written => {
                tracing::info!(path = %report.path, calls = report.calls, cached = report.cached_calls, "written")
            }
            Status::Failed => {
                tracing::warn!(path = %report.path, reason = report.reason.as_deref().unwrap_or(""), "failed")
            }
            Status::Skipped => {
                tracing::info!(path = %report.path, reason = report.reason.as_deref().unwrap_or(""), "skipped")
            }
            _ => {}
        }
        report
    }

    async fn article_inner(&self, input: &InputFile, stem: &Path, path: &str) -> ArticleReport {
        let article = match ingest::read(input) {
            Ok(a) => a,
            Err(ReadError::Skip(skip)) => {
                return ArticleReport::new(path, Status::Skipped).because(skip.to_string());
            }
            Err(ReadError::Io(e)) => {
                return ArticleReport::new(path, Status::Failed).because(format!(
                    "cannot read the file ({e}); check that it exists and is readable"
                ));
            }
        };
        let cleaned = clean::clean(&article.text, article.html_title.as_deref());
        if cleaned.is_empty() {
            return ArticleReport::new(path, Status::Skipped).because(Skip::AllClutter.to_string());
        }
        let plan = self.summarizer.plan(&cleaned);
        let mut report = ArticleReport::new(path, Status::Planned);
        report.tokens = plan.tokens;
        report.chunks = plan.chunks.len();
        if self.opts.dry_run {
            report.calls = plan.planned_calls as u32;
            report.prompt_tokens = plan.est_prompt_tokens;
            report.completion_tokens = plan.est_completion_tokens;
            report.cost_usd = self
                .settings
                .pricing
                .cost(plan.est_prompt_tokens, plan.est_completion_tokens);
            return report;
        }
        let mut t = Tally::default();
        let result = self.summarizer.summarize(&cleaned, &plan, &mut t).await;
        report.calls = t.calls;
        report.cached_calls = t.cached_calls;
        report.prompt_tokens = t.usage.prompt_tokens;
        report.completion_tokens = t.usage.completion_tokens;
        report.cost_usd = self
            .settings
            .pricing
            .cost(t.usage.prompt_tokens, t.usage.completion_tokens);
        let content = match result {
            Ok(c) => c,
            Err(e) => return self.failed(report, e),
        };

        let checks = brief::check(&content, &cleaned.text, &self.settings.glossary);
        report.unsupported_figures = checks.unsupported_figures.len();
        let brief = Brief {
            schema: brief::SCHEMA.to_string(),
            source: SourceInfo {
                path: path.to_string(),
                content_hash: article.content_hash.clone(),
                title: cleaned.title.clone(),
                encoding: article.encoding.to_string(),
                chars_raw: article.text.chars().count(),
                chars_clean: cleaned.chars(),
                tokens: plan.tokens,
                chunks: plan.chunks.len(),
            },
            content,
            checks,
            usage: BriefUsage {
                model: self.settings.endpoint.model.clone(),
                calls: t.calls,
                cached_calls: t.cached_calls,
                prompt_tokens: t.usage.prompt_tokens,
                completion_tokens: t.usage.completion_tokens,
                cost_usd: report.cost_usd,
            },
            generated_at: now_rfc3339(),
        };
        match self.write(&brief, stem) {
            Ok(outputs) => {
                report.status = Status::Written;
                report.outputs = outputs;
            }
            Err(e) => {
                report.status = Status::Failed;
                report.reason = Some(e.to_string());
            }
        }
        report
    }

    fn failed(&self, mut report: ArticleReport, e: ArticleError) -> ArticleReport {
        if let ArticleError::Llm(llm) = &e {
            if matches!(llm, LlmError::Cancelled) {
                report.status = Status::NotDone;
                report.reason = Some("the run stopped first".into());
                return report;
            }
            if llm.is_fatal() {
                let mut fatal = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
                if fatal.is_some() {
                    // The client refused to send this article's call: the run had already
                    // been stopped by the provider's answer to another one.
                    report.status = Status::NotDone;
                    report.reason = Some("the run stopped first (the provider refused us)".into());
                    return report;
                }
                tracing::error!("{llm}");
                *fatal = Some(llm.clone());
                // Every other call would fail the same way: stop starting them.
                self.shutdown.stop.cancel();
            }
        }
        report.status = Status::Failed;
        report.reason = Some(e.to_string());
        report
    }

    fn write(&self, brief: &Brief, stem: &Path) -> Result<Vec<String>, ArticleError> {
        let out = &self.settings.output;
        let mut written = Vec::new();
        let mut put = |ext: &str, text: String| -> Result<(), ArticleError> {
            let path = self.opts.out.join(with_suffix(stem, ext));
            write_atomic(&path, text.as_bytes()).map_err(|source| ArticleError::Write {
                path: path.clone(),
                source,
            })?;
            written.push(path.display().to_string());
            Ok(())
        };
        // JSON first: it is the record the next run and the digest read.
        if out.json {
            put("json", brief.to_json())?;
        }
        if out.markdown {
            put("md", brief.to_markdown())?;
        }
        Ok(written)
    }
}

/// Now, in RFC 3339 with the local offset.
pub fn now_rfc3339() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
