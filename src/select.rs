//! Select: picks an article's most informative sentences without a model, for the `select`
//! strategy (the model then only shortens and translates them, and they are the brief's
//! quotes).
//!
//! Korean has no spaces between a noun and its particles (`다온유통이`, `다온유통은`,
//! `다온유통의`), so words do not match across sentences; character n-grams of each word do
//! (`다온`, `온유`, `유통`, `다온유`…), and need no morphological analyser. Each sentence becomes a
//! TF-IDF vector of the bigrams and trigrams of its words, and is scored by
//!
//! - **centrality**: its LexRank (PageRank over the cosine similarities between sentences): a
//!   sentence that shares its content with many others states what the article is about;
//! - **position**: news puts the most important first (`1/√(1+i)` for the i-th candidate);
//! - **figures**: amounts, counts and percentages with their unit (`1조 1,800억 원`, `18.7%`),
//!   the facts a brief must keep;
//! - **headline**: its similarity to the headline, when there is one.
//!
//! Sentences are picked greedily by score minus their similarity to those already picked
//! (maximal marginal relevance), so two sentences saying the same thing are not both taken, and
//! returned in the article's order. Candidates are the sentences of lines that read as prose
//! (not the headline, datelines or captions), of 12 to 400 characters. Only the first
//! [`MAX_CANDIDATES`] sentences compete: past that, position would rule them out anyway.

use std::collections::HashMap;

use crate::figures;

/// Sentences past this many are not candidates (the similarity matrix is quadratic).
pub const MAX_CANDIDATES: usize = 1000;
/// A candidate's length, in characters.
const MIN_CHARS: usize = 12;
const MAX_CHARS: usize = 400;

/// Weights of the score's parts (each part is scaled to 0..=1 first).
const W_CENTRALITY: f64 = 0.35;
const W_POSITION: f64 = 0.25;
const W_FIGURES: f64 = 0.2;
const W_HEADLINE: f64 = 0.2;
/// How much similarity to an already picked sentence costs.
const REDUNDANCY: f64 = 0.5;
/// From this similarity to an already picked sentence on, a sentence says the same thing again
/// (a lead restated at the end) and is passed over while others remain.
const DUPLICATE: f64 = 0.5;

/// A sentence picked from the article.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Selected {
    /// The sentence as the cleaned article writes it.
    pub text: String,
    /// Where it starts in the cleaned article, in characters.
    pub start: usize,
    /// Its line in the cleaned article, from 1.
    pub line: usize,
    /// Its score (for `inspect` and tests).
    pub score: f64,
}

/// A candidate sentence with its place.
struct Candidate<'a> {
    text: &'a str,
    start: usize,
    line: usize,
}

/// Picks at most `k` sentences of `text` (the cleaned article), in the article's order.
pub fn select(text: &str, title: Option<&str>, k: usize) -> Vec<Selected> {
    let candidates = candidates(text, title);
    if candidates.is_empty() || k == 0 {
        return Vec::new();
    }
    let grams: Vec<HashMap<String, f64>> = candidates.iter().map(|c| ngrams(c.text)).collect();
    let idf = idf(&grams);
    let vectors: Vec<Vector> = grams.iter().map(|g| Vector::new(g, &idf)).collect();
    let n = vectors.len();
    let mut sim = vec![0.0f64; n * n];
    for i in 0..n {
        for j in (i + 1)..n {
            let s = vectors[i].cosine(&vectors[j]);
            sim[i * n + j] = s;
            sim[j * n + i] = s;
        }
    }
    let centrality = scaled(lexrank(&sim, n));
    let figure_counts: Vec<f64> = candidates
        .iter()
        .map(|c| informative_figures(c.text).min(3) as f64 / 3.0)
        .collect();
    let headline: Vec<f64> = match title.filter(|t| !t.trim().is_empty()) {
        Some(t) => {
            let h = Vector::new(&ngrams(t), &idf);
            scaled(vectors.iter().map(|v| v.cosine(&h)).collect())
        }
        None => vec![0.0; n],
    };
    let scores: Vec<f64> = (0..n)
        .map(|i| {
            W_CENTRALITY * centrality[i]
                + W_POSITION / ((1 + i) as f64).sqrt()
                + W_FIGURES * figure_counts[i]
                + W_HEADLINE * headline[i]
        })
        .collect();

    let mut picked: Vec<usize> = Vec::new();
    while picked.len() < k.min(n) {
        let best = (0..n)
            .filter(|i| !picked.contains(i))
            .map(|i| {
                let overlap = picked.iter().map(|&j| sim[i * n + j]).fold(0.0, f64::max);
                let repeats = overlap >= DUPLICATE;
                (i, repeats, scores[i] - REDUNDANCY * overlap)
            })
            // Fresh sentences first, then by marginal score, then the earlier one.
            .max_by(|a, b| {
                (b.1.cmp(&a.1))
                    .then(a.2.total_cmp(&b.2))
                    .then(b.0.cmp(&a.0))
            })
            .map(|(i, _, _)| i);
        match best {
            Some(i) => picked.push(i),
            None => break,
        }
    }
    picked.sort_unstable();
    picked
        .into_iter()
        .map(|i| Selected {
            text: candidates[i].text.to_string(),
            start: candidates[i].start,
            line: candidates[i].line,
            score: scores[i],
        })
        .collect()
}

