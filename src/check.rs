//! Check: the pipeline's step after the model, comparing a brief with the cleaned article it
//! came from. Quotes not in the article word for word, figures the source does not support or
//! that a point's own quote does not carry, entities whose Korean name is not in the source,
//! pinned glossary names rendered otherwise, and signs of a degenerate brief. Only
//! [`anchor_quotes`] touches the brief (it records where each quote is); the findings of
//! [`check`] go into its `checks`, the Markdown's warnings and the run report.
//!
//! **Word for word** means: equal after removing whitespace and quote marks (`"` `'` “ ” ‘ ’
//! 「 」 『 』 《 》 〈 〉 and the like) from both sides, and after reading `…` as `...` and `ㆍ` as `·`.
//! Korean spacing varies and a JSON string cannot hold a bare `"`, but every letter, digit and
//! other punctuation mark must be the article's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::brief::{BriefContent, Entity, Grounded, Quote, fields};
use crate::figures::SourceFigures;
use crate::text::name_key;

/// A quote shorter than this (letters, digits and punctuation, without spaces and quote marks)
/// grounds nothing: two words are in any article.
pub const MIN_QUOTE_CHARS: usize = 8;

/// A key point or figure that does not stand on the article's own words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ungrounded {
    /// Which item: `key_points[1]`, `figures[0]`.
    pub field: String,
    /// The item's Korean text, so that a reader of the checks alone knows which point it is.
    pub ko: String,
    /// The quotes that were not found, as the model wrote them; empty when it gave none.
    pub quotes: Vec<String>,
    /// What is wrong, in words a repair prompt can use.
    pub problem: String,
}

/// A figure in the brief that the article does not support.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FigureCheck {
    /// The figure as the brief wrote it.
    pub text: String,
    /// Where: `summary.en`, `figures[2].ko`, …
    pub field: String,
}

/// A name whose pinned English rendering the brief did not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlossaryMiss {
    pub ko: String,
    pub expected: String,
    /// What the brief used instead, when it named the entity.
    pub found: Option<String>,
}

/// What the checks found. Empty lists mean nothing to report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checks {
    /// Figures in the brief (Korean or English) that the cleaned source does not support.
    pub unsupported_figures: Vec<FigureCheck>,
    /// Entities whose Korean name does not appear in the source.
    pub unknown_entities: Vec<String>,
    /// Pinned names rendered otherwise.
    pub glossary_misses: Vec<GlossaryMiss>,
    /// Key points and figures whose quote is missing, too short or not in the article word for
    /// word. (Absent in briefs of format `/1`.)
    #[serde(default)]
    pub ungrounded: Vec<Ungrounded>,
    /// Figures of a key point or figure entry that its own quotes do not carry (the article may
    /// have them elsewhere). `field` names the item: `key_points[0].en`.
    #[serde(default)]
    pub figures_outside_quotes: Vec<FigureCheck>,
    /// Anything else worth a reader's attention.
    pub warnings: Vec<String>,
}

impl Checks {
    /// Whether any check found something.
    pub fn is_clean(&self) -> bool {
        self.unsupported_figures.is_empty()
            && self.unknown_entities.is_empty()
            && self.glossary_misses.is_empty()
            && self.ungrounded.is_empty()
            && self.figures_outside_quotes.is_empty()
            && self.warnings.is_empty()
    }
}

/// Marks that differ between writers (and that a JSON string cannot always hold): dropped
/// before comparing a quote with the article.
fn is_quote_mark(c: char) -> bool {
    matches!(
        c,
        '"' | '\''
            | '`'
            | '´'
            | '“'
            | '”'
            | '„'
            | '‟'
            | '‘'
            | '’'
            | '‚'
            | '‛'
            | '′'
            | '″'
            | '「'
            | '」'
            | '『'
            | '』'
            | '《'
            | '》'
            | '〈'
            | '〉'
            | '〝'
            | '〞'
            | '＂'
            | '＇'
            | '«'
            | '»'
            | '‹'
            | '›'
    )
}

/// The characters `c` is compared as.
fn fold(c: char, out: &mut impl FnMut(char)) {
    match c {
        _ if c.is_whitespace() || is_quote_mark(c) => {}
        '…' => (0..3).for_each(|_| out('.')),
        'ㆍ' | '・' | '‧' => out('·'),
        _ => out(c),
    }
}

/// A quote's text as compared.
fn folded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    text.chars().for_each(|c| fold(c, &mut |f| out.push(f)));
    out
}

