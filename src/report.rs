//! The run report: what happened to every article of a run, and the totals. Written to
//! `OUT/_report.json` at the end of every run (also an interrupted one), printed as a summary
//! table, and kept in the state store's run history.

use serde::{Deserialize, Serialize};

use crate::error::{EXIT_INTERNAL, EXIT_PROVIDER};

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
    /// Batch mode: its calls are in a batch in flight; the next `--batch` run over the same
    /// folder picks it up.
    Waiting,
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
    /// Of `calls`, those made through the provider's Batch API (at batch prices).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub batch_calls: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// US dollars; `null` when the model's price is unknown.
    pub cost_usd: Option<f64>,
    /// Figures in the brief the source does not support.
    #[serde(default)]
    pub unsupported_figures: usize,
    /// What the checks found in the brief (unsupported figures, unknown names, glossary
    /// misses, warnings): 0 for a clean brief.
    #[serde(default)]
    pub check_findings: usize,
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
            batch_calls: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_usd: Some(0.0),
            unsupported_figures: 0,
            check_findings: 0,
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
    /// Of the written briefs, those the checks found something in.
    #[serde(default)]
    pub with_warnings: usize,
    pub unchanged: usize,
    pub skipped: usize,
    pub failed: usize,
    pub not_done: usize,
    pub planned: usize,
    /// Batch mode: articles whose calls are in batches still in flight.
    #[serde(default)]
    pub waiting: usize,
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// Model calls that produced an answer (cache hits excluded).
    pub calls: u64,
    pub cached_calls: u64,
    /// Of `calls`, those made through the provider's Batch API; `cost_usd` counts them at
    /// batch prices.
    #[serde(default)]
    pub batch_calls: u64,
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
    /// Batch mode: phases, batches submitted and collected, retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<crate::batch::BatchSummary>,
    /// `--dry-run --batch`: the phases the run would submit, and their request files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_plan: Option<Vec<crate::batch::PhasePlan>>,
    pub articles: Vec<ArticleReport>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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
                Status::Written => {
                    t.written += 1;
                    t.with_warnings += usize::from(a.check_findings > 0);
                }
                Status::Unchanged => t.unchanged += 1,
                Status::Skipped => t.skipped += 1,
                Status::Failed => t.failed += 1,
                Status::NotDone => t.not_done += 1,
                Status::Planned => t.planned += 1,
                Status::Waiting => t.waiting += 1,
            }
            t.calls += a.calls as u64;
            t.cached_calls += a.cached_calls as u64;
            t.batch_calls += a.batch_calls as u64;
            t.prompt_tokens += a.prompt_tokens;
            t.completion_tokens += a.completion_tokens;
            t.cost_usd = crate::pricing::sum([t.cost_usd, a.cost_usd]);
        }
        t
    }

    /// The summary for people and machines: one line per article that needs attention, the
    /// totals, and why the run stopped early if it did. Each line has its text and its
    /// figures (for `--log-format json`).
    pub fn summary_lines(&self) -> Vec<(String, serde_json::Value)> {
        use crate::console::count;
        let mut lines = Vec::new();
        for a in &self.articles {
            let status = match a.status {
                Status::Failed => "failed ",
                Status::Skipped => "skipped",
                Status::NotDone => "not done",
                _ => continue,
            };
            let reason = a.reason.as_deref().unwrap_or("");
            // The error that stopped the run (the provider's, or the state store's) was logged
            // when it happened; once is enough.
            let logged = matches!(self.exit_code, EXIT_PROVIDER | EXIT_INTERNAL);
            let shown = if logged && a.reason == self.stopped {
                "its call met the error above, which stopped the run"
            } else {
                reason
            };
            lines.push((
                format!("  {status}  {}: {shown}", a.path),
                serde_json::json!({"path": a.path, "status": a.status, "reason": reason}),
            ));
        }
        let t = &self.totals;
        // Counts that are most often zero are said only when they are not.
        let if_any = |n: u64, what: &str| {
            if n > 0 {
                format!(", {n} {what}")
            } else {
                String::new()
            }
        };
        let mut written = format!("{} written", t.written);
        if t.with_warnings > 0 {
            written.push_str(&format!(" ({} with warnings)", t.with_warnings));
        }
        let text = format!(
            "{}: {written}, {} unchanged, {} skipped, {} failed{}{} · {} ({} cached{}), {}, {} rate-limited · {} prompt + {} completion tokens · {}{} · {:.1}s",
            count(t.articles as u64, "article", "articles"),
            t.unchanged,
            t.skipped,
            t.failed,
            if_any(t.not_done as u64, "not done"),
            if_any(t.waiting as u64, "waiting for batches"),
            count(t.calls, "call", "calls"),
            t.cached_calls,
            if_any(t.batch_calls, "in batches"),
            count(t.retries, "retry", "retries"),
            t.rate_limited,
            crate::render::group(t.prompt_tokens as usize),
            crate::render::group(t.completion_tokens as usize),
            match t.cost_usd {
                Some(c) => format!("${c:.4}"),
                None => format!("cost unknown (no price for {})", self.model),
            },
            if t.batch_calls > 0 {
                " at batch prices"
            } else {
                ""
            },
            self.elapsed_s
        );
        let mut fields = serde_json::to_value(t).expect("totals serialise");
        fields["elapsed_s"] = serde_json::json!((self.elapsed_s * 10.0).round() / 10.0);
        fields["model"] = serde_json::json!(self.model);
        lines.push((text, fields));
        if let Some(b) = &self.batch {
            lines.push((
                format!(
                    "batch mode: {}, {} submitted ({}), {} collected, {} retried, {} sent as ordinary calls{}",
                    count(b.phases, "phase", "phases"),
                    count(b.batches_submitted, "batch", "batches"),
                    count(b.requests_submitted, "request", "requests"),
                    b.batches_collected,
                    count(b.retried, "request", "requests"),
                    b.sent_synchronously,
                    if b.in_flight > 0 {
                        format!(
                            "; {} in flight: run the same command again (with --batch) to pick them up, `hanbrief batch status -o OUT` to see them",
                            count(b.in_flight, "batch", "batches")
                        )
                    } else {
                        String::new()
                    }
                ),
                serde_json::to_value(b).expect("a batch summary serialises"),
            ));
        }
        if let Some(why) = &self.stopped {
            let text = match self.exit_code {
                EXIT_PROVIDER => "stopped early by the error above: no other call was sent".into(),
                // Only batch mode's state store stops a run with 4, and it logs why.
                EXIT_INTERNAL => "stopped early by the error above".into(),
                _ => format!("stopped early: {why}"),
            };
            lines.push((text, serde_json::json!({"stopped": why})));
        }
        lines
    }

    /// The summary as text, one line each (see [`RunReport::summary_lines`]).
    pub fn summary_table(&self) -> String {
        self.summary_lines()
            .into_iter()
            .map(|(text, _)| text + "\n")
            .collect()
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
            batch: None,
            batch_plan: None,
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
