//! Clean: remove web clutter from an article's text while keeping every sentence of the article.
//!
//! Scraped Korean news carries the site around the story: menus and breadcrumbs, font-size and
//! share buttons, reaction counters, bylines and timestamps, photo captions (often doubled),
//! related and popular article lists, market tickers, copyright lines, comment and tip-off
//! prompts, blog category lists, press-release contact blocks. The cleaner works line by line:
//!
//! 1. every line is normalised (odd spaces, zero-width characters, runs of blanks);
//! 2. strong patterns mark a line as clutter, each with a [`Reason`] (so `hanbrief inspect` can
//!    show what went and why);
//! 3. a list heading ("관련기사", "많이 본 뉴스", …) or the article's end (a copyright line) opens
//!    a *list zone* in which every line that does not read as prose is clutter, until a line of
//!    prose closes it;
//! 4. inline debris on kept lines is trimmed: broadcast tags (`[앵커]`), datelines
//!    (`(서울=연합뉴스) 홍길동 기자 =`), trailing photo credits.
//!
//! The rules are biased towards keeping: a line that reads as prose (long enough and ending like
//! a sentence) survives every rule except the few that are unambiguous (copyright, exact
//! duplicates, doubled captions). Losing a sentence of the article is worse than keeping a line
//! of clutter.

mod rules;

use std::collections::HashSet;

use serde::Serialize;

use rules::*;

/// Why a line was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The same line appeared earlier.
    Duplicate,
    /// A photo caption or photo credit (including a caption doubled on one line).
    Caption,
    /// A reporter's byline, e-mail or profile line.
    Byline,
    /// A publication or update timestamp.
    Timestamp,
    /// A copyright or "no redistribution" line.
    Copyright,
    /// Buttons, menus and breadcrumbs: font size, share, print, login, "close", lone symbols.
    Interface,
    /// A reaction counter ("좋아요 0").
    Reaction,
    /// A related, popular or recommended article list, or its heading.
    RelatedList,
    /// A stock, index or crypto ticker.
    Ticker,
    /// A comment, tip-off, subscription or advertising prompt.
    Prompt,
    /// A broadcaster's sign-off or production credits.
    SignOff,
    /// A press-release contact block.
    Contact,
    /// A blog's category list, tag cloud or table of other posts.
    BlogList,
}

/// A line the cleaner removed.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    /// 1-based line number in the decoded text.
    pub line: usize,
    pub text: String,
    pub reason: Reason,
}

/// An article's text with the clutter removed.
#[derive(Debug, Clone)]
pub struct CleanArticle {
    /// The headline: the page's title for HTML; otherwise a Markdown `# ` heading, or the first
    /// kept line of headline length before the body (see `pick_title`).
    pub title: Option<String>,
    /// The kept text: one line per source line, paragraphs separated by one blank line.
    pub text: String,
    /// What was removed, in order.
    pub removed: Vec<Removed>,
}

impl CleanArticle {
    /// Characters of the kept text.
    pub fn chars(&self) -> usize {
        self.text.chars().count()
    }

    /// Whether too little is left to brief (an all-clutter page): almost nothing, or a few
    /// words without a single sentence (a headline alone).
    pub fn is_empty(&self) -> bool {
        let chars = self.text.chars().filter(|c| !c.is_whitespace()).count();
        chars < MIN_ARTICLE_CHARS
            || chars < 3 * MIN_ARTICLE_CHARS && !self.text.lines().any(reads_as_prose)
    }
}

/// Fewer non-space characters than this, after cleaning, is not an article.
pub const MIN_ARTICLE_CHARS: usize = 20;

