//! The brief: what the model must return, how a reply is validated, and the JSON document
//! written for each article. What is checked against the source is in [`crate::check`]; the
//! Markdown rendering in [`crate::render`].
//!
//! A reply is a brief only if it parses as the brief's JSON shape and every field is filled in
//! the right language. Anything else (prose, a half object, an English "ko" field, an answer to
//! instructions smuggled into the article) is rejected with a reason that the repair prompt
//! quotes back to the model; a brief that fails twice is an error for its article, never a
//! half-written file.
//!
//! Key points and figures are *grounded*: each carries the sentence or sentences of the cleaned
//! article it stands on ([`Quote`]), copied word for word. The model writes a quote as a plain
//! string; [`crate::check::anchor_quotes`] finds it in the article and records where it starts,
//! and [`crate::check::check`] lists the points whose quote is missing or not in the article.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;

use crate::check::Checks;

/// The version tag of the brief's JSON document. `/2` added the quotes of key points and
/// figures and the grounding checks.
pub const SCHEMA: &str = "hanbrief.brief/2";

/// Every version `digest` and `eval` read: a `/1` brief reads as one without quotes.
pub const READABLE_SCHEMAS: &[&str] = &["hanbrief.brief/1", SCHEMA];

/// A text in Korean and in English.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bilingual {
    pub ko: String,
    pub en: String,
}

/// A passage of the cleaned article quoted as the evidence for a key point or a figure.
///
/// The model writes only the text. Once found in the article (word for word, up to whitespace
/// and quote marks: see [`crate::check::Passages`]) the text is the article's own, and `start`
/// and `line` say where it is: `start` counts characters (Unicode scalar values, as Rust's
/// `chars()` and Python's `str` do) from the start of the cleaned text that `hanbrief inspect`
/// prints, `line` counts that text's lines from 1. Both are `None` for a quote not found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quote {
    pub text: String,
    pub start: Option<usize>,
    pub line: Option<usize>,
}

impl Quote {
    /// A quote as the model wrote it, not yet looked up.
    pub fn new(text: impl Into<String>) -> Quote {
        Quote {
            text: text.into(),
            start: None,
            line: None,
        }
    }

    /// Whether the quote was found in the article.
    pub fn is_found(&self) -> bool {
        self.start.is_some()
    }
}

impl<'de> Deserialize<'de> for Quote {
    /// A plain string (what the model writes) or the stored object.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Quote, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Full {
                text: String,
                #[serde(default)]
                start: Option<usize>,
                #[serde(default)]
                line: Option<usize>,
            },
        }
        Ok(match Repr::deserialize(d)? {
            Repr::Text(text) => Quote::new(text),
            Repr::Full { text, start, line } => Quote { text, start, line },
        })
    }
}

/// One quote or a list of them: models without a schema write `"quote": "…"` as often as
/// `"quotes": ["…"]`.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Quote>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<Quote>),
        One(Quote),
        Nothing(()),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::Many(v) => v,
        OneOrMany::One(q) => vec![q],
        OneOrMany::Nothing(()) => Vec::new(),
    })
}

/// A key point or a figure: Korean, English, and the article's words it stands on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grounded {
    pub ko: String,
    pub en: String,
    /// The supporting passages, verbatim from the cleaned article. Empty in briefs of format
    /// `/1` and when the model gave none.
    #[serde(default, alias = "quote", deserialize_with = "one_or_many")]
    pub quotes: Vec<Quote>,
}

impl Grounded {
    /// The Korean and English texts, for checks that read both.
    pub fn texts(&self) -> [&str; 2] {
        [&self.ko, &self.en]
    }
}

/// A person, organisation, place or thing the article is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    pub ko: String,
    pub en: String,
    #[serde(default = "other_kind")]
    pub kind: String,
}

fn other_kind() -> String {
    "other".to_string()
}

/// Entity kinds the prompts ask for; anything else is stored as "other".
pub const ENTITY_KINDS: &[&str] = &[
    "person",
    "organization",
    "place",
    "product",
    "event",
    "other",
];

/// What the model writes: the brief's content, without the bookkeeping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BriefContent {
    pub title: Bilingual,
    pub summary: Bilingual,
    #[serde(alias = "keyPoints", alias = "key points")]
    pub key_points: Vec<Grounded>,
    #[serde(default)]
    pub entities: Vec<Entity>,
    #[serde(default)]
    pub figures: Vec<Grounded>,
}

