//! Batch mode: a run's calls go to the provider's Batch API (half the price, a separate and
//! larger quota, results within 24 hours) instead of being sent one by one.
//!
//! **How.** The ordinary pipeline runs with the [`crate::llm::ChatClient`] in defer mode
//! ([`queue::BatchQueue`]): a call the cache cannot answer becomes a pending request (its
//! `custom_id` is its cache key, its body the exact body a synchronous call would send) and the
//! article waits. After the pass, [`BatchRunner`] writes the pending requests into JSONL request
//! files (split at the file limits and at the model's enqueued-token limit), records each file
//! and assigns its requests in the state store *before* uploading anything, uploads it
//! (`POST /files`), creates the batch (`POST /batches`), polls with backoff, downloads the
//! output and error files, and puts every reply into the call cache by `custom_id`. The next
//! pass finds those calls answered, and the waiting articles move on to their next step
//! (reduce, a tree level, a repair), which defers again. So phases fall out of the pipeline:
//! short articles finish in the second pass, a map-reduce article takes one more per level.
//!
//! **Resuming.** Nothing is submitted that is in flight or answered: a request in a batch is
//! `submitted` in the store before its file is uploaded, and a call answered is in the cache.
//! A run that was killed, or started with `--no-wait`, leaves its batches in the store; the
//! next run first hands over any batch that was being prepared (finding it at the provider by
//! its metadata tag if it was created before the kill), collects those that finished, and
//! waits for the rest before it submits what is still missing.
//!
//! **Failures.** A line that comes back with an error, and every request of a batch that
//! expired or failed, is retried in a later batch; past `batch.max_attempts` it is sent as an
//! ordinary call. A reply cut off at the token limit is asked again with twice the room. An
//! error another try would not change (context length, a refusal) fails the call as it would
//! have synchronously. `token_limit_exceeded` lowers the enqueued-token limit to what the
//! provider states and waits for batches in flight before submitting again.

pub mod queue;
pub mod state;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::{BatchSettings, Settings};
use crate::llm::batch::{BatchApi, BatchObject, LineOutcome, parse_line};
use crate::llm::retry::{LlmError, Verdict, classify};
use crate::llm::types::ParsedReply;
use crate::llm::{ApiKey, ChatReply, FinishReason, Usage};
use crate::progress::Progress;
use crate::store::{Store, StoreError};
pub use queue::BatchQueue;
use state::{BatchRow, ReqRow, ReqState, StoredError};

/// The metadata key that tags hanbrief's batches at the provider.
pub const TAG_KEY: &str = "hanbrief_batch";

/// OpenAI's published batch queue limit (prompt tokens enqueued at once) for a model at usage
/// Tier 1, the lowest paid tier, from each model's page (developers.openai.com/api/docs/models/…,
/// "Rate limits", column "Batch queue limit"): a safe default for an account whose tier is not
/// known. The rate-limits guide says the limit counts the input tokens of pending batches.
pub fn published_enqueued_limit(model: &str) -> Option<u64> {
    // Longest prefix first: "gpt-4o-mini" before "gpt-4o".
    const TIER1: &[(&str, u64)] = &[
        ("gpt-4.1-mini", 2_000_000),
        ("gpt-4o-mini", 2_000_000),
        ("gpt-5-mini", 5_000_000),
        ("gpt-4o", 90_000),
    ];
    let m = model.to_ascii_lowercase();
    TIER1
        .iter()
        .find(|(prefix, _)| m.starts_with(prefix))
        .map(|(_, limit)| *limit)
}

/// The limit a `token_limit_exceeded` message states: "… Limit: 90,000 enqueued tokens …"
/// (OpenAI), "… configured limit of 30K …" (Azure).
pub fn stated_token_limit(message: &str) -> Option<u64> {
    static RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?i)limit(?: of)?:?\s*([0-9][0-9,._]*)\s*([km])?\b")
            .expect("a valid regex")
    });
    let c = RE.captures(message)?;
    let digits: String = c[1].chars().filter(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().ok()?;
    let scale = match c.get(2).map(|m| m.as_str().to_ascii_lowercase()) {
        Some(s) if s == "k" => 1_000,
        Some(s) if s == "m" => 1_000_000,
        _ => 1,
    };
    Some(n * scale)
}

