//! The pipeline of one `summarize` run: find the articles, then for each one (several at once)
//! ingest → clean → plan → summarize → check → write, and finally the run report.
//!
//! One broken article never stops the run: whatever goes wrong with it becomes its line in the
//! report. Only two things stop a run early: the provider refusing us (a bad key, no quota, an
//! unreachable or wrong endpoint: every other call would fail the same way), and a signal. Either
//! way, articles already finished are written, and so is the report.
//!
//! A run is incremental. It holds the output folder's lock, routes every call through the state
//! store's cache (a finished call is never paid for twice, even after a crash), and skips an
//! article whose content and brief-shaping settings are unchanged since its brief was written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::batch::{BatchRunner, RunnerError, Step};
use crate::brief::{self, Brief, BriefUsage, SourceInfo};
use crate::clean;
use crate::config::Settings;
use crate::error::{
    ArticleError, EXIT_ARTICLES_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_PROVIDER,
};
use crate::ingest::{self, InputFile, ReadError, Skip};
use crate::llm::{ApiKey, ChatClient, LlmError};
use crate::names::{Names, NewNames};
use crate::output::{Claims, Naming, assign_names, looks_like_ours, with_suffix, write_atomic};
use crate::pricing::Tier;
use crate::progress::Progress;
use crate::prompt::Prompts;
use crate::report::{ArticleReport, RunReport, Status};
use crate::store::{ManifestEntry, RunLock, Store, StoreCache, StoreError};
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
    /// Ignore the cache and the manifest: redo every article (new answers are still stored).
    pub force: bool,
    /// Live counts for a progress display.
    pub progress: Option<Arc<Progress>>,
    /// Also print each brief as one JSON line on stdout.
    pub jsonl: bool,
    /// Batch mode (`settings.batch.enabled`): submit and exit instead of waiting for the
    /// batches (`--no-wait`); the next run picks them up.
    pub no_wait: bool,
}

/// The two stages of stopping: `stop` (first signal: start nothing new) and `abort` (grace over
/// or a second signal: drop what is still running).
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    pub stop: CancellationToken,
    pub abort: CancellationToken,
}

/// A run could not start (a usage or configuration problem, exit code 2), or could not record
/// its end (exit code 4): see [`RunError::exit_code`].
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
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Batch(#[from] crate::batch::BatchError),
    /// The output folder would mix briefs with articles: outputs could replace an article, and
    /// the next run would read briefs as articles.
    #[error(
        "the output folder {} {what}: briefs would be written among the articles{hint}. Choose an output folder that holds no articles (-o), e.g. -o {suggestion}",
        out.display()
    )]
    OutputAmongInputs {
        out: PathBuf,
        what: String,
        hint: &'static str,
        suggestion: String,
    },
}

impl RunError {
    /// The exit code: a usage problem (2), except what failed in hanbrief's own work, such as
    /// writing the report or the state store (4).
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Ingest(_)
            | RunError::Prompt(_)
            | RunError::Client(_)
            | RunError::OutputAmongInputs { .. } => crate::error::EXIT_USAGE,
            RunError::Output { .. } => crate::error::EXIT_INTERNAL,
            RunError::Store(e) | RunError::Batch(crate::batch::BatchError::Store(e)) => {
                e.exit_code()
            }
            RunError::Batch(_) => crate::error::EXIT_USAGE,
        }
    }
}

/// The objects a run shares between its articles.
struct Context<'a> {
    settings: &'a Settings,
    opts: &'a RunOptions,
    summarizer: Summarizer<'a>,
    shutdown: &'a Shutdown,
    /// The state store (cache, manifest, runs); absent only for a dry run in a new folder.
    store: Option<Store>,
    /// Hash of everything besides the article that shapes a brief: [`settings_fingerprint`].
    settings_hash: String,
    /// The first fatal provider error, which stops the run.
    fatal: Mutex<Option<LlmError>>,
    /// One English rendering per Korean name across the run's briefs.
    names: Names,
    /// Briefs that used a name new in this run, kept until the names are settled: those whose
    /// JSON line (`--format jsonl`) waits for it, and those with no JSON file to read back.
    kept: Mutex<BTreeMap<String, Brief>>,
    /// Output names earlier runs gave out (from the manifest).
    claims: Claims,
    /// `--dry-run`: each article's planned steps (the phases of a batch-mode plan).
    planned: Mutex<Vec<Vec<crate::summarize::PlanStep>>>,
}

