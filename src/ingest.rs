//! Ingest: find the articles under the given paths, read them, and decode them to text.
//!
//! Discovery walks folders recursively (following symlinks but never around a loop, skipping
//! hidden entries and the output folder) and keeps `.txt`, `.md`, `.html` and `.htm` files, in a
//! stable order. Decoding honours a byte-order mark (UTF-8, UTF-16), then accepts valid UTF-8,
//! then sniffs the legacy encoding with chardetng (hinted towards Korean, so that short CP949
//! texts are not taken for Big5) and decodes it with encoding_rs, whose EUC-KR is the CP949
//! superset. HTML is reduced to the article's text with a Readability port, falling back to the
//! page's visible text when Readability finds no article. A file that is binary, empty or
//! undecodable is skipped with a reason; it is never sent to the model.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

/// File extensions hanbrief reads when walking a folder.
pub const EXTENSIONS: &[&str] = &["txt", "md", "markdown", "html", "htm"];

/// Document formats people keep articles in that hanbrief does not read: said so (a file named
/// on the command line is skipped with the reason; a folder's are counted in a warning),
/// instead of being read as binary or passed over in silence.
pub const DOCUMENT_EXTENSIONS: &[&str] = &[
    "pdf", "doc", "docx", "hwp", "hwpx", "odt", "rtf", "epub", "pages", "xls", "xlsx", "ppt",
    "pptx",
];

/// The lower-case extension of `path` when it is one of [`DOCUMENT_EXTENSIONS`].
pub fn document_extension(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    DOCUMENT_EXTENSIONS.contains(&ext.as_str()).then_some(ext)
}

/// "hanbrief reads .txt, .md, …".
pub fn readable_types() -> String {
    EXTENSIONS
        .iter()
        .map(|e| format!(".{e}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Bytes of an article file above which it is skipped rather than read (a 60 KB article is
/// large; 20 MB is certainly not an article).
pub const MAX_FILE_BYTES: u64 = 20 * 1024 * 1024;

/// One input file and where its outputs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// The path to read.
    pub path: PathBuf,
    /// The path relative to the folder it was found in (its file name for a file given
    /// directly); outputs mirror it.
    pub rel: PathBuf,
}

impl InputFile {
    /// The article's identity across runs: its canonical path (`-` for standard input), the
    /// same however the path was spelled on the command line or which folder it was found
    /// through. The manifest is keyed on it.
    pub fn key(&self) -> String {
        if self.path.as_os_str() == STDIN {
            return STDIN.to_string();
        }
        std::fs::canonicalize(&self.path)
            .or_else(|_| std::path::absolute(&self.path))
            .unwrap_or_else(|_| self.path.clone())
            .to_string_lossy()
            .into_owned()
    }
}

/// An input that was passed over before reading, and why.
#[derive(Debug, Clone)]
pub struct Passed {
    pub path: PathBuf,
    pub reason: String,
    /// Passed over by design (an earlier output folder), not because something is wrong: worth
    /// a note, not a warning.
    pub expected: bool,
}

/// The folder every hanbrief output folder holds (its state store). A folder that has one holds
/// briefs, not articles.
pub const OUTPUT_MARKER: &str = ".hanbrief";

/// Whether `dir` is an output folder of an earlier run (it holds [`OUTPUT_MARKER`]).
pub fn is_output_folder(dir: &Path) -> bool {
    dir.join(OUTPUT_MARKER).is_dir()
}

/// What discovery found.
#[derive(Debug, Default)]
pub struct Discovery {
    pub files: Vec<InputFile>,
    /// Entries that could not be walked (permission errors, symlink loops).
    pub passed: Vec<Passed>,
}

/// Discovery failed for a reason the user must fix (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("input path {} does not exist", .0.display())]
    Missing(PathBuf),
    #[error("no input paths given")]
    NoInputs,
    #[error("cannot read the article from standard input: {0}")]
    Stdin(String),
}

/// The input path that means standard input.
pub const STDIN: &str = "-";

/// Standard input, read once (the article given as `-`).
static STDIN_BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// Reads standard input once, at most one byte past [`MAX_FILE_BYTES`]: an article longer than
/// that is skipped as too large (as a file would be), and what follows is never read, so an
/// endless pipe cannot fill the memory.
fn read_stdin() -> std::io::Result<&'static [u8]> {
    if let Some(b) = STDIN_BYTES.get() {
        return Ok(b);
    }
    let mut buf = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::io::stdin().lock(), MAX_FILE_BYTES + 1),
        &mut buf,
    )?;
    Ok(STDIN_BYTES.get_or_init(|| buf))
}