/// What batch mode did in a run, for the report.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct BatchSummary {
    /// Passes of the pipeline (1: the first calls of every article).
    pub phases: u32,
    /// Request files submitted by this run, and the requests in them.
    pub batches_submitted: u32,
    pub requests_submitted: u64,
    /// Batches collected by this run (some may have been submitted by an earlier one).
    pub batches_collected: u32,
    /// Requests that came back with an error or cut off, and went into a later batch.
    pub retried: u64,
    /// Calls sent as ordinary calls (past `batch.max_attempts`, or too large for the
    /// enqueued-token limit).
    pub sent_synchronously: u64,
    /// Batches still in flight when the run ended (`--no-wait`, or a stop).
    pub in_flight: u32,
}

/// What happened after a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Results came back: run another pass.
    Collected,
    /// Submitted, not waiting (`--no-wait`): the run ends, its articles waiting.
    LeftInFlight,
    /// Nothing pending and nothing in flight: another pass would change nothing.
    Idle,
}

/// Drives the batches of a run: submits, polls, collects.
pub struct BatchRunner {
    api: BatchApi,
    queue: Arc<BatchQueue>,
    store: Store,
    settings: BatchSettings,
    model: String,
    nonce: String,
    progress: Option<Arc<Progress>>,
    cancel: CancellationToken,
    /// Counts a reply's tokens when the provider did not (as the client does).
    tokenizer: crate::tokens::Tokenizer,
    /// What this run did.
    pub summary: BatchSummary,
}

impl std::fmt::Debug for BatchRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchRunner")
            .field("base_url", &self.api.base_url())
            .finish_non_exhaustive()
    }
}

/// A batch-mode setup problem.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Client(#[from] crate::llm::client::ClientError),
}

/// Why batch mode stopped a run once it was going.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The provider's files or batches endpoint failed, or the run was cancelled.
    #[error(transparent)]
    Api(#[from] LlmError),
    /// The state store, where the batches and their requests are kept, could not be used:
    /// hanbrief's own work failing (exit 4), not the provider (3).
    #[error(transparent)]
    Store(StoreError),
}

impl BatchRunner {
    /// The runner and the queue to give the client, for a run over the store `store`.
    pub async fn new(
        settings: &Settings,
        store: Store,
        key: Option<ApiKey>,
        cancel: CancellationToken,
        progress: Option<Arc<Progress>>,
    ) -> Result<BatchRunner, BatchError> {
        let b = &settings.batch;
        let queue = Arc::new(
            BatchQueue::load(
                &store,
                &settings.endpoint.model,
                &settings.endpoint.api_key_env,
                b.max_attempts,
                b.enqueued_tokens,
            )
            .await?,
        );
        let api = BatchApi::new(
            &settings.endpoint,
            &b.base_url,
            &settings.limits,
            key,
            cancel.clone(),
        )?;
        let nonce = state::store_nonce(&store).await?;
        Ok(BatchRunner {
            api,
            queue,
            store,
            settings: b.clone(),
            model: settings.endpoint.model.clone(),
            nonce,
            progress,
            cancel,
            tokenizer: crate::tokens::Tokenizer::new(settings.chunking.encoding),
            summary: BatchSummary::default(),
        })
    }

    /// The queue, for [`crate::llm::ChatClient::with_deferral`].
    pub fn queue(&self) -> Arc<BatchQueue> {
        self.queue.clone()
    }

    /// Before the first pass: hands over batches an earlier run was preparing when it stopped,
    /// and collects those that finished meanwhile.
    pub async fn resume(&mut self) -> Result<(), RunnerError> {
        let open = state::open_batches(&self.store)
            .await
            .map_err(RunnerError::Store)?;
        if !open.is_empty() {
            tracing::info!(
                batches = open.len(),
                "picking up batches an earlier run left in flight"
            );
        }
        for b in open.into_iter().filter(|b| b.provider_id.is_none()) {
            self.hand_over(b).await?;
        }
        self.poll_once().await?;
        Ok(())
    }

