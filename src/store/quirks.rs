//! What the client learned about an endpoint and model (a refused parameter, the server's real
//! context size, …; see `llm::quirks`), keyed by base URL and model, so that the next run does
//! not pay for the same refusal again.

use rusqlite::params;

use super::{Store, StoreError, now};

pub(super) const TABLE: &str = "CREATE TABLE IF NOT EXISTS quirks (
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    learned_at INTEGER NOT NULL,
    PRIMARY KEY (endpoint, model, key)
)";

impl Store {
    /// What was learned about `model` at `endpoint`, as key/value pairs.
    pub async fn quirks(
        &self,
        endpoint: &str,
        model: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let (endpoint, model) = (endpoint.to_string(), model.to_string());
        self.run(move |db| {
            db.conn
                .prepare_cached(
                    "SELECT key, value FROM quirks WHERE endpoint = ?1 AND model = ?2 ORDER BY key",
                )?
                .query_map(params![endpoint, model], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .await
    }

    /// Remembers one thing learned about `model` at `endpoint`. Does not wait: the write is
    /// queued on the store's thread (committed there at once, before any later query runs) and
    /// a failure is logged, since the client learns it from the middle of a call.
    pub fn learn_quirk(&self, endpoint: &str, model: &str, key: &str, value: &str) {
        let row = [endpoint, model, key, value].map(str::to_string);
        self.run_detached("remember what was learned about the endpoint", move |db| {
            db.conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO quirks (endpoint, model, key, value, learned_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![row[0], row[1], row[2], row[3], now()])?;
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn quirks_are_kept_per_endpoint_and_model_and_cleared_with_everything() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).await.unwrap();
            s.learn_quirk("https://a/v1", "m", "drop:temperature", "1");
            s.learn_quirk("https://a/v1", "m", "context_window", "4096");
            s.learn_quirk("https://a/v1", "m", "context_window", "2048");
            s.learn_quirk("https://b/v1", "m", "reasoning", "seen");
            // Queued writes run before any later query.
            assert_eq!(s.quirks("https://b/v1", "m").await.unwrap().len(), 1);
        }
        let s = Store::open(dir.path()).await.unwrap();
        assert_eq!(
            s.quirks("https://a/v1", "m").await.unwrap(),
            vec![
                ("context_window".to_string(), "2048".to_string()),
                ("drop:temperature".to_string(), "1".to_string())
            ]
        );
        assert!(s.quirks("https://a/v1", "other").await.unwrap().is_empty());
        s.clear(false).await.unwrap();
        assert_eq!(s.quirks("https://b/v1", "m").await.unwrap().len(), 1);
        s.clear(true).await.unwrap();
        assert!(s.quirks("https://b/v1", "m").await.unwrap().is_empty());
    }
}
