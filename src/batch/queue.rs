//! The queue of a batch run: the client's [`Deferral`]. It answers calls whose results a batch
//! brought back during this run (they count as this run's calls, at batch prices), takes the
//! calls nobody has answered yet for the next request file, and says "send it now" for a call
//! that failed in batches as often as `batch.max_attempts` allows or that is larger than the
//! enqueued-token limit.
//!
//! It mirrors the `batch_requests` rows in memory (a pass asks about every call of every
//! waiting article, many times over a run); every change of a row that matters after a crash
//! is written through to the store by the runner ([`super::BatchRunner`]).

use std::collections::HashMap;
use std::sync::Mutex;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::state::{self, ReqRow, ReqState, StoredError};
use crate::llm::ChatReply;
use crate::llm::batch::{Deferral, DeferredRequest};
use crate::llm::retry::{LlmError, Verdict, classify};
use crate::llm::types::ApiError;
use crate::store::{Store, StoreError};

/// The requests of a batch run, and the replies batches brought back.
pub struct BatchQueue {
    model: String,
    key_env: String,
    max_attempts: u32,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    rows: HashMap<String, ReqRow>,
    replies: HashMap<String, ChatReply>,
    /// Prompt tokens that may be enqueued at once, if known.
    limit: Option<u64>,
    /// Calls deferred during the current pass.
    deferred: usize,
    /// Calls sent as ordinary calls instead (past the attempts, or too large).
    sent_now: usize,
}

