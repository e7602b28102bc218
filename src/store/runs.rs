//! The run history: one row per `summarize` run (start, end, counts, tokens, cost, exit code
//! and the report without its unchanged articles).

use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError, flush_touched};
use crate::report::{RunReport, Status};

pub(super) const TABLE: &str = "CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    exit_code INTEGER,
    written INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    calls INTEGER NOT NULL DEFAULT 0,
    cached_calls INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    report TEXT
)";

/// One row of the run history.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub id: i64,
    /// RFC 3339 times; a run that never finished (killed) has no end and no exit code.
    pub started_at: String,
    pub finished_at: Option<String>,
    pub exit_code: Option<i64>,
    /// Articles by outcome, and the model calls made (`cached_calls`: answered from the cache).
    pub written: i64,
    pub unchanged: i64,
    pub skipped: i64,
    pub failed: i64,
    pub calls: i64,
    pub cached_calls: i64,
    /// US dollars; `None` when the run's model had no known price.
    pub cost_usd: Option<f64>,
}

impl Store {
    /// Records the start of a run; returns its id.
    pub async fn start_run(&self, kind: &str, started_at: &str) -> Result<i64, StoreError> {
        let (kind, started_at) = (kind.to_string(), started_at.to_string());
        self.run(move |db| {
            db.conn.execute(
                "INSERT INTO runs (kind, started_at) VALUES (?1, ?2)",
                params![kind, started_at],
            )?;
            Ok(db.conn.last_insert_rowid())
        })
        .await
    }

    /// Records the end of a run, and when its cache hits were used.
    pub async fn finish_run(&self, id: i64, report: &RunReport) -> Result<(), StoreError> {
        let t = report.totals.clone();
        let finished_at = report.finished_at.clone();
        let exit_code = report.exit_code as i64;
        let history = serde_json::to_string(&history_report(report)).expect("a report serialises");
        self.run(move |db| {
            db.conn.execute(
                "UPDATE runs SET finished_at = ?2, exit_code = ?3, written = ?4, unchanged = ?5, skipped = ?6, failed = ?7,
                 calls = ?8, cached_calls = ?9, prompt_tokens = ?10, completion_tokens = ?11, cost_usd = ?12, report = ?13
                 WHERE id = ?1",
                params![
                    id,
                    finished_at,
                    exit_code,
                    t.written as i64,
                    t.unchanged as i64,
                    t.skipped as i64,
                    t.failed as i64,
                    t.calls as i64,
                    t.cached_calls as i64,
                    t.prompt_tokens as i64,
                    t.completion_tokens as i64,
                    // The column cannot say "unknown" (NOT NULL in stores already out there):
                    // readers take the cost from the report, where it is null then.
                    t.cost_usd.unwrap_or(0.0),
                    history,
                ],
            )?;
            flush_touched(db)
        })
        .await
    }

    /// The latest runs, newest first.
    pub async fn runs(&self, limit: usize) -> Result<Vec<RunSummary>, StoreError> {
        self.run(move |db| {
            db.conn
                .prepare(
                    "SELECT id, started_at, finished_at, exit_code, written, unchanged, skipped, failed, calls, cached_calls,
                            CASE WHEN report IS NULL THEN cost_usd ELSE json_extract(report, '$.totals.cost_usd') END
                     FROM runs ORDER BY id DESC LIMIT ?1",
                )?
                .query_map(params![limit as i64], |r| {
                    Ok(RunSummary {
                        id: r.get(0)?,
                        started_at: r.get(1)?,
                        finished_at: r.get(2)?,
                        exit_code: r.get(3)?,
                        written: r.get(4)?,
                        unchanged: r.get(5)?,
                        skipped: r.get(6)?,
                        failed: r.get(7)?,
                        calls: r.get(8)?,
                        cached_calls: r.get(9)?,
                        cost_usd: r.get(10)?,
                    })
                })?
                .collect()
        })
        .await
    }
}

/// The report as kept in the history: without the unchanged articles, which a daily run over a
/// growing archive would otherwise store again every day.
fn history_report(report: &RunReport) -> RunReport {
    let mut r = report.clone();
    r.articles.retain(|a| a.status != Status::Unchanged);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn run_history_keeps_an_unknown_cost_unknown() {
        let (_dir, s) = Store::temp().await;
        let report = |cost: Option<f64>| {
            let mut a = crate::report::ArticleReport::new("a.txt", Status::Written);
            a.cost_usd = cost;
            let articles = vec![a];
            RunReport {
                schema: "hanbrief.report/1".into(),
                started_at: "t0".into(),
                finished_at: "t1".into(),
                elapsed_s: 1.0,
                model: "m".into(),
                base_url: "u".into(),
                dry_run: false,
                stopped: None,
                exit_code: 0,
                totals: RunReport::tally(&articles, 1, 0, 0),
                batch: None,
                batch_plan: None,
                articles,
            }
        };
        for cost in [Some(0.5), None] {
            let id = s.start_run("summarize", "t0").await.unwrap();
            s.finish_run(id, &report(cost)).await.unwrap();
            assert_eq!(s.runs(1).await.unwrap()[0].cost_usd, cost);
        }
    }
}
