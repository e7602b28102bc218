//! Figures: find the numbers in Korean and English text, normalise them to values, and decide
//! whether a figure in a brief is supported by the article.
//!
//! Korean writes large numbers with myriad scales and mixes digits with scale words: `26만 장`
//! (260,000), `2,340억 원` (234,000,000,000), `1경 7천조 원` (17,000,000,000,000,000),
//! `3천만` (30,000,000). English uses thousands scales: `17 quadrillion`, `$1.2 trillion`,
//! `KRW 234 billion`, `260,000`, `1.5bn`. Both become an `f64`, so `26만 장` in the article
//! supports `260,000 units` in the brief. Percentages and months are kept apart from plain
//! quantities (`45%` does not support `45 people`; `3월` supports `March`). SI prefixes in
//! Korean and English (`4.4기가와트`, `4.4 GW`, `4.4 gigawatts`) scale the value too.
//!
//! A brief may round: a figure written with a scale word or an approximation word ("about",
//! "약", "가량") is supported by an article value that rounds to it at the brief's precision
//! (`1,170억 달러` supports "about $117 billion" and "$120 billion"); a plain figure must match
//! exactly.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

/// What kind of quantity a figure is; only figures of the same kind can support each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A count, an amount, a year, a day: any plain number.
    Quantity,
    /// A percentage or percentage points.
    Percent,
    /// A month of the year.
    Month,
}

/// One number found in a text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    /// The text it was read from, e.g. `1조 2천억 원` or `$1.2 trillion`.
    pub text: String,
    pub value: f64,
    pub kind: Kind,
    /// Significant digits as written, when the writer may have rounded (a scale or an
    /// approximation word); `None` when the figure claims to be exact.
    #[serde(skip)]
    pub rounded_to: Option<u32>,
}

const BIG_SCALES: &[(char, f64)] = &[('경', 1e16), ('조', 1e12), ('억', 1e8), ('만', 1e4)];
const SMALL_SCALES: &[(char, f64)] = &[('천', 1e3), ('백', 1e2), ('십', 1e1)];

static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?").expect("valid regex")
});
static DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(\d{4})\s*[.\-/]\s*(\d{1,2})\s*[.\-/]\s*(\d{1,2})\b").expect("valid regex")
});
static EN_SCALE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s?(quadrillion|trillion|billion|million|thousand|hundred|bn|tn|mn|mln|k|m|b)\b",
    )
    .expect("valid regex")
});
static EN_PERCENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s?(%p?|퍼센트(포인트)?|프로|%\s?포인트|percent(age points?)?|per cent|pct|pp\b|p\.p\.)")
        .expect("valid regex")
});
static SI_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s?(테라|기가|메가|킬로|tera|giga|mega|kilo|TW|GW|MW|kW|TWh|GWh|MWh|kWh)")
        .expect("valid regex")
});
static MONTH_KO: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\s?월").expect("valid regex"));
/// The first month of a range or list whose last one carries 월: `3~4월`, `3-4월`, `3, 4월`,
/// `3·4월`, `3∼5월` (the 3 is a month too, not a count).
static MONTH_KO_RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s?(?:~|∼|-|–|,|·|및|과|와)\s?(?:1[0-2]|0?[1-9])\s?월").expect("valid regex")
});
static MONTH_EN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b\.?")
        .expect("valid regex")
});
static KO_UNIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^ ?(와트시|와트|원|달러|엔|위안|유로|파운드|명|장|개|대|건|곳|톤|배럴|가구|척|칸|채|마리|배|세)",
    )
    .expect("valid regex")
});
static APPROX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(about|around|approximately|approx\.?|nearly|almost|roughly|some|over|more than|less than|under|up to|close to|약|대략|거의|가량|여|안팎|남짓|이상|이하|넘는|넘게|이르는|달하는)")
        .expect("valid regex")
});