impl std::fmt::Debug for BatchQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchQueue")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl BatchQueue {
    /// The queue as the store left it: requests in flight, replies collected by an earlier
    /// process of this run (a run that was killed), requests to retry.
    pub async fn load(
        store: &Store,
        model: &str,
        key_env: &str,
        max_attempts: u32,
        limit: Option<u64>,
    ) -> Result<BatchQueue, StoreError> {
        state::ensure_tables(store).await?;
        let mut inner = Inner {
            limit,
            ..Inner::default()
        };
        for row in state::load_requests(store).await? {
            if row.state == ReqState::Done {
                match store.get_call(&row.key).await? {
                    Some(mut reply) => {
                        reply.batch = true;
                        inner.replies.insert(row.key.clone(), reply);
                    }
                    // Dropped from the cache since (found unusable): ask again.
                    None => continue,
                }
            }
            inner.rows.insert(row.key.clone(), row);
        }
        Ok(BatchQueue {
            model: model.to_string(),
            key_env: key_env.to_string(),
            max_attempts: max_attempts.max(1),
            inner: Mutex::new(inner),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a pass: requests planned but not submitted are forgotten (the pass states again
    /// the ones still needed).
    pub fn begin_pass(&self) {
        let mut inner = self.lock();
        inner.rows.retain(|_, r| r.state != ReqState::Pending);
        inner.deferred = 0;
    }

    /// Calls deferred in the current pass.
    pub fn deferred(&self) -> usize {
        self.lock().deferred
    }

    /// Calls sent as ordinary calls, past the attempts or the limit, so far.
    pub fn sent_now(&self) -> usize {
        self.lock().sent_now
    }

    /// The requests for the next request files, in a stable order.
    pub(crate) fn pending(&self) -> Vec<ReqRow> {
        let mut rows: Vec<ReqRow> = self
            .lock()
            .rows
            .values()
            .filter(|r| r.state == ReqState::Pending)
            .cloned()
            .collect();
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        rows
    }

    /// The enqueued-token limit, as configured or as the provider said.
    pub fn limit(&self) -> Option<u64> {
        self.lock().limit
    }

    /// Lowers the enqueued-token limit (the provider said it is lower).
    pub fn lower_limit(&self, to: u64) {
        let mut inner = self.lock();
        inner.limit = Some(inner.limit.map_or(to, |l| l.min(to)).max(1));
    }

    /// Takes rows as they now are (submitted, collected, to retry) and replies collected.
    pub(crate) fn apply(&self, rows: &[ReqRow], replies: Vec<(String, ChatReply)>) {
        let mut inner = self.lock();
        for row in rows {
            inner.rows.insert(row.key.clone(), row.clone());
        }
        for (key, reply) in replies {
            inner.replies.insert(key, reply);
        }
    }

    /// Forgets rows (requests of a cancelled batch: the next run states them afresh).
    pub fn forget(&self, keys: &[String]) {
        let mut inner = self.lock();
        for key in keys {
            inner.rows.remove(key);
        }
    }

    /// The error a request failed with for good, as the client would have reported it.
    fn error_of(&self, e: &StoredError) -> LlmError {
        if let Some(max_tokens) = e.truncated_at {
            return LlmError::Truncated { max_tokens };
        }
        if e.code.as_deref() == Some("refusal") {
            return LlmError::Refusal(e.message.clone());
        }
        let api = ApiError {
            message: e.message.clone(),
            code: e.code.clone(),
            ..Default::default()
        };
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        match classify(
            status,
            &HeaderMap::new(),
            &api,
            &serde_json::Value::Null,
            &self.model,
            &self.key_env,
        ) {
            Verdict::Fail(e) => e,
            Verdict::Context { message, .. } => LlmError::ContextLength { message },
            _ => LlmError::BadRequest {
                status: e.status,
                message: e.message.clone(),
            },
        }
    }
}

impl Deferral for BatchQueue {
    fn collected(&self, key: &str) -> Option<Result<ChatReply, LlmError>> {
        let inner = self.lock();
        let row = inner.rows.get(key)?;
        match row.state {
            ReqState::Done => inner.replies.get(key).map(|r| {
                let mut reply = r.clone();
                reply.cached = false;
                reply.batch = true;
                Ok(reply)
            }),
            ReqState::Failed => row.error.as_ref().map(|e| Err(self.error_of(e))),
            _ => None,
        }
    }

    fn defer(&self, request: DeferredRequest) -> bool {
        let mut inner = self.lock();
        if inner.limit.is_some_and(|l| request.prompt_tokens > l) {
            tracing::info!(
                tokens = request.prompt_tokens,
                limit = inner.limit,
                "a request is larger than the enqueued-token limit: sending it as an ordinary call"
            );
            inner.sent_now += 1;
            return false;
        }
        let max_attempts = self.max_attempts;
        let previous = inner.rows.get(&request.key).cloned();
        let mut row = match previous {
            Some(r) if r.state == ReqState::Submitted => {
                inner.deferred += 1;
                return true;
            }
            Some(r) if r.state == ReqState::Retry && r.attempts >= max_attempts => {
                tracing::info!(
                    purpose = %request.purpose,
                    attempts = r.attempts,
                    "a request failed in {} batches: sending it as an ordinary call",
                    r.attempts
                );
                inner.sent_now += 1;
                return false;
            }
            Some(r) => r,
            None => ReqRow {
                key: request.key.clone(),
                purpose: request.purpose.to_string(),
                body: serde_json::Value::Null,
                tokens: 0,
                budget: 0,
                room: 0,
                partial_ok: request.partial_ok,
                state: ReqState::Pending,
                batch_id: None,
                attempts: 0,
                grown: false,
                error: None,
            },
        };
        let mut body = request.body;
        let mut budget = request.budget;
        if row.grown && row.state == ReqState::Retry {
            // Cut off at the limit last time: twice the room, within the window.
            budget = (row.budget.max(budget).saturating_mul(2)).min(request.room);
            for field in ["max_tokens", "max_completion_tokens"] {
                if body.get(field).is_some() {
                    body[field] = serde_json::json!(budget);
                }
            }
        }
        row.body = body;
        row.tokens = request.prompt_tokens;
        row.budget = budget;
        row.room = request.room;
        row.partial_ok = request.partial_ok;
        row.state = ReqState::Pending;
        row.batch_id = None;
        inner.rows.insert(request.key, row);
        inner.deferred += 1;
        true
    }
}
