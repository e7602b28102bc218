//! The simulated provider's replies: deterministic, built from the fenced article or notes in
//! the prompt, in the shape that was asked for (brief JSON, digest JSON or notes), cut to
//! `max_tokens` as a real server does.

use serde_json::{Value, json};

use crate::tokens::Tokenizer;

/// The text between the prompt's fence lines (`<<<ARTICLE-…` … `ARTICLE-…>>>`), or the last
/// message when there is no fence.
fn fenced(messages: &[String]) -> String {
    let last = messages.last().cloned().unwrap_or_default();
    let Some(start) = last.find("<<<ARTICLE-") else {
        return last;
    };
    let after = &last[start..];
    let body_start = after.find('\n').map_or(after.len(), |i| i + 1);
    let body = &after[body_start..];
    let end = body.rfind("\nARTICLE-").unwrap_or(body.len());
    body[..end].to_string()
}

fn sentences(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            !l.trim().is_empty()
                && !l.starts_with("[part ")
                && !l.starts_with("[id ")
                && !l.starts_with("[story ")
        })
        .flat_map(|l| {
            crate::chunk::sentences(l.trim_start_matches("- "))
                .into_iter()
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|s| s.chars().count() >= 8)
        .collect()
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The deterministic reply for a request: a brief, a digest or notes, cut to `max_tokens`.
pub(super) fn reply_for(
    tok: &Tokenizer,
    body: &Value,
    messages: &[String],
    max_tokens: u64,
) -> (String, &'static str) {
    let source = fenced(messages);
    let lines = sentences(&source);
    let name = body["response_format"]["json_schema"]["name"]
        .as_str()
        .unwrap_or("");
    let wants_json = !body["response_format"].is_null()
        || messages.last().is_some_and(|m| m.contains("JSON object"));
    let prompt = messages.last().map(String::as_str).unwrap_or("");
    let content = if name.starts_with("digest") || wants_json && prompt.contains("\"stories\"") {
        digest_reply(&source)
    } else if wants_json {
        brief_reply(&lines)
    } else {
        let notes: Vec<String> = lines
            .iter()
            .take(6)
            .map(|s| format!("- {}", clip(s, 160)))
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

fn brief_reply(lines: &[String]) -> String {
    let first = lines
        .first()
        .cloned()
        .unwrap_or_else(|| "기사 내용이 없다.".to_string());
    let figures: Vec<Value> = crate::figures::extract(&lines.join(" "))
        .into_iter()
        .filter(|f| f.text.chars().any(|c| ('가'..='힣').contains(&c)))
        .take(3)
        .map(|f| json!({"ko": f.text, "en": format!("{} (a figure from the article)", f.value)}))
        .collect();
    let points: Vec<Value> = lines
        .iter()
        .skip(1)
        .take(3)
        .enumerate()
        .map(|(i, s)| {
            let en = [
                "The article's first point.",
                "Another point of the article.",
                "A further point of the article.",
            ][i.min(2)];
            json!({"ko": clip(s, 200), "en": en})
        })
        .collect();
    let points = if points.is_empty() {
        vec![json!({"ko": clip(&first, 200), "en": "The article's main point."})]
    } else {
        points
    };
    json!({
        "title": {"ko": clip(&first, 60), "en": "A simulated brief"},
        "summary": {"ko": lines.iter().take(2).cloned().collect::<Vec<_>>().join(" "), "en": "This brief was written by the simulated provider from the article's first sentences."},
        "key_points": points,
        "entities": [],
        "figures": figures
    })
    .to_string()
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