    /// After a pass: submits what it deferred, then (unless `no_wait`) waits until a batch
    /// finishes and collects it.
    pub async fn after_pass(&mut self, phase: u32, no_wait: bool) -> Result<Step, RunnerError> {
        self.summary.phases = phase;
        self.submit(phase).await?;
        let open = state::open_batches(&self.store)
            .await
            .map_err(RunnerError::Store)?;
        self.summary.in_flight = open.len() as u32;
        if open.is_empty() {
            return Ok(Step::Idle);
        }
        if no_wait {
            return Ok(Step::LeftInFlight);
        }
        let mut interval = self.settings.poll_min;
        loop {
            let (collected, in_flight) = self.poll_once().await?;
            if collected == 0 && in_flight == 0 {
                // Every batch this pass waited for is gone from the store (another program
                // changed it) or was never submitted: nothing can finish, so waiting would
                // never end. The caller says "no batch left to wait for".
                return Ok(Step::Idle);
            }
            if collected > 0 {
                self.summary.in_flight = state::open_batches(&self.store)
                    .await
                    .map_err(RunnerError::Store)?
                    .len() as u32;
                return Ok(Step::Collected);
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.cancel.cancelled() => return Err(LlmError::Cancelled.into()),
            }
            interval = interval.mul_f64(1.5).min(self.settings.poll_max);
        }
    }

    /// Checks every batch in flight once, collecting those that finished; returns how many it
    /// collected and how many are still in flight.
    async fn poll_once(&mut self) -> Result<(usize, usize), RunnerError> {
        let mut collected = 0;
        let mut done = 0u64;
        let mut total = 0u64;
        let mut in_flight = 0usize;
        for mut b in state::open_batches(&self.store)
            .await
            .map_err(RunnerError::Store)?
        {
            let Some(provider_id) = b.provider_id.clone() else {
                continue;
            };
            let obj = self.api.retrieve(&provider_id).await?;
            let counts = obj.request_counts.unwrap_or_default();
            b.status = obj.status.clone();
            b.completed = counts.completed as i64;
            b.failed = counts.failed as i64;
            state::update_batch(&self.store, &b)
                .await
                .map_err(RunnerError::Store)?;
            tracing::info!(
                batch = %provider_id,
                status = %obj.status,
                completed = counts.completed,
                failed = counts.failed,
                total = counts.total.max(b.requests as u64),
                "batch"
            );
            if obj.is_terminal() {
                self.collect(b, &obj).await?;
                collected += 1;
            } else {
                in_flight += 1;
                done += counts.completed + counts.failed;
                total += counts.total.max(b.requests as u64);
            }
        }
        if let Some(p) = &self.progress {
            p.set_batch(Some(format!(
                "waiting for {in_flight} batch{} · {}/{} requests done",
                if in_flight == 1 { "" } else { "es" },
                crate::render::group(done as usize),
                crate::render::group(total as usize)
            )));
        }
        Ok((collected, in_flight))
    }

    /// Writes the pending requests into request files and submits them, within the file limits
    /// and the enqueued-token limit.
    async fn submit(&mut self, phase: u32) -> Result<(), RunnerError> {
        let pending = self.queue.pending();
        if pending.is_empty() {
            return Ok(());
        }
        let limit = self.queue.limit();
        let files = split(
            pending,
            &self.settings.url,
            &self.settings.model,
            self.settings.max_requests_per_file,
            self.settings.max_file_bytes,
            limit,
        );
        let mut enqueued: u64 = state::open_batches(&self.store)
            .await
            .map_err(RunnerError::Store)?
            .iter()
            .map(|b| b.tokens as u64)
            .sum();
        for mut rows in files {
            let tokens: u64 = rows.iter().map(|r| r.tokens).sum();
            if let Some(limit) = limit
                && enqueued > 0
                && enqueued + tokens > limit
            {
                tracing::info!(
                    enqueued,
                    limit,
                    "the enqueued-token limit is reached: the remaining requests wait for batches in flight"
                );
                break;
            }
            let bytes: usize = rows
                .iter()
                .map(|r| r.line(&self.settings.url, &self.settings.model).len() + 1)
                .sum();
            let batch = BatchRow {
                id: 0,
                tag: self.nonce.clone(),
                endpoint: self.api.base_url().to_string(),
                model: self.settings.model.clone(),
                phase: phase as i64,
                requests: rows.len() as i64,
                tokens: tokens as i64,
                bytes: bytes as i64,
                input_file_id: None,
                provider_id: None,
                status: "preparing".into(),
                completed: 0,
                failed: 0,
                collected: false,
                error: None,
                created_at: 0,
                updated_at: 0,
            };
            let id = state::record_batch(&self.store, &batch, &mut rows)
                .await
                .map_err(RunnerError::Store)?;
            self.queue.apply(&rows, Vec::new());
            self.summary.batches_submitted += 1;
            self.summary.requests_submitted += rows.len() as u64;
            enqueued += tokens;
            let batch = state::batch(&self.store, id)
                .await
                .map_err(RunnerError::Store)?
                .expect("recorded above");
            self.hand_over(batch).await?;
        }
        Ok(())
    }

