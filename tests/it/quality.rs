//! Quality you can measure: the cleaner against the labelled set, the figure checks end to
//! end, prompt injection.

use std::path::Path;

/// One labelled file: every line marked body (`B`) or clutter (`C`).
struct Labelled {
    name: String,
    lines: Vec<(bool, String)>,
}

fn labelled_set() -> Vec<Labelled> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/clean");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let lines = text
                .lines()
                .map(|l| match l.split_once('\t') {
                    Some(("B", t)) => (true, t.to_string()),
                    Some(("C", t)) => (false, t.to_string()),
                    None if l.trim().is_empty() || l.trim() == "B" => (true, String::new()),
                    _ => panic!("{}: unlabelled line {l:?}", p.display()),
                })
                .collect();
            Labelled {
                name: p.file_name().unwrap().to_string_lossy().to_string(),
                lines,
            }
        })
        .collect()
}

/// Spaces folded, for comparing lines.
fn fold(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A leading broadcast tag such as `[앵커]`, or a dateline such as `(서울=한빛통신) 최지우 기자 =`,
/// is trimmed by the cleaner; the sentence after it stays (tests/data/clean/README.md).
fn without_tag(s: &str) -> String {
    let t = s.trim_start();
    if t.starts_with('[')
        && let Some(end) = t.find(']')
        && t[1..end].chars().count() <= 8
    {
        return t[end + 1..].trim_start().to_string();
    }
    let dateline =
        regex::Regex::new(r"^\([^)=]{1,10}=[^)]{1,12}\)\s*([가-힣]{2,4}\s*(기자|특파원)\s*)?=\s*")
            .unwrap();
    dateline.replace(t, "").to_string()
}

#[test]
fn the_cleaner_keeps_every_body_line_and_removes_clutter() {
    let set = labelled_set();
    assert!(set.len() >= 15, "the labelled set has {} files", set.len());
    let (mut body, mut kept, mut clutter, mut removed) = (0, 0, 0, 0);
    let mut lost = Vec::new();
    let mut leaked = Vec::new();
    println!(
        "{:<16} {:>12} {:>16}",
        "file", "body kept", "clutter removed"
    );
    for f in &set {
        let raw: String = f
            .lines
            .iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let cleaned = hanbrief::clean::clean(&raw, None).text;
        let cleaned_folded = fold(&cleaned);
        let cleaned_lines: Vec<String> = cleaned.lines().map(fold).collect();
        let (mut b, mut bk, mut c, mut cr) = (0, 0, 0, 0);
        for (is_body, text) in &f.lines {
            if text.trim().is_empty() {
                continue;
            }
            if *is_body {
                b += 1;
                let want = fold(&without_tag(text));
                if want.is_empty() || cleaned_folded.contains(&want) {
                    bk += 1;
                } else {
                    lost.push(format!("{}: {text}", f.name));
                }
            } else {
                c += 1;
                let line = fold(text);
                let trimmed = fold(&without_tag(text));
                if cleaned_lines
                    .iter()
                    .any(|l| *l == line || !trimmed.is_empty() && *l == trimmed)
                {
                    leaked.push(format!("{}: {text}", f.name));
                } else {
                    cr += 1;
                }
            }
        }
        println!("{:<16} {:>5}/{:<5} {:>8}/{:<5}", f.name, bk, b, cr, c);
        body += b;
        kept += bk;
        clutter += c;
        removed += cr;
    }
    let recall = kept as f64 / body as f64;
    let removal = removed as f64 / clutter as f64;
    println!(
        "{:<16} {:>5}/{:<5} {:>8}/{:<5}   body kept {:.1} %, clutter removed {:.1} %",
        "all",
        kept,
        body,
        removed,
        clutter,
        100.0 * recall,
        100.0 * removal
    );
    for l in &leaked {
        println!("  clutter kept: {l}");
    }
    assert!(lost.is_empty(), "body lines lost:\n{}", lost.join("\n"));
    assert!(
        removal >= 0.95,
        "only {:.1} % of clutter lines removed; kept:\n{}",
        100.0 * removal,
        leaked.join("\n")
    );
}