/// Cleans an article's decoded text. `html_title` is used as the title when the text does not
/// start with one.
pub fn clean(text: &str, html_title: Option<&str>) -> CleanArticle {
    let mut kept: Vec<String> = Vec::new();
    let mut removed = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut zone = false;
    // List zones open only once the body has begun: before it, a list heading goes alone (a
    // zone there would swallow the headline under the page's menus).
    let mut body_started = false;

    for (i, raw) in text.lines().enumerate() {
        let line = normalize_line(raw);
        if line.is_empty() {
            if kept.last().is_some_and(|l| !l.is_empty()) {
                kept.push(String::new());
            }
            continue;
        }
        let verdict = classify(&line, &seen, zone);
        seen.insert(line.clone());
        match verdict {
            Decision::Keep => {
                zone = false;
                body_started |= reads_as_prose(&line);
                let trimmed = trim_inline(&line);
                if !trimmed.is_empty() {
                    kept.push(trimmed);
                }
            }
            Decision::KeepInZone => {
                let trimmed = trim_inline(&line);
                if !trimmed.is_empty() {
                    kept.push(trimmed);
                }
            }
            Decision::Remove { reason, opens_zone } => {
                zone |= opens_zone && body_started;
                removed.push(Removed {
                    line: i + 1,
                    text: line,
                    reason,
                });
            }
        }
    }
    while kept.last().is_some_and(String::is_empty) {
        kept.pop();
    }
    let text = kept.join("\n");
    let title = html_title
        .map(str::to_string)
        .filter(|t| !t.trim().is_empty())
        .or_else(|| pick_title(&kept));
    CleanArticle {
        title,
        text,
        removed,
    }
}

/// The headline among the kept lines: a Markdown `# ` heading; else, among the lines before the
/// first line of prose, the first of headline length (mastheads and section names are shorter);
/// else a short first line.
fn pick_title(kept: &[String]) -> Option<String> {
    if let Some(h) = kept.iter().find(|l| l.starts_with("# ")) {
        return Some(h.trim_start_matches('#').trim().to_string());
    }
    let head: Vec<&String> = kept
        .iter()
        .filter(|l| !l.is_empty())
        .take_while(|l| !reads_as_prose(l))
        .take(6)
        .collect();
    let len = |l: &&String| l.chars().count();
    head.iter()
        .find(|l| (15..=150).contains(&len(l)))
        .or_else(|| {
            head.iter()
                .filter(|l| (8..=150).contains(&len(l)))
                .max_by_key(|l| len(l))
        })
        .map(|l| l.trim_start_matches('#').trim().to_string())
        .or_else(|| {
            kept.iter()
                .find(|l| !l.is_empty())
                .filter(|l| l.chars().count() <= 100 && !l.contains(". "))
                .cloned()
        })
}

/// What becomes of one line.
enum Decision {
    /// Article text.
    Keep,
    /// Kept, but without closing a list zone (a title-like line between list items that does
    /// not match any clutter rule is kept only when it reads as prose: see `classify`).
    KeepInZone,
    Remove {
        reason: Reason,
        opens_zone: bool,
    },
}

fn remove(reason: Reason) -> Decision {
    Decision::Remove {
        reason,
        opens_zone: false,
    }
}