/// The JSON schema of [`BriefContent`] for endpoints that enforce schemas strictly (OpenAI's
/// structured outputs: every property required, no extra properties, no length keywords).
pub fn content_schema() -> serde_json::Value {
    schema(false, None)
}

/// The same schema with length bounds, for grammar-constrained servers (llama.cpp), where the
/// bounds stop a small model from writing forever.
pub fn content_schema_bounded() -> serde_json::Value {
    schema(true, None)
}

/// The schema of a brief written from `points` selected sentences (the `select` strategy): one
/// key point per sentence, in order, and no quotes, since the sentences are the quotes. Bounded
/// (for grammar servers) it asks for exactly `points` key points.
pub fn select_schema(points: usize, bounded: bool) -> serde_json::Value {
    schema(bounded, Some(points))
}

/// What a grammar-schema string may hold: any JSON string character but a quote, a backslash
/// or a control character (the JSON string grammar handles those).
const TEXT_CHAR: &str = "[^\"\\\\\\x00-\\x1F]";
/// An English text's characters: printable ASCII without a quote or backslash.
const ENGLISH_CHAR: &str = "[ !#-\\[\\]-~]";
/// Characters a Korean text may have before its first Hangul syllable ("2026년", "‘AI’ 칩").
const BEFORE_HANGUL: u32 = 20;

/// Which pattern a grammar-schema string follows.
#[derive(Clone, Copy)]
enum Lang {
    /// At least one Hangul syllable, within the first few characters.
    Korean,
    /// Printable ASCII only.
    English,
}

/// The pattern of a bounded string of `min` to `max` characters. The bounds must be in the
/// pattern itself: llama.cpp's JSON-schema-to-grammar converter (llama-cpp-python 0.3.36,
/// `llama_grammar.py`, `visit`) turns a string with a `pattern` into the pattern's grammar and
/// ignores its `minLength` and `maxLength`, so `[^"]*` let the 270M model write one field until
/// the reply's token limit (from the real2 branch).
fn bounded_pattern(lang: Lang, min: u32, max: u32) -> String {
    match lang {
        Lang::Korean => {
            let before = BEFORE_HANGUL.min(max.saturating_sub(1));
            let after = max.saturating_sub(before + 1);
            let at_least = min.saturating_sub(1).min(after);
            format!("^{TEXT_CHAR}{{0,{before}}}[가-힣]{TEXT_CHAR}{{{at_least},{after}}}$")
        }
        Lang::English => format!("^{ENGLISH_CHAR}{{{},{max}}}$", min.max(1)),
    }
}

/// In the grammar schema, the longest quote: about two sentences of Korean news.
const QUOTE_MAX_CHARS: u32 = 240;

/// `select`: `Some(n)` for the select strategy's shape (n key points, no quotes).
fn schema(bounded: bool, select: Option<usize>) -> serde_json::Value {
    // Grammar-constrained servers enforce lengths and patterns token by token: a small model
    // then cannot write forever, nor Korean where English belongs.
    let text_min = |min: u32, max: u32, lang: Option<Lang>| {
        if !bounded {
            return json!({"type": "string"});
        }
        let mut t = json!({"type": "string", "minLength": min, "maxLength": max});
        if let Some(lang) = lang {
            t["pattern"] = json!(bounded_pattern(lang, min, max));
        }
        t
    };
    let text = |max: u32, lang: Option<Lang>| text_min(1, max, lang);
    let list = |item: serde_json::Value, min: usize, max: usize| {
        if bounded {
            json!({"type": "array", "items": item, "minItems": min, "maxItems": max})
        } else {
            json!({"type": "array", "items": item})
        }
    };
    // One quote per item in the grammar: a small model writing two quotes mostly repeats one.
    let quotes = || {
        let quote = text_min(
            crate::check::MIN_QUOTE_CHARS as u32,
            QUOTE_MAX_CHARS,
            Some(Lang::Korean),
        );
        list(quote, 1, 1)
    };
    let pair = |max: u32, ko: Option<Lang>, grounded: bool| {
        let mut p = json!({
            "type": "object",
            "properties": {"ko": text(max, ko), "en": text(max, Some(Lang::English))},
            "required": ["ko", "en"],
            "additionalProperties": false
        });
        if grounded {
            p["properties"]["quotes"] = quotes();
            p["required"] = json!(["ko", "en", "quotes"]);
        }
        p
    };
    let grounded = select.is_none();
    let entity = json!({
        "type": "object",
        "properties": {
            "ko": text(30, None),
            "en": text(50, Some(Lang::English)),
            "kind": {"type": "string", "enum": ENTITY_KINDS}
        },
        "required": ["ko", "en", "kind"],
        "additionalProperties": false
    });
    let (min_points, max_points) = select.map_or((1, 3), |n| (n.max(1), n.max(1)));
    json!({
        "type": "object",
        "properties": {
            "title": pair(80, Some(Lang::Korean), false),
            "summary": pair(300, Some(Lang::Korean), false),
            "key_points": list(pair(150, Some(Lang::Korean), grounded), min_points, max_points),
            "entities": list(entity, 0, 4),
            "figures": list(pair(60, None, grounded), 0, 4)
        },
        "required": ["title", "summary", "key_points", "entities", "figures"],
        "additionalProperties": false
    })
}