/// Refuses an output folder that is, or lies above, an input folder, or that holds an input
/// file: its briefs would be written among the articles (`x.md` would replace the article
/// `x.md`), and the next run would read them as articles. Checked before anything is written.
fn refuse_output_among_inputs(
    inputs: &[PathBuf],
    out: &Path,
    files: &[InputFile],
) -> Result<(), RunError> {
    let Ok(out_canon) = std::fs::canonicalize(out) else {
        return Ok(()); // a new folder holds nothing yet
    };
    let suggestion = |root: &Path| {
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "articles".into());
        root.with_file_name(format!("{name}-briefs"))
            .display()
            .to_string()
    };
    for root in inputs.iter().filter(|p| p.as_os_str() != ingest::STDIN) {
        let Ok(root_canon) = std::fs::canonicalize(root) else {
            continue;
        };
        if root_canon.is_dir() && root_canon.starts_with(&out_canon) {
            let what = if root_canon == out_canon {
                format!("is the input folder {}", root.display())
            } else {
                format!("holds the input folder {}", root.display())
            };
            return Err(RunError::OutputAmongInputs {
                out: out.to_path_buf(),
                what,
                hint: " and read back as articles by the next run",
                suggestion: suggestion(root),
            });
        }
    }
    if let Some(f) = files
        .iter()
        .find(|f| Path::new(&f.key()).starts_with(&out_canon))
    {
        let parent = f.path.parent().unwrap_or(Path::new("."));
        return Err(RunError::OutputAmongInputs {
            out: out.to_path_buf(),
            what: format!("holds the article {}", f.path.display()),
            hint: if f.rel.extension().is_some_and(|e| e == "md") {
                " (its brief would replace it)"
            } else {
                ""
            },
            suggestion: suggestion(parent),
        });
    }
    Ok(())
}