    /// Uploads a recorded request file and creates its batch, or finds the batch an earlier
    /// process created from it before it was stopped.
    async fn hand_over(&mut self, mut b: BatchRow) -> Result<(), RunnerError> {
        let rows = state::requests_of(&self.store, b.id)
            .await
            .map_err(RunnerError::Store)?;
        if rows.is_empty() {
            b.status = "cancelled".into();
            b.collected = true;
            b.error = Some("no requests left to submit".into());
            return state::update_batch(&self.store, &b)
                .await
                .map_err(RunnerError::Store);
        }
        if let Some(file_id) = &b.input_file_id {
            // It may have been created before the stop: never create it twice.
            if let Some(found) = self.api.find_tagged(TAG_KEY, &b.tag, 10).await? {
                tracing::info!(batch = %found.id, file = %file_id, "found the batch an earlier run created");
                b.provider_id = Some(found.id.clone());
                b.status = found.status.clone();
                return state::update_batch(&self.store, &b)
                    .await
                    .map_err(RunnerError::Store);
            }
        } else {
            let mut jsonl = String::with_capacity(b.bytes as usize);
            for row in &rows {
                jsonl.push_str(&row.line(&self.settings.url, &self.settings.model));
                jsonl.push('\n');
            }
            let file = self
                .api
                .upload(&format!("{}.jsonl", b.tag), jsonl.as_bytes())
                .await?;
            b.input_file_id = Some(file.id);
            state::update_batch(&self.store, &b)
                .await
                .map_err(RunnerError::Store)?;
        }
        let file_id = b.input_file_id.clone().expect("set above");
        let metadata = BTreeMap::from([(TAG_KEY.to_string(), b.tag.clone())]);
        match self
            .api
            .create(&file_id, &self.settings.url, &metadata)
            .await
        {
            Ok(obj) => {
                tracing::info!(
                    batch = %obj.id,
                    requests = b.requests,
                    tokens = b.tokens,
                    phase = b.phase,
                    "submitted a batch"
                );
                b.provider_id = Some(obj.id.clone());
                b.status = obj.status.clone();
                state::update_batch(&self.store, &b)
                    .await
                    .map_err(RunnerError::Store)
            }
            Err(LlmError::BadRequest { message, .. })
                if message.contains("token_limit_exceeded") =>
            {
                b.status = "failed".into();
                b.error = Some(message.clone());
                self.token_limit(&b, &message, rows).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The provider refused a batch for the enqueued-token limit: believe its figure, put the
    /// requests back (no attempt counted) for a later file.
    async fn token_limit(
        &mut self,
        b: &BatchRow,
        message: &str,
        rows: Vec<ReqRow>,
    ) -> Result<(), RunnerError> {
        let lower = stated_token_limit(message).unwrap_or((b.tokens as u64 / 2).max(1));
        tracing::warn!(
            batch = b.id,
            limit = lower,
            "the provider says the enqueued-token limit is reached: waiting for batches in flight, and keeping under {lower} tokens"
        );
        self.queue.lower_limit(lower);
        let rows: Vec<ReqRow> = rows
            .into_iter()
            .map(|mut r| {
                r.state = ReqState::Retry;
                r.batch_id = None;
                r
            })
            .collect();
        self.requeue(b.clone(), &rows).await
    }

    /// Records a batch as done with and its requests as `rows` say (waiting for a later batch),
    /// in the store and in the queue.
    async fn requeue(&mut self, mut b: BatchRow, rows: &[ReqRow]) -> Result<(), RunnerError> {
        b.collected = true;
        state::save_requests(&self.store, rows)
            .await
            .map_err(RunnerError::Store)?;
        state::update_batch(&self.store, &b)
            .await
            .map_err(RunnerError::Store)?;
        self.queue.apply(rows, Vec::new());
        Ok(())
    }

    /// Downloads a finished batch's results into the call cache and settles its requests.
    async fn collect(&mut self, mut b: BatchRow, obj: &BatchObject) -> Result<(), RunnerError> {
        let rows = state::requests_of(&self.store, b.id)
            .await
            .map_err(RunnerError::Store)?;
        self.summary.batches_collected += 1;
        if obj.status == "failed" {
            let errors = obj.error_list();
            let text = errors
                .iter()
                .map(|(c, m)| format!("{c}: {m}"))
                .collect::<Vec<_>>()
                .join("; ");
            b.error = Some(text.clone());
            if errors.iter().any(|(c, _)| c == "token_limit_exceeded") {
                return self.token_limit(&b, &text, rows).await;
            }
            tracing::warn!(batch = ?b.provider_id, errors = %text, "a batch failed: its requests go into a later batch");
            let rows: Vec<ReqRow> = rows.into_iter().map(|r| self.retry(r, &text)).collect();
            return self.requeue(b, &rows).await;
        }
        let mut by_key: BTreeMap<String, ReqRow> =
            rows.into_iter().map(|r| (r.key.clone(), r)).collect();
        let mut settled: Vec<ReqRow> = Vec::new();
        let mut replies: Vec<(String, ChatReply)> = Vec::new();
        for file in [&obj.output_file_id, &obj.error_file_id]
            .into_iter()
            .flatten()
        {
            let text = self.api.content(file).await?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let (key, outcome) = match parse_line(line) {
                    Ok(x) => x,
                    Err(problem) => {
                        tracing::warn!(%problem, "a result line could not be read");
                        continue;
                    }
                };
                let Some(row) = by_key.remove(&key) else {
                    continue; // not ours, or already settled
                };
                let (row, reply) = self.settle(row, outcome);
                if let Some(reply) = reply {
                    replies.push((key, reply));
                }
                settled.push(row);
            }
        }
        // Requests with no line at all: cancelled ones are forgotten (the next run states them
        // afresh); others are retried.
        let cancelled = obj.status == "cancelled";
        let mut forgotten = Vec::new();
        for (key, row) in by_key {
            if cancelled {
                forgotten.push(key);
            } else {
                settled.push(self.retry(row, "no result came back for it"));
            }
        }
        if cancelled {
            // Lines cancelled by the provider are not failures either.
            settled.retain(|r| {
                let was_cancel = r.state == ReqState::Retry
                    && r.error.as_ref().and_then(|e| e.code.as_deref()) == Some("batch_cancelled");
                if was_cancel {
                    forgotten.push(r.key.clone());
                }
                !was_cancel
            });
        }
        // The replies first: a stop in between loses nothing (the batch is collected again).
        for (key, reply) in &replies {
            let purpose = settled
                .iter()
                .find(|r| &r.key == key)
                .map(|r| r.purpose.clone())
                .unwrap_or_default();
            self.store
                .put_call(key, &self.model, &purpose, reply)
                .await
                .map_err(RunnerError::Store)?;
        }
        state::save_requests(&self.store, &settled)
            .await
            .map_err(RunnerError::Store)?;
        state::delete_requests(&self.store, &forgotten)
            .await
            .map_err(RunnerError::Store)?;
        b.collected = true;
        state::update_batch(&self.store, &b)
            .await
            .map_err(RunnerError::Store)?;
        self.queue.apply(&settled, replies);
        self.queue.forget(&forgotten);
        Ok(())
    }

    /// A request goes into a later batch.
    fn retry(&mut self, mut row: ReqRow, why: &str) -> ReqRow {
        row.state = ReqState::Retry;
        row.batch_id = None;
        row.attempts += 1;
        row.error = Some(StoredError {
            status: 0,
            code: None,
            message: why.to_string(),
            truncated_at: None,
        });
        self.summary.retried += 1;
        row
    }

    /// What one result line means for its request: the row's new state, and the reply to cache.
    fn settle(&mut self, mut row: ReqRow, outcome: LineOutcome) -> (ReqRow, Option<ChatReply>) {
        match outcome {
            LineOutcome::Reply(ParsedReply::Reply {
                content,
                finish_reason,
                usage,
            }) => {
                if finish_reason == FinishReason::Length {
                    let grown = row.budget.saturating_mul(2).min(row.room);
                    if !row.grown && grown > row.budget {
                        row.grown = true;
                        row.state = ReqState::Retry;
                        row.batch_id = None;
                        self.summary.retried += 1;
                        return (row, None);
                    }
                    if !row.partial_ok {
                        row.state = ReqState::Failed;
                        row.error = Some(StoredError {
                            status: 200,
                            code: Some("length".into()),
                            message: "cut off at the token limit".into(),
                            truncated_at: Some(row.budget),
                        });
                        return (row, None);
                    }
                }
                let reported = usage.is_some();
                let usage = usage.unwrap_or_else(|| Usage {
                    prompt_tokens: row.tokens,
                    completion_tokens: self.tokenizer.count(&content) as u64,
                    ..Usage::default()
                });
                let reply = ChatReply {
                    content,
                    finish_reason,
                    usage,
                    usage_reported: reported,
                    cached: false,
                    batch: true,
                };
                row.state = ReqState::Done;
                row.error = None;
                (row, Some(reply))
            }
            // An error inside a 200 (gateways): the same as an error status.
            LineOutcome::Reply(ParsedReply::Error { status, api }) => {
                self.settle(row, LineOutcome::Failed { status, error: api })
            }
            LineOutcome::Reply(ParsedReply::Refusal(text)) => {
                row.state = ReqState::Failed;
                row.error = Some(StoredError {
                    status: 200,
                    code: Some("refusal".into()),
                    message: text,
                    truncated_at: None,
                });
                (row, None)
            }
            LineOutcome::Failed { status, error } => {
                let why = match &error.code {
                    Some(c) => format!("{c}: {}", error.message),
                    None => error.message.clone(),
                };
                if status == 0 {
                    let mut row = self.retry(row, &why);
                    if let Some(e) = row.error.as_mut() {
                        e.code = error.code.clone();
                    }
                    return (row, None);
                }
                let code = reqwest::StatusCode::from_u16(status)
                    .unwrap_or(reqwest::StatusCode::BAD_GATEWAY);
                match classify(
                    code,
                    &reqwest::header::HeaderMap::new(),
                    &error,
                    &row.body,
                    &self.model,
                    "",
                ) {
                    Verdict::Fail(_) | Verdict::Context { .. } => {
                        row.state = ReqState::Failed;
                        row.error = Some(StoredError {
                            status,
                            code: error.code.clone(),
                            message: error.message.clone(),
                            truncated_at: None,
                        });
                        (row, None)
                    }
                    Verdict::FormatRefused { .. } | Verdict::ParamRefused { .. } => {
                        // The ordinary call steps the output mode down, or drops the refused
                        // parameter (and remembers it): send it that way.
                        let mut row = self.retry(row, &why);
                        row.attempts = row.attempts.max(self.settings.max_attempts);
                        (row, None)
                    }
                    Verdict::RateLimited { .. } | Verdict::Retry { .. } => {
                        (self.retry(row, &why), None)
                    }
                }
            }
        }
    }

    /// At the end of a run with nothing left waiting: forgets settled requests.
    pub fn finish(&mut self) {
        self.summary.sent_synchronously = self.queue.sent_now() as u64;
        if let Some(p) = &self.progress {
            p.set_batch(None);
        }
    }

    /// Forgets settled requests (their replies are in the cache); called when no article is
    /// waiting any more.
    pub async fn forget_settled(&self) -> Result<(), StoreError> {
        state::forget_settled(&self.store).await
    }
}

/// Splits requests into files of at most `max_requests` lines, `max_bytes` bytes and (when a
/// limit is known) `limit` prompt tokens.
pub(crate) fn split(
    rows: Vec<ReqRow>,
    url: &str,
    model: &str,
    max_requests: usize,
    max_bytes: usize,
    limit: Option<u64>,
) -> Vec<Vec<ReqRow>> {
    let mut files = Vec::new();
    let mut current: Vec<ReqRow> = Vec::new();
    let (mut bytes, mut tokens) = (0usize, 0u64);
    for row in rows {
        let line = row.line(url, model).len() + 1;
        let full = current.len() + 1 > max_requests
            || bytes + line > max_bytes
            || limit.is_some_and(|l| tokens + row.tokens > l);
        if full && !current.is_empty() {
            files.push(std::mem::take(&mut current));
            bytes = 0;
            tokens = 0;
        }
        bytes += line;
        tokens += row.tokens;
        current.push(row);
    }
    if !current.is_empty() {
        files.push(current);
    }
    files
}

/// Bytes of a request line per prompt token, for a dry run's file sizes: measured on the request
/// files of Korean articles (`batches.bytes / batches.tokens` in the state store after batch
/// runs over `examples/articles`, 5.1, and `../shared/corpus`, 4.2 and 4.6), rounded up so that
/// a plan cuts files early rather than late. Hangul takes 3 bytes in UTF-8, and every line
/// carries the reply's JSON schema.
pub const EST_LINE_BYTES_PER_TOKEN: u64 = 6;

/// One phase of a dry run in batch mode: the requests it would submit and how they would be
/// split into request files.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PhasePlan {
    /// 1: every article's first calls (one-call briefs, map notes); then tree levels, reduces.
    pub phase: u32,
    pub requests: u64,
    /// Prompt tokens at most.
    pub prompt_tokens: u64,
    /// Bytes of its request lines, estimated.
    pub est_bytes: u64,
    /// Requests in each request file.
    pub files: Vec<u64>,
}

/// Adds up the planned steps of articles into phases (step `i` of every article goes in phase
/// `i + 1`: each needs the one before), and splits each phase into request files the way a
/// run would (`split`).
pub fn plan_phases<'a>(
    articles: impl IntoIterator<Item = &'a [crate::summarize::PlanStep]>,
    settings: &BatchSettings,
) -> Vec<PhasePlan> {
    // Per phase, the prompt tokens of each request.
    let mut phases: Vec<Vec<u64>> = Vec::new();
    for steps in articles {
        for (i, step) in steps.iter().enumerate() {
            if phases.len() <= i {
                phases.push(Vec::new());
            }
            let each = step.prompt_tokens / step.calls.max(1) as u64;
            phases[i].extend(std::iter::repeat_n(each, step.calls));
        }
    }
    phases
        .into_iter()
        .enumerate()
        .map(|(i, tokens)| {
            let mut plan = PhasePlan {
                phase: i as u32 + 1,
                requests: tokens.len() as u64,
                ..PhasePlan::default()
            };
            let (mut in_file, mut bytes, mut toks) = (0u64, 0u64, 0u64);
            for t in tokens {
                let line = t * EST_LINE_BYTES_PER_TOKEN;
                let full = in_file + 1 > settings.max_requests_per_file as u64
                    || bytes + line > settings.max_file_bytes as u64
                    || settings.enqueued_tokens.is_some_and(|l| toks + t > l);
                if full && in_file > 0 {
                    plan.files.push(in_file);
                    (in_file, bytes, toks) = (0, 0, 0);
                }
                in_file += 1;
                bytes += line;
                toks += t;
                plan.prompt_tokens += t;
                plan.est_bytes += line;
            }
            if in_file > 0 {
                plan.files.push(in_file);
            }
            plan
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summarize::PlanStep;

    fn batch_settings(max_requests: usize, enqueued: Option<u64>) -> BatchSettings {
        BatchSettings {
            enabled: true,
            base_url: String::new(),
            url: "/v1/chat/completions".into(),
            model: "m".into(),
            enqueued_tokens: enqueued,
            max_requests_per_file: max_requests,
            max_file_bytes: 200 * 1024 * 1024,
            poll_min: std::time::Duration::from_secs(1),
            poll_max: std::time::Duration::from_secs(1),
            max_attempts: 3,
        }
    }

    #[test]
    fn dry_run_phases_follow_the_articles_steps() {
        let step = |calls, prompt_tokens| PlanStep {
            calls,
            prompt_tokens,
        };
        let short = vec![step(1, 1_000)];
        let long = vec![step(4, 4_000), step(1, 2_000)];
        let tree = vec![step(6, 6_000), step(2, 1_000), step(1, 800)];
        let articles = [
            short.as_slice(),
            short.as_slice(),
            long.as_slice(),
            tree.as_slice(),
        ];
        let phases = plan_phases(articles, &batch_settings(50_000, None));
        let requests: Vec<u64> = phases.iter().map(|p| p.requests).collect();
        assert_eq!(requests, vec![12, 3, 1]);
        assert_eq!(phases[0].prompt_tokens, 12_000);
        assert_eq!(phases[1].prompt_tokens, 3_000);
        assert_eq!(phases[0].files, vec![12]);
        assert_eq!(phases[0].est_bytes, 12_000 * EST_LINE_BYTES_PER_TOKEN);

        // Files split at the requests per file and at the enqueued-token limit.
        let by_count = plan_phases(articles, &batch_settings(5, None));
        assert_eq!(by_count[0].files, vec![5, 5, 2]);
        let by_tokens = plan_phases(articles, &batch_settings(50_000, Some(4_500)));
        assert_eq!(by_tokens[0].files, vec![4, 4, 4]);
    }

    #[test]
    fn published_limits_by_model() {
        assert_eq!(published_enqueued_limit("gpt-4.1-mini"), Some(2_000_000));
        assert_eq!(
            published_enqueued_limit("gpt-4.1-mini-2025-04-14"),
            Some(2_000_000)
        );
        assert_eq!(published_enqueued_limit("gpt-4o"), Some(90_000));
        assert_eq!(published_enqueued_limit("gpt-4o-mini"), Some(2_000_000));
        assert_eq!(published_enqueued_limit("llama-3"), None);
    }

    #[test]
    fn stated_limits_are_read_from_both_wordings() {
        assert_eq!(
            stated_token_limit(
                "Enqueued token limit reached for gpt-4o in organization org-x. Limit: 90,000 enqueued tokens. Please try again once some in_progress batches have been completed."
            ),
            Some(90_000)
        );
        assert_eq!(
            stated_token_limit(
                "The number of enqueued tokens has surpassed the configured limit of 30K for the deployment 'gpt-4.1-batch'."
            ),
            Some(30_000)
        );
        assert_eq!(stated_token_limit("no number here"), None);
    }

    fn row(key: &str, tokens: u64, text_len: usize) -> ReqRow {
        ReqRow {
            key: key.into(),
            purpose: "map".into(),
            body: serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(text_len)}]}),
            tokens,
            budget: 100,
            room: 1000,
            partial_ok: true,
            state: ReqState::Pending,
            batch_id: None,
            attempts: 0,
            grown: false,
            error: None,
        }
    }

    const URL: &str = "/v1/chat/completions";

    #[test]
    fn files_split_at_requests_bytes_and_tokens() {
        let rows: Vec<ReqRow> = (0..10).map(|i| row(&format!("k{i}"), 100, 50)).collect();
        let by_count = split(rows.clone(), URL, "m", 4, 1_000_000, None);
        assert_eq!(
            by_count.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        let line = rows[0].line(URL, "m").len() + 1;
        let by_bytes = split(rows.clone(), URL, "m", 100, line * 3, None);
        assert_eq!(
            by_bytes.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![3, 3, 3, 1]
        );
        let by_tokens = split(rows, URL, "m", 100, 1_000_000, Some(500));
        assert_eq!(
            by_tokens.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![5, 5]
        );
    }
}