/// Parses and validates a model reply as a brief. The error says what is wrong, in words the
/// repair prompt can quote.
pub fn parse_content(reply: &str) -> Result<BriefContent, String> {
    parse_content_then(reply, |_| {})
}

/// [`parse_content`], with `settle` applied to the parsed brief before it is judged (the
/// select strategy puts the article's sentences where the model lost them).
pub fn parse_content_then(
    reply: &str,
    settle: impl FnOnce(&mut BriefContent),
) -> Result<BriefContent, String> {
    let json = extract_json_object(reply).ok_or_else(|| {
        "it does not contain a JSON object (reply with the JSON object only)".to_string()
    })?;
    let mut content: BriefContent = serde_json::from_str(json)
        .map_err(|e| format!("the JSON does not have the brief's shape: {e}"))?;
    // Before trimming, which drops empty items: a settle that pairs items by position (select's
    // points with their sentences) sees them where the model put them.
    settle(&mut content);
    trim_all(&mut content);
    validate(&content)?;
    for e in &mut content.entities {
        if !ENTITY_KINDS.contains(&e.kind.as_str()) {
            e.kind = other_kind();
        }
    }
    Ok(content)
}

/// A title without the Markdown heading marks a model copies from a `# Heading` source (the
/// brief's Markdown adds its own: `# # 제목` otherwise).
pub fn plain_heading(title: &str) -> String {
    title.trim().trim_start_matches('#').trim().to_string()
}

fn trim_all(c: &mut BriefContent) {
    let t = |b: &mut Bilingual| {
        b.ko = b.ko.trim().to_string();
        b.en = b.en.trim().to_string();
    };
    let g = |p: &mut Grounded| {
        p.ko = p.ko.trim().to_string();
        p.en = p.en.trim().to_string();
        for q in &mut p.quotes {
            q.text = q.text.trim().to_string();
        }
        p.quotes.retain(|q| !q.text.is_empty());
    };
    t(&mut c.title);
    c.title.ko = plain_heading(&c.title.ko);
    c.title.en = plain_heading(&c.title.en);
    t(&mut c.summary);
    c.key_points.iter_mut().for_each(g);
    c.figures.iter_mut().for_each(g);
    c.key_points
        .retain(|k| !k.ko.is_empty() || !k.en.is_empty());
    c.figures.retain(|f| !f.ko.is_empty() || !f.en.is_empty());
    for e in &mut c.entities {
        e.ko = e.ko.trim().to_string();
        e.en = e.en.trim().to_string();
        e.kind = e.kind.trim().to_ascii_lowercase();
    }
    c.entities.retain(|e| !e.ko.is_empty() || !e.en.is_empty());
}