/// Runs `summarize` and returns its report (already written to the output folder, unless dry).
pub async fn run(
    settings: &Settings,
    opts: &RunOptions,
    shutdown: &Shutdown,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let started_at = now_rfc3339();
    refuse_output_among_inputs(&opts.inputs, &opts.out, &[])?;
    let found = ingest::discover(&opts.inputs, std::slice::from_ref(&opts.out))?;
    // Files named on the command line can sit in the output folder too.
    refuse_output_among_inputs(&opts.inputs, &opts.out, &found.files)?;
    for p in &found.passed {
        if p.expected {
            tracing::info!(path = %p.path.display(), reason = %p.reason, "passed over");
        } else {
            tracing::warn!(path = %p.path.display(), reason = %p.reason, "passed over");
        }
    }
    if found.files.is_empty() {
        tracing::warn!(
            "no articles found in {}: hanbrief reads {} files{}",
            opts.inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            ingest::EXTENSIONS
                .iter()
                .map(|e| format!(".{e}"))
                .collect::<Vec<_>>()
                .join(", "),
            match found.passed.len() {
                0 => String::new(),
                n => format!(" ({n} passed over, see above)"),
            }
        );
    }
    let prompts = Prompts::load(settings.prompts_dir.as_deref())?;
    if let Some(p) = &opts.progress {
        p.set_total(found.files.len());
    }

    // The lock first: a second run on the same folder stops here, before touching anything. A
    // dry run neither locks nor creates anything, but reads the manifest if there is one.
    let _lock = match opts.dry_run {
        true => None,
        false => Some(RunLock::acquire(&opts.out)?),
    };
    let store = match opts.dry_run {
        true => Store::open_read_only(&opts.out).await?,
        false => Some(Store::open(&opts.out).await?),
    };

    let tokenizer = Tokenizer::new(settings.chunking.encoding);
    let key = ApiKey::from_env(&settings.endpoint.api_key_env);
    let mut client = ChatClient::new(
        &settings.endpoint,
        &settings.limits,
        tokenizer,
        key.clone(),
        shutdown.stop.clone(),
    )?
    .with_abort(shutdown.abort.clone());
    // Batch mode: calls the cache cannot answer go into batches (see `crate::batch`).
    let mut batch = match (&store, settings.batch.enabled && !opts.dry_run) {
        (Some(store), true) => Some(
            BatchRunner::new(
                settings,
                store.clone(),
                key,
                shutdown.stop.clone(),
                opts.progress.clone(),
            )
            .await?,
        ),
        _ => None,
    };
    if let Some(b) = &batch {
        client = client.with_deferral(b.queue());
    }
    if let Some(store) = &store {
        let cache = StoreCache {
            store: store.clone(),
            model: settings.endpoint.model.clone(),
            read: !opts.force,
        };
        client = match opts.dry_run {
            false => client.with_cache(Arc::new(cache)).await,
            // Which model answers decides whether a brief is unchanged. A dry run uses no
            // network: the model last seen here is assumed; the store is read-only, so nothing
            // is recorded.
            true => client.identify(&cache, false).await,
        };
    }
    if let Some(p) = &opts.progress {
        p.watch(client.stats_handle(), client.limiter_handle());
    }
    let summarizer = Summarizer::new(&client, &prompts, settings).map_err(|e| match e {
        ArticleError::Prompt(p) => RunError::Prompt(p),
        other => RunError::Prompt(crate::prompt::PromptError::Render {
            name: "system.md".into(),
            origin: "built-in".into(),
            message: other.to_string(),
        }),
    })?;
    let run_id = match store.as_ref().filter(|_| !opts.dry_run) {
        Some(s) => Some(s.start_run("summarize", &started_at).await?),
        None => None,
    };
    let claims = match &store {
        Some(s) => {
            let entries = s.article_outputs().await?;
            Claims::new(entries.iter().map(|(k, o)| (k.as_str(), o.as_slice())))
        }
        None => Claims::default(),
    };
    let ctx = Context {
        claims,
        settings,
        opts,
        summarizer,
        shutdown,
        store: store.clone(),
        settings_hash: settings_fingerprint(settings, &prompts, client.identity()),
        fatal: Mutex::new(None),
        names: Names::new(
            &settings.glossary,
            match &store {
                Some(s) => s.names().await?,
                None => Vec::new(),
            },
        ),
        kept: Mutex::new(BTreeMap::new()),
        planned: Mutex::new(Vec::new()),
    };

    let names = assign_names(&found.files, &ctx.claims);
    let results: Arc<Mutex<Vec<Option<ArticleReport>>>> =
        Arc::new(Mutex::new(vec![None; found.files.len()]));
    // One pass over every article; in batch mode, more passes over those waiting for batches,
    // each after a batch came back (a phase: map, then reduce, then each tree level).
    let mut todo: Vec<usize> = (0..found.files.len()).collect();
    let mut batch_stopped: Option<(String, u8)> = None;
    if let Some(b) = batch.as_mut()
        && let Err(e) = b.resume().await
    {
        batch_stopped = ctx.batch_error(e);
        todo.clear();
    }
    let mut phase = 0u32;
    while !todo.is_empty() {
        phase += 1;
        if let Some(b) = &batch {
            b.queue().begin_pass();
        }
        let work = futures::stream::iter(todo.iter().copied()).for_each_concurrent(
            settings.limits.max_in_flight,
            |i| {
                let ctx = &ctx;
                let results = results.clone();
                let (input, naming) = (&found.files[i], &names[i]);
                async move {
                    let report = ctx.article(input, naming).await;
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(report);
                }
            },
        );
        tokio::select! {
            _ = work => {}
            _ = shutdown.abort.cancelled() => {
                tracing::warn!("stopping now: calls still in flight are dropped");
            }
        }
        let Some(b) = batch.as_mut() else { break };
        todo.retain(|&i| {
            results.lock().unwrap_or_else(|p| p.into_inner())[i]
                .as_ref()
                .is_some_and(|r| r.status == Status::Waiting)
        });
        if todo.is_empty() || shutdown.stop.is_cancelled() {
            break;
        }
        tracing::info!(
            phase,
            waiting = todo.len(),
            requests = b.queue().deferred(),
            "phase done: articles wait for batches"
        );
        match b.after_pass(phase, opts.no_wait).await {
            Ok(Step::Collected) => {}
            Ok(Step::LeftInFlight) | Err(RunnerError::Api(LlmError::Cancelled)) => break,
            Ok(Step::Idle) => {
                // Logged like every error that stops a run (the summary points at it).
                tracing::error!("batch mode: no batch left to wait for");
                batch_stopped = Some(("no batch left to wait for".into(), EXIT_PROVIDER));
                break;
            }
            Err(e) => {
                batch_stopped = ctx.batch_error(e);
                break;
            }
        }
    }
    let batch_summary = match batch.as_mut() {
        Some(b) => {
            b.finish();
            let waiting = results
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|r| r.as_ref().is_some_and(|r| r.status == Status::Waiting));
            if !waiting && let Err(e) = b.forget_settled().await {
                tracing::warn!("cannot tidy the batch requests in the state store ({e})");
            }
            Some(b.summary.clone())
        }
        None => None,
    };
    if let Some((why, _)) = &batch_stopped {
        // Articles still waiting cannot go on without their batches.
        for r in results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
            .flatten()
            .filter(|r| r.status == Status::Waiting)
        {
            r.status = Status::NotDone;
            r.reason = Some(format!("batch mode stopped: {why}"));
        }
    }
    // The articles' work is over (done, or dropped with the abort).
    let mut reports = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    if !opts.dry_run {
        ctx.settle_names(&names, &mut reports).await;
    }

    let fatal = ctx.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let interrupted = shutdown.stop.is_cancelled() && fatal.is_none();
    let waiting_reason = match (interrupted, opts.no_wait) {
        (true, _) => {
            "its calls are in batches in flight (the run was interrupted): run the same command again to pick them up"
        }
        (false, true) => {
            "its calls are in batches in flight (--no-wait): run the same command again to pick them up"
        }
        _ => "waiting for batches",
    };
    let articles: Vec<ArticleReport> = reports
        .iter()
        .zip(&found.files)
        .map(|(r, input)| match r {
            Some(r) if r.status == Status::Waiting => r.clone().because(waiting_reason),
            Some(r) => r.clone(),
            None => ArticleReport::new(input.path.display().to_string(), Status::NotDone)
                .because("the run stopped first"),
        })
        .collect();
    let stats = client.stats().snapshot();
    let totals = RunReport::tally(&articles, stats.requests, stats.retries, stats.rate_limited);
    let exit_code = if fatal.is_some() {
        EXIT_PROVIDER
    } else if let Some((_, code)) = &batch_stopped {
        *code
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
        stopped: match (&fatal, interrupted, &batch_stopped) {
            // Each fatal error says what it is ("the provider refused the API key", "cannot
            // reach the endpoint at …"); not every one is the provider refusing us.
            (Some(e), _, _) => Some(e.to_string()),
            (None, _, Some((why, _))) => Some(format!("batch mode stopped: {why}")),
            (None, true, None) => Some("interrupted by a signal".to_string()),
            _ => None,
        },
        exit_code,
        totals,
        batch: batch_summary,
        batch_plan: (opts.dry_run && settings.batch.enabled).then(|| {
            let planned = ctx.planned.lock().unwrap_or_else(|p| p.into_inner());
            crate::batch::plan_phases(planned.iter().map(Vec::as_slice), &settings.batch)
        }),
        articles,
    };
    if !opts.dry_run {
        let json =
            serde_json::to_string_pretty(&report).expect("a report always serialises") + "\n";
        let path = opts.out.join(REPORT_FILE);
        write_atomic(&path, json.as_bytes()).map_err(|source| RunError::Output { path, source })?;
    }
    if let (Some(store), Some(id)) = (&store, run_id) {
        store.finish_run(id, &report).await?;
    }
    Ok(report)
}