/// Where a quote was found: the article's own text of it, and its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The article's text from the quote's first to its last compared character.
    pub text: String,
    /// In characters from the start of the article.
    pub start: usize,
    /// From 1.
    pub line: usize,
}

/// The cleaned article, prepared for finding quotes in it word for word.
pub struct Passages<'a> {
    source: &'a str,
    folded: String,
    /// For each byte of `folded`: the byte offset in `source` of the character it came from.
    origin: Vec<usize>,
}

impl<'a> Passages<'a> {
    /// Prepares `source` (the cleaned article) for [`Passages::find`].
    pub fn new(source: &'a str) -> Passages<'a> {
        let mut folded = String::with_capacity(source.len());
        let mut origin = Vec::with_capacity(source.len());
        for (at, c) in source.char_indices() {
            fold(c, &mut |f| {
                folded.push(f);
                origin.resize(folded.len(), at);
            });
        }
        Passages {
            source,
            folded,
            origin,
        }
    }

    /// Finds `quote` in the article word for word (see the module's notes), at its first
    /// occurrence. `Err` says why not, in words a repair prompt can use.
    pub fn find(&self, quote: &str) -> Result<Found, String> {
        let q = folded(quote);
        if q.is_empty() {
            return Err("the quote is empty".into());
        }
        if q.chars().count() < MIN_QUOTE_CHARS {
            return Err(format!(
                "the quote is too short (at least {MIN_QUOTE_CHARS} characters): quote a whole sentence"
            ));
        }
        let Some(at) = self.folded.find(&q) else {
            return Err("the quote is not in the article word for word".into());
        };
        let from = self.origin[at];
        let last = self.origin[at + q.len() - 1];
        let to = last + self.source[last..].chars().next().map_or(0, char::len_utf8);
        Ok(Found {
            text: self.source[from..to].to_string(),
            start: self.source[..from].chars().count(),
            line: self.source[..from].matches('\n').count() + 1,
        })
    }

    /// The first sentence of the article whose figures support every figure of `text`, if
    /// any: the quote for a figure the model gave none for.
    pub fn sentence_with_figures(&self, text: &str) -> Option<Found> {
        let wanted = crate::figures::extract(text);
        if wanted.is_empty() {
            return None;
        }
        self.source
            .lines()
            .flat_map(crate::chunk::sentences)
            .map(str::trim)
            .filter(|s| folded(s).chars().count() >= MIN_QUOTE_CHARS)
            .find(|s| {
                let have = SourceFigures::new(s);
                wanted.iter().all(|f| have.supports(f))
            })
            .and_then(|s| self.find(s).ok())
    }
}

/// Looks up every quote of the brief in the article: a quote found takes the article's own text
/// and its place (`start`, `line`); one not found keeps the model's text, without a place.
pub fn anchor_quotes(content: &mut BriefContent, source: &str) {
    let passages = Passages::new(source);
    for item in content.key_points.iter_mut().chain(&mut content.figures) {
        for q in &mut item.quotes {
            *q = match passages.find(&q.text) {
                Ok(found) => Quote {
                    text: found.text,
                    start: Some(found.start),
                    line: Some(found.line),
                },
                Err(_) => Quote::new(std::mem::take(&mut q.text)),
            };
        }
    }
}

/// The key points and figures that do not stand on the article's words: no quote, or a quote
/// not found in it (each quote is looked up afresh; `start` is not trusted).
pub fn ungrounded(content: &BriefContent, source: &str) -> Vec<Ungrounded> {
    let passages = Passages::new(source);
    let items = (content.key_points.iter().enumerate())
        .map(|(i, k)| (format!("key_points[{i}]"), k))
        .chain((content.figures.iter().enumerate()).map(|(i, f)| (format!("figures[{i}]"), f)));
    let mut out = Vec::new();
    for (field, item) in items {
        if item.quotes.is_empty() {
            out.push(Ungrounded {
                field,
                ko: item.ko.clone(),
                quotes: Vec::new(),
                problem: "it has no quote".into(),
            });
            continue;
        }
        let failed: Vec<(String, String)> = item
            .quotes
            .iter()
            .filter_map(|q| passages.find(&q.text).err().map(|e| (q.text.clone(), e)))
            .collect();
        if let Some((_, problem)) = failed.first() {
            out.push(Ungrounded {
                field,
                ko: item.ko.clone(),
                problem: problem.clone(),
                quotes: failed.into_iter().map(|(q, _)| q).collect(),
            });
        }
    }
    out
}

/// The figures of each grounded item (Korean and English) that its own found quotes do not
/// carry. Items without a found quote are left to [`ungrounded`]; figures the whole article
/// does not support are left to `unsupported_figures`.
fn figures_outside_quotes(
    content: &BriefContent,
    passages: &Passages<'_>,
    source_figures: &SourceFigures,
) -> Vec<FigureCheck> {
    let mut out = Vec::new();
    let items = (content.key_points.iter().enumerate())
        .map(|(i, k)| (format!("key_points[{i}]"), k))
        .chain((content.figures.iter().enumerate()).map(|(i, f)| (format!("figures[{i}]"), f)));
    for (field, item) in items {
        let Some(quoted) = found_quotes(item, passages) else {
            continue;
        };
        let quoted = SourceFigures::new(&quoted);
        for (side, text) in ["ko", "en"].into_iter().zip(item.texts()) {
            for f in crate::figures::extract(text) {
                if source_figures.supports(&f) && !quoted.supports(&f) {
                    out.push(FigureCheck {
                        text: f.text,
                        field: format!("{field}.{side}"),
                    });
                }
            }
        }
    }
    out
}

/// The text of an item's quotes that are in the article, or `None` if none is.
fn found_quotes(item: &Grounded, passages: &Passages<'_>) -> Option<String> {
    let found: Vec<String> = item
        .quotes
        .iter()
        .filter_map(|q| passages.find(&q.text).ok().map(|f| f.text))
        .collect();
    (!found.is_empty()).then(|| found.join("\n"))
}

/// Checks a brief against the cleaned source: quotes, figures, entity names, pinned renderings.
pub fn check(content: &BriefContent, source: &str, glossary: &BTreeMap<String, String>) -> Checks {
    let mut checks = Checks::default();
    let figures = SourceFigures::new(source);
    for (field, text) in fields(content) {
        for f in figures.unsupported(text) {
            if !checks.unsupported_figures.iter().any(|c| c.text == f.text) {
                checks.unsupported_figures.push(FigureCheck {
                    text: f.text,
                    field: field.clone(),
                });
            }
        }
    }
    let source_names = name_key(source);
    for e in &content.entities {
        if !e.ko.is_empty() && !source_names.contains(&name_key(&e.ko)) {
            checks.unknown_entities.push(e.ko.clone());
        }
    }
    checks.glossary_misses = glossary_misses(content, source, glossary);
    checks.ungrounded = ungrounded(content, source);
    checks.figures_outside_quotes =
        figures_outside_quotes(content, &Passages::new(source), &figures);
    checks.warnings = degenerate(content, figures.count());
    checks
}

/// Signs of a brief that is shaped right but says little: the same text everywhere, or no
/// figures from a article full of them.
fn degenerate(c: &BriefContent, source_figures: usize) -> Vec<String> {
    let mut warnings = Vec::new();
    if c.summary.ko == c.title.ko || c.summary.en == c.title.en {
        warnings.push("the summary only repeats the title".to_string());
    }
    // Each side on its own: a select brief's Korean points are distinct sentences, and a small
    // model can still write one English line under all of them.
    let repeats = |side: fn(&crate::brief::Grounded) -> &str| {
        let mut texts: Vec<&str> = c.key_points.iter().map(side).collect();
        texts.sort_unstable();
        texts.dedup();
        texts.len() < c.key_points.len()
    };
    if repeats(|k| k.ko.as_str()) {
        warnings.push("some key points repeat each other".to_string());
    } else if repeats(|k| k.en.as_str()) {
        warnings.push(
            "some key points have the same English (the model did not translate each one)"
                .to_string(),
        );
    }
    if c.figures.is_empty() && source_figures >= 5 {
        warnings.push(format!(
            "no figures in the brief, though the article has {source_figures}"
        ));
    }
    warnings
}

/// Every text of one language side of a brief (fields ending in `suffix`, and that side of
/// each entity), one per line.
fn side(content: &BriefContent, suffix: &str, entity: fn(&Entity) -> &String) -> String {
    fields(content)
        .into_iter()
        .filter(|(f, _)| f.ends_with(suffix))
        .map(|(_, t)| t)
        .chain(content.entities.iter().map(|e| entity(e).as_str()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Pinned names that appear in the source but whose pinned English rendering the brief's
/// English text does not use.
pub fn glossary_misses(
    content: &BriefContent,
    source: &str,
    glossary: &BTreeMap<String, String>,
) -> Vec<GlossaryMiss> {
    let english = side(content, ".en", |e| &e.en).to_lowercase();
    let korean = side(content, ".ko", |e| &e.ko);
    let mut misses = Vec::new();
    for (ko, en) in glossary {
        // Only names the brief talks about: in the source and in the brief's Korean.
        if !source.contains(ko.as_str()) || !korean.contains(ko.as_str()) {
            continue;
        }
        if english.contains(&en.to_lowercase()) {
            continue;
        }
        let found = content
            .entities
            .iter()
            .find(|e| e.ko.contains(ko.as_str()))
            .map(|e| e.en.clone());
        misses.push(GlossaryMiss {
            ko: ko.clone(),
            expected: en.clone(),
            found,
        });
    }
    misses
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brief::tests::sample_json;
    use crate::brief::{Entity, Grounded, Quote, parse_content};

    #[test]
    fn checks_flag_invented_figures_and_names() {
        let source = "한빛전자의 반도체 수출이 142억 달러로 18.4% 늘었다고 김서연 대표가 밝혔다.";
        let mut c = parse_content(&sample_json()).unwrap();
        assert!(check(&c, source, &BTreeMap::new()).is_clean());
        c.summary.en = "Chip exports rose to $15 billion.".into();
        c.entities.push(Entity {
            ko: "박지훈".into(),
            en: "Park Ji-hoon".into(),
            kind: "person".into(),
        });
        let checks = check(&c, source, &BTreeMap::new());
        assert_eq!(checks.unsupported_figures.len(), 1);
        assert_eq!(checks.unsupported_figures[0].text, "$15 billion");
        assert_eq!(checks.unsupported_figures[0].field, "summary.en");
        assert_eq!(checks.unknown_entities, vec!["박지훈".to_string()]);
    }

    #[test]
    fn key_points_with_one_english_line_under_different_korean_are_flagged() {
        let mut c = parse_content(&sample_json()).unwrap();
        let warned = |c: &BriefContent| {
            check(c, "", &BTreeMap::new())
                .warnings
                .iter()
                .any(|w| w.contains("the same English"))
        };
        let mut second = c.key_points[0].clone();
        second.ko = "수출이 크게 늘었다.".into();
        second.en = "Exports grew a lot.".into();
        c.key_points.push(second);
        assert!(!warned(&c));
        c.key_points[1].en = c.key_points[0].en.clone();
        assert!(warned(&c));
    }

    const SOURCE: &str = "반도체 수출 역대 최대\n\n한빛전자의 반도체 수출이 142억 달러로\n1년 전보다 18.4% 늘었다고 \"김서연\" 대표가 밝혔다.\n회사는 생산능력을 월 26만 장으로 늘린다.";

    fn point(ko: &str, en: &str, quotes: &[&str]) -> Grounded {
        Grounded {
            ko: ko.into(),
            en: en.into(),
            quotes: quotes.iter().map(|q| Quote::new(*q)).collect(),
        }
    }

    fn grounded_brief(points: Vec<Grounded>) -> BriefContent {
        let mut c = parse_content(&sample_json()).unwrap();
        c.key_points = points;
        c.figures.clear();
        c
    }

    #[test]
    fn a_quote_not_in_the_source_is_flagged() {
        let c = grounded_brief(vec![
            point(
                "수출이 늘었다.",
                "Exports grew.",
                &["한빛전자의 반도체 수출이 142억 달러로"],
            ),
            point(
                "수출이 크게 늘었다.",
                "Exports grew a lot.",
                &["반도체 수출이 사상 최대로 크게 늘었다"],
            ),
            point("생산이 는다.", "Output grows.", &[]),
            point("대표가 밝혔다.", "The CEO said so.", &["밝혔다"]),
        ]);
        let checks = check(&c, SOURCE, &BTreeMap::new());
        let flagged: Vec<(&str, &str)> = checks
            .ungrounded
            .iter()
            .map(|u| (u.field.as_str(), u.problem.as_str()))
            .collect();
        assert_eq!(
            flagged,
            [
                (
                    "key_points[1]",
                    "the quote is not in the article word for word"
                ),
                ("key_points[2]", "it has no quote"),
                (
                    "key_points[3]",
                    "the quote is too short (at least 8 characters): quote a whole sentence"
                ),
            ]
        );
        assert_eq!(
            checks.ungrounded[0].quotes,
            ["반도체 수출이 사상 최대로 크게 늘었다"]
        );
        assert!(!checks.is_clean());
    }

    #[test]
    fn a_quote_present_up_to_whitespace_and_quote_marks_passes_and_is_anchored() {
        // Across a line break, with spaces dropped and added, and “curly” quotes for plain ones.
        let quote = "반도체수출이 142억  달러로 1년 전보다 18.4% 늘었다고 “김서연” 대표가";
        let mut c = grounded_brief(vec![point(
            "수출이 18.4% 늘었다.",
            "Exports grew 18.4%.",
            &[quote],
        )]);
        assert!(check(&c, SOURCE, &BTreeMap::new()).is_clean());
        anchor_quotes(&mut c, SOURCE);
        let q = &c.key_points[0].quotes[0];
        assert_eq!(
            q.text, "반도체 수출이 142억 달러로\n1년 전보다 18.4% 늘었다고 \"김서연\" 대표가",
            "the article's own text"
        );
        // "반도체 수출 역대 최대\n\n한빛전자의 " is 20 characters (and 46 bytes).
        assert_eq!(q.start, Some(20));
        let start = q.start.unwrap();
        let at: String = SOURCE
            .chars()
            .skip(start)
            .take(q.text.chars().count())
            .collect();
        assert_eq!(at, q.text, "start counts characters");
        assert_eq!(q.line, Some(3));
        // Still passes once anchored (the check looks quotes up again).
        assert!(check(&c, SOURCE, &BTreeMap::new()).is_clean());
        // A changed letter or digit does not pass.
        let c = grounded_brief(vec![point(
            "수출",
            "Exports",
            &[&quote.replace("18.4", "18.5")],
        )]);
        assert_eq!(check(&c, SOURCE, &BTreeMap::new()).ungrounded.len(), 1);
    }

    #[test]
    fn a_figure_missing_from_its_points_quote_is_flagged() {
        let c = grounded_brief(vec![
            // 142억 달러 is in the article, but not in this point's quote.
            point(
                "생산을 월 26만 장으로 늘리고 수출은 142억 달러다.",
                "Output rises to 260,000 a month; exports are $14.2 billion.",
                &["회사는 생산능력을 월 26만 장으로 늘린다."],
            ),
            point(
                "수출이 18.4% 늘었다.",
                "Exports grew 18.4%.",
                &["1년 전보다 18.4% 늘었다고"],
            ),
        ]);
        let checks = check(&c, SOURCE, &BTreeMap::new());
        assert!(checks.ungrounded.is_empty());
        assert!(
            checks.unsupported_figures.is_empty(),
            "the article has every figure"
        );
        let outside: Vec<(&str, &str)> = checks
            .figures_outside_quotes
            .iter()
            .map(|f| (f.text.as_str(), f.field.as_str()))
            .collect();
        assert_eq!(
            outside,
            [
                ("142억 달러", "key_points[0].ko"),
                ("$14.2 billion", "key_points[0].en")
            ]
        );
    }

    #[test]
    fn a_figure_entry_is_grounded_by_its_own_quote_or_by_a_sentence_that_carries_it() {
        let passages = Passages::new(SOURCE);
        let found = passages
            .sentence_with_figures("월 26만 장\n260,000 a month")
            .unwrap();
        assert_eq!(found.text, "회사는 생산능력을 월 26만 장으로 늘린다.");
        assert_eq!(found.line, 5);
        assert!(passages.sentence_with_figures("2018년").is_none());
    }

    #[test]
    fn glossary_misses_are_reported() {
        let source = "최태원 회장은 한빛전자와 협력한다고 밝혔다.";
        let mut c = parse_content(&sample_json()).unwrap();
        c.summary.ko = "최태원 회장이 협력을 밝혔다.".into();
        c.summary.en = "Chairman Choi Tae-won announced a partnership.".into();
        c.entities.push(Entity {
            ko: "최태원".into(),
            en: "Choi Tae-won".into(),
            kind: "person".into(),
        });
        let glossary = BTreeMap::from([("최태원".to_string(), "Chey Tae-won".to_string())]);
        let misses = glossary_misses(&c, source, &glossary);
        assert_eq!(misses.len(), 1);
        assert_eq!(misses[0].found.as_deref(), Some("Choi Tae-won"));
        c.summary.en = "Chairman Chey Tae-won announced a partnership.".into();
        c.entities.last_mut().unwrap().en = "Chey Tae-won".into();
        assert!(glossary_misses(&c, source, &glossary).is_empty());
    }
}