/// The sentences that may be picked, with their places.
fn candidates<'a>(text: &'a str, title: Option<&str>) -> Vec<Candidate<'a>> {
    let title = title.map(str::trim).unwrap_or("");
    let mut out = Vec::new();
    let mut offset = 0usize; // characters before the current line
    for (i, line) in text.split('\n').enumerate() {
        let line_chars = line.chars().count();
        if line.trim() != title && crate::clean::reads_as_prose(line.trim()) {
            for s in crate::chunk::sentences(line) {
                let trimmed = s.trim();
                let chars = trimmed.chars().count();
                if !(MIN_CHARS..=MAX_CHARS).contains(&chars) || !crate::brief::is_korean(trimmed) {
                    continue;
                }
                // Byte offset of the trimmed sentence in the line, then in characters.
                let at = trimmed.as_ptr() as usize - line.as_ptr() as usize;
                out.push(Candidate {
                    text: trimmed,
                    start: offset + line[..at].chars().count(),
                    line: i + 1,
                });
                if out.len() == MAX_CANDIDATES {
                    return out;
                }
            }
        }
        offset += line_chars + 1;
    }
    out
}

/// Figures written with a unit or a scale (`3,200개`, `18.7%`, `1조 원`), not bare numbers
/// (days, list numbers).
fn informative_figures(sentence: &str) -> usize {
    figures::extract(sentence)
        .iter()
        .filter(|f| {
            f.text
                .chars()
                .any(|c| !(c.is_ascii_digit() || matches!(c, ',' | '.' | ' ')))
        })
        .count()
}

/// Character bigrams and trigrams of each word (letters and digits), with their counts.
fn ngrams(text: &str) -> HashMap<String, f64> {
    let mut out: HashMap<String, f64> = HashMap::new();
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let chars: Vec<char> = word.chars().flat_map(char::to_lowercase).collect();
        for n in 2..=3 {
            for w in chars.windows(n) {
                *out.entry(w.iter().collect()).or_default() += 1.0;
            }
        }
    }
    out
}

/// Inverse sentence frequency of every n-gram (smoothed, always positive).
fn idf(grams: &[HashMap<String, f64>]) -> HashMap<String, f64> {
    let mut df: HashMap<&str, usize> = HashMap::new();
    for g in grams {
        for key in g.keys() {
            *df.entry(key.as_str()).or_default() += 1;
        }
    }
    let n = grams.len() as f64;
    df.into_iter()
        .map(|(k, d)| (k.to_string(), ((1.0 + n) / (1.0 + d as f64)).ln() + 1.0))
        .collect()
}

/// A TF-IDF vector, sorted by n-gram for merging, with its norm.
struct Vector {
    entries: Vec<(String, f64)>,
    norm: f64,
}

impl Vector {
    fn new(grams: &HashMap<String, f64>, idf: &HashMap<String, f64>) -> Vector {
        let mut entries: Vec<(String, f64)> = grams
            .iter()
            // An n-gram unknown to the article (from the headline) weighs as a rare one.
            .map(|(k, tf)| (k.clone(), tf * idf.get(k).copied().unwrap_or(1.0)))
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let norm = entries.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
        Vector { entries, norm }
    }

    fn cosine(&self, other: &Vector) -> f64 {
        if self.norm == 0.0 || other.norm == 0.0 {
            return 0.0;
        }
        let (mut i, mut j, mut dot) = (0, 0, 0.0);
        while i < self.entries.len() && j < other.entries.len() {
            match self.entries[i].0.cmp(&other.entries[j].0) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    dot += self.entries[i].1 * other.entries[j].1;
                    i += 1;
                    j += 1;
                }
            }
        }
        dot / (self.norm * other.norm)
    }
}

