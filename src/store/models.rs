//! Every identity (endpoint and description, see `llm::identity`) under which an output folder
//! has seen each configured model, and what each one mixes into cache keys and settings
//! fingerprints: nothing for the first one seen (the baseline), a hash for any other.

use rusqlite::params;

use super::{Store, StoreError};
use crate::llm::identity::{ModelIdentity, mix};

pub(super) const TABLE: &str = "CREATE TABLE IF NOT EXISTS models (
    model TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    description TEXT NOT NULL,
    mix TEXT NOT NULL,
    seen INTEGER NOT NULL,
    PRIMARY KEY (model, endpoint, description)
)";

/// One identity seen before.
struct Seen {
    rowid: i64,
    endpoint: String,
    /// `''`: the server never described it.
    description: String,
    mix: String,
    /// The order in which identities were last seen (larger: later).
    seen: i64,
}

impl Store {
    /// Decides the identity of `model` at `endpoint` (normalised), as described by the server
    /// now (`described`), and records it (a read-only store records nothing: a dry run
    /// predicts). Without a description, the one last seen at that endpoint is used.
    pub async fn identify(
        &self,
        model: &str,
        endpoint: &str,
        described: Option<String>,
    ) -> Result<ModelIdentity, StoreError> {
        let (model, endpoint) = (model.to_string(), endpoint.to_string());
        self.run(move |db| {
            let write = !db.conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true);
            let rows: Vec<Seen> = match db.conn.prepare_cached(
                "SELECT rowid, endpoint, description, mix, seen FROM models WHERE model = ?1 ORDER BY rowid",
            ) {
                Ok(mut st) => st
                    .query_map(params![model], |r| {
                        Ok(Seen {
                            rowid: r.get(0)?,
                            endpoint: r.get(1)?,
                            description: r.get(2)?,
                            mix: r.get(3)?,
                            seen: r.get(4)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?,
                // A read-only store made before this table existed: nothing seen yet.
                Err(_) if !write => Vec::new(),
                Err(e) => return Err(e),
            };
            let here = || rows.iter().filter(|r| r.endpoint == endpoint);
            let description = described.or_else(|| {
                here()
                    .filter(|r| !r.description.is_empty())
                    .max_by_key(|r| r.seen)
                    .map(|r| r.description.clone())
            });
            let wanted = description.as_deref().unwrap_or("");
            let found = here()
                .find(|r| r.description == wanted)
                // First described now: the identity seen here before without a description.
                .or_else(|| here().find(|r| r.description.is_empty()));
            let next = rows.iter().map(|r| r.seen).max().unwrap_or(0) + 1;
            let chosen = match found {
                Some(row) => {
                    if write {
                        db.conn
                            .prepare_cached(
                                "UPDATE models SET seen = ?2, description = ?3 WHERE rowid = ?1",
                            )?
                            .execute(params![row.rowid, next, wanted])?;
                    }
                    row.mix.clone()
                }
                None => {
                    let chosen = match rows.is_empty() {
                        true => String::new(),
                        false => mix(&model, &endpoint, description.as_deref()),
                    };
                    if write {
                        db.conn
                            .prepare_cached(
                                "INSERT OR REPLACE INTO models (model, endpoint, description, mix, seen)
                                 VALUES (?1, ?2, ?3, ?4, ?5)",
                            )?
                            .execute(params![model, endpoint, wanted, chosen, next])?;
                    }
                    chosen
                }
            };
            Ok(ModelIdentity {
                changed: !chosen.is_empty(),
                mix: (!chosen.is_empty()).then_some(chosen),
                description,
                new: found.is_none(),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: &str = "http://127.0.0.1:8088/v1";

    #[tokio::test]
    async fn the_first_identity_is_the_baseline_and_others_are_mixed_in() {
        let (_dir, s) = Store::temp().await;
        let first = s.identify("m", E, Some("A".into())).await.unwrap();
        assert_eq!(first.mix, None);
        assert!(first.new && !first.changed);
        // The same again: still the baseline, not news.
        let again = s.identify("m", E, Some("A".into())).await.unwrap();
        assert_eq!((again.mix, again.new), (None, false));
        // A swapped file: its own keys.
        let swapped = s.identify("m", E, Some("B".into())).await.unwrap();
        assert!(swapped.mix.is_some() && swapped.new && swapped.changed);
        // The server does not answer: the last description seen there (B) is used.
        let silent = s.identify("m", E, None).await.unwrap();
        assert_eq!(silent.mix, swapped.mix);
        assert_eq!(silent.description.as_deref(), Some("B"));
        // Back to A: the baseline again.
        assert_eq!(
            s.identify("m", E, Some("A".into())).await.unwrap().mix,
            None
        );
        // Another provider under the same name.
        let other = s
            .identify("m", "https://api.example.com:443/v1", Some("A".into()))
            .await
            .unwrap();
        assert!(other.mix.is_some() && other.mix != swapped.mix);
        // Another model has its own baseline.
        assert_eq!(
            s.identify("n", E, Some("B".into())).await.unwrap().mix,
            None
        );
        assert_eq!(
            s.identify("m", E, None)
                .await
                .unwrap()
                .description
                .as_deref(),
            Some("A")
        );
    }

    #[tokio::test]
    async fn an_identity_first_seen_undescribed_keeps_its_keys_once_described() {
        let (_dir, s) = Store::temp().await;
        assert_eq!(s.identify("m", E, None).await.unwrap().mix, None);
        let described = s.identify("m", E, Some("A".into())).await.unwrap();
        assert_eq!((described.mix, described.new), (None, false));
        // Elsewhere, first undescribed then described: one identity, one hash.
        let far = "http://10.0.0.1:80/v1";
        let undescribed = s.identify("m", far, None).await.unwrap().mix;
        assert!(undescribed.is_some());
        assert_eq!(
            s.identify("m", far, Some("A".into())).await.unwrap().mix,
            undescribed
        );
    }

    #[tokio::test]
    async fn a_read_only_store_predicts_and_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).await.unwrap();
            s.identify("m", E, Some("A".into())).await.unwrap();
        }
        let ro = Store::open_read_only(dir.path()).await.unwrap().unwrap();
        let b = ro.identify("m", E, Some("B".into())).await.unwrap();
        assert!(b.mix.is_some() && b.new);
        assert!(ro.identify("m", E, Some("B".into())).await.unwrap().new);
        assert_eq!(ro.identify("m", E, None).await.unwrap().mix, None);
    }
}