/// A hash of everything besides the article that shapes its brief: the model and sampling,
/// the prompts, the chunking budgets, the summary strategy, the context window, the glossary,
/// the brief's schema and hanbrief's version (a new version may clean or check differently).
/// The model is its name plus, when it is not the first model the output folder saw under that
/// name, its `identity` ([`ChatClient::identity`]: the endpoint and what the server says about
/// the model), so that a swapped model file or another provider makes every brief again. Not
/// the limits or output formats, which change how a brief is fetched or shown, not what it
/// says.
pub fn settings_fingerprint(
    settings: &Settings,
    prompts: &Prompts,
    identity: Option<&str>,
) -> String {
    let e = &settings.endpoint;
    let c = &settings.chunking;
    let mut shape = serde_json::json!({
        "hanbrief": env!("CARGO_PKG_VERSION"),
        "brief": brief::SCHEMA,
        "model": e.model,
        // Hashed as the f32 it used to be, so that fingerprints made before the f64 fix stay.
        "temperature": e.temperature.map(|t| t as f32),
        "structured_output": format!("{:?}", e.structured_output),
        "merge_system_prompt": e.merge_system_prompt,
        "context_window": e.context_window,
        "prompts": prompts.fingerprint(),
        "encoding": c.encoding.name(),
        "chunk_tokens": c.chunk_tokens,
        "margin": c.margin,
        "brief_max_tokens": c.brief_max_tokens,
        "notes_max_tokens": c.notes_max_tokens,
        "strategy": format!("{:?}", settings.summary.strategy),
        "sentences": settings.summary.sentences,
        "glossary": settings.glossary,
    });
    // Only when set, so that fingerprints of runs without it are unchanged.
    if let Some(effort) = &e.reasoning_effort {
        shape["reasoning_effort"] = serde_json::json!(effort);
    }
    // Likewise the repetition controls: briefs made before them keep their fingerprint.
    let penalties = [e.frequency_penalty, e.presence_penalty, e.repeat_penalty];
    if penalties.iter().any(Option::is_some) {
        shape["penalties"] = serde_json::json!(penalties);
    }
    // Likewise only for a model other than the folder's first under this name.
    if let Some(identity) = identity {
        shape["identity"] = serde_json::json!(identity);
    }
    blake3::hash(shape.to_string().as_bytes())
        .to_hex()
        .to_string()
}

