//! The brief: what the model must return, how a reply is validated, what is checked against the
//! source, and how a brief is rendered as JSON and Markdown (DESIGN.md §5).
//!
//! A reply is a brief only if it parses as the brief's JSON shape and every field is filled in
//! the right language. Anything else (prose, a half object, an English "ko" field, an answer to
//! instructions smuggled into the article) is rejected with a reason that the repair prompt
//! quotes back to the model; a brief that fails twice is an error for its article, never a
//! half-written file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::figures::SourceFigures;

/// The version tag of the brief's JSON document.
pub const SCHEMA: &str = "hanbrief.brief/1";

/// A text in Korean and in English.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bilingual {
    pub ko: String,
    pub en: String,
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
    pub key_points: Vec<Bilingual>,
    #[serde(default)]
    pub entities: Vec<Entity>,
    #[serde(default)]
    pub figures: Vec<Bilingual>,
}

/// The JSON schema of [`BriefContent`] for endpoints that enforce schemas strictly (OpenAI's
/// structured outputs: every property required, no extra properties, no length keywords).
pub fn content_schema() -> serde_json::Value {
    schema(false)
}

/// The same schema with length bounds, for grammar-constrained servers (llama.cpp), where the
/// bounds stop a small model from writing forever.
pub fn content_schema_bounded() -> serde_json::Value {
    schema(true)
}

/// In the grammar schema: a Korean text has at least one Hangul syllable.
const KOREAN_PATTERN: &str = "^[^\"\\\\\\x00-\\x1F]*[가-힣][^\"\\\\\\x00-\\x1F]*$";
/// In the grammar schema: an English text is printable ASCII (no quote or backslash, which the
/// JSON string grammar handles).
const ENGLISH_PATTERN: &str = "^[ !#-\\[\\]-~]+$";

fn schema(bounded: bool) -> serde_json::Value {
    // Grammar-constrained servers enforce lengths and patterns token by token: a small model
    // then cannot write forever, nor Korean where English belongs.
    let text = |max: u32, pattern: Option<&str>| {
        if !bounded {
            return json!({"type": "string"});
        }
        let mut t = json!({"type": "string", "minLength": 1, "maxLength": max});
        if let Some(p) = pattern {
            t["pattern"] = json!(p);
        }
        t
    };
    let pair = |max: u32, ko: Option<&str>| {
        json!({
            "type": "object",
            "properties": {"ko": text(max, ko), "en": text(max, Some(ENGLISH_PATTERN))},
            "required": ["ko", "en"],
            "additionalProperties": false
        })
    };
    let list = |item: serde_json::Value, min: u32, max: u32| {
        if bounded {
            json!({"type": "array", "items": item, "minItems": min, "maxItems": max})
        } else {
            json!({"type": "array", "items": item})
        }
    };
    let entity = json!({
        "type": "object",
        "properties": {
            "ko": text(30, None),
            "en": text(50, Some(ENGLISH_PATTERN)),
            "kind": {"type": "string", "enum": ENTITY_KINDS}
        },
        "required": ["ko", "en", "kind"],
        "additionalProperties": false
    });
    json!({
        "type": "object",
        "properties": {
            "title": pair(80, Some(KOREAN_PATTERN)),
            "summary": pair(300, Some(KOREAN_PATTERN)),
            "key_points": list(pair(150, Some(KOREAN_PATTERN)), 1, 3),
            "entities": list(entity, 0, 4),
            "figures": list(pair(60, None), 0, 4)

        },
        "required": ["title", "summary", "key_points", "entities", "figures"],
        "additionalProperties": false
    })
}