/// Finds every figure in `text`.
pub fn extract(text: &str) -> Vec<Figure> {
    let mut out = Vec::new();
    let mut covered: Vec<(usize, usize)> = Vec::new();

    // Dates first, so that 2024.08.18 is a year, a month and a day, not 2024.08 and 18.
    for c in DATE.captures_iter(text) {
        let m = c.get(0).expect("match");
        covered.push((m.start(), m.end()));
        let num = |i: usize| c.get(i).and_then(|g| g.as_str().parse::<f64>().ok());
        if let (Some(y), Some(mo), Some(d)) = (num(1), num(2), num(3)) {
            out.push(figure(m.as_str(), y, Kind::Quantity, None));
            if (1.0..=12.0).contains(&mo) {
                out.push(figure(m.as_str(), mo, Kind::Month, None));
            }
            out.push(figure(m.as_str(), d, Kind::Quantity, None));
        }
    }

    let mut pos = 0;
    while let Some(m) = NUMBER.find_at(text, pos) {
        pos = m.end();
        if covered
            .iter()
            .any(|(s, e)| m.start() >= *s && m.start() < *e)
        {
            continue;
        }
        let Some(parsed) = parse_korean_group(text, m.start()) else {
            continue;
        };
        let mut end = parsed.end;
        let mut value = parsed.value;
        let mut kind = Kind::Quantity;
        let mut scaled = parsed.scaled;
        let rest = &text[end..];
        if let Some(p) = EN_PERCENT.find(rest) {
            kind = Kind::Percent;
            end += p.end();
        } else if !parsed.scaled
            && let Some(s) = EN_SCALE.find(rest)
        {
            let word = s.as_str().trim().to_ascii_lowercase();
            // "m", "b" and "k" alone are scales only glued to an amount of money ("$2m",
            // "€1.5b"); "300m" in Korean news is metres.
            let before = &text[text.floor_char_boundary(m.start().saturating_sub(4))..m.start()];
            let glued = !s.as_str().starts_with(' ') && before.contains(['$', '€', '£', '₩']);
            let factor = match word.as_str() {
                "quadrillion" => Some(1e15),
                "trillion" | "tn" => Some(1e12),
                "billion" | "bn" => Some(1e9),
                "million" | "mn" | "mln" => Some(1e6),
                "thousand" => Some(1e3),
                "hundred" => Some(1e2),
                "k" if glued => Some(1e3),
                "m" if glued => Some(1e6),
                "b" if glued => Some(1e9),
                _ => None,
            };
            if let Some(f) = factor {
                value *= f;
                end += s.end();
                scaled = true;
            }
        } else if MONTH_KO.is_match(rest) && value.fract() == 0.0 && (1.0..=12.0).contains(&value) {
            kind = Kind::Month;
            end += MONTH_KO.find(rest).map_or(0, |m| m.end());
        } else if !parsed.scaled
            && MONTH_KO_RANGE.is_match(rest)
            && value.fract() == 0.0
            && (1.0..=12.0).contains(&value)
        {
            kind = Kind::Month;
        }
        let mut si = false;
        if kind == Kind::Quantity
            && let Some(p) = SI_PREFIX.find(&text[end..])
        {
            si = true;
            let prefix = p.as_str().trim().to_ascii_lowercase();
            let factor = if prefix.starts_with("테라")
                || prefix.starts_with("tera")
                || prefix.starts_with("tw")
            {
                1e12
            } else if prefix.starts_with("기가")
                || prefix.starts_with("giga")
                || prefix.starts_with("gw")
            {
                1e9
            } else if prefix.starts_with("메가")
                || prefix.starts_with("mega")
                || prefix.starts_with("mw")
            {
                1e6
            } else {
                1e3
            };
            value *= factor;
            scaled = true;
            end += p.end();
        }
        // Show the unit with the figure: "142억 달러", "26만 장", "4.4기가와트" (it does not change
        // the value).
        if kind == Kind::Quantity
            && let Some(u) = KO_UNIT.find(&text[end..])
            && (!si || u.as_str().contains('와'))
        {
            end += u.end();
        }
        pos = pos.max(end);
        let mut start = m.start();
        // Keep a currency sign with the figure: "$15 billion", "₩2조".
        if let Some(c) = text[..start].chars().next_back()
            && matches!(c, '$' | '€' | '£' | '₩' | '¥')
        {
            start -= c.len_utf8();
        }
        let approx = APPROX
            .is_match(&text[text.floor_char_boundary(start.saturating_sub(24))..start])
            || APPROX.is_match(&text[end..text.ceil_char_boundary((end + 12).min(text.len()))]);
        let rounded_to =
            (scaled || approx).then(|| significant_digits(&text[m.start()..parsed.digits_end]));
        out.push(figure(&text[start..end], value, kind, rounded_to));
        covered.push((start, end));
    }

    for m in MONTH_EN.find_iter(text) {
        let name = m.as_str().trim_end_matches('.').to_ascii_lowercase();
        // "may" and "march" are also common words: count them only next to a number.
        let near_number = text[m.end()..]
            .trim_start()
            .starts_with(|c: char| c.is_ascii_digit())
            || text[..m.start()]
                .trim_end()
                .ends_with(|c: char| c.is_ascii_digit());
        if matches!(name.as_str(), "may" | "march" | "mar")
            && !near_number
            && !text[..m.start()]
                .trim_end()
                .to_ascii_lowercase()
                .ends_with("in")
        {
            continue;
        }
        let month = match &name[..3] {
            "jan" => 1.0,
            "feb" => 2.0,
            "mar" => 3.0,
            "apr" => 4.0,
            "may" => 5.0,
            "jun" => 6.0,
            "jul" => 7.0,
            "aug" => 8.0,
            "sep" => 9.0,
            "oct" => 10.0,
            "nov" => 11.0,
            _ => 12.0,
        };
        out.push(figure(m.as_str(), month, Kind::Month, None));
    }
    out
}

