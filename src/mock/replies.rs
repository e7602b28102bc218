//! The simulated provider's replies: deterministic, built from the fenced article or notes in
//! the prompt, in the shape that was asked for (brief JSON, digest JSON or notes), cut to
//! `max_tokens` as a real server does.

use serde_json::{Value, json};

use crate::text::truncate;
use crate::tokens::Tokenizer;

/// The text between the fence lines (`<<<ARTICLE-…` … `ARTICLE-…>>>`) of the latest message
/// that has them (a repair's last message has none: it is about the article before it), or the
/// last message when none has.
fn fenced(messages: &[String]) -> String {
    let Some(with_fence) = messages.iter().rev().find(|m| m.contains("<<<ARTICLE-")) else {
        return messages.last().cloned().unwrap_or_default();
    };
    let start = with_fence.find("<<<ARTICLE-").expect("found above");
    let after = &with_fence[start..];
    let body_start = after.find('\n').map_or(after.len(), |i| i + 1);
    let body = &after[body_start..];
    let end = body.rfind("\nARTICLE-").unwrap_or(body.len());
    body[..end].to_string()
}

/// A sentence of the fenced text and the article sentence it stands on: itself in an article,
/// the note's `  > ` line in notes.
#[derive(Debug, Clone)]
struct Passage {
    text: String,
    quote: String,
}

/// `[3] text` (the select prompt's numbering) → `text`.
fn unnumbered(line: &str) -> &str {
    line.strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
        .filter(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        .map_or(line, |(_, text)| text)
}

fn passages(text: &str) -> Vec<Passage> {
    let mut out: Vec<Passage> = Vec::new();
    // Where the passages of the latest note line begin: its quote line applies to them.
    let mut note_start = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty()
            || line.starts_with("[part ")
            || line.starts_with("[id ")
            || line.starts_with("[story ")
        {
            continue;
        }
        if let Some(quote) = line.strip_prefix('>') {
            for p in &mut out[note_start..] {
                p.quote = quote.trim().to_string();
            }
            continue;
        }
        note_start = out.len();
        for s in crate::chunk::sentences(unnumbered(line.trim_start_matches("- "))) {
            let s = s.trim();
            if s.chars().count() >= 8 {
                out.push(Passage {
                    text: s.to_string(),
                    quote: s.to_string(),
                });
            }
        }
    }
    out
}

