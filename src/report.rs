//! The run report: what happened to every article of a run, and the totals. Written to
//! `OUT/_report.json` at the end of every run (also an interrupted one), printed as a summary
//! table, and kept in the state store's run history.

use serde::{Deserialize, Serialize};

/// What happened to one article.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A brief was written.
    Written,
    /// Nothing changed since the last run: the existing brief stands, no call was made.
    Unchanged,
    /// Not an article (binary, empty, all clutter): never sent.
    Skipped,
    /// Something failed; the reason says what.
    Failed,
    /// The run stopped (signal, or a fatal provider error) before this article was done.
    NotDone,
    /// `--dry-run`: planned, not sent.
    Planned,
}

/// One article's line in the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArticleReport {
    pub path: String,
    pub status: Status,
    /// Why it was skipped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What a reader should know about how the article was read (e.g. invalid bytes replaced
    /// while decoding); the brief carries the same warnings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Output files written (or standing, when unchanged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    pub tokens: usize,
    pub chunks: usize,
    pub calls: u32,
    pub cached_calls: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// US dollars; `null` when the model's price is unknown.
    pub cost_usd: Option<f64>,
    /// Figures in the brief the source does not support.
    #[serde(default)]
    pub unsupported_figures: usize,
    pub elapsed_ms: u64,
}

impl ArticleReport {
    /// A report line with no work done yet.
    pub fn new(path: impl Into<String>, status: Status) -> ArticleReport {
        ArticleReport {
            path: path.into(),
            status,
            reason: None,
            warnings: Vec::new(),
            outputs: Vec::new(),
            tokens: 0,
            chunks: 0,
            calls: 0,
            cached_calls: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_usd: Some(0.0),
            unsupported_figures: 0,
            elapsed_ms: 0,
        }
    }

    /// The same line with a reason.
    pub fn because(mut self, reason: impl Into<String>) -> ArticleReport {
        self.reason = Some(reason.into());
        self
    }
}

/// Totals of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    pub articles: usize,
    pub written: usize,
    pub unchanged: usize,
    pub skipped: usize,
    pub failed: usize,
    pub not_done: usize,
    pub planned: usize,
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// Model calls that produced an answer (cache hits excluded).
    pub calls: u64,
    pub cached_calls: u64,
    pub retries: u64,
    pub rate_limited: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// US dollars; `null` when some article's model has no known price.
    pub cost_usd: Option<f64>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub schema: String,
    pub started_at: String,
    pub finished_at: String,
    pub elapsed_s: f64,
    pub model: String,
    pub base_url: String,
    pub dry_run: bool,
    /// Why the run stopped early, if it did (a signal, or the provider refusing us).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    pub exit_code: u8,
    pub totals: Totals,
    pub articles: Vec<ArticleReport>,
}

impl RunReport {
    /// Totals recomputed from the article lines plus the client's request counters.
    pub fn tally(
        articles: &[ArticleReport],
        requests: u64,
        retries: u64,
        rate_limited: u64,
    ) -> Totals {
        let mut t = Totals {
            articles: articles.len(),
            requests,
            retries,
            rate_limited,
            cost_usd: Some(0.0),
            ..Totals::default()
        };
        for a in articles {
            match a.status {
                Status::Written => t.written += 1,
                Status::Unchanged => t.unchanged += 1,
                Status::Skipped => t.skipped += 1,
                Status::Failed => t.failed += 1,
                Status::NotDone => t.not_done += 1,
                Status::Planned => t.planned += 1,
            }
            t.calls += a.calls as u64;
            t.cached_calls += a.cached_calls as u64;
            t.prompt_tokens += a.prompt_tokens;
            t.completion_tokens += a.completion_tokens;
            t.cost_usd = crate::pricing::sum([t.cost_usd, a.cost_usd]);
        }
        t
    }

    /// A short table for people: one line per article that needs attention, then totals.
    pub fn summary_table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for a in &self.articles {
            if matches!(a.status, Status::Failed | Status::Skipped | Status::NotDone) {
                let status = match a.status {
                    Status::Failed => "failed ",
                    Status::Skipped => "skipped",
                    _ => "not done",
                };
                let _ = writeln!(
                    out,
                    "  {status}  {}: {}",
                    a.path,
                    a.reason.as_deref().unwrap_or("")
                );
            }
        }
        let t = &self.totals;
        let _ = writeln!(
            out,
            "{} articles: {} written, {} unchanged, {} skipped, {} failed{} · {} calls ({} cached), {} retries, {} rate-limited · {} prompt + {} completion tokens · {} · {:.1}s",
            t.articles,
            t.written,
            t.unchanged,
            t.skipped,
            t.failed,
            if t.not_done > 0 {
                format!(", {} not done", t.not_done)
            } else {
                String::new()
            },
            t.calls,
            t.cached_calls,
            t.retries,
            t.rate_limited,
            t.prompt_tokens,
            t.completion_tokens,
            match t.cost_usd {
                Some(c) => format!("${c:.4}"),
                None => format!("cost unknown (no price for {})", self.model),
            },
            self.elapsed_s
        );
        if let Some(why) = &self.stopped {
            let _ = writeln!(out, "stopped early: {why}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(articles: Vec<ArticleReport>) -> RunReport {
        RunReport {
            schema: "hanbrief.report/1".into(),
            started_at: String::new(),
            finished_at: String::new(),
            elapsed_s: 1.0,
            model: "llama3".into(),
            base_url: "https://example.com/v1".into(),
            dry_run: false,
            stopped: None,
            exit_code: 0,
            totals: RunReport::tally(&articles, 0, 0, 0),
            articles,
        }
    }

    #[test]
    fn an_unknown_price_makes_the_total_unknown_not_zero() {
        let mut a = ArticleReport::new("a.txt", Status::Written);
        a.cost_usd = Some(0.25);
        let mut b = ArticleReport::new("b.txt", Status::Written);
        b.cost_usd = None;
        let known = run(vec![a.clone()]);
        assert_eq!(known.totals.cost_usd, Some(0.25));
        assert!(known.summary_table().contains("$0.2500"));
        let unknown = run(vec![a, b]);
        assert_eq!(unknown.totals.cost_usd, None);
        let table = unknown.summary_table();
        assert!(
            table.contains("cost unknown (no price for llama3)"),
            "{table}"
        );
        assert!(!table.contains('$'), "{table}");
        let json = serde_json::to_value(&unknown).unwrap();
        assert!(json["totals"]["cost_usd"].is_null());
    }
}