fn figure(text: &str, value: f64, kind: Kind, rounded_to: Option<u32>) -> Figure {
    Figure {
        text: text.trim().to_string(),
        value,
        kind,
        rounded_to,
    }
}

struct Parsed {
    value: f64,
    /// End of the whole group (after its last scale word).
    end: usize,
    /// End of the first run of digits (for significant digits).
    digits_end: usize,
    /// Whether a scale word multiplied the digits.
    scaled: bool,
}

/// Parses a Korean number group starting at `start` (which is at a digit): digits with small
/// scales (천, 백, 십) inside big scales (경, 조, 억, 만), groups separated by at most one space
/// while the big scales decrease: `1경 7천조`, `1조 2천억`, `3천만`, `2,340억`, `5만 3000`.
fn parse_korean_group(text: &str, start: usize) -> Option<Parsed> {
    let mut total = 0f64;
    let mut section = 0f64;
    let mut pos = start;
    let mut last_big = f64::INFINITY;
    let mut scaled = false;
    let mut digits_end = None;
    loop {
        let m = NUMBER.find_at(text, pos).filter(|m| m.start() == pos)?;
        let mut n: f64 = m.as_str().replace(',', "").parse().ok()?;
        digits_end.get_or_insert(m.end());
        let mut p = m.end();
        let mut chars = text[p..].chars();
        let mut next = chars.next();
        if let Some((_, f)) = next.and_then(|c| SMALL_SCALES.iter().find(|(s, _)| *s == c)) {
            n *= f;
            p += next.map_or(0, char::len_utf8);
            next = text[p..].chars().next();
            scaled = true;
        }
        section += n;
        // One space is allowed between digits and a big scale: "2,340 억".
        let (space, after_space) = match next {
            Some(' ') => (1, text[p + 1..].chars().next()),
            other => (0, other),
        };
        match after_space.and_then(|c| BIG_SCALES.iter().find(|(s, _)| *s == c)) {
            Some((c, f)) if *f < last_big => {
                total += section * f;
                section = 0.0;
                last_big = *f;
                scaled = true;
                p += space + c.len_utf8();
                // Continue with "5만3000" (digits right after the scale), or "1조 2천억" (a
                // space, then digits that lead to a smaller scale).
                let rest = &text[p..];
                let glued = rest.starts_with(|c: char| c.is_ascii_digit());
                let skip = usize::from(rest.starts_with(' '));
                if glued
                    || rest[skip..].starts_with(|c: char| c.is_ascii_digit())
                        && continues_with_smaller_scale(&rest[skip..], *f)
                {
                    pos = p + skip;
                    continue;
                }
                return Some(Parsed {
                    value: total,
                    end: p,
                    digits_end: digits_end.unwrap_or(p),
                    scaled,
                });
            }
            _ => {
                return Some(Parsed {
                    value: total + section,
                    end: p,
                    digits_end: digits_end.unwrap_or(p),
                    scaled,
                });
            }
        }
    }
}

