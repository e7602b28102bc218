//! The call cache: finished model calls by the hash of everything that shaped them, and
//! [`StoreCache`], the store as the client's [`CallCache`].

use futures::future::BoxFuture;
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, flush_touched, now};
use crate::llm::identity::ModelIdentity;
use crate::llm::{CallCache, ChatReply};

pub(super) const TABLE: &str = "CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    purpose TEXT NOT NULL,
    reply TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    used_at INTEGER NOT NULL
)";

/// Cache hits gathered before their "last used" times are written anyway.
const TOUCH_BATCH: usize = 512;

impl Store {
    /// A cached reply. Only reads: the hit's "last used" time is written later, with others.
    pub async fn get_call(&self, key: &str) -> Result<Option<ChatReply>, StoreError> {
        let key = key.to_string();
        self.run(move |db| {
            // Cached statements: these run once or twice per call of a run.
            let reply: Option<String> = db
                .conn
                .prepare_cached("SELECT reply FROM calls WHERE key = ?1")?
                .query_row(params![key], |r| r.get(0))
                .optional()?;
            let Some(reply) = reply else { return Ok(None) };
            db.touched.push(key);
            if db.touched.len() >= TOUCH_BATCH {
                flush_touched(db)?;
            }
            // A row we cannot read (written by another version) is a miss, not an error.
            Ok(serde_json::from_str(&reply).ok())
        })
        .await
    }

    /// Stores a finished call (committed at once).
    pub async fn put_call(
        &self,
        key: &str,
        model: &str,
        purpose: &str,
        reply: &ChatReply,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(reply).expect("a reply always serialises");
        let (key, model, purpose) = (key.to_string(), model.to_string(), purpose.to_string());
        let (prompt, completion) = (
            reply.usage.prompt_tokens as i64,
            reply.usage.completion_tokens as i64,
        );
        self.run(move |db| {
            db.conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO calls (key, model, purpose, reply, prompt_tokens, completion_tokens, created_at, used_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                )?
                .execute(params![key, model, purpose, json, prompt, completion, now()])?;
            Ok(())
        })
        .await
    }

    /// Drops a cached call.
    pub async fn forget_call(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_string();
        self.run(move |db| {
            db.conn
                .execute("DELETE FROM calls WHERE key = ?1", params![key])?;
            Ok(())
        })
        .await
    }
}

/// The store as the client's call cache. With `read` off (`--force`), lookups always miss but
/// new replies are still stored.
pub struct StoreCache {
    pub store: Store,
    pub model: String,
    pub read: bool,
}

impl CallCache for StoreCache {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<ChatReply>> {
        Box::pin(async move {
            if !self.read {
                return None;
            }
            match self.store.get_call(key).await {
                Ok(hit) => hit,
                Err(e) => {
                    tracing::warn!("cache lookup failed ({e}); making the call");
                    None
                }
            }
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        purpose: &'a str,
        reply: &'a ChatReply,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self.store.put_call(key, &self.model, purpose, reply).await {
                tracing::warn!(
                    "cannot cache a finished call ({e}); a later run will make it again"
                );
            }
        })
    }

    fn forget<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self.store.forget_call(key).await {
                tracing::warn!("cannot drop an unusable cached reply ({e})");
            }
        })
    }

    fn quirks<'a>(
        &'a self,
        endpoint: &'a str,
        model: &'a str,
    ) -> BoxFuture<'a, Vec<(String, String)>> {
        Box::pin(async move {
            self.store
                .quirks(endpoint, model)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(
                        "cannot read what earlier runs learned about the endpoint ({e})"
                    );
                    Vec::new()
                })
        })
    }

    fn learn(&self, endpoint: &str, model: &str, key: &str, value: &str) {
        self.store.learn_quirk(endpoint, model, key, value);
    }

    fn identify<'a>(
        &'a self,
        model: &'a str,
        endpoint: &'a str,
        described: Option<String>,
    ) -> BoxFuture<'a, ModelIdentity> {
        Box::pin(async move {
            self.store
                .identify(model, endpoint, described)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(
                        "cannot read or record which model answers ({e}); its answers are keyed as the first model's"
                    );
                    ModelIdentity::default()
                })
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::llm::{FinishReason, Usage};

    pub(crate) fn reply(text: &str) -> ChatReply {
        ChatReply {
            content: text.to_string(),
            finish_reason: FinishReason::Stop,
            usage: Usage {
                prompt_tokens: 10,
                completion_tokens: 5,
                reasoning_tokens: 0,
            },
            usage_reported: true,
            cached: false,
            batch: false,
        }
    }

    async fn used_at(s: &Store, key: &'static str) -> i64 {
        s.run(move |db| {
            db.conn()
                .query_row("SELECT used_at FROM calls WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn calls_round_trip_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).await.unwrap();
            assert!(s.get_call("k").await.unwrap().is_none());
            s.put_call("k", "m", "brief", &reply("안녕")).await.unwrap();
        }
        let s = Store::open(dir.path()).await.unwrap();
        assert_eq!(s.get_call("k").await.unwrap().unwrap().content, "안녕");
        let stats = s.stats().await.unwrap();
        assert_eq!(stats.calls, 1);
        assert_eq!(stats.calls_by_purpose, vec![("brief".to_string(), 1)]);
        assert_eq!(stats.cached_prompt_tokens, 10);
    }

    #[tokio::test]
    async fn a_lookup_writes_nothing_until_the_hits_are_flushed() {
        let (_dir, s) = Store::temp().await;
        s.put_call("k", "m", "brief", &reply("x")).await.unwrap();
        s.run(|db| db.conn().execute("UPDATE calls SET used_at = 1", []))
            .await
            .unwrap();
        let changes_before = s.run(|db| Ok(db.conn().total_changes())).await.unwrap();
        assert!(s.get_call("k").await.unwrap().is_some());
        let changes_after = s.run(|db| Ok(db.conn().total_changes())).await.unwrap();
        assert_eq!(changes_before, changes_after, "a cache hit wrote");
        assert_eq!(used_at(&s, "k").await, 1);
        s.flush().await.unwrap();
        assert!(
            used_at(&s, "k").await > 1,
            "the hit's time was never written"
        );
    }

    #[tokio::test]
    async fn hits_are_recorded_when_the_store_closes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).await.unwrap();
            s.put_call("k", "m", "brief", &reply("x")).await.unwrap();
            s.run(|db| db.conn().execute("UPDATE calls SET used_at = 1", []))
                .await
                .unwrap();
            s.get_call("k").await.unwrap();
        }
        // The thread writes what is pending when the last handle goes; wait for it by
        // reopening until the time shows (a bounded wait: the thread has nothing else to do).
        let mut seen = 1;
        for _ in 0..100 {
            let s = Store::open(dir.path()).await.unwrap();
            seen = used_at(&s, "k").await;
            if seen > 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(seen > 1, "the pending hit was lost when the store closed");
    }
}