fn validate(c: &BriefContent) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut pair = |field: &str, ko: &str, en: &str| {
        if ko.is_empty() {
            problems.push(format!("\"{field}\".ko is empty"));
        } else if !is_korean(ko) {
            problems.push(format!("\"{field}\".ko is not in Korean"));
        }
        if en.is_empty() {
            problems.push(format!("\"{field}\".en is empty"));
        } else if !is_english(en) {
            problems.push(format!("\"{field}\".en is not in English"));
        }
    };
    pair("title", &c.title.ko, &c.title.en);
    pair("summary", &c.summary.ko, &c.summary.en);
    for (i, k) in c.key_points.iter().enumerate() {
        pair(&format!("key_points[{i}]"), &k.ko, &k.en);
    }
    if c.key_points.is_empty() {
        problems.push("\"key_points\" is empty".to_string());
    }
    for (i, f) in c.figures.iter().enumerate() {
        if f.ko.is_empty() || f.en.is_empty() {
            problems.push(format!("\"figures[{i}]\" needs both ko and en"));
        }
    }
    for (i, e) in c.entities.iter().enumerate() {
        if e.ko.is_empty() || e.en.is_empty() {
            problems.push(format!("\"entities[{i}]\" needs both ko and en"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Hangul syllables and jamo among the letters of `s`, as a fraction.
fn hangul_share(s: &str) -> f64 {
    let (mut letters, mut hangul) = (0usize, 0usize);
    for c in s.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        if matches!(c, '\u{AC00}'..='\u{D7A3}' | '\u{1100}'..='\u{11FF}' | '\u{3130}'..='\u{318F}')
        {
            hangul += 1;
        }
    }
    if letters == 0 {
        0.0
    } else {
        hangul as f64 / letters as f64
    }
}

/// Korean text: at least a fifth of its letters are Hangul (names and acronyms in Latin are
/// common in Korean news).
pub fn is_korean(s: &str) -> bool {
    hangul_share(s) >= 0.2
}

/// English text: almost no Hangul (a Korean name in brackets is fine).
pub fn is_english(s: &str) -> bool {
    hangul_share(s) <= 0.1
}

/// The first complete JSON object in `text`, ignoring code fences and prose around it.
pub fn extract_json_object(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut start = None;
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if let Some(s) = start {
            if in_string {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(&text[s..=i]);
                    }
                }
                _ => {}
            }
        } else if b == b'{' {
            start = Some(i);
            depth = 1;
        }
    }
    None
}

/// Every text field of a brief with its path, for checks that look at all of them.
pub fn fields(c: &BriefContent) -> Vec<(String, &str)> {
    let mut out = vec![
        ("title.ko".to_string(), c.title.ko.as_str()),
        ("title.en".to_string(), c.title.en.as_str()),
        ("summary.ko".to_string(), c.summary.ko.as_str()),
        ("summary.en".to_string(), c.summary.en.as_str()),
    ];
    for (i, k) in c.key_points.iter().enumerate() {
        out.push((format!("key_points[{i}].ko"), k.ko.as_str()));
        out.push((format!("key_points[{i}].en"), k.en.as_str()));
    }
    for (i, f) in c.figures.iter().enumerate() {
        out.push((format!("figures[{i}].ko"), f.ko.as_str()));
        out.push((format!("figures[{i}].en"), f.en.as_str()));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The document.

/// Where a brief came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub path: String,
    /// blake3 of the file's bytes.
    pub content_hash: String,
    pub title: Option<String>,
    pub encoding: String,
    pub chars_raw: usize,
    pub chars_clean: usize,
    /// Tokens of the cleaned text (exact for OpenAI models, an estimate otherwise).
    pub tokens: usize,
    pub chunks: usize,
}

/// What a brief cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BriefUsage {
    pub model: String,
    /// Calls made (cache hits excluded).
    pub calls: u32,
    /// Calls answered from the cache.
    pub cached_calls: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Estimated cost of the calls made, in US dollars (see [`crate::pricing`]); `null` when
    /// the model's price is unknown.
    #[serde(default)]
    pub cost_usd: Option<f64>,
}

/// A brief, as written to `<stem>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Brief {
    pub schema: String,
    pub source: SourceInfo,
    #[serde(flatten)]
    pub content: BriefContent,
    pub checks: Checks,
    pub usage: BriefUsage,
    /// RFC 3339.
    pub generated_at: String,
}