/// Finds the articles under `paths`. `exclude` lists folders never to enter (the output folder,
/// when it lies inside an input folder). Sub-folders that are output folders of earlier runs
/// (they hold [`OUTPUT_MARKER`]) are passed over too: their Markdown files are briefs, and
/// briefing a brief is never what the user meant. A file named twice (directly and through a
/// folder, or through two spellings of one path) is found once.
pub fn discover(paths: &[PathBuf], exclude: &[PathBuf]) -> Result<Discovery, IngestError> {
    if paths.is_empty() {
        return Err(IngestError::NoInputs);
    }
    let exclude: Vec<PathBuf> = exclude
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let mut out = Discovery::default();
    // Documents of types hanbrief does not read, per folder named and extension: one warning
    // each, not one per file.
    let mut documents: std::collections::BTreeMap<(PathBuf, String), usize> = Default::default();
    for root in paths {
        if root.as_os_str() == STDIN {
            read_stdin().map_err(|e| IngestError::Stdin(e.to_string()))?;
            out.files.push(InputFile {
                path: root.clone(),
                rel: PathBuf::from("stdin"),
            });
            continue;
        }
        let meta = std::fs::metadata(root).map_err(|_| IngestError::Missing(root.clone()))?;
        if meta.is_file() {
            let rel = PathBuf::from(root.file_name().unwrap_or(root.as_os_str()));
            out.files.push(InputFile {
                path: root.clone(),
                rel,
            });
            continue;
        }
        let mut walker = walkdir::WalkDir::new(root)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                let hidden = e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.');
                let excluded = e.file_type().is_dir()
                    && std::fs::canonicalize(e.path()).is_ok_and(|c| exclude.contains(&c));
                !hidden && !excluded
            });
        while let Some(entry) = walker.next() {
            if let Ok(e) = &entry
                && e.depth() > 0
                && e.file_type().is_dir()
                && is_output_folder(e.path())
            {
                out.passed.push(Passed {
                    path: e.path().to_path_buf(),
                    reason: format!(
                        "an output folder of an earlier run (it has {OUTPUT_MARKER}/): its files are briefs, not articles"
                    ),
                    expected: true,
                });
                walker.skip_current_dir();
                continue;
            }
            match entry {
                Ok(e) if e.file_type().is_file() => {
                    if let Some(ext) = document_extension(e.path()) {
                        *documents.entry((root.clone(), ext)).or_default() += 1;
                        continue;
                    }
                    if !has_article_extension(e.path()) || is_folder_documentation(e.path()) {
                        continue;
                    }
                    let rel = e
                        .path()
                        .strip_prefix(root)
                        .unwrap_or(e.path())
                        .to_path_buf();
                    out.files.push(InputFile {
                        path: e.path().to_path_buf(),
                        rel,
                    });
                }
                Ok(_) => {}
                Err(err) => {
                    let path = err
                        .path()
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|| root.clone());
                    let reason = if err.loop_ancestor().is_some() {
                        "symlink loop: not followed".to_string()
                    } else {
                        format!(
                            "cannot walk: {}",
                            err.io_error()
                                .map_or_else(|| err.to_string(), ToString::to_string)
                        )
                    };
                    out.passed.push(Passed {
                        path,
                        reason,
                        expected: false,
                    });
                }
            }
        }
    }
    for ((root, ext), n) in documents {
        out.passed.push(Passed {
            path: root,
            reason: format!(
                "{n} .{ext} file{} of an unsupported type: hanbrief reads {} files; convert {} to text first (e.g. pdftotext for PDFs)",
                if n == 1 { "" } else { "s" },
                readable_types(),
                if n == 1 { "it" } else { "them" }
            ),
            expected: false,
        });
    }
    // The same file found twice is one article (and would otherwise race itself for its name).
    let mut seen = std::collections::HashSet::new();
    out.files.retain(|f| seen.insert(f.key()));
    Ok(out)
}