/// Whether `rest` (at a digit) is a number followed by a big scale smaller than `than`, or
/// plain digits below it (`5만 3000명`).
fn continues_with_smaller_scale(rest: &str, than: f64) -> bool {
    let Some(m) = NUMBER.find(rest).filter(|m| m.start() == 0) else {
        return false;
    };
    let after: String = rest[m.end()..].chars().take(3).collect();
    let mut chars = after.chars().peekable();
    let small = chars
        .peek()
        .is_some_and(|c| SMALL_SCALES.iter().any(|(s, _)| s == c));
    if small {
        chars.next();
    }
    match chars.next() {
        Some(c) if BIG_SCALES.iter().any(|(s, _)| *s == c) => {
            BIG_SCALES.iter().any(|(s, f)| *s == c && *f < than)
        }
        // Korean spacing puts a space between myriad groups ("37만 6200원"): plain digits
        // below the last scale continue the number, unless they are a date or a time ("5천만
        // 2025년") or the last scale is large (a count after 억 is a different number).
        next => {
            let value: f64 = m.as_str().replace(',', "").parse().unwrap_or(f64::MAX);
            let value = if small { value * 1000.0 } else { value };
            let date_or_time = next.is_some_and(|c| {
                matches!(
                    c,
                    '년' | '월'
                        | '일'
                        | '시'
                        | '분'
                        | '초'
                        | '세'
                        | '위'
                        | '차'
                        | '번'
                        | '회'
                        | '호'
                        | '층'
                        | '기'
                        | '%'
                        | '.'
                )
            });
            than <= 1e4 && value < than && !date_or_time
        }
    }
}

/// Significant digits of a written number: `1,170` → 3, `1.2` → 2, `120` → 2, `0.05` → 1.
fn significant_digits(written: &str) -> u32 {
    let digits: String = written
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let (int, frac) = digits.split_once('.').unwrap_or((&digits, ""));
    let int = int.trim_start_matches('0');
    if int.is_empty() {
        return frac.trim_start_matches('0').len().max(1) as u32;
    }
    if frac.is_empty() {
        return int.trim_end_matches('0').len().max(1) as u32;
    }
    (int.len() + frac.len()) as u32
}