impl Brief {
    /// The JSON document, pretty-printed.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a brief always serialises") + "\n"
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_json() -> String {
        json!({
            "title": {"ko": "반도체 수출 역대 최대", "en": "Chip exports hit a record"},
            "summary": {"ko": "반도체 수출이 142억 달러로 늘었다.", "en": "Chip exports rose to $14.2 billion."},
            "key_points": [{"ko": "수출이 18.4% 늘었다.", "en": "Exports grew 18.4%.", "quotes": ["반도체 수출이 142억 달러로 18.4% 늘었다"]}],
            "entities": [{"ko": "한빛전자", "en": "Hanbit Electronics", "kind": "organization"}],
            "figures": [{"ko": "142억 달러", "en": "$14.2 billion", "quote": "반도체 수출이 142억 달러로 18.4% 늘었다"}]
        })
        .to_string()
    }

    #[test]
    fn parses_a_valid_reply_even_in_a_code_fence() {
        let reply = format!("Here you go:\n```json\n{}\n```", sample_json());
        let c = parse_content(&reply).unwrap();
        assert_eq!(c.title.en, "Chip exports hit a record");
        assert_eq!(c.entities[0].kind, "organization");
    }

    #[test]
    fn rejects_prose_half_objects_and_wrong_languages() {
        assert!(
            parse_content("I cannot do that.")
                .unwrap_err()
                .contains("JSON object")
        );
        assert!(parse_content("{\"title\": {\"ko\": \"제목\"").is_err());
        let wrong = sample_json().replace("Chip exports hit a record", "반도체 수출 기록");
        let err = parse_content(&wrong).unwrap_err();
        assert!(err.contains("\"title\".en is not in English"), "{err}");
        let empty = sample_json().replace("반도체 수출이 142억 달러로 늘었다.", "");
        assert!(
            parse_content(&empty)
                .unwrap_err()
                .contains("\"summary\".ko is empty")
        );
        let no_points = json!({"title": {"ko": "제목", "en": "Title"}, "summary": {"ko": "요약이다", "en": "A summary"}, "key_points": []});
        assert!(
            parse_content(&no_points.to_string())
                .unwrap_err()
                .contains("key_points")
        );
    }

    #[test]
    fn unknown_entity_kinds_become_other() {
        let reply = sample_json().replace("organization", "company");
        assert_eq!(parse_content(&reply).unwrap().entities[0].kind, "other");
    }

    #[test]
    fn json_extraction_respects_strings() {
        assert_eq!(
            extract_json_object("x {\"a\": \"}{\"} y"),
            Some("{\"a\": \"}{\"}")
        );
        assert_eq!(
            extract_json_object("{\"a\": {\"b\": 1}} {}"),
            Some("{\"a\": {\"b\": 1}}")
        );
        assert_eq!(extract_json_object("{ unterminated"), None);
    }

    #[test]
    fn briefs_of_format_1_still_load_without_quotes() {
        let text = include_str!("../tests/data/briefs/v1-semiconductor-export.json");
        let b: Brief = serde_json::from_str(text).expect("a /1 brief reads");
        assert_eq!(b.schema, "hanbrief.brief/1");
        assert!(READABLE_SCHEMAS.contains(&b.schema.as_str()));
        assert_eq!(b.content.key_points.len(), 3);
        assert!(b.content.key_points.iter().all(|k| k.quotes.is_empty()));
        assert!(b.checks.ungrounded.is_empty() && b.checks.figures_outside_quotes.is_empty());
        // Written again, it keeps what it had and gains the new, empty fields.
        let again: Brief = serde_json::from_str(&b.to_json()).unwrap();
        assert_eq!(again, b);
    }

