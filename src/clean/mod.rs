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

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

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
            Verdict::Keep => {
                zone = false;
                body_started |= reads_as_prose(&line);
                let trimmed = trim_inline(&line);
                if !trimmed.is_empty() {
                    kept.push(trimmed);
                }
            }
            Verdict::KeepInZone => {
                let trimmed = trim_inline(&line);
                if !trimmed.is_empty() {
                    kept.push(trimmed);
                }
            }
            Verdict::Remove { reason, opens_zone } => {
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

enum Verdict {
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

fn remove(reason: Reason) -> Verdict {
    Verdict::Remove {
        reason,
        opens_zone: false,
    }
}

fn classify(line: &str, seen: &HashSet<String>, zone: bool) -> Verdict {
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
        return Verdict::Remove {
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
        return Verdict::Keep;
    }

    let bare = strip_bullet(line);
    if LIST_HEADING.is_match(bare) || PORTAL_BOX.is_match(line) && chars <= 200 {
        return Verdict::Remove {
            reason: Reason::RelatedList,
            opens_zone: true,
        };
    }
    if BLOG_HEADING.is_match(bare) {
        return Verdict::Remove {
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
            return Verdict::Remove {
                reason: Reason::Contact,
                opens_zone: heading,
            };
        }
        if OUTLET_SUFFIX.is_match(bare) {
            return Verdict::Remove {
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
        return Verdict::KeepInZone;
    }
    Verdict::Keep
}

/// A Markdown table row: `| a | b |`.
fn is_table_row(line: &str) -> bool {
    line.starts_with('|') && line.ends_with('|') && line.matches('|').count() >= 3
}

/// Section names of news sites, for menus written without separators.
const SECTION_WORDS: &[&str] = &[
    "홈",
    "정치",
    "경제",
    "사회",
    "국제",
    "세계",
    "문화",
    "생활",
    "스포츠",
    "연예",
    "오피니언",
    "사설",
    "칼럼",
    "IT",
    "IT·과학",
    "과학",
    "산업",
    "증권",
    "금융",
    "부동산",
    "전국",
    "지역",
    "날씨",
    "랭킹",
    "속보",
    "포토",
    "영상",
    "뉴스",
    "메일",
    "카페",
    "블로그",
    "쇼핑",
    "지도",
    "프롤로그",
    "서재",
    "안부",
    "전체",
    "전체보기",
    "최신",
    "인기",
    "많이본",
    "연재",
    "기획",
    "피플",
    "라이프",
    "건강",
    "여행",
    "교육",
    "북한",
    "사건사고",
];

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

const INTERFACE_WORDS: &[&str] = &[
    "가장작게",
    "작게",
    "기본",
    "크게",
    "가장크게",
    "글자크기",
    "글씨크기",
    "글자",
    "크기",
    "본문",
    "글자크기설정",
    "인쇄",
    "인쇄하기",
    "프린트",
    "공유",
    "공유하기",
    "기사공유",
    "스크랩",
    "북마크",
    "저장",
    "닫기",
    "열기",
    "이전",
    "다음",
    "이전기사",
    "다음기사",
    "목록",
    "더보기",
    "메뉴",
    "전체메뉴",
    "검색",
    "로그인",
    "로그아웃",
    "회원가입",
    "구독",
    "구독하기",
    "알림",
    "URL",
    "URL복사",
    "복사",
    "링크",
    "링크복사",
    "주소복사",
    "카카오톡",
    "카카오스토리",
    "페이스북",
    "트위터",
    "X",
    "밴드",
    "네이버",
    "텔레그램",
    "이메일",
    "메일",
    "댓글",
    "좋아요",
    "싫어요",
    "추천",
    "비추천",
    "상단으로",
    "이동",
    "맨위로",
    "위로",
    "TOP",
    "홈",
    "HOME",
    "바로가기",
    "본문바로가기",
    "SNS",
    "기사보내기",
    "보내기",
    "퍼가기",
    "번역",
    "듣기",
    "음성",
    "읽기",
    "모드",
    "확대",
    "축소",
    "A",
    "A+",
    "A-",
    "가",
    "가+",
    "가-",
    "+",
    "-",
    "Share",
    "Print",
    "Close",
    "Menu",
    "Search",
    "구독중",
    "팔로우",
    "광고",
    "AD",
    "Advertisement",
    "PC버전",
    "앱",
    "앱으로",
    "보기",
    "전체",
    "기사",
    "입력",
    "기사원문",
    "원문",
    "원문보기",
    "등록",
    "취소",
    "답글",
    "이웃추가",
    "블로그",
    "방명록",
    "태그",
    "블로그홈",
    "뉴스홈",
    "번역보기",
    "설정",
    "글씨",
    "키우기",
    "줄이기",
    "조절",
    "기능",
    "기타",
    "다른기사",
    "열고",
    "기사스크랩",
    "공유합니다",
    "보러가기",
    "공감",
    "공감한",
    "사람",
    "블로거",
    "단",
    "이",
    "글에",
    "기사를",
    "카카오",
];

macro_rules! regex {
    ($name:ident, $re:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| Regex::new($re).expect("valid regex"));
    };
}

regex!(
    COPYRIGHT,
    r"(?i)무단\s*(전재|복제|배포|전제)|재배포\s*(및\s*)?금지|copyright|ⓒ|©|\(c\)\s*\S|all\s+rights\s+reserved|저작권자|학습\s*(이용|활용)\s*금지"
);
regex!(
    TIP_OFF,
    r"^[※▷☎]\s*.*제보|(제보로\s*함께|제보\s*(게시판|창구|방법)|기사\s*제보|제보하기|제보는\s|제보\s*(카카오톡|메일|이메일|전화)|여러분의\s*제보|보도자료\s*및\s*제보)"
);
regex!(
    LIST_HEADING,
    r"^(관련\s*(기사|뉴스|영상|콘텐츠)|주요\s*(뉴스|기사)|많이\s*(본|읽은)\s*(뉴스|기사)|인기\s*(뉴스|기사)|실시간\s*(랭킹|인기|주요)\s*(뉴스|기사)?|이\s*시각\s*(추천|주요|인기)\s*뉴스.*|추천\s*(뉴스|기사)|오늘의\s*(기자|상승종목|하락종목|주요뉴스|뉴스)|포토\s*뉴스|핫\s*이슈|최신\s*(뉴스|기사)|헤드라인\s*뉴스|함께\s*(보면\s*좋은|볼만한|읽으면\s*좋은)\s*(뉴스|기사).*|이\s*기사와\s*함께.*|에디터\s*(추천|픽)|랭킹\s*뉴스|많이\s*본|\S*\s*이\s*시각\s*추천뉴스|실시간\s*암호화폐\s*시세|증시\s*현황|오늘의\s*증시|.*기자의\s*다른\s*기사|기자\s*구독.*|Related\s+(articles|news)|Most\s+(read|viewed))\s*(\(\d+\))?$"
);
regex!(
    PORTAL_BOX,
    r"언론사에서\s*(선정|.*섹션으로\s*분류)|언론사\s*페이지|아웃링크|이\s*기사를\s*추천합니다|함께\s*볼만한|추천\s*콘텐츠"
);
regex!(
    BLOG_META,
    r"^(카테고리|분류|Category|작성자|글쓴이)\s*[:：]|이웃\s*추가|서로\s*이웃"
);
regex!(
    BLOG_HEADING,
    r"^'?.{0,30}'?\s*카테고리의\s*다른\s*글$|^.{0,30}카테고리\s*글$|^(태그|Tags?|카테고리|Category|이전\s*글|다음\s*글|구독하기)\s*$"
);
regex!(
    INTERFACE_LINE,
    r"^(본문\s*기타\s*기능|(글씨|글자)\s*크기\s*(조절|설정|변경)(하기)?|번역\s*(보기|설정)|다른\s*기사\s*보기|본문\s*요약봇|텍스트\s*음성\s*변환.*|글자\s*크기\s*(변경|설정|조절)하기|댓글\s*[\d,]*개?|공감\s*[\d,]*|댓글\s*정렬.*|기사\s*제공\s*\S{1,12}|본문\s*바로가기|상단으로\s*이동|맨\s*위로|기사\s*목록|글자\s*크기\s*(설정|조절|변경)?|가장\s*작게\s*작게\s*기본\s*크게\s*가장\s*크게|기사\s*(공유|저장|스크랩|인쇄)하기|URL\s*복사|링크\s*복사|[가-힣A-Za-z]+\s*님\s*환영합니다.*|\d+\s*/\s*\d+)$"
);
regex!(
    REACTION,
    r"^((좋아요|싫어요|화나요|슬퍼요|놀랐어요|웃겨요|기뻐요|훈훈해요|감동이에요|재밌어요|흥미로워요|최고에요|후속\s*기사\s*원해요|추가\s*취재\s*원해요|응원해요|추천해요|공감|비공감|추천|비추천)\s*[\d,]*\s*[|·]?\s*)+$"
);
regex!(
    TIMESTAMP,
    r"^((기사\s*)?(입력|수정|등록|승인|게재|업데이트|발행|송고|최종\s*수정|기사\s*입력|작성)\s*(일|일시|시간)?\s*[:：]?\s*\d{2,4}\s*[.\-/년]\s*\d{1,2}\s*[.\-/월]\s*\d{1,2}\s*일?\.?\s*(\(?[월화수목금토일]\)?)?\s*((오전|오후|AM|PM)\s*)?\(?(\d{1,2}\s*:\s*\d{2}(\s*:\s*\d{2})?)?\)?\s*[|·,]?\s*)+$"
);
regex!(
    DATE_ONLY,
    r"^\d{4}\s*[.\-/]\s*\d{1,2}\s*[.\-/]\s*\d{1,2}\.?\s*(\(?[월화수목금토일]\)?)?\s*(\d{1,2}:\d{2}(:\d{2})?)?$"
);
regex!(
    TICKER,
    r"^[+\-−▲▼△▽↑↓]?\s*[+\-−]?\s*[\d,]+(\.\d+)?\s*(%|원|달러|포인트|p)?\s*(\([+\-−]?[\d.,]+%?\))?$|^\d{1,2}\.\d{1,2}\s*장\s*(종료|마감|중)$"
);
regex!(
    INDEX_TICKER,
    r"^(코스피|코스닥|KOSPI|KOSDAQ|나스닥|다우|S&P\s*500|니케이|항셍|상해종합|원/달러|엔/원|환율|금|유가|WTI|비트코인|이더리움|리플)\s*[\d,.]+\s*[▲▼△▽+\-−]?\s*[\d,.]*\s*(\(?[+\-−]?[\d.,]+%\)?)?$"
);
regex!(
    TICKER_LABEL,
    r"^(종목|종목명|현재가(\s*\(원\))?|변동률|등락률|전일대비|거래량|시가총액|\*?\s*24시간\s*변동률\s*기준|\*?\s*\d+분\s*지연\s*시세)$"
);
regex!(
    BLOG_ROW,
    r"^.{1,100}\(\d+\)\s*\|\s*\d{4}\.\d{1,2}\.\d{1,2}\.?\s*\|?$"
);
regex!(TABLE_RULE, r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$");
regex!(
    CAPTION,
    r"^[▲△▶◀]\s*\S.*|^\[(그래픽|사진|영상|표|인포그래픽|이미지)\]|^!\[[^\]]*\]\([^)]*\)$|[(\[<]\s*(사진|자료사진|그래픽|이미지|영상|출처)\s*(제공)?\s*[=:：]|^(사진|자료사진|그래픽|이미지)\s*[=:：]|^<?(사진|자료사진)\s*>?$"
);
regex!(
    SOURCE_TAG,
    r"[\[(][^\])]{1,20}\s*(제공|자료사진|자료화면|화면\s*캡처|캡처)[\])]\s*$"
);
regex!(CAPTION_LEAD, r"^[▲△][^▲△]*$");
regex!(
    CAPTION_END,
    r"(하고\s*있다|보이고\s*있다|모습이다|모습|있다)\.?$"
);
regex!(
    CREDIT_END,
    r"([가-힣A-Za-z]+\s*(제공|자료사진|자료화면)|사진\s*[=:]\s*\S+)\.?$"
);
regex!(
    MASTHEAD,
    r"^[가-힣A-Za-z0-9·\[\] |]{1,16}(일보|신문|뉴스|방송|통신|포털|블로그|와이어|타임스|저널|미디어|TV|닷컴|뉴스데스크|노트|공부방|경제|보도자료)$|^보\s*도\s*자\s*료$"
);
regex!(
    STOCK_TICKER,
    r"^[가-힣A-Za-z0-9&]{2,14}\s+[\d,.]+\s*[▲▼△▽↑↓+\-−]\s*[\d,.]+\s*(\([+\-−]?[\d.,]+%\))?$"
);
regex!(
    WEATHER,
    r"-?\d+(\.\d+)?\s*(℃|°C)|(맑음|흐림|구름\s*많음|미세먼지\s*(좋음|보통|나쁨))"
);
regex!(
    DATED_META,
    r"\d{4}\s*\.\s*\d{1,2}\s*\.\s*\d{1,2}\.?.*\d{1,2}:\d{2}|^(보도\s*(시점|일시|일자)|배포\s*(일시|일자)|엠바고)\s*[:：]?"
);
regex!(
    CATEGORY_COUNT,
    r"^.{1,24}\s*\((\d[\d,]*|\d[\d,]*\s*개의\s*글)\)$|^.{4,60}\(\d{4}\.\s*\d{1,2}\.\s*\d{1,2}\.?\)$"
);
regex!(
    ATTACHMENT,
    r"^붙임\s*[:：]?|\d+\s*부\.?\s*끝\.?$|^(웹사이트|홈페이지|Website)\s*[:：]"
);
regex!(HAND_OFF, r"(기자|특파원)(입니다|가\s*보도합니다)\.?$");
regex!(
    DISCLAIMER,
    r"투자\s*권유(가|를)?\s*아닙|투자\s*판단의\s*책임|공공누리|저작물은.*이용할\s*수"
);
regex!(
    PHOTO_CREDIT,
    r"[(\[]\s*(사진|자료사진|그래픽|이미지)\s*(제공)?\s*[=:：]|(사진|제공)\s*[)\]]?\s*$|(연합뉴스|뉴스1|뉴시스)\s*$"
);
regex!(
    CREDIT,
    r"^[가-힣A-Za-z0-9·&\s]{1,20}\s*(제공|기자|특파원|사진기자|통신원)$|^(연합뉴스|뉴스1|뉴시스|게티이미지(뱅크)?|셔터스톡|AP|AFP|로이터|EPA)(\s*(제공|연합뉴스|=연합뉴스))?$"
);
regex!(EMAIL, r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}");
regex!(
    BYLINE,
    r"^([가-힣]{2,4}\s*(기자|특파원|선임기자|객원기자|인턴기자|논설위원|통신원|PD|앵커)\s*)+$|^(기자\s*프로필|기자\s*정보|기자의\s*다른\s*기사)|^[가-힣]{2,4}\s*(기자|특파원)\s*=\s*$"
);
regex!(
    SIGN_OFF,
    r"^[A-Za-z가-힣0-9]{1,12}\s*(뉴스|방송|TV|라디오)?\s*[가-힣]{2,4}\s*(입니다|였습니다|이었습니다)\.?$"
);
regex!(
    PRODUCTION_CREDIT,
    r"^(영상\s*(취재|편집|디자인|제공)|촬영\s*기자|촬영|그래픽|자료\s*조사|CG|편집|취재\s*지원|연출|구성|진행)\s*[:：]\s*\S"
);
regex!(
    PROMPT,
    r"(?i)^(\[?광고\]?|AD|Advertisement|\[?AD\]?\s.*)$|댓글을\s*(입력|남겨|작성)|로그인\s*(후|하시면|이\s*필요)|구독\s*(신청|하고|하세요|버튼|해\s*주세요)|네이버에서\s*.*구독|뉴스스탠드|알림\s*(신청|받기)|앱\s*(다운로드|설치)|^▶\s*.*(바로가기|보러가기|구독|다운로드)|카카오톡\s*(채널|친구)\s*추가|지금\s*(바로\s*)?(가입|구독)"
);
regex!(
    CONTACT,
    r"^(보도자료\s*)?(문의|담당|담당자|연락처|홍보\s*담당|보도\s*문의|취재\s*문의|배포\s*일시|자료\s*문의)\s*[:：]?(\s|$)|^(Tel|TEL|전화|팩스|FAX|E-?mail|이메일)\s*[:：.]"
);
regex!(
    PRESS_NOTE,
    r"^※\s*.*(첨부\s*(파일|자료)|사진\s*자료|보도\s*자료|문의\s*(는|처))|보도자료는.*(홈페이지|볼\s*수)|배포한\s*보도자료|^(출처|자료)\s*[:：]\s*\S.{0,40}$|자세한\s*(내용|사항).*(원하시면|궁금하시면).*(연락|문의).*바랍니다"
);
regex!(PHONE, r"\b0\d{1,2}[-)\s.]\d{3,4}[-\s.]\d{4}\b");
regex!(
    OUTLET_SUFFIX,
    r"\|\s*[가-힣A-Za-z0-9·]{1,12}(일보|뉴스|신문|경제|방송|미디어|TV|닷컴|타임스|저널|비즈|투데이|포스트|헤럴드)$"
);
regex!(BREADCRUMB, r"^[^>]{1,15}(\s*[>›»]\s*[^>]{1,15}){1,5}$");
regex!(INNER_SENTENCE, r"(다|요|죠)[.?!]\s");
regex!(
    BROADCAST_TAG,
    r"^(\[(앵커|앵커\s*멘트|리포트|기자|기자\s*멘트|인터뷰|녹취|현장음|자막|기자\s*리포트|뉴스\s*리포트|클로징|오프닝|브리핑|이펙트|CG)\]\s*)+"
);
regex!(
    DATELINE,
    r"^\(?[가-힣A-Za-z]{1,10}\s*=\s*[가-힣A-Za-z0-9]{1,12}\)\s*([가-힣]{2,4}\s*(기자|특파원)\s*)*=?\s*|^\[[가-힣A-Za-z0-9]{2,12}\s*=\s*[가-힣]{2,4}\s*(기자|특파원)\]\s*|^[가-힣]{2,4}\s*(기자|특파원)\s*=\s*"
);
regex!(
    TRAILING_CREDIT,
    r"\s*[(\[]\s*(사진|자료사진|그래픽|이미지)\s*(제공)?\s*[=:：][^)\]]{1,30}[)\]]\s*$"
);

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
