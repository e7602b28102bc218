//! The article manifest: per article (keyed by its canonical path), what was briefed from which
//! content with which settings, and which output files it owns.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError};

pub(super) const TABLE: &str = "CREATE TABLE IF NOT EXISTS articles (
    path TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL,
    settings_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    last_error TEXT,
    outputs TEXT NOT NULL,
    updated_at INTEGER NOT NULL
)";

/// One article in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManifestEntry {
    /// The article's manifest key (`output::Naming::key`): stable across runs and input roots.
    pub path: String,
    /// Hash of the article's bytes as read.
    pub content_hash: String,
    /// Fingerprint of the settings that shape a brief (model and endpoint included).
    pub settings_hash: String,
    /// The article's outcome in the run that wrote the entry (`written`, `failed`, …).
    pub status: String,
    /// Why it was not written, for any status but `written`.
    pub last_error: Option<String>,
    /// The files written for it, relative to the output folder.
    pub outputs: Vec<String>,
    /// Unix seconds.
    pub updated_at: i64,
}

impl Store {
    /// The manifest entry of an article.
    pub async fn article(&self, path: &str) -> Result<Option<ManifestEntry>, StoreError> {
        let path = path.to_string();
        self.run(move |db| {
            db.conn
                .prepare_cached(
                    "SELECT path, content_hash, settings_hash, status, last_error, outputs, updated_at FROM articles WHERE path = ?1",
                )?
                .query_row(params![path], |r| {
                    Ok(ManifestEntry {
                        path: r.get(0)?,
                        content_hash: r.get(1)?,
                        settings_hash: r.get(2)?,
                        status: r.get(3)?,
                        last_error: r.get(4)?,
                        outputs: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                        updated_at: r.get(6)?,
                    })
                })
                .optional()
        })
        .await
    }

    /// Records what happened to an article; with `forget`, drops the entry it replaces (one
    /// re-keyed from an older version's key), in the same transaction.
    pub async fn record_article(
        &self,
        e: &ManifestEntry,
        forget: Option<&str>,
    ) -> Result<(), StoreError> {
        let e = e.clone();
        let forget = forget.map(str::to_string);
        self.run(move |db| {
            let tx = db.conn.transaction()?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO articles (path, content_hash, settings_hash, status, last_error, outputs, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                e.path,
                e.content_hash,
                e.settings_hash,
                e.status,
                e.last_error,
                serde_json::to_string(&e.outputs).expect("strings serialise"),
                e.updated_at
            ])?;
            if let Some(old) = forget.filter(|old| *old != e.path) {
                tx.execute("DELETE FROM articles WHERE path = ?1", params![old])?;
            }
            tx.commit()
        })
        .await
    }

    /// Every article's outputs, `(key, outputs)`: the names earlier runs gave out.
    pub async fn article_outputs(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.run(|db| {
            db.conn
                .prepare_cached("SELECT path, outputs FROM articles WHERE outputs != '[]'")?
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default(),
                    ))
                })?
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manifest_entries_replace_each_other() {
        let (_dir, s) = Store::temp().await;
        let mut e = ManifestEntry {
            path: "a.txt".into(),
            content_hash: "h1".into(),
            settings_hash: "s1".into(),
            status: "written".into(),
            last_error: None,
            outputs: vec!["out/a.json".into()],
            updated_at: 1,
        };
        s.record_article(&e, None).await.unwrap();
        e.status = "failed".into();
        e.last_error = Some("boom".into());
        s.record_article(&e, None).await.unwrap();
        assert_eq!(s.article("a.txt").await.unwrap().unwrap(), e);
        assert!(s.article("b.txt").await.unwrap().is_none());
        // Re-keyed: the old entry goes in the same step.
        let mut moved = e.clone();
        moved.path = "/abs/a.txt".into();
        s.record_article(&moved, Some("a.txt")).await.unwrap();
        assert!(s.article("a.txt").await.unwrap().is_none());
        assert_eq!(s.article_outputs().await.unwrap().len(), 1);
    }
}
