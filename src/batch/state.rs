//! What batch mode keeps in the state store (`OUT/.hanbrief/state.db`), in two tables of its own
//! beside the call cache:
//!
//! - `batches`: one row per request file hanbrief submitted, written (status `preparing`) in the
//!   same transaction that assigns its requests to it, before anything is uploaded; then the
//!   uploaded file's id, the provider's batch id, the provider's status and counts as polled,
//!   and whether its results have been collected.
//! - `batch_requests`: one row per request that is in a batch or came back from one: its
//!   `custom_id` (the call's cache key), the body as submitted, its state (`submitted`, `done`,
//!   `retry`, `failed`), the batch it is in, attempts so far, and the error it failed with.
//!   Requests only planned for the next file (`pending`) live in memory: a killed run loses
//!   nothing by forgetting them, since the next run's pass states them again.
//!
//! Replies themselves go into the call cache (`calls`), the one record of finished calls.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// Creates the tables if they are not there (a store made before batch mode).
pub(crate) async fn ensure_tables(store: &Store) -> Result<(), StoreError> {
    store
        .run(move |db| {
            let c = db.conn();
            c.execute_batch(
                "CREATE TABLE IF NOT EXISTS batches (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 tag TEXT NOT NULL,
                 endpoint TEXT NOT NULL,
                 model TEXT NOT NULL,
                 phase INTEGER NOT NULL,
                 requests INTEGER NOT NULL,
                 tokens INTEGER NOT NULL,
                 bytes INTEGER NOT NULL,
                 input_file_id TEXT,
                 provider_id TEXT,
                 status TEXT NOT NULL,
                 completed INTEGER NOT NULL DEFAULT 0,
                 failed INTEGER NOT NULL DEFAULT 0,
                 collected INTEGER NOT NULL DEFAULT 0,
                 error TEXT,
                 created_at INTEGER NOT NULL,
                 updated_at INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS batch_requests (
                 key TEXT PRIMARY KEY,
                 purpose TEXT NOT NULL,
                 body TEXT NOT NULL,
                 tokens INTEGER NOT NULL,
                 budget INTEGER NOT NULL,
                 room INTEGER NOT NULL,
                 partial_ok INTEGER NOT NULL,
                 state TEXT NOT NULL,
                 batch_id INTEGER,
                 attempts INTEGER NOT NULL DEFAULT 0,
                 grown INTEGER NOT NULL DEFAULT 0,
                 error TEXT,
                 updated_at INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS batch_requests_batch ON batch_requests (batch_id);",
            )
        })
        .await
}

/// Whether the store has batch tables at all (a read-only store is never changed).
pub(crate) async fn has_tables(store: &Store) -> bool {
    store
        .run(|db| {
            db.conn().query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'batches'",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .await
        .map(|n| n > 0)
        .unwrap_or(false)
}

/// The state of a request row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReqState {
    /// In memory only: goes into the next request file.
    Pending,
    /// In a batch that is being prepared or is in flight.
    Submitted,
    /// Its reply is in the call cache.
    Done,
    /// Came back failed or cut off: goes into a later batch (or is sent, past the limit).
    Retry,
    /// Came back with an error that another try would not change.
    Failed,
}

impl ReqState {
    fn as_str(self) -> &'static str {
        match self {
            ReqState::Pending => "pending",
            ReqState::Submitted => "submitted",
            ReqState::Done => "done",
            ReqState::Retry => "retry",
            ReqState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> ReqState {
        match s {
            "submitted" => ReqState::Submitted,
            "done" => ReqState::Done,
            "retry" => ReqState::Retry,
            "failed" => ReqState::Failed,
            _ => ReqState::Pending,
        }
    }
}

/// An error a request came back with, as kept in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredError {
    pub status: u16,
    #[serde(default)]
    pub code: Option<String>,
    pub message: String,
    /// The reply was cut off at this budget even with more room (a brief, which cannot be
    /// used cut).
    #[serde(default)]
    pub truncated_at: Option<u32>,
}

/// One request row.
#[derive(Debug, Clone)]
pub(crate) struct ReqRow {
    pub key: String,
    pub purpose: String,
    pub body: serde_json::Value,
    pub tokens: u64,
    pub budget: u32,
    pub room: u32,
    pub partial_ok: bool,
    pub state: ReqState,
    pub batch_id: Option<i64>,
    pub attempts: u32,
    pub grown: bool,
    pub error: Option<StoredError>,
}

impl ReqRow {
    /// The request's line in a request file, naming `model` (Azure: the global-batch
    /// deployment; the cache key stays the endpoint's model).
    pub fn line(&self, url: &str, model: &str) -> String {
        let mut body = self.body.clone();
        if body.get("model").is_some() {
            body["model"] = serde_json::json!(model);
        }
        crate::llm::batch::request_line(&self.key, url, &body)
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Every request row (for the queue's memory at the start of a run).
pub(crate) async fn load_requests(store: &Store) -> Result<Vec<ReqRow>, StoreError> {
    store.run(move |db| {
        let c = db.conn();
        let mut st = c.prepare(
            "SELECT key, purpose, body, tokens, budget, room, partial_ok, state, batch_id, attempts, grown, error FROM batch_requests",
        )?;
        let rows = st.query_map([], |r| {
            Ok(ReqRow {
                key: r.get(0)?,
                purpose: r.get(1)?,
                body: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                tokens: r.get::<_, i64>(3)? as u64,
                budget: r.get::<_, i64>(4)? as u32,
                room: r.get::<_, i64>(5)? as u32,
                partial_ok: r.get::<_, i64>(6)? != 0,
                state: ReqState::parse(&r.get::<_, String>(7)?),
                batch_id: r.get(8)?,
                attempts: r.get::<_, i64>(9)? as u32,
                grown: r.get::<_, i64>(10)? != 0,
                error: r
                    .get::<_, Option<String>>(11)?
                    .and_then(|e| serde_json::from_str(&e).ok()),
            })
        })?;
        rows.collect()
    })
    .await
}

fn put_request(c: &Connection, row: &ReqRow) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT OR REPLACE INTO batch_requests (key, purpose, body, tokens, budget, room, partial_ok, state, batch_id, attempts, grown, error, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        row.key,
        row.purpose,
        row.body.to_string(),
        row.tokens as i64,
        row.budget as i64,
        row.room as i64,
        row.partial_ok as i64,
        row.state.as_str(),
        row.batch_id,
        row.attempts as i64,
        row.grown as i64,
        row.error
            .as_ref()
            .map(|e| serde_json::to_string(e).expect("an error serialises")),
        now(),
    ])?;
    Ok(())
}

/// Writes request rows (their new states), in one transaction.
pub(crate) async fn save_requests(store: &Store, rows: &[ReqRow]) -> Result<(), StoreError> {
    write_each(store, rows.to_vec(), put_request).await
}

/// Drops request rows.
pub(crate) async fn delete_requests(store: &Store, keys: &[String]) -> Result<(), StoreError> {
    write_each(store, keys.to_vec(), |c, key| {
        c.prepare_cached("DELETE FROM batch_requests WHERE key = ?1")?
            .execute(params![key])
            .map(drop)
    })
    .await
}

/// `write` for each of `items`, in one transaction: all of them or none.
async fn write_each<T: Send + 'static>(
    store: &Store,
    items: Vec<T>,
    write: fn(&Connection, &T) -> rusqlite::Result<()>,
) -> Result<(), StoreError> {
    store
        .run(move |db| {
            let tx = db.conn().unchecked_transaction()?;
            for item in &items {
                write(&tx, item)?;
            }
            tx.commit()
        })
        .await
}

/// One submitted request file.
#[derive(Debug, Clone, Serialize)]
pub struct BatchRow {
    /// hanbrief's number for it.
    pub id: i64,
    /// The metadata tag it carries at the provider (`hanbrief_batch`), to find it again.
    pub tag: String,
    /// The files and batches endpoint it went to (`[batch] base_url`), and the model its
    /// requests name.
    pub endpoint: String,
    pub model: String,
    /// Which pass of its run submitted it (1: the first calls of every article).
    pub phase: i64,
    /// Requests in its file, their prompt tokens (what counts against the enqueued-token
    /// limit) and the file's size.
    pub requests: i64,
    pub tokens: i64,
    pub bytes: i64,
    /// The provider's ids of the uploaded file and of the batch, once it has them.
    pub input_file_id: Option<String>,
    pub provider_id: Option<String>,
    /// `preparing` until the provider has it; then the provider's status.
    pub status: String,
    /// Request lines done and failed, as the provider last counted them.
    pub completed: i64,
    pub failed: i64,
    /// Its results are in the cache (or its requests went back to the queue): nothing is left
    /// to fetch.
    pub collected: bool,
    /// Why it failed or was given up (the provider's errors, or ours).
    pub error: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl BatchRow {
    /// Whether the batch still holds requests the provider has not finished, or that were
    /// never handed over (`preparing`).
    pub fn in_flight(&self) -> bool {
        !crate::llm::batch::is_terminal(&self.status)
    }
}

const BATCH_COLUMNS: &str = "id, tag, endpoint, model, phase, requests, tokens, bytes, input_file_id, provider_id, status, completed, failed, collected, error, created_at, updated_at";

fn batch_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BatchRow> {
    Ok(BatchRow {
        id: r.get(0)?,
        tag: r.get(1)?,
        endpoint: r.get(2)?,
        model: r.get(3)?,
        phase: r.get(4)?,
        requests: r.get(5)?,
        tokens: r.get(6)?,
        bytes: r.get(7)?,
        input_file_id: r.get(8)?,
        provider_id: r.get(9)?,
        status: r.get(10)?,
        completed: r.get(11)?,
        failed: r.get(12)?,
        collected: r.get::<_, i64>(13)? != 0,
        error: r.get(14)?,
        created_at: r.get(15)?,
        updated_at: r.get(16)?,
    })
}

/// Every batch, newest first (`limit`: at most that many).
pub async fn batches(store: &Store, limit: usize) -> Result<Vec<BatchRow>, StoreError> {
    select_batches(store, "ORDER BY id DESC LIMIT ?1", Some(limit as i64)).await
}

/// The batches whose results are not in yet (being prepared, in flight, or finished at the
/// provider and not collected), oldest first.
pub async fn open_batches(store: &Store) -> Result<Vec<BatchRow>, StoreError> {
    select_batches(store, "WHERE collected = 0 ORDER BY id", None).await
}

/// The batches `rest` (the query after `FROM batches`, with `?1` bound to `param` if any)
/// selects; none in a store that has never seen batch mode.
async fn select_batches(
    store: &Store,
    rest: &'static str,
    param: Option<i64>,
) -> Result<Vec<BatchRow>, StoreError> {
    if !has_tables(store).await {
        return Ok(Vec::new());
    }
    store
        .run(move |db| {
            let c = db.conn();
            let mut st = c.prepare(&format!("SELECT {BATCH_COLUMNS} FROM batches {rest}"))?;
            let rows = match param {
                Some(p) => st.query_map(params![p], batch_row)?,
                None => st.query_map([], batch_row)?,
            };
            rows.collect()
        })
        .await
}

/// One batch by hanbrief's number or the provider's id.
pub async fn find_batch(store: &Store, id: &str) -> Result<Option<BatchRow>, StoreError> {
    if !has_tables(store).await {
        return Ok(None);
    }
    let id = id.to_string();
    store.run(move |db| {
        let c = db.conn();
        c.query_row(
            &format!("SELECT {BATCH_COLUMNS} FROM batches WHERE provider_id = ?1 OR CAST(id AS TEXT) = ?1"),
            params![id],
            batch_row,
        )
        .optional()
    })
    .await
}

/// Records a new request file and assigns its requests to it, in one transaction, before
/// anything is uploaded: whatever happens next, the next run knows these requests are taken.
pub(crate) async fn record_batch(
    store: &Store,
    batch: &BatchRow,
    rows: &mut [ReqRow],
) -> Result<i64, StoreError> {
    let batch = batch.clone();
    let mut owned = rows.to_vec();
    let (id, owned) = store.run(move |db| {
        let c = db.conn();
        let tx = c.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO batches (tag, endpoint, model, phase, requests, tokens, bytes, status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'preparing', ?8, ?8)",
            params![
                batch.tag,
                batch.endpoint,
                batch.model,
                batch.phase,
                batch.requests,
                batch.tokens,
                batch.bytes,
                now()
            ],
        )?;
        let id = tx.last_insert_rowid();
        // The tag names the row: a nonce of this store and the row's number.
        tx.execute(
            "UPDATE batches SET tag = tag || '-' || id WHERE id = ?1",
            params![id],
        )?;
        for row in owned.iter_mut() {
            row.state = ReqState::Submitted;
            row.batch_id = Some(id);
            put_request(&tx, row)?;
        }
        tx.commit()?;
        Ok((id, owned))
    })
    .await?;
    rows.clone_from_slice(&owned);
    Ok(id)
}

/// Updates what is known of a batch.
pub async fn update_batch(store: &Store, b: &BatchRow) -> Result<(), StoreError> {
    let b = b.clone();
    store.run(move |db| {
        let c = db.conn();
        c.execute(
            "UPDATE batches SET input_file_id = ?2, provider_id = ?3, status = ?4, completed = ?5, failed = ?6, collected = ?7, error = ?8, updated_at = ?9 WHERE id = ?1",
            params![
                b.id,
                b.input_file_id,
                b.provider_id,
                b.status,
                b.completed,
                b.failed,
                b.collected as i64,
                b.error,
                now()
            ],
        )?;
        Ok(())
    })
    .await
}

/// A batch's row, read again.
pub(crate) async fn batch(store: &Store, id: i64) -> Result<Option<BatchRow>, StoreError> {
    store
        .run(move |db| {
            let c = db.conn();
            c.query_row(
                &format!("SELECT {BATCH_COLUMNS} FROM batches WHERE id = ?1"),
                params![id],
                batch_row,
            )
            .optional()
        })
        .await
}

/// The request rows of one batch.
pub(crate) async fn requests_of(store: &Store, batch_id: i64) -> Result<Vec<ReqRow>, StoreError> {
    Ok(load_requests(store)
        .await?
        .into_iter()
        .filter(|r| r.batch_id == Some(batch_id) && r.state == ReqState::Submitted)
        .collect())
}

/// A random nonce of this store, made once: batch tags are unique across output folders that
/// share one provider account.
pub(crate) async fn store_nonce(store: &Store) -> Result<String, StoreError> {
    store
        .run(move |db| {
            let c = db.conn();
            let found: Option<String> = c
                .query_row(
                    "SELECT value FROM meta WHERE key = 'batch_nonce'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(n) = found {
                return Ok(n);
            }
            let nonce = format!("hb{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff);
            c.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('batch_nonce', ?1)",
                params![nonce],
            )?;
            c.query_row(
                "SELECT value FROM meta WHERE key = 'batch_nonce'",
                [],
                |r| r.get(0),
            )
        })
        .await
}

/// Drops a batch that was recorded but never handed to the provider (`hanbrief batch cancel`):
/// its requests are forgotten, and the next run states them afresh.
pub async fn drop_unsent(store: &Store, b: &BatchRow) -> Result<(), StoreError> {
    let id = b.id;
    store
        .run(move |db| {
            let tx = db.conn().unchecked_transaction()?;
            tx.execute("DELETE FROM batch_requests WHERE batch_id = ?1", params![id])?;
            tx.execute(
                "UPDATE batches SET status = 'cancelled', collected = 1, updated_at = ?2 WHERE id = ?1",
                params![id, now()],
            )?;
            tx.commit()
        })
        .await
}

/// After a run with nothing left waiting: forgets the requests that are not in a batch in
/// flight (their replies are in the call cache).
pub(crate) async fn forget_settled(store: &Store) -> Result<(), StoreError> {
    store
        .run(move |db| {
            let c = db.conn();
            c.execute("DELETE FROM batch_requests WHERE state != 'submitted'", [])?;
            Ok(())
        })
        .await
}