    #[test]
    fn quotes_read_as_strings_objects_or_one_bare_quote() {
        let json = r#"{"ko": "가", "en": "a", "quotes": ["첫 문장이다.", {"text": "둘째 문장이다.", "start": 12, "line": 2}]}"#;
        let g: Grounded = serde_json::from_str(json).unwrap();
        assert_eq!(g.quotes[0], Quote::new("첫 문장이다."));
        assert_eq!(g.quotes[1].start, Some(12));
        let one: Grounded =
            serde_json::from_str(r#"{"ko": "가", "en": "a", "quote": "한 문장이다."}"#).unwrap();
        assert_eq!(one.quotes, vec![Quote::new("한 문장이다.")]);
        let stored = serde_json::to_value(&g).unwrap();
        assert_eq!(
            stored["quotes"][0],
            json!({"text": "첫 문장이다.", "start": null, "line": null})
        );
    }

    #[test]
    fn schemas_bound_quotes_for_grammar_servers_and_select_leaves_them_out() {
        let bounded = content_schema_bounded();
        let quotes = &bounded["properties"]["key_points"]["items"]["properties"]["quotes"];
        assert_eq!(quotes["maxItems"], json!(1));
        assert_eq!(quotes["items"]["maxLength"], json!(QUOTE_MAX_CHARS));
        assert!(quotes["items"]["pattern"].is_string());
        let strict = content_schema();
        assert_eq!(
            strict["properties"]["figures"]["items"]["required"],
            json!(["ko", "en", "quotes"])
        );
        let select = select_schema(4, true);
        let points = &select["properties"]["key_points"];
        assert_eq!(
            (points["minItems"].clone(), points["maxItems"].clone()),
            (json!(4), json!(4))
        );
        assert!(points["items"]["properties"]["quotes"].is_null());
        assert!(
            select_schema(4, false)
                .to_string()
                .find("maxItems")
                .is_none()
        );
    }

    #[test]
    fn schemas_are_strict_and_bounded_where_asked() {
        let strict = content_schema();
        assert_eq!(strict["additionalProperties"], json!(false));
        assert!(strict.to_string().find("maxLength").is_none());
        assert!(content_schema_bounded().to_string().contains("maxItems"));
    }

    /// Every string of the grammar schema is bounded in a way llama.cpp's converter honours:
    /// a pattern replaces `maxLength` there, so a pattern must carry the bound itself.
    #[test]
    fn every_grammar_schema_string_is_bounded_by_what_the_grammar_uses() {
        fn strings<'a>(
            v: &'a serde_json::Value,
            path: String,
            out: &mut Vec<(String, &'a serde_json::Value)>,
        ) {
            if v["type"] == "string" && v.get("enum").is_none() {
                out.push((path.clone(), v));
            }
            if let Some(props) = v["properties"].as_object() {
                for (k, p) in props {
                    strings(p, format!("{path}.{k}"), out);
                }
            }
            if v.get("items").is_some() {
                strings(&v["items"], format!("{path}[]"), out);
            }
        }
        let schema = content_schema_bounded();
        let mut all = Vec::new();
        strings(&schema, String::new(), &mut all);
        assert!(all.len() >= 10, "{}", all.len());
        let unbounded = regex::Regex::new(r"[*+]|\{\d+,\}").unwrap();
        let repetition = regex::Regex::new(r"\{(\d+),(\d+)\}").unwrap();
        for (path, s) in all {
            let max = s["maxLength"]
                .as_u64()
                .unwrap_or_else(|| panic!("{path} has no maxLength"));
            let Some(pattern) = s["pattern"].as_str() else {
                continue;
            };
            assert!(
                !unbounded.is_match(pattern),
                "{path}: {pattern} is unbounded"
            );
            // The pattern's repetitions add up to the field's maxLength, and it still matches
            // what it is for.
            let total: u64 = repetition
                .captures_iter(pattern)
                .map(|c| c[2].parse::<u64>().unwrap())
                .sum::<u64>()
                + u64::from(pattern.contains("[가-힣]"));
            assert_eq!(total, max, "{path}: {pattern}");
            let re = regex::Regex::new(pattern).unwrap();
            if path.ends_with(".en") {
                assert!(
                    re.is_match("Exports rose 18.4% to $14.2 billion."),
                    "{path}"
                );
                assert!(!re.is_match("수출"), "{path}");
            } else {
                assert!(re.is_match("2026년 반도체 수출 역대 최대"), "{path}");
                assert!(!re.is_match("Chip exports hit a record"), "{path}");
            }
            assert!(
                !re.is_match(&"가".repeat(max as usize + 1)),
                "{path} allows more than {max}"
            );
            let min = s["minLength"].as_u64().unwrap_or(1) as usize;
            if min > 1 && !path.ends_with(".en") {
                assert!(
                    !re.is_match(&"가".repeat(min - 1)),
                    "{path} allows fewer than {min}"
                );
            }
        }
    }
}
