//! The names registry: the English rendering settled for each Korean name, so that it holds
//! from run to run (see `crate::names` for how one is settled).

use rusqlite::params;

use super::{Store, StoreError, now};

pub(super) const TABLE: &str = "CREATE TABLE IF NOT EXISTS names (
    ko TEXT PRIMARY KEY,
    en TEXT NOT NULL,
    first_seen INTEGER NOT NULL
)";

impl Store {
    /// The English renderings of Korean names settled so far.
    pub async fn names(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.run(|db| {
            db.conn
                .prepare("SELECT ko, en FROM names ORDER BY ko")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .await
    }

    /// Remembers renderings of names, in one transaction; a name already settled keeps its
    /// rendering.
    pub async fn add_names(&self, names: Vec<(String, String)>) -> Result<(), StoreError> {
        if names.is_empty() {
            return Ok(());
        }
        self.run(move |db| {
            let tx = db.conn.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT OR IGNORE INTO names (ko, en, first_seen) VALUES (?1, ?2, ?3)",
                )?;
                let t = now();
                for (ko, en) in &names {
                    st.execute(params![ko, en, t])?;
                }
            }
            tx.commit()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_settled_name_keeps_its_rendering() {
        let (_dir, s) = Store::temp().await;
        s.add_names(vec![("최태원".into(), "Chey Tae-won".into())])
            .await
            .unwrap();
        s.add_names(vec![
            ("최태원".into(), "Choi Tae-won".into()),
            ("한빛전자".into(), "Hanbit Electronics".into()),
        ])
        .await
        .unwrap();
        assert_eq!(
            s.names().await.unwrap(),
            vec![
                ("최태원".to_string(), "Chey Tae-won".to_string()),
                ("한빛전자".to_string(), "Hanbit Electronics".to_string())
            ]
        );
    }
}
