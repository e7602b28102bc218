//! Render: briefs and digests as Markdown for people to read (their JSON is the serde form of
//! [`Brief`] and [`Digest`]), and the number formatting the command line shares.

use std::path::{Path, PathBuf};

use crate::brief::{Brief, BriefUsage, Grounded};
use crate::check::FigureCheck;
use crate::digest::Digest;

/// A brief in Markdown: Korean first, English under it, warnings at the top, and under each key
/// point and figure the article's sentence it stands on (a quote block, which a phone and a
/// terminal both show as an indented `>` line right under its point).
pub fn brief(b: &Brief) -> String {
    use std::fmt::Write;
    let c = &b.content;
    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", c.title.ko);
    let _ = writeln!(md, "*{}*\n", c.title.en);
    if !b.checks.unsupported_figures.is_empty() {
        let _ = writeln!(
            md,
            "> ⚠️ **원문에서 확인되지 않은 수치 · Figures not found in the source:** {}\n",
            figure_list(&b.checks.unsupported_figures)
        );
    }
    if !b.checks.unknown_entities.is_empty() {
        let _ = writeln!(
            md,
            "> ⚠️ **원문에 없는 이름 · Names not found in the source:** {}\n",
            b.checks.unknown_entities.join(", ")
        );
    }
    for miss in &b.checks.glossary_misses {
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
    if !b.checks.ungrounded.is_empty() {
        let list: Vec<String> = b
            .checks
            .ungrounded
            .iter()
            .map(|u| label(&u.field))
            .collect();
        let _ = writeln!(
            md,
            "> ⚠️ **원문 근거를 찾지 못한 항목 · Not found in the source word for word:** {}\n",
            list.join(", ")
        );
    }
    if !b.checks.figures_outside_quotes.is_empty() {
        let list: Vec<String> = b
            .checks
            .figures_outside_quotes
            .iter()
            .map(|f| format!("`{}` ({})", f.text, label(&f.field)))
            .collect();
        let _ = writeln!(
            md,
            "> ⚠️ **인용문에 없는 수치 · Figures not in their own quote:** {}\n",
            list.join(", ")
        );
    }
    for w in &b.checks.warnings {
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
        evidence(&mut md, k, &[]);
    }
    md.push('\n');
    if !c.figures.is_empty() {
        let _ = writeln!(md, "## 수치 · Figures\n");
        for f in &c.figures {
            let _ = writeln!(md, "- {} · *{}*", f.ko, f.en);
            evidence(&mut md, f, &c.key_points);
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
    let s = &b.source;
    let _ = writeln!(
        md,
        "---\n<sub>Source: `{}` · {} · {} → {} chars · {} tokens · {} chunk{} · {} · {}</sub>",
        s.path,
        s.encoding,
        group(s.chars_raw),
        group(s.chars_clean),
        group(s.tokens),
        s.chunks,
        if s.chunks == 1 { "" } else { "s" },
        usage(&b.usage),
        b.generated_at,
    );
    md
}

/// The quotes of a key point or figure, as quote blocks inside its list item. A figure whose
/// quote is a key point's, or a point that is its quote, says so instead of repeating the
/// sentence.
fn evidence(md: &mut String, item: &Grounded, points: &[Grounded]) {
    use std::fmt::Write;
    if item.quotes.is_empty() {
        let _ = writeln!(md, "  > ⚠️ 원문 인용 없음 · no quote from the source");
    }
    for (i, q) in item.quotes.iter().enumerate() {
        if i > 0 {
            // A paragraph break inside the quote block: one quote per line, also when rendered.
            let _ = writeln!(md, "  >");
        }
        match (q.start, q.line) {
            (Some(_), line) => {
                let at = line
                    .map(|l| format!(" <sub>(원문 {l}행 · line {l})</sub>"))
                    .unwrap_or_default();
                match points
                    .iter()
                    .position(|p| p.quotes.iter().any(|pq| pq.text == q.text))
                {
                    // A point that is its sentence word for word (select mode keeps many):
                    // the place, not the same text twice.
                    None if q.text.trim() == item.ko.trim() => {
                        let _ = writeln!(md, "  > 원문 그대로 · the article's own words{at}");
                    }
                    Some(i) => {
                        let _ = writeln!(
                            md,
                            "  > 핵심 {n}의 문장 · the sentence of key point {n}{at}",
                            n = i + 1
                        );
                    }
                    None => {
                        let _ = writeln!(md, "  > {}{at}", q.text);
                    }
                }
            }
            (None, _) => {
                let _ = writeln!(
                    md,
                    "  > ⚠️ 원문에 없는 인용 · not in the source: {}",
                    q.text
                );
            }
        }
    }
}

/// `key_points[1]` → `핵심 2 · key point 2`, `figures[0].en` → `수치 1 · figure 1`.
fn label(field: &str) -> String {
    let (name, rest) = field.split_once('[').unwrap_or((field, ""));
    let n = rest
        .split(']')
        .next()
        .and_then(|i| i.parse::<usize>().ok())
        .map_or(0, |i| i + 1);
    match name {
        "key_points" => format!("핵심 {n} · key point {n}"),
        "figures" => format!("수치 {n} · figure {n}"),
        _ => field.to_string(),
    }
}

/// A digest in Markdown; links to briefs are relative to `from` (the digest's folder), given
/// the briefs folder `briefs`.
pub fn digest(d: &Digest, briefs: &Path, from: &Path) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    let _ = writeln!(md, "# {} · {}\n", d.title.ko, d.date);
    let _ = writeln!(md, "*{}*\n", d.title.en);
    let _ = writeln!(md, "{}\n\n{}\n", d.overview.ko, d.overview.en);
    if !d.checks.unsupported_figures.is_empty() {
        let _ = writeln!(
            md,
            "> ⚠️ **출처 브리프에 없는 수치 · Figures not in the sources:** {}\n",
            figure_list(&d.checks.unsupported_figures)
        );
    }
    for w in &d.checks.warnings {
        let _ = writeln!(md, "> ⚠️ {w}\n");
    }
    for group in &d.topics {
        let _ = writeln!(md, "## {} · {}\n", group.label.ko, group.label.en);
        for s in &group.stories {
            let stars = "★".repeat(s.importance as usize);
            let _ = writeln!(md, "### {}\n", s.headline.ko);
            let _ = writeln!(md, "*{}* {stars}\n", s.headline.en);
            let _ = writeln!(md, "{}\n\n{}\n", s.summary.ko, s.summary.en);
            let links: Vec<String> = s
                .sources
                .iter()
                .map(|src| {
                    let target = relative(&briefs.join(&src.brief), from);
                    format!("[{}]({})", src.title.ko.replace(['[', ']'], ""), target)
                })
                .collect();
            let _ = writeln!(md, "출처 · Sources: {}\n", links.join(" · "));
        }
    }
    let _ = writeln!(
        md,
        "---\n<sub>{} · {} · {}</sub>",
        crate::console::count(d.briefs as u64, "brief", "briefs"),
        usage(&d.usage),
        d.generated_at
    );
    md
}

/// Figures for a warning line: `` `19.1 trillion`, `45%` ``.
fn figure_list(figures: &[FigureCheck]) -> String {
    figures
        .iter()
        .map(|f| format!("`{}`", f.text))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A footer's account of the calls: `gpt-4.1-mini · 3 calls (+1 cached) · $0.0012`.
fn usage(u: &BriefUsage) -> String {
    format!(
        "{} · {} call{}{} · {}",
        u.model,
        u.calls,
        if u.calls == 1 { "" } else { "s" },
        if u.cached_calls > 0 {
            format!(" (+{} cached)", u.cached_calls)
        } else {
            String::new()
        },
        crate::pricing::usd(u.cost_usd)
    )
}

/// `target` relative to folder `from` (both relative to the same base, or both absolute).
fn relative(target: &Path, from: &Path) -> String {
    let t: Vec<_> = target.components().collect();
    let f: Vec<_> = from.components().collect();
    let common = t.iter().zip(&f).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out.display()
        .to_string()
        .replace('\\', "/")
        .replace(' ', "%20")
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

    #[test]
    fn relative_links() {
        assert_eq!(
            relative(Path::new("out/economy/a.md"), Path::new("out/_digest")),
            "../economy/a.md"
        );
        assert_eq!(
            relative(Path::new("/x/out/a.md"), Path::new("/x/out")),
            "a.md"
        );
    }

    #[test]
    fn grouping_digits() {
        assert_eq!(group(0), "0");
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(group(999), "999");
    }
}