fn classify(line: &str, seen: &HashSet<String>, zone: bool) -> Decision {
    // "…밝혔다.(사진=한빛일보)" is a sentence with a photo credit glued on: judge the sentence.
    let prose = reads_as_prose(&TRAILING_CREDIT.replace(line, ""));
    let chars = line.chars().count();

    // Unambiguous even for prose.
    if seen.contains(line) {
        return remove(Reason::Duplicate);
    }
    if is_doubled(line) {
        return remove(Reason::Caption);
    }
    if chars <= 200 && COPYRIGHT.is_match(line) {
        return Decision::Remove {
            reason: Reason::Copyright,
            opens_zone: true,
        };
    }
    if chars <= 200 && (TIP_OFF.is_match(line) || DISCLAIMER.is_match(line)) {
        return remove(Reason::Prompt);
    }
    if SIGN_OFF.is_match(line) && !HAND_OFF.is_match(line) {
        return remove(Reason::SignOff);
    }
    if chars <= 160 && PRESS_NOTE.is_match(line) || chars <= 80 && ATTACHMENT.is_match(line) {
        return remove(Reason::Contact);
    }
    if is_table_row(line) {
        // A Markdown table of the article: kept whole, whatever its cells look like.
        return Decision::Keep;
    }

    let bare = strip_bullet(line);
    if LIST_HEADING.is_match(bare) || PORTAL_BOX.is_match(line) && chars <= 200 {
        return Decision::Remove {
            reason: Reason::RelatedList,
            opens_zone: true,
        };
    }
    if BLOG_HEADING.is_match(bare) {
        return Decision::Remove {
            reason: Reason::BlogList,
            opens_zone: true,
        };
    }
    if is_interface(bare) || is_menu(bare) || !prose && mostly_interface(bare) {
        return remove(Reason::Interface);
    }
    if REACTION.is_match(bare) {
        return remove(Reason::Reaction);
    }
    if TIMESTAMP.is_match(bare)
        || DATE_ONLY.is_match(bare)
        || !prose && chars <= 60 && DATED_META.is_match(bare)
    {
        return remove(Reason::Timestamp);
    }
    if TICKER.is_match(bare)
        || INDEX_TICKER.is_match(bare)
        || TICKER_LABEL.is_match(bare)
        || STOCK_TICKER.is_match(bare)
    {
        return remove(Reason::Ticker);
    }
    if BLOG_ROW.is_match(bare)
        || TABLE_RULE.is_match(bare) && !line.starts_with('|')
        || is_tag_cloud(bare)
        || BLOG_META.is_match(bare) && !prose
        || CATEGORY_COUNT.is_match(bare)
    {
        return remove(Reason::BlogList);
    }
    if !prose {
        if EMAIL.is_match(line) && chars <= 80 || BYLINE.is_match(bare) {
            return remove(Reason::Byline);
        }
        if CAPTION.is_match(line)
            || CREDIT.is_match(bare)
            || SOURCE_TAG.is_match(line)
            || chars <= 80 && CREDIT_END.is_match(line)
        {
            return remove(Reason::Caption);
        }
        if PRODUCTION_CREDIT.is_match(bare) {
            return remove(Reason::SignOff);
        }
        if PROMPT.is_match(bare) || chars <= 60 && WEATHER.is_match(bare) {
            return remove(Reason::Prompt);
        }
        if CONTACT.is_match(bare)
            || PHONE.is_match(bare) && chars <= 80
            || ATTACHMENT.is_match(bare)
        {
            // A bare "문의" heading: the contact lines under it go too.
            let heading = bare.chars().count() <= 12;
            return Decision::Remove {
                reason: Reason::Contact,
                opens_zone: heading,
            };
        }
        if OUTLET_SUFFIX.is_match(bare) {
            return Decision::Remove {
                reason: Reason::RelatedList,
                opens_zone: true,
            };
        }
        if BREADCRUMB.is_match(bare) || MASTHEAD.is_match(bare) || is_section_list(bare) {
            return remove(Reason::Interface);
        }
        if zone {
            return remove(Reason::RelatedList);
        }
    } else if CAPTION_LEAD.is_match(line)
        && (PHOTO_CREDIT.is_match(line) || CAPTION_END.is_match(line))
    {
        // "▲ 김 장관이 … 말하고 있다. (사진=한빛일보)": reads as prose, but it is a caption.
        return remove(Reason::Caption);
    }
    if zone && !prose {
        return Decision::KeepInZone;
    }
    Decision::Keep
}

/// A Markdown table row: `| a | b |`.
fn is_table_row(line: &str) -> bool {
    line.starts_with('|') && line.ends_with('|') && line.matches('|').count() >= 3
}

/// A line made only of section names ("정치 경제 사회 국제", or "경제" alone before the body).
fn is_section_list(bare: &str) -> bool {
    let tokens: Vec<&str> = bare.split_whitespace().collect();
    !tokens.is_empty()
        && tokens.iter().all(|t| {
            SECTION_WORDS.contains(t) || t.chars().all(|c| c.is_ascii_digit()) && t.len() <= 2
        })
        && tokens.iter().any(|t| SECTION_WORDS.contains(t))
}

/// Most words of the line are interface words: "SNS 기사보내기 페이스북(으)로 기사보내기 …".
fn mostly_interface(bare: &str) -> bool {
    let tokens: Vec<&str> = bare
        .split(|c: char| c.is_whitespace() || matches!(c, '|' | '·' | '/'))
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.len() < 2 {
        return false;
    }
    let ui = tokens
        .iter()
        .filter(|t| {
            let stem = t.trim_end_matches("(으)로").trim_end_matches("하기");
            INTERFACE_WORDS.contains(t)
                || INTERFACE_WORDS.contains(&stem)
                || stem.chars().all(|c| c.is_ascii_digit())
        })
        .count();
    ui * 10 >= tokens.len() * 6
}