/// A quote cut to `max` characters with no mark: a prefix of the article's words is still the
/// article's words, where [`truncate`]'s `…` would not be.
fn quote_prefix(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Whether the request asks for quotes: its schema has them, or (no schema) its prompt does.
fn wants_quotes(body: &Value, prompt: &str) -> bool {
    let format = &body["response_format"];
    let schema = if format["json_schema"]["schema"].is_object() {
        &format["json_schema"]["schema"]
    } else {
        &format["schema"]
    };
    if schema.is_object() {
        return !schema["properties"]["key_points"]["items"]["properties"]["quotes"].is_null();
    }
    prompt.contains("\"quotes\"")
}

/// The deterministic reply for a request: a brief, a digest or notes, cut to `max_tokens`.
pub(super) fn reply_for(
    tok: &Tokenizer,
    body: &Value,
    messages: &[String],
    max_tokens: u64,
) -> (String, &'static str) {
    let source = fenced(messages);
    let lines = passages(&source);
    let name = body["response_format"]["json_schema"]["name"]
        .as_str()
        .unwrap_or("");
    let wants_json = !body["response_format"].is_null()
        || messages.last().is_some_and(|m| m.contains("JSON object"));
    let prompt = messages.last().map(String::as_str).unwrap_or("");
    let content = if name.starts_with("digest") || wants_json && prompt.contains("\"stories\"") {
        digest_reply(&source)
    } else if wants_json {
        // The select prompt numbers its sentences: one key point each.
        let numbered = source.lines().any(|l| l.starts_with("[1] "));
        let quotes = messages.iter().any(|m| wants_quotes(body, m));
        brief_reply(&lines, numbered, quotes)
    } else {
        // Notes, with each sentence as its own quote when the prompt asks for quote lines.
        let quoted = prompt.contains("\"  > \"");
        let notes: Vec<String> = lines
            .iter()
            .take(6)
            .map(|p| {
                if quoted {
                    format!("- {}\n  > {}", truncate(&p.text, 160), p.quote)
                } else {
                    format!("- {}", truncate(&p.text, 160))
                }
            })
            .collect();
        if notes.is_empty() {
            "- (no content)".to_string()
        } else {
            notes.join("\n")
        }
    };
    let tokens = tok.count(&content) as u64;
    if tokens > max_tokens {
        // Cut to the budget, as a real server does.
        let mut cut = content.clone();
        while tok.count(&cut) as u64 > max_tokens && !cut.is_empty() {
            let keep = cut.chars().count() * 9 / 10;
            cut = cut.chars().take(keep).collect();
        }
        return (cut, "length");
    }
    (content, "stop")
}

/// An extractive "lead" brief: the first sentence as the title, the first two as the summary,
/// the next three as key points (every numbered sentence, for the select prompt), each quoting
/// its sentence when quotes are asked for.
fn brief_reply(lines: &[Passage], numbered: bool, quotes: bool) -> String {
    let first = lines
        .first()
        .map(|p| p.text.clone())
        .unwrap_or_else(|| "기사 내용이 없다.".to_string());
    // The first figures with a Korean unit, each with the sentence it was read from.
    let figures: Vec<Value> = lines
        .iter()
        .flat_map(|p| {
            crate::figures::extract(&p.text)
                .into_iter()
                .map(move |f| (p, f))
        })
        .filter(|(_, f)| f.text.chars().any(|c| ('가'..='힣').contains(&c)))
        .take(3)
        .map(|(p, f)| {
            let mut figure =
                json!({"ko": f.text, "en": format!("{} (a figure from the article)", english(&f))});
            if quotes {
                figure["quotes"] = json!([p.quote]);
            }
            figure
        })
        .collect();
    let picked: Vec<&Passage> = if numbered {
        lines.iter().take(12).collect()
    } else {
        lines.iter().skip(1).take(3).collect()
    };
    let points: Vec<Value> = picked
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let en = [
                "The article's first point.",
                "Another point of the article.",
                "A further point of the article.",
            ][i.min(2)];
            let mut point = json!({"ko": truncate(&p.text, 200), "en": en});
            if quotes {
                point["quotes"] = json!([quote_prefix(&p.quote, 200)]);
            }
            point
        })
        .collect();
    let points = if points.is_empty() {
        let mut point = json!({"ko": truncate(&first, 200), "en": "The article's main point."});
        if quotes {
            point["quotes"] = json!([quote_prefix(&first, 200)]);
        }
        vec![point]
    } else {
        points
    };
    json!({
        "title": {"ko": truncate(&first, 60), "en": "A simulated brief"},
        "summary": {"ko": lines.iter().take(2).map(|p| p.text.clone()).collect::<Vec<_>>().join(" "), "en": "This brief was written by the simulated provider from the article's first sentences."},
        "key_points": points,
        "entities": [],
        "figures": figures
    })
    .to_string()
}

/// A figure in English as a careful translator writes it: a month by its name, a percentage
/// with its sign (a bare `3` for `3월` is a count the article never gives, and the checks
/// rightly flagged it).
fn english(f: &crate::figures::Figure) -> String {
    use crate::figures::Kind;
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    match f.kind {
        Kind::Month => MONTHS
            .get((f.value as usize).wrapping_sub(1))
            .map_or_else(|| f.value.to_string(), |m| m.to_string()),
        Kind::Percent => format!("{}%", f.value),
        Kind::Quantity => f.value.to_string(),
    }
}

fn digest_reply(source: &str) -> String {
    // One story per news item ("[sources: a, b]"), keeping its sources together.
    let mut groups: Vec<Vec<String>> = Vec::new();
    for line in source.lines() {
        if let Some(rest) = line.strip_prefix("[sources: ") {
            let rest = rest.trim_end().trim_end_matches(']');
            groups.push(rest.split(", ").map(str::to_string).collect());
        }
    }
    let stories: Vec<Value> = groups
        .iter()
        .enumerate()
        .map(|(i, sources)| {
            let ko = ["오늘의 첫 소식", "오늘의 다른 소식", "오늘의 또 다른 소식"][i.min(2)];
            json!({
                "topic": "economy",
                "headline": {"ko": ko, "en": "A story of the day"},
                "summary": {"ko": "모의 제공자가 쓴 요약이다.", "en": "A summary written by the simulated provider."},
                "importance": 3,
                "sources": sources
            })
        })
        .collect();
    json!({
        "title": {"ko": "오늘의 뉴스", "en": "Today's news"},
        "overview": {"ko": "모의 제공자가 쓴 개요다.", "en": "An overview written by the simulated provider."},
        "stories": stories
    })
    .to_string()
}