fn has_article_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Documentation that lives beside articles but is never one: README, LICENSE, CHANGELOG…
/// Passed over when walking a folder (a file named on the command line is still read). Not
/// `index.html`: that is how site mirrors (wget, httrack) save article pages.
fn is_folder_documentation(path: &Path) -> bool {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(
        stem.as_str(),
        "README"
            | "LICENSE"
            | "LICENCE"
            | "CHANGELOG"
            | "CONTRIBUTING"
            | "NOTICE"
            | "AUTHORS"
            | "COPYING"
    )
}

/// How a file's bytes were turned into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
    Html,
}

/// A decoded article, before cleaning.
#[derive(Debug, Clone)]
pub struct Article {
    pub input: InputFile,
    /// The decoded text (for HTML: the article's text extracted from the page).
    pub text: String,
    /// The title found in the page's markup (HTML only).
    pub html_title: Option<String>,
    /// The encoding the bytes were decoded from, e.g. `UTF-8`, `UTF-16LE`, `EUC-KR`.
    pub encoding: &'static str,
    /// Invalid byte sequences replaced with U+FFFD while decoding (stray bytes in scraped
    /// text); 0 for a clean file.
    pub replaced: usize,
    pub format: Format,
    /// blake3 of the raw bytes, hex.
    pub content_hash: String,
    /// Size of the raw file.
    pub bytes: usize,
}

impl Article {
    /// What a reader of the brief should know about the decoding: `None` for a clean file.
    pub fn decode_warning(&self) -> Option<String> {
        (self.replaced > 0).then(|| {
            format!(
                "{} invalid byte sequence{} in the file (read as {}) replaced with {}: the text \
                 around {} may be incomplete",
                self.replaced,
                if self.replaced == 1 { "" } else { "s" },
                self.encoding,
                '\u{FFFD}',
                if self.replaced == 1 { "it" } else { "them" },
            )
        })
    }
}

/// Why a file is not an article we can brief. Not an error of the run: reported as skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    #[error("empty file")]
    Empty,
    #[error("binary file (not text)")]
    Binary,
    #[error("file too large ({0} bytes; the limit is {MAX_FILE_BYTES})")]
    TooLarge(u64),
    #[error(
        "standard input is longer than the limit of {MAX_FILE_BYTES} bytes (the rest was not read)"
    )]
    StdinTooLarge,
    #[error("cannot tell the text's encoding: {0}")]
    Undecodable(String),
    #[error("nothing left after removing web clutter")]
    AllClutter,
    #[error(
        "unsupported type .{0}: hanbrief reads {types} files; convert it to text first (e.g. pdftotext for PDFs)",
        types = readable_types()
    )]
    Unsupported(String),
}

/// Reading a file failed: either an I/O error (the run goes on; the report names the file) or
/// the file is not an article (skipped with a reason).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Skip(#[from] Skip),
}

/// Reads and decodes one input file (`-`: standard input).
pub fn read(input: &InputFile) -> Result<Article, ReadError> {
    let bytes = read_bytes(input)?;
    Ok(from_bytes(input.clone(), &bytes)?)
}

/// The raw bytes of an input (`-`: standard input), refusing files too large to be articles.
pub fn read_bytes(input: &InputFile) -> Result<std::borrow::Cow<'static, [u8]>, ReadError> {
    if input.path.as_os_str() == STDIN {
        let bytes = read_stdin()?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(Skip::StdinTooLarge.into());
        }
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    if let Some(ext) = document_extension(&input.path) {
        return Err(Skip::Unsupported(ext).into());
    }
    let size = std::fs::metadata(&input.path)?.len();
    if size > MAX_FILE_BYTES {
        return Err(Skip::TooLarge(size).into());
    }
    Ok(std::borrow::Cow::Owned(std::fs::read(&input.path)?))
}

