//! Eval: measure the quality of the briefs a configuration writes, on a set of articles whose
//! facts are known.
//!
//! A set is a folder with `articles/` and `facts.toml` (one table per article file: the facts
//! a brief must carry, as alternatives to find in the brief's text, or as figures to find by
//! value). `hanbrief eval SET` runs the real `summarize` pipeline over the articles (so prompts,
//! model and settings are exactly what a run would use) and reports, per article and in all:
//!
//! - **valid briefs**: articles that got a brief (parsed, both languages) / articles;
//! - **fact coverage**: facts found in the briefs / facts;
//! - **unsupported figures**: figures written in the briefs' text fields that the cleaned
//!   article does not support / figures written in those fields (each occurrence once, above
//!   and below; entity names are not figures);
//! - **bilingual completeness**: fields of the briefs filled in the right language on both
//!   sides / fields;
//! - **grounded key points**: key points whose quotes were all found in the cleaned article
//!   word for word (and that have one) / key points;
//! - **figures in their own quote**: figures written in key points and figure entries that the
//!   item's own found quotes carry (by value) / such figures;
//! - **tokens and calls per article**.
//!
//! Quotes are not brief text here: fact coverage counts only what the brief itself says
//! (title, summary, key points, entities, figures), so that copying sentences into quotes
//! cannot raise it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::brief::{self, Brief};
use crate::config::Settings;
use crate::figures::{self, SourceFigures};
use crate::pipeline::{self, RunError, RunOptions, Shutdown};
use crate::report::Status;

/// The facts file of a set.
pub const FACTS_FILE: &str = "facts.toml";

/// One fact a brief must carry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Fact {
    /// Any of these texts (case and spaces ignored), in Korean or English.
    Any { any: Vec<String> },
    /// This figure, by value, in any form.
    Figure { figure: String },
}

#[derive(Debug, Deserialize)]
struct ArticleFacts {
    facts: Vec<Fact>,
}

/// An eval problem that stops it: a set that cannot be read (exit code 2), or the run's own
/// error.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Facts { path: PathBuf, message: String },
    #[error(transparent)]
    Run(#[from] RunError),
}

impl EvalError {
    /// The exit code: the set is the user's to fix (2); a run error says its own.
    pub fn exit_code(&self) -> u8 {
        match self {
            EvalError::Read { .. } | EvalError::Facts { .. } => crate::error::EXIT_USAGE,
            EvalError::Run(e) => e.exit_code(),
        }
    }
}

/// The scores of one article.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArticleScore {
    pub article: String,
    pub status: String,
    pub facts: usize,
    pub facts_found: usize,
    /// The facts not found, as written in facts.toml.
    pub missing: Vec<String>,
    pub figures: usize,
    pub unsupported_figures: usize,
    pub fields: usize,
    pub complete_fields: usize,
    pub key_points: usize,
    pub grounded_points: usize,
    /// Figures in key points and figure entries, and how many their own quotes carry.
    pub item_figures: usize,
    pub figures_in_quote: usize,
    pub calls: u32,
    pub tokens: u64,
    /// Whether `calls` and `tokens` say what the brief cost: false when it came whole from the
    /// cache, so that a warm re-run does not report briefs as free.
    pub costed: bool,
}

/// The scores of a set.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EvalReport {
    /// The set's folder, as given.
    pub set: String,
    /// The model the briefs were asked of (`[endpoint] model` after flags).
    pub model: String,
    pub articles: usize,
    /// Articles whose brief was written or is unchanged, and their share of `articles`.
    pub valid_briefs: usize,
    pub valid_brief_rate: f64,
    /// Facts of `facts.toml` found in the briefs, of all facts (a failed article finds none).
    pub fact_coverage: f64,
    /// Figures the check could not find in the source, of the figures it read.
    pub unsupported_figure_rate: f64,
    /// Bilingual fields with both languages filled, of all such fields.
    pub bilingual_completeness: f64,
    /// Key points whose quote is the article's words, of all key points.
    pub grounded_rate: f64,
    /// Figures of key points and figure entries that their own quote carries, of those figures.
    pub figures_in_quote_rate: f64,
    /// Averages over the articles whose cost is known (`costed`).
    pub tokens_per_article: f64,
    pub calls_per_article: f64,
    pub costed_articles: usize,
    pub elapsed_s: f64,
    /// The run's exit code (3: the provider refused us, 130: interrupted; the scores are then
    /// partial).
    pub exit_code: u8,
    /// Why the run stopped early, if it did.
    pub stopped: Option<String>,
    pub per_article: Vec<ArticleScore>,
}