/// Continuous LexRank: the stationary distribution of a random walk over the similarity graph
/// (rows normalised), with a 0.15 chance of jumping anywhere.
fn lexrank(sim: &[f64], n: usize) -> Vec<f64> {
    const DAMPING: f64 = 0.85;
    let row_sums: Vec<f64> = (0..n)
        .map(|i| sim[i * n..(i + 1) * n].iter().sum())
        .collect();
    let mut rank = vec![1.0 / n as f64; n];
    for _ in 0..50 {
        let mut next = vec![(1.0 - DAMPING) / n as f64; n];
        for i in 0..n {
            if row_sums[i] == 0.0 {
                // A sentence sharing nothing with the others spreads its weight evenly.
                let share = DAMPING * rank[i] / n as f64;
                next.iter_mut().for_each(|x| *x += share);
                continue;
            }
            let weight = DAMPING * rank[i] / row_sums[i];
            for (j, x) in next.iter_mut().enumerate() {
                *x += weight * sim[i * n + j];
            }
        }
        let delta: f64 = next.iter().zip(&rank).map(|(a, b)| (a - b).abs()).sum();
        rank = next;
        if delta < 1e-9 {
            break;
        }
    }
    rank
}

/// Values divided by their maximum (all zero stays zero).
fn scaled(values: Vec<f64>) -> Vec<f64> {
    let max = values.iter().copied().fold(0.0, f64::max);
    if max <= 0.0 {
        return values;
    }
    values.into_iter().map(|v| v / max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARTICLE: &str = "한빛전자, 반도체 수출 142억 달러 돌파
입력 2026-03-04 09:12

한빛전자의 반도체 수출이 142억 달러로 1년 전보다 18.4% 늘었다고 한국무역연구원이 1일 밝혔다. 회사는 올해도 증가세가 이어질 것으로 본다.
날씨가 맑았다는 이야기도 있었다고 한다.
한빛전자는 웨이퍼 생산능력을 월 26만 장으로 늘릴 계획이라고 말했다.
한빛전자의 반도체 수출이 142억 달러로 1년 전보다 18.4% 늘었다는 발표가 다시 나왔다.";

    #[test]
    fn picks_informative_sentences_in_the_articles_order_with_their_places() {
        let picked = select(ARTICLE, Some("한빛전자, 반도체 수출 142억 달러 돌파"), 2);
        let texts: Vec<&str> = picked.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "한빛전자의 반도체 수출이 142억 달러로 1년 전보다 18.4% 늘었다고 한국무역연구원이 1일 밝혔다.",
                "한빛전자는 웨이퍼 생산능력을 월 26만 장으로 늘릴 계획이라고 말했다.",
            ],
            "the lead and the other sentence with figures; not the near-copy of the lead, not the weather"
        );
        for s in &picked {
            let at: String = ARTICLE
                .chars()
                .skip(s.start)
                .take(s.text.chars().count())
                .collect();
            assert_eq!(at, s.text, "start is a character offset into the article");
            assert_eq!(
                ARTICLE.lines().nth(s.line - 1).map(|l| l.contains(&s.text)),
                Some(true)
            );
        }
    }

    #[test]
    fn the_headline_and_datelines_are_never_picked() {
        let picked = select(ARTICLE, Some("한빛전자, 반도체 수출 142억 달러 돌파"), 10);
        assert!(
            picked
                .iter()
                .all(|s| !s.text.contains("입력") && !s.text.contains("돌파"))
        );
        assert_eq!(
            picked.len(),
            5,
            "every sentence of the body, when more are asked for"
        );
    }

    #[test]
    fn character_ngrams_match_a_noun_across_its_particles() {
        let idf = idf(&[ngrams("다온유통이 샀다"), ngrams("다온유통은 팔았다")]);
        let a = Vector::new(&ngrams("다온유통이"), &idf);
        let b = Vector::new(&ngrams("다온유통은"), &idf);
        assert!(a.cosine(&b) > 0.5, "{}", a.cosine(&b));
    }

    #[test]
    fn an_empty_or_prose_less_article_selects_nothing() {
        assert!(select("", None, 3).is_empty());
        assert!(select("제목\n입력 2026-01-01", None, 3).is_empty());
    }
}