/// The content hash of raw bytes, as `Article::content_hash` records it.
pub fn content_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Decodes an article from bytes already in memory (a file, or standard input).
pub fn from_bytes(input: InputFile, bytes: &[u8]) -> Result<Article, Skip> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Skip::Empty);
    }
    let ext_html = input
        .path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"));
    let Decoded {
        text: decoded,
        encoding,
        replaced,
    } = decode(bytes)?;
    let format = if ext_html || looks_like_html(&decoded) {
        Format::Html
    } else if input
        .path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("md") || e.eq_ignore_ascii_case("markdown"))
    {
        Format::Markdown
    } else {
        Format::Text
    };
    let (text, html_title) = match format {
        Format::Html => {
            let page = html_to_text(&decoded);
            (page.text, page.title)
        }
        _ => (normalize_newlines(&decoded), None),
    };
    if text.trim().is_empty() {
        return Err(Skip::Empty);
    }
    Ok(Article {
        input,
        text,
        html_title,
        encoding,
        replaced,
        format,
        content_hash: content_hash(bytes),
        bytes: bytes.len(),
    })
}

/// Bytes decoded to text: which encoding, and how many invalid sequences were replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub text: String,
    /// The encoding the bytes were read as, e.g. `UTF-8`, `UTF-16LE`, `EUC-KR`.
    pub encoding: &'static str,
    /// Byte sequences that were not valid in that encoding and became U+FFFD.
    pub replaced: usize,
}

/// Share of a file's non-ASCII characters that may be invalid UTF-8 sequences while the file is
/// still read as UTF-8 (with U+FFFD for them): one in 20. CP949 read as UTF-8 has about six
/// invalid sequences for every valid one (most Hangul lead bytes are UTF-8 continuation
/// bytes); a UTF-8 article with a few stray bytes has thousands of valid ones per stray byte.
const UTF8_STRAY_SHARE: usize = 20;

/// Share of replaced characters above which a legacy decoding is not believed: one in 50.
/// UTF-8 Korean read as EUC-KR leaves about one in three characters undecodable.
const LEGACY_BAD_SHARE: usize = 50;

/// How far a byte string is from being UTF-8: its invalid sequences (counted the way a
/// decoder replaces them, one U+FFFD each) and its valid non-ASCII characters.
fn utf8_evidence(bytes: &[u8]) -> (usize, usize) {
    let (mut invalid, mut valid_non_ascii) = (0, 0);
    for chunk in bytes.utf8_chunks() {
        valid_non_ascii += chunk.valid().chars().filter(|c| !c.is_ascii()).count();
        // A chunk's invalid part is one maximal invalid prefix: one replacement character.
        if !chunk.invalid().is_empty() {
            invalid += 1;
        }
    }
    (invalid, valid_non_ascii)
}