/// Parses and validates a model reply as a brief. The error says what is wrong, in words the
/// repair prompt can quote.
pub fn parse_content(reply: &str) -> Result<BriefContent, String> {
    let json = extract_json_object(reply).ok_or_else(|| {
        "it does not contain a JSON object (reply with the JSON object only)".to_string()
    })?;
    let mut content: BriefContent = serde_json::from_str(json)
        .map_err(|e| format!("the JSON does not have the brief's shape: {e}"))?;
    trim_all(&mut content);
    validate(&content)?;
    for e in &mut content.entities {
        if !ENTITY_KINDS.contains(&e.kind.as_str()) {
            e.kind = other_kind();
        }
    }
    Ok(content)
}

fn trim_all(c: &mut BriefContent) {
    let t = |b: &mut Bilingual| {
        b.ko = b.ko.trim().to_string();
        b.en = b.en.trim().to_string();
    };
    t(&mut c.title);
    t(&mut c.summary);
    c.key_points.iter_mut().for_each(t);
    c.figures.iter_mut().for_each(t);
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
    let mut pair = |field: &str, b: &Bilingual| {
        if b.ko.is_empty() {
            problems.push(format!("\"{field}\".ko is empty"));
        } else if !is_korean(&b.ko) {
            problems.push(format!("\"{field}\".ko is not in Korean"));
        }
        if b.en.is_empty() {
            problems.push(format!("\"{field}\".en is empty"));
        } else if !is_english(&b.en) {
            problems.push(format!("\"{field}\".en is not in English"));
        }
    };
    pair("title", &c.title);
    pair("summary", &c.summary);
    for (i, k) in c.key_points.iter().enumerate() {
        pair(&format!("key_points[{i}]"), k);
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

// ---------------------------------------------------------------------------------------------
// Checks.

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
    /// Anything else worth a reader's attention.
    pub warnings: Vec<String>,
}

impl Checks {
    /// Whether any check found something.
    pub fn is_clean(&self) -> bool {
        self.unsupported_figures.is_empty()
            && self.unknown_entities.is_empty()
            && self.glossary_misses.is_empty()
            && self.warnings.is_empty()
    }
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

/// Checks a brief against the cleaned source: figures, entity names, pinned renderings.
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
    let squashed_source = squash(source);
    for e in &content.entities {
        if !e.ko.is_empty() && !squashed_source.contains(&squash(&e.ko)) {
            checks.unknown_entities.push(e.ko.clone());
        }
    }
    checks.glossary_misses = glossary_misses(content, source, glossary);
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
    let mut points: Vec<&str> = c.key_points.iter().map(|k| k.ko.as_str()).collect();
    points.sort_unstable();
    points.dedup();
    if points.len() < c.key_points.len() {
        warnings.push("some key points repeat each other".to_string());
    }
    if c.figures.is_empty() && source_figures >= 5 {
        warnings.push(format!(
            "no figures in the brief, though the article has {source_figures}"
        ));
    }
    warnings
}

/// Lower-cased, without spaces and middle dots: "SK 하이닉스" and "SK하이닉스" are one name.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '·' | '・' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Pinned names that appear in the source but whose pinned English rendering the brief's
/// English text does not use.
pub fn glossary_misses(
    content: &BriefContent,
    source: &str,
    glossary: &BTreeMap<String, String>,
) -> Vec<GlossaryMiss> {
    let english: String = fields(content)
        .into_iter()
        .filter(|(f, _)| f.ends_with(".en"))
        .map(|(_, t)| t.to_lowercase())
        .chain(content.entities.iter().map(|e| e.en.to_lowercase()))
        .collect::<Vec<_>>()
        .join("\n");
    let korean: String = fields(content)
        .into_iter()
        .filter(|(f, _)| f.ends_with(".ko"))
        .map(|(_, t)| t.to_string())
        .chain(content.entities.iter().map(|e| e.ko.clone()))
        .collect::<Vec<_>>()
        .join("\n");
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
    /// Estimated cost of the calls made, from `[pricing]`, in US dollars.
    pub cost_usd: f64,
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

    /// The Markdown rendering: Korean first, English under it, warnings at the top.
    pub fn to_markdown(&self) -> String {
        use std::fmt::Write;
        let c = &self.content;
        let mut md = String::new();
        let _ = writeln!(md, "# {}\n", c.title.ko);
        let _ = writeln!(md, "*{}*\n", c.title.en);
        if !self.checks.unsupported_figures.is_empty() {
            let list = self
                .checks
                .unsupported_figures
                .iter()
                .map(|f| format!("`{}`", f.text))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                md,
                "> ⚠️ **원문에서 확인되지 않은 수치 · Figures not found in the source:** {list}\n"
            );
        }
        if !self.checks.unknown_entities.is_empty() {
            let _ = writeln!(
                md,
                "> ⚠️ **원문에 없는 이름 · Names not found in the source:** {}\n",
                self.checks.unknown_entities.join(", ")
            );
        }
        for miss in &self.checks.glossary_misses {
            let _ = writeln!(
                md,
                "> ⚠️ **용어집 · Glossary:** {} should be \"{}\"{}\n",
                miss.ko,
                miss.expected,
                miss.found
                    .as_ref()
                    .map(|f| format!(" (brief: \"{f}\")"))
                    .unwrap_or_default()
            );
        }
        for w in &self.checks.warnings {
            let _ = writeln!(md, "> ⚠️ {w}\n");
        }
        let _ = writeln!(
            md,
            "## 요약 · Summary\n\n{}\n\n{}\n",
            c.summary.ko, c.summary.en
        );
        let _ = writeln!(md, "## 핵심 · Key points\n");
        for k in &c.key_points {
            let _ = writeln!(md, "- {}\n  <br>*{}*", k.ko, k.en);
        }
        md.push('\n');
        if !c.figures.is_empty() {
            let _ = writeln!(md, "## 수치 · Figures\n");
            for f in &c.figures {
                let _ = writeln!(md, "- {} · *{}*", f.ko, f.en);
            }
            md.push('\n');
        }
        if !c.entities.is_empty() {
            let _ = writeln!(md, "## 인물·기관 · Who and what\n");
            for e in &c.entities {
                let _ = writeln!(md, "- {} · *{}* ({})", e.ko, e.en, e.kind);
            }
            md.push('\n');
        }
        let s = &self.source;
        let u = &self.usage;
        let _ = writeln!(
            md,
            "---\n<sub>Source: `{}` · {} · {} → {} chars · {} tokens · {} chunk{} · {} · {} call{}{} · ${:.4} · {}</sub>",
            s.path,
            s.encoding,
            group(s.chars_raw),
            group(s.chars_clean),
            group(s.tokens),
            s.chunks,
            if s.chunks == 1 { "" } else { "s" },
            u.model,
            u.calls,
            if u.calls == 1 { "" } else { "s" },
            if u.cached_calls > 0 {
                format!(" (+{} cached)", u.cached_calls)
            } else {
                String::new()
            },
            u.cost_usd,
            self.generated_at,
        );
        md
    }
}

/// 12345 → "12,345".
pub fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_json() -> String {
        json!({
            "title": {"ko": "반도체 수출 역대 최대", "en": "Chip exports hit a record"},
            "summary": {"ko": "반도체 수출이 142억 달러로 늘었다.", "en": "Chip exports rose to $14.2 billion."},
            "key_points": [{"ko": "수출이 18.4% 늘었다.", "en": "Exports grew 18.4%."}],
            "entities": [{"ko": "한빛전자", "en": "Hanbit Electronics", "kind": "organization"}],
            "figures": [{"ko": "142억 달러", "en": "$14.2 billion"}]
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

    #[test]
    fn schemas_are_strict_and_bounded_where_asked() {
        let strict = content_schema();
        assert_eq!(strict["additionalProperties"], json!(false));
        assert!(strict.to_string().find("maxLength").is_none());
        assert!(content_schema_bounded().to_string().contains("maxItems"));
    }

    #[test]
    fn grouping_digits() {
        assert_eq!(group(0), "0");
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(group(999), "999");
    }
}