/// Rounds `v` to `digits` significant digits.
fn round_sig(v: f64, digits: u32) -> f64 {
    if v == 0.0 {
        return 0.0;
    }
    let magnitude = v.abs().log10().floor() as i32;
    let factor = 10f64.powi(digits as i32 - 1 - magnitude);
    (v * factor).round() / factor
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// The figures of the article, ready to check brief figures against.
#[derive(Debug, Default)]
pub struct SourceFigures {
    figures: Vec<Figure>,
}

impl SourceFigures {
    /// Reads every figure of the cleaned article.
    pub fn new(text: &str) -> SourceFigures {
        SourceFigures {
            figures: extract(text),
        }
    }

    /// How many figures the article has.
    pub fn count(&self) -> usize {
        self.figures.len()
    }

    /// Whether the article supports `f`.
    pub fn supports(&self, f: &Figure) -> bool {
        self.figures.iter().filter(|s| s.kind == f.kind).any(|s| {
            close(s.value, f.value)
                || f.rounded_to
                    .is_some_and(|digits| close(round_sig(s.value, digits), f.value))
        })
    }

    /// The figures of `text` that the article does not support.
    pub fn unsupported(&self, text: &str) -> Vec<Figure> {
        extract(text)
            .into_iter()
            .filter(|f| !self.supports(f))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(f64, Kind)> {
        extract(text)
            .into_iter()
            .map(|f| (f.value, f.kind))
            .collect()
    }

    fn one(text: &str) -> f64 {
        let v = values(text);
        assert_eq!(v.len(), 1, "{text}: {v:?}");
        v[0].0
    }

    #[test]
    fn korean_myriad_scales() {
        assert_eq!(one("26만 장"), 260_000.0);
        assert_eq!(one("1경 7천조 원"), 1.7e16);
        assert_eq!(one("2,340억 원"), 2.34e11);
        assert_eq!(one("1조 2천억 원"), 1.2e12);
        assert_eq!(one("3천만 장"), 3e7);
        assert_eq!(one("1조 5,600억 개"), 1.56e12);
        assert_eq!(one("90만 장"), 900_000.0);
        assert_eq!(one("5만3000명"), 53_000.0);
        // Korean spacing separates myriad groups: one number.
        assert_eq!(one("5만 3000명"), 53_000.0);
        assert_eq!(one("37만 6,200원"), 376_200.0);
        // But a year after a count is another number.
        assert_eq!(values("인구 5천만 2025년 기준").len(), 2);
        assert_eq!(one("2,340 억 원"), 2.34e11);
        assert_eq!(one("130억 달러"), 1.3e10);
        assert_eq!(one("1억2,000만 명"), 1.2e8);
        assert_eq!(extract("수출은 142억 달러로 늘었다")[0].text, "142억 달러");
        assert_eq!(extract("300메가와트(MW) 규모")[0].text, "300메가와트");
    }

    #[test]
    fn korean_words_that_look_like_scales_do_not_scale() {
        // 만에 ("after"), 조사 ("survey") follow a space or another word, not digits.
        assert_eq!(values("10개월 만에"), vec![(10.0, Kind::Quantity)]);
        assert_eq!(values("3년 조사"), vec![(3.0, Kind::Quantity)]);
    }

    #[test]
    fn english_scales_and_separators() {
        assert_eq!(one("17 quadrillion"), 1.7e16);
        assert_eq!(one("260,000"), 260_000.0);
        assert_eq!(one("KRW 234 billion"), 2.34e11);
        assert_eq!(one("$1.2 trillion"), 1.2e12);
        assert_eq!(one("1.5bn"), 1.5e9);
        assert_eq!(one("$2m"), 2e6);
        assert_eq!(one("300m"), 300.0);
        assert_eq!(one("3.5 million people"), 3.5e6);
        // A lone "m" after a space is not "million".
        assert_eq!(one("5 m long"), 5.0);
    }

    #[test]
    fn percentages_months_and_units() {
        assert_eq!(values("45%"), vec![(45.0, Kind::Percent)]);
        assert_eq!(values("12.3 percent"), vec![(12.3, Kind::Percent)]);
        assert_eq!(values("0.5%p"), vec![(0.5, Kind::Percent)]);
        assert_eq!(values("3월"), vec![(3.0, Kind::Month)]);
        // The first month of a range or list is a month too, not the count 3.
        for range in ["3~4월", "3-4월", "3, 4월", "3·4월", "3∼5월", "1~3월"] {
            assert!(
                values(range).iter().all(|(_, k)| *k == Kind::Month),
                "{range}: {:?}",
                values(range)
            );
        }
        assert_eq!(values("3명, 4월")[0], (3.0, Kind::Quantity));
        assert_eq!(values("13~14월")[0].1, Kind::Quantity);
        // So a brief's 3~4월 is checked as months: the article's 3월과 4월 supports it, and
        // an article saying 3~4월 supports March and April.
        let source = SourceFigures::new("수출은 3월과 4월에 걸쳐 늘었다.");
        assert!(source.unsupported("수출은 3~4월에 늘었다.").is_empty());
        let source = SourceFigures::new("수출은 3~4월에 늘었다.");
        assert!(
            source
                .unsupported("Exports rose in March and April.")
                .is_empty()
        );
        assert_eq!(values("in March"), vec![(3.0, Kind::Month)]);
        assert_eq!(
            values("Sept. 22"),
            vec![(22.0, Kind::Quantity), (9.0, Kind::Month)]
        );
        assert_eq!(one("4.4기가와트"), 4.4e9);
        assert_eq!(one("4.4 GW"), 4.4e9);
        assert_eq!(one("4.4 gigawatts"), 4.4e9);
        assert_eq!(one("130TWh"), 1.3e14);
        assert_eq!(
            values("2024.08.18"),
            vec![
                (2024.0, Kind::Quantity),
                (8.0, Kind::Month),
                (18.0, Kind::Quantity)
            ]
        );
    }

    #[test]
    fn may_and_march_as_words_are_not_months() {
        assert!(values("Prices may rise").is_empty());
        assert_eq!(
            values("on May 5"),
            vec![(5.0, Kind::Quantity), (5.0, Kind::Month)]
        );
    }

    #[test]
    fn support_is_exact_unless_the_brief_rounds() {
        let src = SourceFigures::new(
            "한국은 GPU 26만 장을 확보했고, 블랙록은 1경 7천조 원을 운용한다. 시장은 1,170억 달러로 45% 커졌다. 3월에 도입한다. 4.4기가와트 규모다.",
        );
        for ok in [
            "260,000 GPUs",
            "17 quadrillion won",
            "$117 billion",
            "about $120 billion",
            "45%",
            "in March",
            "4.4 GW",
            "26만 장",
            "1.7경 원",
        ] {
            assert!(src.unsupported(ok).is_empty(), "{ok} should be supported");
        }
        for bad in [
            "270,000 GPUs",
            "46%",
            "in April",
            "$118 billion",
            "45 people",
            "3천억 원",
        ] {
            assert!(!src.unsupported(bad).is_empty(), "{bad} should be flagged");
        }
        // Rounding is allowed only when the brief signals it.
        let src = SourceFigures::new("참석자는 1,480명이었다.");
        assert!(!src.unsupported("1,500 attendees").is_empty());
        assert!(src.unsupported("about 1,500 attendees").is_empty());
        assert!(src.unsupported("약 1,500명").is_empty());
    }

    /// `n` written in Korean myriad style, groups of four digits under 경, 조, 억, 만, each
    /// group either as digits with a thousands comma or with 천 ("7천조"), separated by spaces
    /// or not.
    fn korean(n: u64, rng: &mut fastrand::Rng) -> String {
        let scales = [
            ("경", 10u64.pow(16)),
            ("조", 10u64.pow(12)),
            ("억", 10u64.pow(8)),
            ("만", 10u64.pow(4)),
            ("", 1),
        ];
        let mut parts = Vec::new();
        let mut rest = n;
        for (name, unit) in scales {
            let group = rest / unit;
            rest %= unit;
            if group == 0 {
                continue;
            }
            let digits = if group.is_multiple_of(1000) && group < 10_000 && rng.bool() {
                format!("{}천", group / 1000)
            } else if group >= 1000 && rng.bool() {
                format!("{},{:03}", group / 1000, group % 1000)
            } else {
                group.to_string()
            };
            parts.push(format!("{digits}{name}"));
        }
        parts.join(if rng.bool() { " " } else { "" })
    }

    #[test]
    fn korean_forms_of_random_amounts_read_back_exactly() {
        let mut rng = fastrand::Rng::with_seed(20261124);
        for _ in 0..2000 {
            // Amounts with a few significant groups, as news writes them.
            let n = rng.u64(1..10_000) * 10u64.pow(rng.u32(0..=13));
            let written = format!("{} 원", korean(n, &mut rng));
            let f = extract(&written);
            assert_eq!(f.len(), 1, "{written}: {f:?}");
            assert!(
                close(f[0].value, n as f64),
                "{written} read as {} instead of {n}",
                f[0].value
            );
        }
    }

    #[test]
    fn english_forms_of_random_amounts_read_back() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..1000 {
            let (word, scale) = [
                ("thousand", 1e3),
                ("million", 1e6),
                ("billion", 1e9),
                ("trillion", 1e12),
            ][rng.usize(..4)];
            let x = rng.u32(1..10_000) as f64 / 10f64.powi(rng.i32(0..=2));
            let written = format!("${x} {word}");
            let f = extract(&written);
            assert_eq!(f.len(), 1, "{written}");
            assert!(
                close(f[0].value, x * scale),
                "{written} read as {}",
                f[0].value
            );
            // And the Korean article supports it when both say the same amount.
            let n = (x * scale).round() as u64;
            if (x * scale - n as f64).abs() < 1e-6 && n >= 10_000 {
                let src = SourceFigures::new(&format!("{}원", korean(n, &mut rng)));
                assert!(
                    src.unsupported(&written).is_empty(),
                    "{written} vs {}원",
                    korean(n, &mut rng)
                );
            }
        }
    }

    #[test]
    fn figures_inside_longer_text_and_ranges() {
        let v = values(
            "국내 기업 400곳이 넘는다. 수출이 연간 15~20% 늘 것으로 본다. 300만~3천만 장 분량이다.",
        );
        assert_eq!(
            v,
            vec![
                (400.0, Kind::Quantity),
                (15.0, Kind::Quantity),
                (20.0, Kind::Percent),
                (3e6, Kind::Quantity),
                (3e7, Kind::Quantity)
            ]
        );
        // A figure glued to a word (a product name) is still a figure: H200 supports only 200.
        assert_eq!(values("H200을 도입한다"), vec![(200.0, Kind::Quantity)]);
    }

    #[test]
    fn significant_digits_as_written() {
        assert_eq!(significant_digits("1,170"), 3);
        assert_eq!(significant_digits("1.2"), 2);
        assert_eq!(significant_digits("120"), 2);
        assert_eq!(significant_digits("0.05"), 1);
        assert_eq!(significant_digits("1.50"), 3);
        assert_eq!(round_sig(1.17e11, 2), 1.2e11);
    }
}