/// Decodes bytes to text, naming the encoding used.
///
/// Valid UTF-8 is UTF-8. Bytes that are *mostly* UTF-8 (at most one invalid sequence in
/// [`UTF8_STRAY_SHARE`] non-ASCII characters: stray bytes in scraped text) are read as UTF-8
/// with replacement characters rather than guessed as a legacy encoding. Anything else is
/// sniffed (a `<meta charset>`, else chardetng hinted towards Korean) and decoded with
/// encoding_rs; a legacy decoding that leaves more than one character in [`LEGACY_BAD_SHARE`]
/// undecodable is not believed, and the file is skipped with both findings.
pub fn decode(bytes: &[u8]) -> Result<Decoded, Skip> {
    if let Some((enc, bom_len)) = encoding_rs::Encoding::for_bom(bytes) {
        let body = &bytes[bom_len..];
        let replaced = if enc == encoding_rs::UTF_8 {
            utf8_evidence(body).0
        } else {
            0
        };
        let (text, had_errors) = enc.decode_without_bom_handling(body);
        if had_errors && enc != encoding_rs::UTF_8 {
            return Err(Skip::Undecodable(format!(
                "it starts with a {} byte-order mark, but is not valid {}",
                enc.name(),
                enc.name()
            )));
        }
        let name = if enc == encoding_rs::UTF_8 {
            "UTF-8 (BOM)"
        } else {
            enc.name()
        };
        return check_text(text.into_owned(), name, replaced);
    }
    // Text files never contain NUL; binary files nearly always do.
    if bytes.contains(&0) {
        return Err(Skip::Binary);
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return check_text(text.to_string(), "UTF-8", 0);
    }
    let (invalid, valid_non_ascii) = utf8_evidence(bytes);
    if invalid * UTF8_STRAY_SHARE <= valid_non_ascii {
        let text = String::from_utf8_lossy(bytes).into_owned();
        return check_text(text, "UTF-8", invalid);
    }
    let enc = meta_charset(bytes).unwrap_or_else(|| {
        let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
        detector.feed(bytes, true);
        detector.guess(Some(b"kr"), chardetng::Utf8Detection::Allow)
    });
    let (text, _, had_errors) = enc.decode(bytes);
    let replaced = if had_errors {
        // Characters the decoder could not map (a U+FFFD already in the bytes is rare enough
        // in legacy text to count with them).
        text.chars().filter(|c| *c == '\u{FFFD}').count()
    } else {
        0
    };
    if replaced * LEGACY_BAD_SHARE > text.chars().count() {
        return Err(Skip::Undecodable(format!(
            "not UTF-8 ({invalid} invalid byte sequences beside {valid_non_ascii} valid \
             non-ASCII characters) and not {} ({replaced} undecodable sequences); convert it \
             to UTF-8 (e.g. iconv -f CP949 -t UTF-8) if you know its encoding",
            enc.name()
        )));
    }
    check_text(text.into_owned(), enc.name(), replaced)
}

/// Rejects decoded "text" that is mostly control characters (a binary file without NULs).
fn check_text(text: String, encoding: &'static str, replaced: usize) -> Result<Decoded, Skip> {
    let total = text.chars().count();
    let control = text
        .chars()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{0C}'))
        .count();
    if total > 0 && control * 10 > total {
        return Err(Skip::Binary);
    }
    Ok(Decoded {
        text,
        encoding,
        replaced,
    })
}

/// The encoding an HTML page declares in its first bytes, if any.
fn meta_charset(bytes: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    static RE: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
        regex::bytes::Regex::new(r#"(?i)<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_\-]+)"#)
            .expect("valid regex")
    });
    let head = &bytes[..bytes.len().min(4096)];
    let label = RE.captures(head)?.get(1)?.as_bytes();
    encoding_rs::Encoding::for_label(label)
}

fn looks_like_html(text: &str) -> bool {
    let head: String = text
        .trim_start()
        .chars()
        .take(256)
        .collect::<String>()
        .to_ascii_lowercase();
    head.starts_with("<!doctype html") || head.starts_with("<html")
}

fn normalize_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// The text of an HTML page.
pub struct PageText {
    pub title: Option<String>,
    pub text: String,
}

/// Extracts the article from an HTML page: Readability first, the visible text of the page
/// (without scripts, styles, navigation, headers, footers, asides and forms) when Readability
/// finds nothing.
pub fn html_to_text(html: &str) -> PageText {
    let cfg = dom_smoothie::Config {
        text_mode: dom_smoothie::TextMode::Formatted,
        ..Default::default()
    };
    // What is never article text goes before Readability scores the page: on a short page
    // Readability keeps the whole body, menus included.
    let doc = dom_query::Document::from(html);
    doc.select(NEVER_ARTICLE).remove();
    let readable = dom_smoothie::Readability::with_document(doc, None, Some(cfg))
        .ok()
        .and_then(|mut r| r.parse().ok())
        .filter(|a| !a.text_content.trim().is_empty());
    match readable {
        Some(article) => {
            let title = Some(article.title.trim().to_string()).filter(|t| !t.is_empty());
            let mut text = tidy_lines(&article.text_content);
            // Readability moves the headline out of the body: put it back as the first line.
            if let Some(t) = &title
                && !text.starts_with(t.as_str())
            {
                text = format!("{t}\n\n{text}");
            }
            PageText { title, text }
        }
        None => visible_text(html),
    }
}