/// Whether a line reads as a sentence of prose: long enough and ending like a sentence.
pub fn reads_as_prose(line: &str) -> bool {
    let chars = line.chars().count();
    if chars < 12 {
        return false;
    }
    let end = line.trim_end_matches(|c: char| {
        matches!(
            c,
            '"' | '\'' | '”' | '’' | ')' | '」' | '』' | '>' | ']' | ' '
        )
    });
    // Headlines end in a bare "…다" ("요금 150원 오른다"); sentences of the body end in "다."
    // Without the period, only a long line counts as prose.
    let sentence_end = end.ends_with(['.', '?', '!', '…', '。'])
        || chars >= 80 && (end.ends_with('다') || end.ends_with('요') || end.ends_with('죠'));
    sentence_end || (chars >= 80 && INNER_SENTENCE.find_iter(line).count() >= 2)
}

/// Normalises one line: odd spaces and invisible characters, repeated blanks, outer space.
fn normalize_line(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut last_space = true;
    for c in raw.chars() {
        let c = match c {
            '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{FEFF}' | '\u{2060}' | '\u{00AD}' => continue,
            '\t' | '\u{00A0}' | '\u{2002}'..='\u{200A}' | '\u{3000}' | '\u{202F}' => ' ',
            c if c.is_control() => continue,
            c => c,
        };
        if c == ' ' {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
    out.trim_end().to_string()
}

/// A line that repeats itself: `XX` or `X X`, the way scrapers double photo captions.
fn is_doubled(line: &str) -> bool {
    let chars: Vec<char> = line.chars().collect();
    let n = chars.len();
    if n < 8 {
        return false;
    }
    let halves_equal =
        |a: &[char], b: &[char]| a == b && a.iter().filter(|c| c.is_alphanumeric()).count() >= 4;
    if n.is_multiple_of(2) && halves_equal(&chars[..n / 2], &chars[n / 2..]) {
        return true;
    }
    n % 2 == 1 && chars[n / 2] == ' ' && halves_equal(&chars[..n / 2], &chars[n / 2 + 1..])
}

/// Removes a leading list bullet (and Markdown emphasis), for matching the rest.
fn strip_bullet(line: &str) -> &str {
    line.trim_end_matches(['*', '_'])
        .trim_start_matches(|c: char| {
            matches!(
                c,
                '•' | '·'
                    | '-'
                    | '*'
                    | '▶'
                    | '▷'
                    | '►'
                    | '○'
                    | '●'
                    | '◆'
                    | '◇'
                    | '■'
                    | '□'
                    | '☞'
                    | '→'
                    | '–'
                    | '—'
                    | ' '
            )
        })
}

/// Interface vocabulary: lines made only of these words or of lone symbols and counters.
fn is_interface(bare: &str) -> bool {
    if bare.is_empty() {
        return true; // a line of bullets and symbols only
    }
    if INTERFACE_LINE.is_match(bare) {
        return true;
    }
    bare.split([' ', '|', '/', '·'])
        .filter(|t| !t.is_empty())
        .all(|t| {
            INTERFACE_WORDS.contains(&t)
                || t.chars().all(|c| !c.is_alphanumeric())
                || t.chars().all(|c| c.is_ascii_digit()) && t.len() <= 3
        })
}

/// A navigation menu: three or more short items between `|` (or `·`) separators; the first
/// may be the site's name ("[한빛 노트] 블로그 홈 | 방명록 | 태그").
fn is_menu(bare: &str) -> bool {
    let sep = if bare.contains('|') { '|' } else { '·' };
    let items: Vec<&str> = bare
        .split(sep)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let short = |t: &&str| {
        t.chars().count() <= 12 && !reads_as_prose(t) && t.chars().any(char::is_alphabetic)
    };
    // A table row carries figures; a menu at most one ("뉴스9").
    let with_digits = items
        .iter()
        .filter(|t| t.chars().any(|c| c.is_ascii_digit()))
        .count();
    items.len() >= 3
        && bare.matches(sep).count() >= 2
        && with_digits <= 1
        && items[1..].iter().all(short)
        && (short(&items[0]) || items[0].chars().count() <= 40 && !reads_as_prose(items[0]))
}

fn is_tag_cloud(bare: &str) -> bool {
    let tokens: Vec<&str> = bare.split_whitespace().collect();
    tokens.len() >= 2
        && tokens
            .iter()
            .all(|t| t.starts_with('#') && t.chars().count() > 1)
}

/// Trims inline debris from a kept line.
fn trim_inline(line: &str) -> String {
    let line = BROADCAST_TAG.replace(line, "");
    let line = DATELINE.replace(&line, "");
    let line = TRAILING_CREDIT.replace(&line, "");
    line.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(text: &str) -> String {
        clean(text, None).text
    }

    #[test]
    fn keeps_article_lines_and_drops_obvious_clutter() {
        let text = "반도체 수출 역대 최대\n입력 2026-03-04 09:12 수정 2026-03-04 10:30\n가장작게 작게 기본 크게 가장크게\n\n\
                    정부는 올해 반도체 수출이 1,234억 달러로 12.3% 늘었다고 밝혔다.\n\
                    홍길동 기자 gildong@example.co.kr\nⓒ 한빛일보, 무단전재 및 재배포 금지\n";
        let c = clean(text, None);
        assert_eq!(
            c.text,
            "반도체 수출 역대 최대\n\n정부는 올해 반도체 수출이 1,234억 달러로 12.3% 늘었다고 밝혔다."
        );
        assert_eq!(c.title.as_deref(), Some("반도체 수출 역대 최대"));
        let reasons: Vec<Reason> = c.removed.iter().map(|r| r.reason).collect();
        assert_eq!(
            reasons,
            vec![
                Reason::Timestamp,
                Reason::Interface,
                Reason::Byline,
                Reason::Copyright
            ]
        );
    }

    #[test]
    fn doubled_captions_and_duplicates_go() {
        let cap = "김 장관이 22일 세종청사에서 발표하고 있다. 한빛일보";
        let text = format!(
            "제목\n{cap}{cap}\n본문은 이렇게 이어진다고 기자는 설명했다.\n본문은 이렇게 이어진다고 기자는 설명했다.\n"
        );
        let c = clean(&text, None);
        assert_eq!(c.text, "제목\n본문은 이렇게 이어진다고 기자는 설명했다.");
        assert_eq!(c.removed[0].reason, Reason::Caption);
        assert_eq!(c.removed[1].reason, Reason::Duplicate);
    }

    #[test]
    fn related_lists_are_removed_until_prose_returns() {
        let text = "본문 첫 문장은 여기에 있다고 밝혔다.\n관련기사\n- 반도체 수출 역대 최대 기록\n- 지하철 요금 150원 오른다\n\n\
                    두 번째 문단의 문장도 기사의 일부라고 전했다.\n";
        assert_eq!(
            kept(text),
            "본문 첫 문장은 여기에 있다고 밝혔다.\n\n두 번째 문단의 문장도 기사의 일부라고 전했다."
        );
    }

    #[test]
    fn outlet_suffixed_headlines_after_copyright_go() {
        let text = "정부는 예산을 5% 늘렸다고 밝혔다.\nCopyright © 한빛일보. All rights reserved.\n\
                    - 술 마시면 빨리 늙는다 \"이것 챙겨라\" | 한빛일보\n- 집 가보니 깜짝 | 한빛일보\n";
        assert_eq!(kept(text), "정부는 예산을 5% 늘렸다고 밝혔다.");
    }

    #[test]
    fn tickers_and_reactions_go() {
        let text = "코스피가 올랐다고 거래소는 밝혔다.\n좋아요0\n• 화나요 3\n실시간 암호화폐 시세\n• 종목\n• 현재가(원)\n• 비트코인\n• 137,285,000\n• +4.65%\n코스피 2,650.31 ▲12.45 (+0.47%)\n* 24시간 변동률 기준\n";
        assert_eq!(kept(text), "코스피가 올랐다고 거래소는 밝혔다.");
    }

    #[test]
    fn body_bullets_subheadings_and_number_heavy_lines_stay() {
        let text = "■ 전망은\n- 정부는 올해 예산을 5% 늘렸다.\n· 수출액은 1,234억 달러로 전년보다 12.3% 늘었다.\n무슨 일이야\n\
                    기자회견에서 김 장관은 사진 한 장을 들어 보였다.\n자세한 내용은 help@example.com으로 문의하면 된다고 밝혔다.\n";
        assert_eq!(kept(text), text.trim_end());
    }

    #[test]
    fn broadcast_tags_and_datelines_are_trimmed_and_sign_offs_go() {
        let text = "[앵커]\n[앵커] 오늘 서울의 낮 기온이 30도까지 올랐습니다.\n[리포트]\n(서울=한빛뉴스) 홍길동 기자 = 시민들은 더위를 피해 한강으로 나왔습니다.\n\
                    한빛방송 박지훈입니다.\n영상취재: 김철수\n";
        assert_eq!(
            kept(text),
            "오늘 서울의 낮 기온이 30도까지 올랐습니다.\n시민들은 더위를 피해 한강으로 나왔습니다."
        );
    }

    #[test]
    fn captions_with_photo_credits_go() {
        let text = "▲ 김 장관이 22일 세종청사에서 발표하고 있다. (사진=한빛일보)\n정부는 오늘 새 정책을 발표했다고 밝혔다.(사진=한빛일보)\n연합뉴스\n";
        assert_eq!(kept(text), "정부는 오늘 새 정책을 발표했다고 밝혔다.");
    }

    #[test]
    fn blog_lists_and_contacts_go() {
        let text = "풍력 발전 설비가 4.4기가와트로 늘어난다고 밝혔다.\n문의: 홍보팀 02-1234-5678\n'경제' 카테고리의 다른 글\n\
                    반도체 이야기 (0) | 2026.03.02 |\n---|---|\n#풍력 #에너지\n";
        assert_eq!(
            kept(text),
            "풍력 발전 설비가 4.4기가와트로 늘어난다고 밝혔다."
        );
    }

    #[test]
    fn tip_off_prompts_go_even_when_they_read_as_prose() {
        let text = "본문은 여기에 있다고 말했다.\n※한빛뉴스는 여러분의 제보로 함께 세상을 바꿉니다. 각종 사건사고를 알려주세요.\n";
        assert_eq!(kept(text), "본문은 여기에 있다고 말했다.");
    }

    #[test]
    fn menus_go_even_behind_a_site_name() {
        let text = "[한빛 노트] 블로그 홈 | 방명록 | 태그\n뉴스홈 | 속보 | 정치 | 경제\n\
                    정부는 예산을 5% 늘렸다고 밝혔다.\n| 수출 | 142억 달러 | 18.4% 증가 |\n";
        assert_eq!(
            kept(text),
            "정부는 예산을 5% 늘렸다고 밝혔다.\n| 수출 | 142억 달러 | 18.4% 증가 |"
        );
    }

    #[test]
    fn all_clutter_is_empty() {
        let c = clean("좋아요 0\n관련기사\n- 어떤 제목\nⓒ 한빛일보\n", None);
        assert!(c.is_empty());
        assert!(
            !clean(
                "정부는 올해 반도체 수출이 1,234억 달러로 12.3% 늘었다고 밝혔다.",
                None
            )
            .is_empty()
        );
    }

    #[test]
    fn prose_detection() {
        assert!(reads_as_prose("정부는 올해 예산을 5% 늘렸다."));
        assert!(reads_as_prose(
            "\"우리는 실력이 없는 게 아니다\"라고 말했다.”"
        ));
        assert!(!reads_as_prose("지하철 요금 150원 오른다"));
        assert!(!reads_as_prose("반도체 수출 역대 최대"));
        assert!(!reads_as_prose("좋아요 0"));
    }

    #[test]
    fn normalisation_removes_invisible_characters() {
        assert_eq!(
            normalize_line("\u{FEFF}가\u{00A0}\u{00A0}나\u{200B}다\t "),
            "가 나다"
        );
    }
}
