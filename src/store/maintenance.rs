//! `hanbrief cache`: what the store holds, and tidying it (pruning calls not used for a while,
//! clearing).

use std::path::{Path, PathBuf};

use rusqlite::params;
use serde::Serialize;

use super::{RunSummary, Store, StoreError, flush_touched, now};

/// What `hanbrief cache stats` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreStats {
    pub path: String,
    pub bytes: u64,
    pub calls: u64,
    pub calls_by_purpose: Vec<(String, u64)>,
    pub calls_by_model: Vec<(String, u64)>,
    pub cached_prompt_tokens: u64,
    pub cached_completion_tokens: u64,
    pub oldest_call: Option<String>,
    pub newest_call: Option<String>,
    pub articles_by_status: Vec<(String, u64)>,
    pub names: u64,
    pub runs: u64,
    pub interrupted_runs: u64,
    pub last_run: Option<RunSummary>,
}

impl Store {
    /// Counts for `hanbrief cache stats`.
    pub async fn stats(&self) -> Result<StoreStats, StoreError> {
        let last_run = self.runs(1).await?.into_iter().next();
        let path = self.path().to_path_buf();
        let mut stats = self
            .run(move |db| {
                let conn = db.conn();
                let q = |sql: &str| -> Result<Vec<(String, u64)>, rusqlite::Error> {
                    conn.prepare(sql)?
                        .query_map([], |r| {
                            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                        })?
                        .collect()
                };
                let one = |sql: &str| -> Result<u64, rusqlite::Error> {
                    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
                        .map(|n| n as u64)
                };
                let time = |sql: &str| -> Result<Option<String>, rusqlite::Error> {
                    let t: Option<i64> = conn.query_row(sql, [], |r| r.get(0))?;
                    Ok(t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                        .map(|d| {
                            d.with_timezone(&chrono::Local)
                                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        }))
                };
                Ok(StoreStats {
                    path: path.display().to_string(),
                    bytes: file_size(&path),
                    calls: one("SELECT COUNT(*) FROM calls")?,
                    calls_by_purpose: q(
                        "SELECT purpose, COUNT(*) FROM calls GROUP BY purpose ORDER BY 2 DESC",
                    )?,
                    calls_by_model: q(
                        "SELECT model, COUNT(*) FROM calls GROUP BY model ORDER BY 2 DESC",
                    )?,
                    cached_prompt_tokens: one("SELECT COALESCE(SUM(prompt_tokens), 0) FROM calls")?,
                    cached_completion_tokens: one(
                        "SELECT COALESCE(SUM(completion_tokens), 0) FROM calls",
                    )?,
                    oldest_call: time("SELECT MIN(created_at) FROM calls")?,
                    newest_call: time("SELECT MAX(created_at) FROM calls")?,
                    articles_by_status: q(
                        "SELECT status, COUNT(*) FROM articles GROUP BY status ORDER BY 2 DESC",
                    )?,
                    names: one("SELECT COUNT(*) FROM names")?,
                    runs: one("SELECT COUNT(*) FROM runs")?,
                    interrupted_runs: one("SELECT COUNT(*) FROM runs WHERE finished_at IS NULL")?,
                    last_run: None,
                })
            })
            .await?;
        stats.last_run = last_run;
        Ok(stats)
    }

    /// Removes cached calls not used for `older_than` (by their last hit, or their creation if
    /// never hit); returns how many.
    pub async fn prune(&self, older_than: std::time::Duration) -> Result<usize, StoreError> {
        let cutoff = now() - older_than.as_secs() as i64;
        self.run(move |db| {
            // Hits of this process count as uses before anything is judged old.
            flush_touched(db)?;
            let n = db
                .conn
                .execute("DELETE FROM calls WHERE used_at < ?1", params![cutoff])?;
            db.conn
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")?;
            Ok(n)
        })
        .await
    }

    /// Removes every cached call, and with `everything` the manifest, the names registry, what
    /// was learned about endpoints, the models seen and the run history too. (Without it the
    /// models stay: the manifest's fingerprints were made from them.)
    pub async fn clear(&self, everything: bool) -> Result<usize, StoreError> {
        self.run(move |db| {
            db.touched.clear();
            let n = db.conn.execute("DELETE FROM calls", [])?;
            if everything {
                db.conn.execute_batch(
                    "DELETE FROM articles; DELETE FROM names; DELETE FROM runs; DELETE FROM quirks; DELETE FROM models;",
                )?;
            }
            db.conn
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")?;
            Ok(n)
        })
        .await
    }
}

fn file_size(db: &Path) -> u64 {
    let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = db.as_os_str().to_os_string();
    wal.push("-wal");
    size(db.to_path_buf()) + size(PathBuf::from(wal))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::calls::tests::reply;

    #[tokio::test]
    async fn prune_keeps_what_was_used_lately_and_clear_empties() {
        let (_dir, s) = Store::temp().await;
        s.put_call("a", "m", "map", &reply("x")).await.unwrap();
        s.put_call("b", "m", "map", &reply("y")).await.unwrap();
        s.put_call("c", "m", "map", &reply("z")).await.unwrap();
        let hour = std::time::Duration::from_secs(3600);
        assert_eq!(s.prune(hour).await.unwrap(), 0);
        s.run(|db| db.conn().execute("UPDATE calls SET used_at = 0", []))
            .await
            .unwrap();
        // `b` is hit now: its use, not yet written, still counts.
        assert!(s.get_call("b").await.unwrap().is_some());
        assert_eq!(s.prune(hour).await.unwrap(), 2);
        assert!(s.get_call("b").await.unwrap().is_some());
        assert_eq!(s.clear(false).await.unwrap(), 1);
        assert_eq!(s.stats().await.unwrap().calls, 0);
    }
}