/// Elements whose text is never the article's.
const NEVER_ARTICLE: &str =
    "script, style, noscript, template, nav, footer, aside, form, iframe, svg, button, select";

fn visible_text(html: &str) -> PageText {
    let doc = dom_query::Document::from(html);
    let title = doc.select("title").text().trim().to_string();
    doc.select(NEVER_ARTICLE).remove();
    doc.select("header").remove();
    let text = tidy_lines(&doc.select("body").formatted_text());
    PageText {
        title: Some(title).filter(|t| !t.is_empty()),
        text,
    }
}

/// Trims every line and collapses runs of blank lines to one.
fn tidy_lines(text: &str) -> String {
    static BLANKS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\n{3,}").expect("valid regex"));
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    BLANKS
        .replace_all(lines.join("\n").trim(), "\n\n")
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str) -> InputFile {
        InputFile {
            path: PathBuf::from(name),
            rel: PathBuf::from(name),
        }
    }

    const KO: &str = "서울시는 올해 지하철 요금을 150원 올린다고 밝혔다. 시민들은 반발했다.";

    fn decoded(bytes: &[u8]) -> (String, &'static str, usize) {
        let d = decode(bytes).unwrap();
        (d.text, d.encoding, d.replaced)
    }

    /// A Korean article of our own, about 1,700 characters: long enough for the shares to mean
    /// something, and CP949-encodable (no character outside KS X 1001 + UHC).
    fn long_korean() -> String {
        let paragraphs = [
            "서울시는 내년 1월부터 지하철 기본요금을 1,400원에서 1,550원으로 올린다고 밝혔다.",
            "시는 적자가 누적된 교통공사의 재정을 개선하려면 요금 조정이 불가피하다고 설명했다.",
            "시민단체는 물가가 오르는 시기에 공공요금까지 인상하는 것은 부담이 크다며 반발했다.",
            "교통공사는 노후 전동차 교체와 역사 안전시설 보강에 인상분을 쓰겠다고 덧붙였다.",
            "한편 버스 요금은 올해 상반기 동결하고 하반기에 다시 논의하기로 했다.",
        ];
        let mut text = String::from("지하철 요금 150원 오른다\n\n");
        for round in 0..5 {
            for p in paragraphs {
                text.push_str(&format!("{p} ({}차 회의)\n", round + 1));
            }
            text.push('\n');
        }
        text
    }

    #[test]
    fn decodes_utf8_with_and_without_bom() {
        assert_eq!(decoded(KO.as_bytes()), (KO.to_string(), "UTF-8", 0));
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(KO.as_bytes());
        assert_eq!(decoded(&bom), (KO.to_string(), "UTF-8 (BOM)", 0));
    }

    #[test]
    fn decodes_utf16_with_bom() {
        let mut bytes = vec![0xFF, 0xFE];
        for unit in KO.encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(decoded(&bytes), (KO.to_string(), "UTF-16LE", 0));
        let mut bytes = vec![0xFE, 0xFF];
        for unit in KO.encode_utf16() {
            bytes.extend_from_slice(&unit.to_be_bytes());
        }
        assert_eq!(decoded(&bytes), (KO.to_string(), "UTF-16BE", 0));
    }

    #[test]
    fn decodes_cp949_including_uhc_only_syllables() {
        let text = "똠방각하 햏자 뷁: 서울 지하철 요금이 오른다.";
        let (bytes, _, errors) = encoding_rs::EUC_KR.encode(text);
        assert!(!errors);
        assert_eq!(decoded(&bytes), (text.to_string(), "EUC-KR", 0));
        // A short sample is read as Korean thanks to the TLD hint, not as Big5.
        let (short, _, _) = encoding_rs::EUC_KR.encode("요금 인상");
        assert_eq!(decode(&short).unwrap().text, "요금 인상");
    }

    #[test]
    fn utf8_with_a_few_stray_bytes_is_read_as_utf8_with_replacements() {
        let text = long_korean();
        let bytes = text.as_bytes();
        // Three kinds of stray bytes scraped pages carry: a Latin-1 no-break space, a UTF-8
        // character cut in half, and a lone continuation byte, each between two characters.
        let cuts: Vec<usize> = [bytes.len() / 4, bytes.len() / 2, bytes.len() * 3 / 4]
            .into_iter()
            .map(|mut i| {
                while !text.is_char_boundary(i) {
                    i += 1;
                }
                i
            })
            .collect();
        let mut dirty = Vec::new();
        dirty.extend_from_slice(&bytes[..cuts[0]]);
        dirty.push(0xA0);
        dirty.extend_from_slice(&bytes[cuts[0]..cuts[1]]);
        dirty.extend_from_slice(&[0xEC, 0x9D]);
        dirty.extend_from_slice(&bytes[cuts[1]..cuts[2]]);
        dirty.push(0x85);
        dirty.extend_from_slice(&bytes[cuts[2]..]);
        let d = decode(&dirty).unwrap();
        assert_eq!((d.encoding, d.replaced), ("UTF-8", 3));
        assert_eq!(d.text.chars().filter(|c| *c == '\u{FFFD}').count(), 3);
        assert_eq!(d.text.replace('\u{FFFD}', ""), text);
        let a = from_bytes(input("scraped.txt"), &dirty).unwrap();
        let warning = a.decode_warning().expect("a warning");
        assert!(warning.starts_with("3 invalid byte sequences"), "{warning}");
        assert!(warning.contains("UTF-8"), "{warning}");
        // A clean file has none.
        assert_eq!(
            from_bytes(input("clean.txt"), text.as_bytes())
                .unwrap()
                .decode_warning(),
            None
        );
    }

    #[test]
    fn cp949_text_is_still_read_as_cp949_not_as_damaged_utf8() {
        // The other direction: real CP949 bytes must not pass for UTF-8 with stray bytes,
        // however long the text, and a few bytes that do form valid UTF-8 do not change that.
        let text = long_korean();
        let (bytes, _, errors) = encoding_rs::EUC_KR.encode(&text);
        assert!(!errors);
        let (invalid, valid) = utf8_evidence(&bytes);
        assert!(invalid > valid, "{invalid} invalid, {valid} valid");
        assert_eq!(decoded(&bytes), (text.clone(), "EUC-KR", 0));
        // CP949 with one undecodable pair (a scraper's cut) is still CP949, with a warning.
        let mut damaged = bytes.into_owned();
        let mid = damaged.len() / 2;
        let mid = mid - mid % 2; // CP949 here is all two-byte pairs or ASCII: stay on a pair
        damaged.insert(mid, 0xFF);
        let d = decode(&damaged).unwrap();
        assert_eq!(d.encoding, "EUC-KR");
        assert!(d.replaced >= 1 && d.replaced <= 2, "{}", d.replaced);
    }

    #[test]
    fn a_file_whose_encoding_cannot_be_known_is_skipped_with_its_reason() {
        // Half UTF-8, half CP949 (two files pasted together): neither reading is believable.
        let text = long_korean();
        let (cp949, _, _) = encoding_rs::EUC_KR.encode(&text);
        let mut mixed = text.as_bytes().to_vec();
        mixed.extend_from_slice(&cp949);
        let Err(Skip::Undecodable(reason)) = decode(&mixed) else {
            panic!("a mixed file must be skipped")
        };
        assert!(reason.contains("not UTF-8"), "{reason}");
        assert!(reason.contains("EUC-KR"), "{reason}");
        let skip = from_bytes(input("mixed.txt"), &mixed).unwrap_err();
        assert!(
            skip.to_string()
                .starts_with("cannot tell the text's encoding"),
            "{skip}"
        );
    }

    #[test]
    fn binary_and_empty_files_are_skipped() {
        assert_eq!(
            from_bytes(input("a.txt"), b"  \n\t ").unwrap_err(),
            Skip::Empty
        );
        assert_eq!(
            from_bytes(input("a.txt"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap_err(),
            Skip::Binary
        );
        let controls: Vec<u8> = (1u8..9).cycle().take(200).collect();
        assert_eq!(
            from_bytes(input("a.txt"), &controls).unwrap_err(),
            Skip::Binary
        );
    }

    #[test]
    fn html_keeps_the_article_and_drops_the_page() {
        let body = "<p>정부는 올해 반도체 수출이 1,234억 달러로 12.3% 늘었다고 밝혔다. 이는 역대 최대 규모다. \
                    산업통상자원부는 하반기에도 증가세가 이어질 것으로 내다봤다.</p>";
        let html = format!(
            "<!doctype html><html><head><title>수출 최대</title><script>var x = 1;</script>\
             <style>p{{color:red}}</style></head><body><nav><a href='/'>홈</a> <a href='/a'>정치</a></nav>\
             <article><h1>반도체 수출 역대 최대</h1>{}{}{}</article>\
             <footer>Copyright 한빛일보</footer></body></html>",
            body, body, body
        );
        let a = from_bytes(input("page.html"), html.as_bytes()).unwrap();
        assert_eq!(a.format, Format::Html);
        assert!(
            a.text.contains("1,234억 달러로 12.3% 늘었다고"),
            "{}",
            a.text
        );
        assert!(!a.text.contains("var x"), "{}", a.text);
        assert!(!a.text.contains("color:red"), "{}", a.text);
        assert!(!a.text.contains("정치"), "{}", a.text);
    }

    #[test]
    fn html_without_an_article_falls_back_to_visible_text() {
        let html = "<html><head><title>t</title><style>x</style></head><body><nav>메뉴</nav><div>짧은 공지입니다.</div></body></html>";
        let page = html_to_text(html);
        assert!(page.text.contains("짧은 공지입니다."), "{}", page.text);
        assert!(!page.text.contains("메뉴"), "{}", page.text);
    }

    #[test]
    fn html_charset_is_read_from_the_meta_tag() {
        let html = "<html><head><meta charset=\"euc-kr\"><title>t</title></head><body><p>지하철 요금</p></body></html>";
        let (bytes, _, _) = encoding_rs::EUC_KR.encode(html);
        assert_eq!(decode(&bytes).unwrap().encoding, "EUC-KR");
    }

    #[test]
    fn discovery_walks_sorted_skips_hidden_and_excluded_and_survives_loops() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/sub")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(root.join("out")).unwrap();
        for f in [
            "a.txt",
            "b/sub/c.html",
            "b/d.md",
            "README.md",
            "b/LICENSE.txt",
            ".hidden.txt",
            ".git/x.txt",
            "out/o.md",
            "img.png",
        ] {
            std::fs::write(root.join(f), "x").unwrap();
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(root, root.join("b/loop")).unwrap();
        let d = discover(&[root.to_path_buf()], &[root.join("out")]).unwrap();
        let rels: Vec<_> = d.files.iter().map(|f| f.rel.clone()).collect();
        assert_eq!(
            rels,
            vec![
                PathBuf::from("a.txt"),
                PathBuf::from("b/d.md"),
                PathBuf::from("b/sub/c.html")
            ]
        );
        #[cfg(unix)]
        assert!(d.passed.iter().any(|p| p.reason.contains("loop")));
        let err = discover(&[root.join("nope")], &[]).unwrap_err();
        assert!(err.to_string().contains("nope"));
        let single = discover(&[root.join("b/d.md")], &[]).unwrap();
        assert_eq!(single.files[0].rel, PathBuf::from("d.md"));
    }
}