impl Context<'_> {
    /// One article, start to finish. Never fails: what goes wrong is in the report line.
    async fn article(&self, input: &InputFile, naming: &Naming) -> ArticleReport {
        let started = Instant::now();
        let path = input.path.display().to_string();
        if self.shutdown.stop.is_cancelled() {
            return ArticleReport::new(path, Status::NotDone).because("the run stopped first");
        }
        let (mut report, content_hash) = self.article_inner(input, naming, &path).await;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        match report.status {
            Status::Written => tracing::info!(
                path = %report.path,
                calls = report.calls,
                cached = report.cached_calls,
                "written"
            ),
            // The error that stopped the run was just logged, once, as an error.
            Status::Failed if self.stopped_the_run(&report) => {}
            Status::Failed => tracing::warn!(
                path = %report.path,
                reason = report.reason.as_deref().unwrap_or(""),
                "failed"
            ),
            Status::Skipped => tracing::info!(
                path = %report.path,
                reason = report.reason.as_deref().unwrap_or(""),
                "skipped"
            ),
            Status::Unchanged => tracing::debug!(path = %report.path, "unchanged"),
            Status::Waiting => tracing::debug!(path = %report.path, "waiting for a batch"),
            _ => {}
        }
        self.remember(naming, content_hash, &report).await;
        if let Some(p) = &self.opts.progress
            && report.status != Status::Waiting
        {
            p.finished(report.status);
        }
        report
    }

    /// Records the article's outcome in the manifest (what is not done keeps its old entry). An
    /// article that is not written keeps the outputs an earlier run wrote: they are still on
    /// disk, and their names still belong to it.
    async fn remember(
        &self,
        naming: &Naming,
        content_hash: Option<String>,
        report: &ArticleReport,
    ) {
        let (Some(store), Some(content_hash)) = (&self.store, content_hash) else {
            return;
        };
        let status = match report.status {
            Status::Written => "written",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            // Re-made and identical: the manifest learns the new settings, so the next run
            // skips it outright.
            Status::Unchanged if report.calls + report.cached_calls > 0 => "written",
            Status::Unchanged | Status::NotDone | Status::Planned | Status::Waiting => return,
        };
        let outputs = if status == "written" {
            self.output_names(&naming.stem)
        } else {
            self.manifest_entry(naming)
                .await
                .map(|e| e.outputs)
                .unwrap_or_default()
        };
        let entry = ManifestEntry {
            path: naming.key.clone(),
            content_hash,
            settings_hash: self.settings_hash.clone(),
            status: status.to_string(),
            last_error: (status != "written")
                .then(|| report.reason.clone())
                .flatten(),
            outputs,
            updated_at: chrono::Utc::now().timestamp(),
        };
        let recorded = store
            .record_article(&entry, naming.legacy_key.as_deref())
            .await;
        if let Err(e) = recorded {
            tracing::warn!("cannot record {} in the manifest ({e})", report.path);
        }
    }

    /// The article's manifest entry, under its key or the key an older hanbrief gave it.
    async fn manifest_entry(&self, naming: &Naming) -> Option<ManifestEntry> {
        let key = naming.legacy_key.as_ref().unwrap_or(&naming.key);
        self.store.as_ref()?.article(key).await.ok().flatten()
    }

    /// Why the article's outputs cannot be written where its name puts them, found before any
    /// call is paid for: a path too long for the file system, or a file there that hanbrief
    /// did not write (never replaced).
    fn unwritable(&self, naming: &Naming) -> Option<String> {
        for name in self.output_names(&naming.stem) {
            let path = self.opts.out.join(&name);
            if path.as_os_str().len() >= PATH_MAX {
                return Some(format!(
                    "its output path {} is longer than the file system allows ({PATH_MAX} bytes); use a shorter output folder (-o) or move the article up",
                    path.display()
                ));
            }
            let ours = self.claims.owner(&naming.stem) == Some(naming.key.as_str())
                || naming.legacy_key.is_some()
                || looks_like_ours(&path);
            if !ours && std::fs::symlink_metadata(&path).is_ok() {
                return Some(format!(
                    "{} exists and was not written by hanbrief: it is left alone; move it away or choose another output folder (-o)",
                    path.display()
                ));
            }
        }
        None
    }

    /// The output files of an article, relative to the output folder.
    fn output_names(&self, stem: &Path) -> Vec<String> {
        let out = &self.settings.output;
        let mut names = Vec::new();
        if out.json {
            names.push(with_suffix(stem, "json").display().to_string());
        }
        if out.markdown {
            names.push(with_suffix(stem, "md").display().to_string());
        }
        names
    }

    /// Whether the manifest shows this exact article already briefed with these settings, with
    /// its outputs still in place.
    async fn unchanged(&self, naming: &Naming, content_hash: &str) -> bool {
        // A pipe wants every brief on stdout, so nothing is skipped (the calls are cached).
        if self.opts.force || self.opts.jsonl {
            return false;
        }
        let stem = &naming.stem;
        let Some(entry) = self.manifest_entry(naming).await else {
            return false;
        };
        entry.status == "written"
            && entry.content_hash == content_hash
            && entry.settings_hash == self.settings_hash
            && entry.outputs == self.output_names(stem)
            && entry
                .outputs
                .iter()
                .all(|o| self.opts.out.join(o).is_file())
    }

    async fn article_inner(
        &self,
        input: &InputFile,
        naming: &Naming,
        path: &str,
    ) -> (ArticleReport, Option<String>) {
        let stem = &naming.stem;
        // The bytes and their hash first: an unchanged article is not even decoded (a daily
        // tick over a growing archive must not re-parse every page).
        let read_error = |e: ReadError| match e {
            ReadError::Skip(skip) => {
                ArticleReport::new(path, Status::Skipped).because(skip.to_string())
            }
            ReadError::Io(e) => ArticleReport::new(path, Status::Failed).because(format!(
                "cannot read the file ({e}); check that it exists and is readable"
            )),
        };
        let bytes = match ingest::read_bytes(input) {
            Ok(b) => b,
            Err(e) => return (read_error(e), None),
        };
        let content_hash = ingest::content_hash(&bytes);
        let hash = Some(content_hash.clone());
        if self.unchanged(naming, &content_hash).await {
            let mut report = ArticleReport::new(path, Status::Unchanged)
                .because("unchanged since its brief was written");
            report.outputs = self
                .output_names(stem)
                .iter()
                .map(|o| self.opts.out.join(o).display().to_string())
                .collect();
            return (report, hash);
        }
        if let Some(why) = self.unwritable(naming) {
            return (ArticleReport::new(path, Status::Failed).because(why), hash);
        }
        let article = match ingest::from_bytes(input.clone(), &bytes) {
            Ok(a) => a,
            Err(skip) => return (read_error(ReadError::Skip(skip)), hash),
        };
        let decode_warning = article.decode_warning();
        if let Some(w) = &decode_warning {
            tracing::warn!(path, "{w}");
        }
        let cleaned = clean::clean(&article.text, article.html_title.as_deref());
        if cleaned.is_empty() {
            return (
                ArticleReport::new(path, Status::Skipped).because(Skip::AllClutter.to_string()),
                hash,
            );
        }
        let plan = self.summarizer.plan(&cleaned);
        tracing::debug!(
            path,
            tokens = plan.tokens,
            chunks = plan.chunks.len(),
            calls = plan.planned_calls,
            "plan"
        );
        let mut report = ArticleReport::new(path, Status::Planned);
        report.warnings.extend(decode_warning.iter().cloned());
        report.tokens = plan.tokens;
        report.chunks = plan.chunks.len();
        if self.opts.dry_run {
            self.planned
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(plan.steps.clone());
            report.calls = plan.planned_calls as u32;
            report.prompt_tokens = plan.est_prompt_tokens;
            report.completion_tokens = plan.est_completion_tokens;
            report.cost_usd = self.cost(crate::llm::Usage {
                prompt_tokens: plan.est_prompt_tokens,
                completion_tokens: plan.est_completion_tokens,
                ..Default::default()
            });
            return (report, None);
        }
        let mut t = Tally::default();
        let result = self.summarizer.summarize(&cleaned, &plan, &mut t).await;
        report.calls = t.calls;
        report.cached_calls = t.cached_calls;
        report.batch_calls = t.batch_calls;
        report.prompt_tokens = t.usage.prompt_tokens;
        report.completion_tokens = t.usage.completion_tokens;
        report.cost_usd = t.cost(&self.settings.pricing, &self.settings.endpoint.model);
        let mut content = match result {
            Ok(c) => c,
            Err(e) => return (self.failed(report, e), hash),
        };

        // Quotes found in the article take its own text and their place in it.
        crate::check::anchor_quotes(&mut content, &cleaned.text);
        let (renamings, new_names) = self.names.unify(&mut content);
        let mut checks = crate::check::check(&content, &cleaned.text, &self.settings.glossary);
        checks.warnings.extend(decode_warning);
        checks.warnings.extend(t.warnings.iter().cloned());
        checks
            .warnings
            .extend(renamings.iter().map(|r| format!("name: {r}")));
        report.unsupported_figures = checks.unsupported_figures.len();
        report.check_findings = checks.unsupported_figures.len()
            + checks.unknown_entities.len()
            + checks.glossary_misses.len()
            + checks.warnings.len();
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
        if t.calls == 0 && !self.opts.force && self.same_as_written(&brief, stem) {
            // Re-made from the cache alone (after a settings change that did not touch the
            // prompts, or an upgrade) and identical to the brief already there, model included:
            // the file stays as it was, and the article is unchanged. A brief that cost a call
            // (a new model, --force, a changed prompt) is written, and names who made it.
            report.status = Status::Unchanged;
            report.reason = Some("re-made, identical to its brief".into());
            report.outputs = self
                .output_names(stem)
                .iter()
                .map(|o| self.opts.out.join(o).display().to_string())
                .collect();
            self.note_names(naming, new_names, brief);
            return (report, hash);
        }
        // A brief using a name new in this run is printed once the run has settled it.
        let line_now = self.opts.jsonl && new_names.is_empty();
        match self.write_files(&brief, stem).and_then(|outputs| {
            line_now
                .then(|| self.print_line(&brief))
                .transpose()
                .map(|_| outputs)
        }) {
            Ok(outputs) => {
                report.status = Status::Written;
                report.outputs = outputs;
                self.note_names(naming, new_names, brief);
            }
            Err(e) => {
                report.status = Status::Failed;
                report.reason = Some(e.to_string());
            }
        }
        (report, hash)
    }

    /// Counts the renderings of names new in this run that a written brief used, keeping the
    /// brief when the settlement will need it in memory (see [`Context::kept`]).
    fn note_names(&self, naming: &Naming, new_names: NewNames, brief: Brief) {
        if new_names.is_empty() {
            return;
        }
        self.names.note(&naming.key, new_names);
        if self.opts.jsonl || !self.settings.output.json {
            self.kept
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(naming.key.clone(), brief);
        }
    }

    /// Settles the names new in this run ([`Names::settle`]), rewrites the briefs that used
    /// another rendering (their files, and their line in `reports`), prints the JSON lines held
    /// for it, and remembers the settled renderings in the state store.
    async fn settle_names(&self, namings: &[Naming], reports: &mut [Option<ArticleReport>]) {
        let settlement = self.names.settle();
        let mut kept = std::mem::take(&mut *self.kept.lock().unwrap_or_else(|p| p.into_inner()));
        for (key, renamings) in &settlement.renamings {
            let Some(i) = namings.iter().position(|n| &n.key == key) else {
                continue;
            };
            let stem = &namings[i].stem;
            let brief = match kept.remove(key) {
                Some(b) => Some(b),
                None => self.read_brief(stem),
            };
            let Some(mut brief) = brief else {
                tracing::warn!(article = %key, "cannot read its brief back to settle its names");
                continue;
            };
            crate::names::apply(&mut brief.content, renamings);
            brief
                .checks
                .warnings
                .extend(renamings.iter().map(|r| format!("name: {r}")));
            match self.write_files(&brief, stem) {
                Ok(_) => {
                    if let Some(r) = reports[i].as_mut() {
                        r.check_findings += renamings.len();
                    }
                }
                Err(e) => tracing::warn!("cannot rewrite a brief with its settled names ({e})"),
            }
            kept.insert(key.clone(), brief);
        }
        if self.opts.jsonl {
            for n in namings {
                if let Some(brief) = kept.get(&n.key)
                    && let Err(e) = self.print_line(brief)
                {
                    tracing::warn!("{e}");
                }
            }
        }
        if let Some(store) = &self.store
            && let Err(err) = store.add_names(settlement.names).await
        {
            tracing::warn!("cannot remember the renderings of names ({err})");
        }
    }

    /// The brief written for `stem`, read back from its JSON file.
    fn read_brief(&self, stem: &Path) -> Option<Brief> {
        if !self.settings.output.json {
            return None;
        }
        let json = self.opts.out.join(with_suffix(stem, "json"));
        std::fs::read_to_string(json)
            .ok()
            .and_then(|t| serde_json::from_str::<Brief>(&t).ok())
    }

    /// Whether the brief already written for this article says the same (content, checks and
    /// source) and was made by the same model, with every output file in place.
    fn same_as_written(&self, brief: &Brief, stem: &Path) -> bool {
        if self.opts.jsonl || !self.settings.output.json {
            return false;
        }
        let names = self.output_names(stem);
        if !names.iter().all(|o| self.opts.out.join(o).is_file()) {
            return false;
        }
        let json = self.opts.out.join(with_suffix(stem, "json"));
        let Some(old) = std::fs::read_to_string(json)
            .ok()
            .and_then(|t| serde_json::from_str::<Brief>(&t).ok())
        else {
            return false;
        };
        old.content == brief.content
            && old.checks == brief.checks
            && old.source.content_hash == brief.source.content_hash
            && old.usage.model == brief.usage.model
    }

    /// What `usage` of the run's model costs (the batch tier in batch mode); `None` when its price
    /// is unknown.
    fn cost(&self, usage: crate::llm::Usage) -> Option<f64> {
        let model = &self.settings.endpoint.model;
        // A dry run of batch mode estimates at batch prices.
        let tier = match self.settings.batch.enabled {
            true => Tier::Batch,
            false => Tier::Standard,
        };
        self.settings.pricing.cost(model, usage, tier)
    }

    /// A batch-mode failure that ends the batch loop: a fatal one stops the run as a fatal call
    /// would; returns the reason for the articles still waiting, and the run's exit code (the
    /// state store failing is hanbrief's own work failing, not the provider).
    fn batch_error(&self, e: RunnerError) -> Option<(String, u8)> {
        if matches!(e, RunnerError::Api(LlmError::Cancelled)) {
            return None;
        }
        tracing::error!("batch mode: {e}");
        match e {
            RunnerError::Api(LlmError::Cancelled) => None,
            RunnerError::Api(e) => {
                if e.is_fatal() {
                    let mut fatal = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
                    if fatal.is_none() {
                        *fatal = Some(e.clone());
                    }
                }
                Some((e.to_string(), EXIT_PROVIDER))
            }
            RunnerError::Store(e) => Some((e.to_string(), EXIT_INTERNAL)),
        }
    }

    /// Whether `report` is the article whose call met the error that stopped the run.
    fn stopped_the_run(&self, report: &ArticleReport) -> bool {
        let fatal = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        fatal
            .as_ref()
            .is_some_and(|e| report.reason.as_deref() == Some(e.to_string().as_str()))
    }

    fn failed(&self, mut report: ArticleReport, e: ArticleError) -> ArticleReport {
        if let ArticleError::Llm(llm) = &e {
            if matches!(llm, LlmError::Deferred) {
                // Batch mode: the article goes on in a later pass, when its batch is back.
                report.status = Status::Waiting;
                report.reason = Some("waiting for batches".into());
                return report;
            }
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
                    report.reason = Some("the run stopped first".into());
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

    /// Writes the brief's files (JSON, Markdown, as configured); returns their paths.
    fn write_files(&self, brief: &Brief, stem: &Path) -> Result<Vec<String>, ArticleError> {
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
            put("md", crate::render::brief(brief))?;
        }
        Ok(written)
    }

    /// Prints the brief as one JSON line on stdout (`--format jsonl`).
    fn print_line(&self, brief: &Brief) -> Result<(), ArticleError> {
        let line = serde_json::to_string(brief).expect("a brief always serialises") + "\n";
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(line.as_bytes())
            .and_then(|_| stdout.flush())
            .map_err(|source| ArticleError::Write {
                path: PathBuf::from("<stdout>"),
                source,
            })
    }
}

/// Longest path (bytes) Linux accepts; macOS takes 1,024, Windows' long paths 32,767.
const PATH_MAX: usize = 4096;

/// Now, in RFC 3339 with the local offset.
pub fn now_rfc3339() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