/// Runs the pipeline over `set/articles` into `out` and scores the briefs.
pub async fn run(
    settings: &Settings,
    set: &Path,
    out: &Path,
    shutdown: &Shutdown,
) -> Result<EvalReport, EvalError> {
    let facts_path = set.join(FACTS_FILE);
    let text = std::fs::read_to_string(&facts_path).map_err(|source| EvalError::Read {
        path: facts_path.clone(),
        source,
    })?;
    let facts: BTreeMap<String, ArticleFacts> =
        toml::from_str(&text).map_err(|e| EvalError::Facts {
            path: facts_path.clone(),
            message: e.to_string(),
        })?;
    let articles_dir = set.join("articles");
    for name in facts.keys() {
        if !articles_dir.join(name).is_file() {
            return Err(EvalError::Facts {
                path: facts_path.clone(),
                message: format!(
                    "facts for {name}, which is not in {}",
                    articles_dir.display()
                ),
            });
        }
    }
    let opts = RunOptions {
        no_wait: false,
        inputs: vec![articles_dir.clone()],
        out: out.to_path_buf(),
        dry_run: false,
        force: false,
        progress: None,
        jsonl: false,
    };
    let report = pipeline::run(settings, &opts, shutdown).await?;

    let mut scores = Vec::new();
    for a in &report.articles {
        let path = PathBuf::from(&a.path);
        let name = path
            .strip_prefix(&articles_dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        let mut score = ArticleScore {
            article: name.clone(),
            status: format!("{:?}", a.status).to_lowercase(),
            calls: a.calls + a.cached_calls,
            tokens: a.prompt_tokens + a.completion_tokens,
            costed: a.calls > 0,
            ..Default::default()
        };
        let wanted = facts
            .get(&name)
            .map(|f| f.facts.clone())
            .unwrap_or_default();
        score.facts = wanted.len();
        let brief: Option<Brief> = a
            .outputs
            .iter()
            .find(|o| o.ends_with(".json"))
            .and_then(|o| std::fs::read_to_string(o).ok())
            .and_then(|t| serde_json::from_str(&t).ok());
        if let (Some(b), true) = (
            &brief,
            matches!(a.status, Status::Written | Status::Unchanged),
        ) {
            score_brief(&mut score, b, &wanted);
            // An unchanged brief was made by an earlier run: its own record says what it cost.
            if !score.costed && b.usage.calls > 0 {
                score.calls = b.usage.calls + b.usage.cached_calls;
                score.tokens = b.usage.prompt_tokens + b.usage.completion_tokens;
                score.costed = true;
            }
        } else {
            score.missing = wanted.iter().map(describe).collect();
        }
        scores.push(score);
    }
    let costed: Vec<&ArticleScore> = scores.iter().filter(|s| s.costed).collect();
    let per_costed = |total: u64| {
        if costed.is_empty() {
            0.0
        } else {
            total as f64 / costed.len() as f64
        }
    };
    let sum = |f: fn(&ArticleScore) -> usize| scores.iter().map(f).sum::<usize>();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let valid = scores
        .iter()
        .filter(|s| s.status == "written" || s.status == "unchanged")
        .count();
    Ok(EvalReport {
        set: set.display().to_string(),
        model: settings.endpoint.model.clone(),
        articles: scores.len(),
        valid_briefs: valid,
        valid_brief_rate: ratio(valid, scores.len()),
        fact_coverage: ratio(sum(|s| s.facts_found), sum(|s| s.facts)),
        unsupported_figure_rate: ratio(sum(|s| s.unsupported_figures), sum(|s| s.figures)),
        bilingual_completeness: ratio(sum(|s| s.complete_fields), sum(|s| s.fields)),
        grounded_rate: ratio(sum(|s| s.grounded_points), sum(|s| s.key_points)),
        figures_in_quote_rate: ratio(sum(|s| s.figures_in_quote), sum(|s| s.item_figures)),
        tokens_per_article: per_costed(costed.iter().map(|s| s.tokens).sum()),
        calls_per_article: per_costed(costed.iter().map(|s| u64::from(s.calls)).sum()),
        costed_articles: costed.len(),
        elapsed_s: report.elapsed_s,
        exit_code: report.exit_code,
        stopped: report.stopped.clone(),
        per_article: scores,
    })
}

fn describe(f: &Fact) -> String {
    match f {
        Fact::Any { any } => any.first().cloned().unwrap_or_default(),
        Fact::Figure { figure } => figure.clone(),
    }
}

/// A text as facts are matched: lower-cased letters and digits only, so that "Kwon Do-yoon"
/// matches "kwon doyoon" and "다솜-3" "다솜3". Looser than a name key ([`crate::text::name_key`]):
/// a fact may be any phrase.
fn fact_key(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

fn score_brief(score: &mut ArticleScore, b: &Brief, wanted: &[Fact]) {
    let c = &b.content;
    let mut texts: Vec<&str> = brief::fields(c).into_iter().map(|(_, t)| t).collect();
    for e in &c.entities {
        texts.push(&e.ko);
        texts.push(&e.en);
    }
    let all = texts.join("\n");
    let keyed = fact_key(&all);
    let in_brief = SourceFigures::new(&all);
    for f in wanted {
        let found = match f {
            Fact::Any { any } => any.iter().any(|alt| keyed.contains(&fact_key(alt))),
            Fact::Figure { figure } => figures::extract(figure)
                .first()
                .is_some_and(|fig| in_brief.supports(fig)),
        };
        if found {
            score.facts_found += 1;
        } else {
            score.missing.push(describe(f));
        }
    }
    // Numerator and denominator count the same things: every figure written in the fields the
    // check reads (not the entity names, where "다솜-3" is a name, not a claim), once per
    // occurrence; one is unsupported when the check flagged its text (it lists each text
    // once, however often the brief repeats it).
    let flagged: std::collections::HashSet<&str> = b
        .checks
        .unsupported_figures
        .iter()
        .map(|f| f.text.as_str())
        .collect();
    let written: Vec<figures::Figure> = brief::fields(c)
        .into_iter()
        .flat_map(|(_, text)| figures::extract(text))
        .collect();
    score.figures = written.len();
    score.unsupported_figures = written
        .iter()
        .filter(|f| flagged.contains(f.text.as_str()))
        .count();
    let mut pair = |ko: &str, en: &str| {
        score.fields += 1;
        if brief::is_korean(ko) && !en.trim().is_empty() && brief::is_english(en) {
            score.complete_fields += 1;
        }
    };
    pair(&c.title.ko, &c.title.en);
    pair(&c.summary.ko, &c.summary.en);
    for k in &c.key_points {
        pair(&k.ko, &k.en);
    }
    score.key_points = c.key_points.len();
    score.grounded_points = c
        .key_points
        .iter()
        .filter(|k| !k.quotes.is_empty() && k.quotes.iter().all(|q| q.is_found()))
        .count();
    for item in c.key_points.iter().chain(&c.figures) {
        let quoted: Vec<&str> = item
            .quotes
            .iter()
            .filter(|q| q.is_found())
            .map(|q| q.text.as_str())
            .collect();
        let quoted = SourceFigures::new(&quoted.join("\n"));
        for text in item.texts() {
            for f in figures::extract(text) {
                score.item_figures += 1;
                if quoted.supports(&f) {
                    score.figures_in_quote += 1;
                }
            }
        }
    }
}

impl EvalReport {
    /// A table for people.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<22} {:<9} {:>7} {:>11} {:>9} {:>9} {:>9} {:>6} {:>8}  missing",
            "article",
            "status",
            "facts",
            "unsupp.fig",
            "ko/en",
            "grounded",
            "fig∈quote",
            "calls",
            "tokens"
        );
        for s in &self.per_article {
            let _ = writeln!(
                out,
                "{:<22} {:<9} {:>3}/{:<3} {:>5}/{:<5} {:>4}/{:<4} {:>4}/{:<4} {:>4}/{:<4} {:>6} {:>8}  {}",
                s.article,
                s.status,
                s.facts_found,
                s.facts,
                s.unsupported_figures,
                s.figures,
                s.complete_fields,
                s.fields,
                s.grounded_points,
                s.key_points,
                s.figures_in_quote,
                s.item_figures,
                if s.costed {
                    s.calls.to_string()
                } else {
                    "-".into()
                },
                if s.costed {
                    s.tokens.to_string()
                } else {
                    "-".into()
                },
                s.missing.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "\n{}, model {}: valid briefs {:.0} % · fact coverage {:.1} % · unsupported figures {:.1} % · bilingual completeness {:.1} % · grounded key points {:.1} % · figures in their own quote {:.1} % · {:.0} tokens and {:.1} calls per article{} · {:.0}s",
            crate::console::count(self.articles as u64, "article", "articles"),
            self.model,
            100.0 * self.valid_brief_rate,
            100.0 * self.fact_coverage,
            100.0 * self.unsupported_figure_rate,
            100.0 * self.bilingual_completeness,
            100.0 * self.grounded_rate,
            100.0 * self.figures_in_quote_rate,
            self.tokens_per_article,
            self.calls_per_article,
            if self.costed_articles == self.articles {
                String::new()
            } else {
                format!(
                    " (over the {} of {} whose cost is known; the rest came whole from the cache)",
                    self.costed_articles, self.articles
                )
            },
            self.elapsed_s
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brief::{Bilingual, BriefContent, BriefUsage, Entity, Grounded, SourceInfo};
    use crate::check::Checks;

    fn brief() -> Brief {
        Brief {
            schema: brief::SCHEMA.into(),
            source: SourceInfo {
                path: "a.txt".into(),
                content_hash: String::new(),
                title: None,
                encoding: "UTF-8".into(),
                chars_raw: 0,
                chars_clean: 0,
                tokens: 0,
                chunks: 1,
            },
            content: BriefContent {
                title: Bilingual {
                    ko: "다온유통, 이음24 인수".into(),
                    en: "Daon Retail buys Ieum24".into(),
                },
                summary: Bilingual {
                    ko: "1조 1,800억 원에 인수했다.".into(),
                    en: "It paid 1.18 trillion won.".into(),
                },
                key_points: vec![Grounded {
                    ko: "점포는 3,200개다.".into(),
                    en: "점포 3,200".into(),
                    quotes: vec![],
                }],
                entities: vec![Entity {
                    ko: "권도윤".into(),
                    en: "Kwon Do-yoon".into(),
                    kind: "person".into(),
                }],
                figures: vec![],
            },
            checks: Checks::default(),
            usage: BriefUsage::default(),
            generated_at: String::new(),
        }
    }

    #[test]
    fn briefs_of_format_1_are_scored_with_nothing_grounded() {
        let old: Brief = serde_json::from_str(include_str!(
            "../tests/data/briefs/v1-semiconductor-export.json"
        ))
        .unwrap();
        let wanted: Vec<Fact> = toml::from_str::<ArticleFacts>(
            r#"facts = [{ figure = "142억 달러" }, { any = ["HBM"] }]"#,
        )
        .unwrap()
        .facts;
        let mut s = ArticleScore::default();
        score_brief(&mut s, &old, &wanted);
        assert_eq!(s.facts_found, 2);
        assert_eq!((s.grounded_points, s.key_points), (0, 3));
        assert_eq!(s.figures_in_quote, 0);
        assert!(s.item_figures > 0);
    }

    #[test]
    fn grounding_counts_found_quotes_and_figures_in_them() {
        let mut b = brief();
        let found = |text: &str| crate::brief::Quote {
            text: text.into(),
            start: Some(0),
            line: Some(1),
        };
        b.content.key_points = vec![
            Grounded {
                ko: "점포는 3,200개다.".into(),
                en: "It has 3,200 stores.".into(),
                quotes: vec![found("이음24는 점포 3,200개를 운영한다.")],
            },
            Grounded {
                ko: "매출은 2조 원이다.".into(),
                en: "Sales are 2 trillion won.".into(),
                quotes: vec![found("이음24는 성장했다.")],
            },
            Grounded {
                ko: "인수한다.".into(),
                en: "It buys.".into(),
                quotes: vec![crate::brief::Quote::new("없는 문장이다.")],
            },
        ];
        let mut s = ArticleScore::default();
        score_brief(&mut s, &b, &[]);
        assert_eq!((s.grounded_points, s.key_points), (2, 3));
        // 3,200 twice (ko, en) in its quote; 2조 and "2 trillion" not in theirs.
        assert_eq!((s.figures_in_quote, s.item_figures), (2, 4));
    }

    #[test]
    fn the_unsupported_figure_rate_counts_the_same_figures_above_and_below() {
        let mut b = brief();
        // Written twice, flagged once by the check (it lists each text once).
        b.content.summary.en = "It paid $15 billion.".into();
        b.content.key_points[0].en = "The price was $15 billion.".into();
        // A name with a digit is not a figure the brief claims.
        b.content.entities.push(Entity {
            ko: "다솜-3".into(),
            en: "Dasom-3".into(),
            kind: "product".into(),
        });
        b.checks.unsupported_figures = vec![crate::check::FigureCheck {
            text: "$15 billion".into(),
            field: "summary.en".into(),
        }];
        let mut s = ArticleScore::default();
        score_brief(&mut s, &b, &[]);
        // The "24" of "이음24" in both titles (the check reads titles too), summary.ko
        // "1조 1,800억 원", key_points[0].ko "3,200개", and "$15 billion" twice; not "3".
        assert_eq!((s.unsupported_figures, s.figures), (2, 6));
    }

    #[test]
    fn facts_are_found_by_text_and_by_value() {
        let wanted: Vec<Fact> = toml::from_str::<ArticleFacts>(
            r#"facts = [
                { any = ["다온유통", "Daon"] },
                { any = ["kwon do yoon"] },
                { figure = "1조 1,800억 원" },
                { figure = "3,200개" },
                { figure = "18.7%" },
            ]"#,
        )
        .unwrap()
        .facts;
        let mut s = ArticleScore::default();
        score_brief(&mut s, &brief(), &wanted);
        assert_eq!(s.facts_found, 4);
        assert_eq!(s.missing, vec!["18.7%".to_string()]);
        // The key point's English side is Korean: one incomplete field of three.
        assert_eq!((s.complete_fields, s.fields), (2, 3));
    }
}
