//! Chunk: cut a cleaned article into pieces of at most a token budget, at the most natural
//! boundary available: paragraphs (blank lines), then lines, then sentences (Korean `…다.`,
//! `…요?`, closing quotes), then words, then, for text with no boundary at all, characters.
//!
//! Pieces are packed towards an even size (a 10,000-token article with a 6,000 budget gives two
//! chunks of about 5,000, not 6,000 + 4,000), so that no chunk's notes are starved. Every chunk's
//! count is exact for the tokenizer; nothing of the text is lost or repeated (joining the chunks
//! with their separators gives back the text, up to whitespace at the cuts).

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::tokens::Tokenizer;

/// One piece of an article.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chunk {
    /// 0-based position in the article.
    pub index: usize,
    /// Tokens of `text`, counted with the run's tokenizer.
    pub tokens: usize,
    pub text: String,
}

/// Cuts `text` into chunks of at most `budget` tokens (at least 1).
pub fn chunk(text: &str, tokenizer: &Tokenizer, budget: usize) -> Vec<Chunk> {
    let budget = budget.max(1);
    let text = text.trim();
    if text.is_empty() {
        return Vec::new();
    }
    let mut pieces = Vec::new();
    split(text, Level::Paragraph, tokenizer, budget, &mut pieces);
    pieces
        .into_iter()
        .enumerate()
        .map(|(index, (text, tokens))| Chunk {
            index,
            tokens,
            text,
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Paragraph,
    Line,
    Sentence,
    Word,
    Char,
}

impl Level {
    fn next(self) -> Level {
        match self {
            Level::Paragraph => Level::Line,
            Level::Line => Level::Sentence,
            Level::Sentence => Level::Word,
            Level::Word | Level::Char => Level::Char,
        }
    }

    fn separator(self) -> &'static str {
        match self {
            Level::Paragraph => "\n\n",
            Level::Line => "\n",
            Level::Sentence | Level::Word => " ",
            Level::Char => "",
        }
    }
}

/// Splits `text` (which may exceed the budget) and appends `(piece, tokens)` to `out`.
fn split(text: &str, level: Level, tok: &Tokenizer, budget: usize, out: &mut Vec<(String, usize)>) {
    let total = tok.count(text);
    if total <= budget {
        out.push((text.to_string(), total));
        return;
    }
    if level == Level::Char {
        hard_split(text, tok, budget, out);
        return;
    }
    let units = units(text, level);
    if units.len() <= 1 {
        split(text, level.next(), tok, budget, out);
        return;
    }
    let sep = level.separator();
    let sep_tokens = tok.count(sep);
    let sized: Vec<(&str, usize)> = units.iter().map(|u| (*u, tok.count(u))).collect();
    // Aim for even chunks: first count the groups that filling each to the budget gives, then
    // pack again towards an equal share of the total per group.
    let groups = pack(&sized, sep_tokens, budget, budget).len();
    let target = total.div_ceil(groups.max(1));
    for group in pack(&sized, sep_tokens, budget, target) {
        match group {
            Group::Units(units) => {
                // Token counts are nearly but not exactly additive: re-check, and cut again if
                // needed.
                split(&units.join(sep), level.next(), tok, budget, out);
            }
            Group::Oversized(unit) => split(unit, level.next(), tok, budget, out),
        }
    }
}

enum Group<'a> {
    /// Units that together fit the budget.
    Units(Vec<&'a str>),
    /// One unit larger than the budget, to be cut at a finer level.
    Oversized(&'a str),
}

/// Packs units in order into groups of at most `budget` tokens, closing a group when adding the
/// next unit would take it further from `target` than leaving it out.
fn pack<'a>(
    units: &[(&'a str, usize)],
    sep_tokens: usize,
    budget: usize,
    target: usize,
) -> Vec<Group<'a>> {
    let mut groups = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut size = 0usize;
    for &(unit, n) in units {
        if n > budget {
            if !current.is_empty() {
                groups.push(Group::Units(std::mem::take(&mut current)));
                size = 0;
            }
            groups.push(Group::Oversized(unit));
            continue;
        }
        if !current.is_empty() {
            let with = size + sep_tokens + n;
            if with > budget || with.abs_diff(target) > size.abs_diff(target) {
                groups.push(Group::Units(std::mem::take(&mut current)));
                size = 0;
            }
        }
        size += if current.is_empty() { 0 } else { sep_tokens } + n;
        current.push(unit);
    }
    if !current.is_empty() {
        groups.push(Group::Units(current));
    }
    groups
}

/// The units of `text` at one level, trimmed, without empty ones.
fn units(text: &str, level: Level) -> Vec<&str> {
    static PARAGRAPH: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\n\s*\n").expect("valid regex"));
    let raw: Vec<&str> = match level {
        Level::Paragraph => PARAGRAPH.split(text).collect(),
        Level::Line => text.lines().collect(),
        Level::Sentence => sentences(text),
        Level::Word => text.split_whitespace().collect(),
        Level::Char => vec![text],
    };
    raw.into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Splits text into sentences: after `.`, `?`, `!`, `…` or `。` (and any closing quotes or
/// brackets that follow) when whitespace comes next. `12.3` and `U.S.A` are not cut.
pub fn sentences(text: &str) -> Vec<&str> {
    static END: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#"[.?!…。][.?!…"'”’)\]」』]*\s+"#).expect("valid regex"));
    let mut out = Vec::new();
    let mut start = 0;
    for m in END.find_iter(text) {
        let end = m.end();
        out.push(&text[start..end]);
        start = end;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Cuts text with no usable boundary into pieces of at most `budget` tokens, at character
/// boundaries (a cut inside a multi-byte character is impossible by construction).
fn hard_split(text: &str, tok: &Tokenizer, budget: usize, out: &mut Vec<(String, usize)>) {
    let mut rest = text;
    while !rest.is_empty() {
        let n = tok.count(rest);
        if n <= budget {
            out.push((rest.to_string(), n));
            return;
        }
        // Largest prefix (in characters) whose count fits: binary search over char boundaries.
        let bounds: Vec<usize> = rest
            .char_indices()
            .map(|(i, _)| i)
            .skip(1)
            .chain(std::iter::once(rest.len()))
            .collect();
        let (mut lo, mut hi) = (0usize, bounds.len() - 1);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if tok.count(&rest[..bounds[mid]]) <= budget {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let cut = bounds[lo];
        let piece = &rest[..cut];
        out.push((piece.to_string(), tok.count(piece)));
        rest = &rest[cut..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::Encoding;

    fn tok() -> Tokenizer {
        Tokenizer::new(Encoding::O200kBase)
    }

    fn article(paragraphs: usize) -> String {
        (0..paragraphs)
            .map(|i| {
                format!(
                    "{i}번째 문단이다. 정부는 올해 반도체 수출이 1,234억 달러로 12.3% 늘었다고 밝혔다. \
                     산업통상자원부는 \"하반기에도 증가세가 이어질 것\"이라고 내다봤다. 시장의 반응은 엇갈렸다."
                )
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    #[test]
    fn short_text_is_one_chunk() {
        let chunks = chunk("짧은 기사다.", &tok(), 100);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "짧은 기사다.");
        assert_eq!(chunks[0].tokens, tok().count("짧은 기사다."));
        assert!(chunk("  \n ", &tok(), 100).is_empty());
    }

    #[test]
    fn long_text_cuts_at_paragraphs_within_budget_and_evenly() {
        let text = article(20);
        let t = tok();
        let total = t.count(&text);
        let budget = total / 3 + 10;
        let chunks = chunk(&text, &t, budget);
        assert!(chunks.len() >= 3, "{}", chunks.len());
        for c in &chunks {
            assert!(c.tokens <= budget);
            assert_eq!(c.tokens, t.count(&c.text));
            assert!(
                c.text.ends_with("엇갈렸다."),
                "cut inside a paragraph: {:?}",
                c.text
            );
        }
        let sizes: Vec<usize> = chunks.iter().map(|c| c.tokens).collect();
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(*min * 2 >= *max, "uneven chunks: {sizes:?}");
        assert_eq!(
            chunks
                .iter()
                .map(|c| c.text.as_str())
                .collect::<Vec<_>>()
                .join("\n\n"),
            text
        );
    }

    #[test]
    fn a_long_paragraph_cuts_at_korean_sentence_ends() {
        let text = article(12).replace("\n\n", " ");
        let chunks = chunk(&text, &tok(), 120);
        assert!(chunks.len() > 2);
        for c in &chunks {
            assert!(c.tokens <= 120);
            let end = c.text.trim_end();
            assert!(
                end.ends_with('.') || end.ends_with('"'),
                "not a sentence end: {end:?}"
            );
        }
    }

    #[test]
    fn text_without_boundaries_is_hard_split_without_loss() {
        let text = "가나다라마바사아자차카타파하".repeat(100);
        let t = tok();
        let chunks = chunk(&text, &t, 50);
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| c.tokens <= 50 && c.tokens > 0));
        assert_eq!(
            chunks.iter().map(|c| c.text.as_str()).collect::<String>(),
            text
        );
    }

    #[test]
    fn sentence_splitting_respects_decimals_and_quotes() {
        let s = sentences("성장률은 2.5%였다. \"좋다\" 그는 말했다. 정말일까? 그렇다”  끝");
        assert_eq!(
            s,
            vec![
                "성장률은 2.5%였다. ",
                "\"좋다\" 그는 말했다. ",
                "정말일까? ",
                "그렇다”  끝"
            ]
        );
    }
}
