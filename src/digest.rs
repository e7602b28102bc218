//! Digest: many briefs → one Korean-English digest of the day's news, with stories grouped by
//! topic, stories about the same event merged with all their sources linked, and the most
//! important first.
//!
//! Each brief becomes a news item (its title and summary in both languages, tagged with its id:
//! the brief's path under the briefs folder). When the items fit one call, `digest.md` writes
//! the digest at once; otherwise the items are grouped into calls of `digest_map.md`, each
//! returning stories (merged, with their source ids), and the stories are digested in turn, a
//! tree until they fit. The model's stories are then checked: unknown ids are dropped, a brief
//! the model left out becomes a story of its own (so no news is lost, and the digest says so),
//! and figures the sources do not support are flagged.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::brief::{self, Bilingual, Brief, BriefUsage};
use crate::check::FigureCheck;
use crate::config::Settings;
use crate::error::ArticleError;
use crate::figures::SourceFigures;
use crate::llm::{ChatClient, LlmError, Message, Purpose, ReplyFormat};
use crate::prompt::{Prompts, fence_for};
use crate::summarize::{JsonCall, Tally};

/// The version tag of a digest's JSON document.
pub const SCHEMA: &str = "hanbrief.digest/1";

/// Topics the prompts ask for, with their Korean labels; anything else is "other".
pub const TOPICS: &[(&str, &str)] = &[
    ("economy", "경제"),
    ("technology", "기술"),
    ("politics", "정치"),
    ("society", "사회"),
    ("world", "국제"),
    ("energy", "에너지"),
    ("culture", "문화"),
    ("sports", "스포츠"),
    ("science", "과학"),
    ("other", "기타"),
];

/// A brief to digest.
#[derive(Debug, Clone)]
pub struct BriefRef {
    /// Its path under the briefs folder, without extension: `economy/chips`.
    pub id: String,
    /// The JSON file.
    pub json: PathBuf,
    pub brief: Brief,
}

/// Finding briefs failed.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("{} is not a folder of briefs", .0.display())]
    NotAFolder(PathBuf),
    #[error("no briefs in {} {}", .0.display(), .1)]
    Empty(PathBuf, String),
    #[error("cannot write the digest to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Article(#[from] ArticleError),
    #[error(transparent)]
    Prompt(#[from] crate::prompt::PromptError),
    #[error(transparent)]
    Client(#[from] crate::llm::client::ClientError),
    /// The state store, where batch mode keeps its batches, could not be used: hanbrief's own
    /// work failing, not the provider's.
    #[error("batch mode: cannot use the state store: {0}")]
    Store(crate::store::StoreError),
}

impl DigestError {
    /// The exit code: no briefs to digest, prompts or client settings are the user's to fix
    /// (2); a digest that could not be made or written failed (1), as `hanbrief digest` says.
    pub fn exit_code(&self) -> u8 {
        match self {
            DigestError::NotAFolder(_)
            | DigestError::Empty(..)
            | DigestError::Prompt(_)
            | DigestError::Client(_) => crate::error::EXIT_USAGE,
            DigestError::Write { .. } | DigestError::Article(_) => {
                crate::error::EXIT_ARTICLES_FAILED
            }
            DigestError::Store(_) => crate::error::EXIT_INTERNAL,
        }
    }
}

/// A batch-mode failure of the digest, as the provider error it stands for.
fn batch_failed(message: String) -> LlmError {
    LlmError::BadRequest {
        status: 0,
        message: format!("batch mode: {message}"),
    }
}

/// The batch runner's failure as the digest reports it: the provider's error fails the digest
/// (1, or 3 for a refusal), the store's is hanbrief's own (4; see [`DigestError::exit_code`]).
fn runner_failed(e: crate::batch::RunnerError) -> DigestError {
    match e {
        crate::batch::RunnerError::Api(e) => DigestError::Article(ArticleError::Llm(e)),
        crate::batch::RunnerError::Store(e) => DigestError::Store(e),
    }
}

/// Every brief under `dir` (recursively; hidden folders, the digest folder and the run report
/// are passed over), generated at or after `since` if given, in path order.
pub fn load_briefs(
    dir: &Path,
    digest_dir: &Path,
    since: Option<chrono::DateTime<chrono::FixedOffset>>,
) -> Result<Vec<BriefRef>, DigestError> {
    if !dir.is_dir() {
        return Err(DigestError::NotAFolder(dir.to_path_buf()));
    }
    let skip = dir.join(digest_dir);
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            !(e.depth() > 0 && name.starts_with('.')) && e.path() != skip
        })
        .filter_map(Result::ok)
    {
        let p = entry.path();
        if entry.file_type().is_file()
            && p.extension().is_some_and(|e| e == "json")
            && !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('_'))
        {
            files.push(p.to_path_buf());
        }
    }
    let briefs = read_briefs(dir, &files)
        .into_iter()
        .filter(|b| {
            since.is_none_or(|s| {
                chrono::DateTime::parse_from_rfc3339(&b.brief.generated_at).is_ok_and(|t| t >= s)
            })
        })
        .collect();
    Ok(briefs)
}

/// The briefs in `files` (JSON paths under `root`); files that are not briefs are passed over.
pub fn read_briefs(root: &Path, files: &[PathBuf]) -> Vec<BriefRef> {
    let mut out = Vec::new();
    for path in files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot read a brief ({e}); left out of the digest");
                continue;
            }
        };
        let brief: Brief = match serde_json::from_str(&text) {
            Ok(b) => b,
            Err(_) => {
                tracing::debug!(path = %path.display(), "not a brief; passed over");
                continue;
            }
        };
        if !brief::READABLE_SCHEMAS.contains(&brief.schema.as_str()) {
            continue;
        }
        let rel = path.strip_prefix(root).unwrap_or(path).with_extension("");
        out.push(BriefRef {
            id: rel.display().to_string().replace('\\', "/"),
            json: path.clone(),
            brief,
        });
    }
    out
}

/// A story as the model writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ModelStory {
    topic: String,
    headline: Bilingual,
    summary: Bilingual,
    importance: i64,
    sources: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct StoriesReply {
    stories: Vec<ModelStory>,
}

#[derive(Debug, Deserialize)]
struct DigestReply {
    title: Bilingual,
    overview: Bilingual,
    stories: Vec<ModelStory>,
}

/// A news item in a prompt: one brief, or a story made of several.
#[derive(Debug, Clone, Serialize)]
struct Item {
    sources: Vec<String>,
    text: String,
}

/// One source of a story, with what a reader needs to follow it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorySource {
    pub id: String,
    pub title: Bilingual,
    /// The brief's Markdown file, relative to the briefs folder.
    pub brief: String,
    /// The original article.
    pub article: String,
}

/// A story of the digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Story {
    pub headline: Bilingual,
    pub summary: Bilingual,
    pub importance: u8,
    pub sources: Vec<StorySource>,
}

/// The stories of one topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicGroup {
    pub topic: String,
    pub label: Bilingual,
    pub stories: Vec<Story>,
}

/// What the digest's checks found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DigestChecks {
    /// Figures in a story that none of its source briefs contains.
    pub unsupported_figures: Vec<FigureCheck>,
    /// Briefs the model placed in no story (added as stories of their own).
    pub unplaced_briefs: Vec<String>,
    /// Source ids the model made up (dropped).
    pub unknown_sources: Vec<String>,
    pub warnings: Vec<String>,
}

/// A digest, as written to `<date>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    pub schema: String,
    /// The news day, e.g. `2026-11-24`.
    pub date: String,
    pub title: Bilingual,
    pub overview: Bilingual,
    pub topics: Vec<TopicGroup>,
    pub briefs: usize,
    pub checks: DigestChecks,
    pub usage: BriefUsage,
    pub generated_at: String,
}

/// The variables of `digest.md` and `digest_map.md` (the pipeline's and the sample renders').
fn digest_vars(
    date: &str,
    fence: &str,
    items: &[Item],
    glossary: &[serde_json::Value],
) -> serde_json::Value {
    json!({"date": date, "fence": fence, "items": items, "glossary": glossary})
}

/// Renders the digest templates (`digest.md`, `digest_map.md`) with two sample news items,
/// with and without pinned names; see [`crate::summarize::render_samples`].
pub fn render_samples(prompts: &Prompts) -> Vec<crate::prompt::PromptError> {
    let items = vec![
        Item {
            sources: vec!["economy/chips".into()],
            text: "반도체 수출 역대 최대\nChip exports hit a record\n반도체 수출이 142억 달러로 늘었다.\nChip exports rose to $14.2 billion.".into(),
        },
        Item {
            sources: vec!["economy/wafers".into(), "tech/wafers".into()],
            text: "한빛전자 증산\nHanbit Electronics expands\n생산능력을 월 26만 장으로 늘린다.\nCapacity rises to 260,000 wafers a month.".into(),
        },
    ];
    let text: String = items.iter().map(|i| i.text.as_str()).collect();
    let glossary = [json!({"ko": "한빛전자", "en": "Hanbit Electronics"})];
    let mut errors = Vec::new();
    for glossary in [&glossary[..], &[][..]] {
        for name in ["digest.md", "digest_map.md"] {
            let vars = digest_vars("2026-11-24", &fence_for(&text), &items, glossary);
            crate::prompt::keep_new_error(&mut errors, prompts.render(name, &vars));
        }
    }
    errors
}

fn stories_format(name: &'static str, with_header: bool) -> ReplyFormat {
    let schema = |bounded: bool| {
        let text = |max: u32| {
            if bounded {
                json!({"type": "string", "minLength": 1, "maxLength": max})
            } else {
                json!({"type": "string"})
            }
        };
        let pair = |max: u32| json!({"type": "object", "properties": {"ko": text(max), "en": text(max)}, "required": ["ko", "en"], "additionalProperties": false});
        let topics: Vec<&str> = TOPICS.iter().map(|(t, _)| *t).collect();
        let story = json!({
            "type": "object",
            "properties": {
                "topic": {"type": "string", "enum": topics},
                "headline": pair(120),
                "summary": pair(400),
                "importance": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
                "sources": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["topic", "headline", "summary", "importance", "sources"],
            "additionalProperties": false
        });
        let mut properties = serde_json::Map::new();
        let mut required = Vec::new();
        if with_header {
            properties.insert("title".into(), pair(120));
            properties.insert("overview".into(), pair(500));
            required.extend(["title", "overview"]);
        }
        properties.insert("stories".into(), json!({"type": "array", "items": story}));
        required.push("stories");
        json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
    };
    // The prompts spell out the digest's fields themselves (one call a run: not worth two
    // variants).
    ReplyFormat::Json {
        name,
        schema: schema(false),
        bounded: schema(true),
        instructions: Default::default(),
    }
}

fn parse_stories(reply: &str) -> Result<Vec<ModelStory>, String> {
    let json = brief::extract_json_object(reply).ok_or_else(|| {
        "it does not contain a JSON object (reply with the JSON object only)".to_string()
    })?;
    let parsed: StoriesReply = serde_json::from_str(json)
        .map_err(|e| format!("the JSON does not have the asked shape: {e}"))?;
    validate_stories(&parsed.stories)?;
    Ok(parsed.stories)
}

fn parse_digest(reply: &str) -> Result<DigestReply, String> {
    let json = brief::extract_json_object(reply).ok_or_else(|| {
        "it does not contain a JSON object (reply with the JSON object only)".to_string()
    })?;
    let mut parsed: DigestReply = serde_json::from_str(json)
        .map_err(|e| format!("the JSON does not have the asked shape: {e}"))?;
    parsed.title.ko = brief::plain_heading(&parsed.title.ko);
    parsed.title.en = brief::plain_heading(&parsed.title.en);
    let mut problems = Vec::new();
    for (field, b) in [("title", &parsed.title), ("overview", &parsed.overview)] {
        if !brief::is_korean(&b.ko) {
            problems.push(format!("\"{field}\".ko is not in Korean"));
        }
        if b.en.trim().is_empty() || !brief::is_english(&b.en) {
            problems.push(format!("\"{field}\".en is not in English"));
        }
    }
    if let Err(p) = validate_stories(&parsed.stories) {
        problems.push(p);
    }
    if problems.is_empty() {
        Ok(parsed)
    } else {
        Err(problems.join("; "))
    }
}

fn validate_stories(stories: &[ModelStory]) -> Result<(), String> {
    let mut problems = Vec::new();
    if stories.is_empty() {
        problems.push("\"stories\" is empty".to_string());
    }
    for (i, s) in stories.iter().enumerate() {
        for (field, b) in [("headline", &s.headline), ("summary", &s.summary)] {
            if !brief::is_korean(&b.ko) {
                problems.push(format!("\"stories[{i}].{field}\".ko is not in Korean"));
            }
            if b.en.trim().is_empty() || !brief::is_english(&b.en) {
                problems.push(format!("\"stories[{i}].{field}\".en is not in English"));
            }
        }
        if s.sources.is_empty() {
            problems.push(format!("\"stories[{i}].sources\" is empty"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Writes digests over one client.
pub struct Digester<'a> {
    client: &'a ChatClient,
    prompts: &'a Prompts,
    settings: &'a Settings,
}

impl<'a> Digester<'a> {
    pub fn new(
        client: &'a ChatClient,
        prompts: &'a Prompts,
        settings: &'a Settings,
    ) -> Digester<'a> {
        Digester {
            client,
            prompts,
            settings,
        }
    }

    fn room(&self) -> usize {
        let window = self.client.endpoint().context_window;
        let reply = self.settings.digest.max_tokens as usize;
        let margin = if self.settings.chunking.exact_counts {
            0.02
        } else {
            self.settings.chunking.margin as f64
        };
        (window.saturating_sub(reply) as f64
            / ((1.0 + margin) * self.client.calibration().ratio().max(1.0))) as usize
    }

    fn messages(
        &self,
        template: &str,
        date: &str,
        items: &[Item],
    ) -> Result<Vec<Message>, ArticleError> {
        let system = self.prompts.render("system.md", &json!({}))?;
        let text: String = items
            .iter()
            .map(|i| i.text.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let glossary: Vec<serde_json::Value> = self
            .settings
            .glossary
            .iter()
            .filter(|(ko, _)| text.contains(ko.as_str()))
            .map(|(ko, en)| json!({"ko": ko, "en": en}))
            .collect();
        let user = self.prompts.render(
            template,
            &digest_vars(date, &fence_for(&text), items, &glossary),
        )?;
        Ok(vec![Message::system(system), Message::user(user)])
    }

    fn tokens(&self, template: &str, date: &str, items: &[Item]) -> Result<usize, ArticleError> {
        let messages = self.messages(template, date, items)?;
        Ok(self
            .client
            .tokenizer()
            .count_messages(messages.iter().map(|m| m.content.as_str())))
    }

    /// Digests `briefs` (the news of `date`), adding what it cost to `tally`.
    pub async fn digest(
        &self,
        briefs: &[BriefRef],
        date: &str,
        tally: &mut Tally,
    ) -> Result<Digest, ArticleError> {
        let mut items: Vec<Item> = briefs
            .iter()
            .map(|b| {
                let c = &b.brief.content;
                Item {
                    sources: vec![b.id.clone()],
                    text: format!(
                        "{}\n{}\n{}\n{}",
                        c.title.ko, c.title.en, c.summary.ko, c.summary.en
                    ),
                }
            })
            .collect();
        let room = self.room();
        let mut level = 0;
        // Stories of groups of items, until everything fits one digest call.
        while items.len() > 1 && self.tokens("digest.md", date, &items)? > room {
            level += 1;
            if level > 4 {
                return Err(ArticleError::InvalidReply {
                    what: "digest",
                    problem: "the briefs do not shrink into one call; digest fewer briefs (e.g. --since 24h)".into(),
                });
            }
            let groups = self.groups(date, &items, room)?;
            tracing::info!(
                items = items.len(),
                groups = groups.len(),
                level,
                "digest: grouping news items into stories first"
            );
            let mut next = Vec::new();
            for group in groups {
                let stories = self
                    .call(
                        "digest_stories",
                        false,
                        Purpose::DigestMap,
                        "list of stories",
                        group.len(),
                    )
                    .run(
                        self.messages("digest_map.md", date, &group)?,
                        parse_stories,
                        tally,
                    )
                    .await?;
                let known: BTreeSet<&String> = group.iter().flat_map(|i| &i.sources).collect();
                let mut placed = BTreeSet::new();
                for s in stories {
                    let sources: Vec<String> = s
                        .sources
                        .into_iter()
                        .filter(|id| known.contains(id))
                        .collect();
                    if sources.is_empty() {
                        continue;
                    }
                    placed.extend(sources.iter().cloned());
                    next.push(Item {
                        sources,
                        text: format!(
                            "{}\n{}\n{}\n{}\n(topic: {}, importance: {})",
                            s.headline.ko,
                            s.headline.en,
                            s.summary.ko,
                            s.summary.en,
                            s.topic,
                            s.importance
                        ),
                    });
                }
                // What the model left out goes on as it was.
                next.extend(
                    group
                        .into_iter()
                        .filter(|i| i.sources.iter().any(|id| !placed.contains(id))),
                );
            }
            items = next;
        }
        let reply = self
            .call("digest", true, Purpose::Digest, "digest", items.len())
            .run(
                self.messages("digest.md", date, &items)?,
                parse_digest,
                tally,
            )
            .await?;
        Ok(self.assemble(briefs, date, reply, tally))
    }

    /// A digest call: stories (with the digest's title and overview when `with_header`) in the
    /// JSON shape named `schema`.
    fn call(
        &self,
        schema: &'static str,
        with_header: bool,
        purpose: Purpose,
        what: &'static str,
        stories: usize,
    ) -> JsonCall<'_> {
        JsonCall {
            client: self.client,
            prompts: self.prompts,
            format: stories_format(schema, with_header),
            max_tokens: self.settings.digest.max_tokens,
            purpose,
            what,
            counted: None,
            // The reply grows with the stories asked for: sized per story.
            units: stories.max(1) as u32,
        }
    }

    /// Splits items into groups that each fit one `digest_map` call.
    fn groups(
        &self,
        date: &str,
        items: &[Item],
        room: usize,
    ) -> Result<Vec<Vec<Item>>, ArticleError> {
        let mut groups: Vec<Vec<Item>> = Vec::new();
        let mut current: Vec<Item> = Vec::new();
        for item in items {
            current.push(item.clone());
            if current.len() > 1 && self.tokens("digest_map.md", date, &current)? > room {
                let last = current.pop().expect("just pushed");
                groups.push(std::mem::take(&mut current));
                current.push(last);
            }
        }
        if !current.is_empty() {
            groups.push(current);
        }
        Ok(groups)
    }

    /// Turns the model's digest into the document: known sources only, every brief placed,
    /// topics and stories ordered by importance, figures checked against the sources.
    fn assemble(
        &self,
        briefs: &[BriefRef],
        date: &str,
        reply: DigestReply,
        tally: &Tally,
    ) -> Digest {
        let by_id: BTreeMap<&str, &BriefRef> = briefs.iter().map(|b| (b.id.as_str(), b)).collect();
        let mut checks = DigestChecks::default();
        // The day's title and overview speak for every brief: their figures must come from
        // one of them.
        let everything: String = briefs.iter().map(brief_text).collect::<Vec<_>>().join("\n");
        let all = SourceFigures::new(&everything);
        checks.unsupported_figures.extend(unsupported_figures(
            &all,
            [("title", &reply.title), ("overview", &reply.overview)],
            "",
        ));
        let mut placed: BTreeSet<String> = BTreeSet::new();
        let mut stories: Vec<(String, Story)> = Vec::new();
        for s in reply.stories {
            let mut sources = Vec::new();
            for id in s.sources {
                match by_id.get(id.as_str()) {
                    Some(b) if placed.insert(id.clone()) => sources.push(source(b)),
                    Some(_) => {} // already in another story: keep the first placement
                    None => checks.unknown_sources.push(id),
                }
            }
            if sources.is_empty() {
                continue;
            }
            // Figures must come from the story's own sources.
            let source_text: String = sources
                .iter()
                .filter_map(|src| by_id.get(src.id.as_str()))
                .map(|b| brief_text(b))
                .collect::<Vec<_>>()
                .join("\n");
            let figures = SourceFigures::new(&source_text);
            checks.unsupported_figures.extend(unsupported_figures(
                &figures,
                [("headline", &s.headline), ("summary", &s.summary)],
                &format!("{}: ", s.headline.en),
            ));
            let topic = if TOPICS.iter().any(|(t, _)| *t == s.topic) {
                s.topic
            } else {
                "other".to_string()
            };
            stories.push((
                topic,
                Story {
                    headline: s.headline,
                    summary: s.summary,
                    importance: s.importance.clamp(1, 5) as u8,
                    sources,
                },
            ));
        }
        for b in briefs {
            if !placed.contains(&b.id) {
                checks.unplaced_briefs.push(b.id.clone());
                let c = &b.brief.content;
                stories.push((
                    "other".to_string(),
                    Story {
                        headline: c.title.clone(),
                        summary: c.summary.clone(),
                        importance: 1,
                        sources: vec![source(b)],
                    },
                ));
            }
        }
        if !checks.unplaced_briefs.is_empty() {
            checks.warnings.push(format!(
                "{} brief(s) were left out by the model and are listed as they are",
                checks.unplaced_briefs.len()
            ));
        }
        let mut groups: BTreeMap<String, Vec<Story>> = BTreeMap::new();
        for (topic, story) in stories {
            groups.entry(topic).or_default().push(story);
        }
        let mut topics: Vec<TopicGroup> = groups
            .into_iter()
            .map(|(topic, mut stories)| {
                stories.sort_by(|a, b| {
                    b.importance
                        .cmp(&a.importance)
                        .then(b.sources.len().cmp(&a.sources.len()))
                });
                let ko = TOPICS
                    .iter()
                    .find(|(t, _)| *t == topic)
                    .map_or("기타", |(_, k)| *k);
                TopicGroup {
                    label: Bilingual {
                        ko: ko.to_string(),
                        en: capitalise(&topic),
                    },
                    topic,
                    stories,
                }
            })
            .collect();
        let weight = |g: &TopicGroup| {
            (
                g.stories.iter().map(|s| s.importance).max().unwrap_or(0),
                g.stories.len(),
            )
        };
        topics.sort_by(|a, b| weight(b).cmp(&weight(a)).then(a.topic.cmp(&b.topic)));
        // "Other" last, whatever its weight.
        topics.sort_by_key(|g| g.topic == "other");
        Digest {
            schema: SCHEMA.to_string(),
            date: date.to_string(),
            title: reply.title,
            overview: reply.overview,
            topics,
            briefs: briefs.len(),
            checks,
            usage: BriefUsage {
                model: self.settings.endpoint.model.clone(),
                calls: tally.calls,
                cached_calls: tally.cached_calls,
                prompt_tokens: tally.usage.prompt_tokens,
                completion_tokens: tally.usage.completion_tokens,
                cost_usd: tally.cost(&self.settings.pricing, &self.settings.endpoint.model),
            },
            generated_at: crate::pipeline::now_rfc3339(),
        }
    }
}

/// The figures of `fields` (both languages of each, Korean first) that `source` does not hold,
/// each named `{prefix}{field}.ko` or `.en`.
fn unsupported_figures(
    source: &SourceFigures,
    fields: [(&str, &Bilingual); 2],
    prefix: &str,
) -> Vec<FigureCheck> {
    let mut found = Vec::new();
    for (field, text) in fields {
        for (lang, text) in [("ko", &text.ko), ("en", &text.en)] {
            for f in source.unsupported(text) {
                found.push(FigureCheck {
                    text: f.text,
                    field: format!("{prefix}{field}.{lang}"),
                });
            }
        }
    }
    found
}

/// Every text of a brief (both languages), where a digest's figures must come from.
fn brief_text(b: &BriefRef) -> String {
    brief::fields(&b.brief.content)
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join("\n")
}

fn source(b: &BriefRef) -> StorySource {
    StorySource {
        id: b.id.clone(),
        title: b.brief.content.title.clone(),
        brief: format!("{}.md", b.id),
        article: b.brief.source.path.clone(),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

impl Digest {
    /// The JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a digest always serialises") + "\n"
    }
}

/// Writes a digest as `<stem>.json` and `<stem>.md`; returns both paths.
pub fn write(
    digest: &Digest,
    briefs_dir: &Path,
    stem: &Path,
) -> Result<(PathBuf, PathBuf), DigestError> {
    let json = crate::output::with_suffix(stem, "json");
    let md = crate::output::with_suffix(stem, "md");
    let from = stem.parent().unwrap_or(Path::new("."));
    // Links are computed between absolute paths: a relative briefs folder and an absolute
    // `-o` (or the reverse) have no common base otherwise.
    let absolute = |p: &Path| {
        let p = if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        };
        std::fs::canonicalize(p)
            .or_else(|_| std::path::absolute(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    crate::output::write_atomic(&json, digest.to_json().as_bytes()).map_err(|source| {
        DigestError::Write {
            path: json.clone(),
            source,
        }
    })?;
    crate::output::write_atomic(
        &md,
        // The digest's folder exists now (the JSON is in it): both paths canonicalise.
        crate::render::digest(digest, &absolute(briefs_dir), &absolute(from)).as_bytes(),
    )
    .map_err(|source| DigestError::Write {
        path: md.clone(),
        source,
    })?;
    Ok((json, md))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stories_are_validated() {
        let ok = json!({"stories": [{"topic": "economy", "headline": {"ko": "수출 증가", "en": "Exports up"}, "summary": {"ko": "수출이 늘었다.", "en": "Exports rose."}, "importance": 4, "sources": ["a"]}]});
        assert_eq!(parse_stories(&ok.to_string()).unwrap().len(), 1);
        let bad = ok.to_string().replace("Exports up", "수출 증가");
        assert!(
            parse_stories(&bad)
                .unwrap_err()
                .contains("headline\".en is not in English")
        );
        let empty = json!({"stories": []});
        assert!(parse_stories(&empty.to_string()).is_err());
    }
}

/// Which briefs to digest.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every brief in the folder, generated at or after the time if given.
    All(Option<chrono::DateTime<chrono::FixedOffset>>),
    /// These brief files (a scheduled tick's new briefs).
    Files(Vec<PathBuf>),
}

/// A written digest.
#[derive(Debug)]
pub struct Done {
    pub digest: Digest,
    pub json: PathBuf,
    pub md: PathBuf,
}

/// Digests the selected briefs of `briefs_dir` and writes `<stem>.json` and `<stem>.md`. Calls
/// go through the folder's state store cache when there is one. `shutdown.stop` stops new
/// calls; `shutdown.abort` drops the calls on the wire (the digest then fails as cancelled).
pub async fn run(
    settings: &Settings,
    briefs_dir: &Path,
    selection: Selection,
    date: &str,
    stem: &Path,
    shutdown: &crate::pipeline::Shutdown,
    force: bool,
) -> Result<Done, DigestError> {
    let briefs = match selection {
        Selection::All(since) => load_briefs(briefs_dir, &settings.digest.dir, since)?,
        Selection::Files(files) => read_briefs(briefs_dir, &files),
    };
    if briefs.is_empty() {
        return Err(DigestError::Empty(
            briefs_dir.to_path_buf(),
            "to digest".to_string(),
        ));
    }
    let prompts = Prompts::load(settings.prompts_dir.as_deref())?;
    let key = crate::llm::ApiKey::from_env(&settings.endpoint.api_key_env);
    let key_for_batch = key.clone();
    let tokenizer = crate::tokens::Tokenizer::new(settings.chunking.encoding);
    let mut client = ChatClient::new(
        &settings.endpoint,
        &settings.limits,
        tokenizer,
        key,
        shutdown.stop.clone(),
    )?
    .with_abort(shutdown.abort.clone());
    let store = crate::store::Store::open_existing(briefs_dir)
        .await
        .ok()
        .flatten();
    if let Some(store) = &store {
        client = client
            .with_cache(std::sync::Arc::new(crate::store::StoreCache {
                store: store.clone(),
                model: settings.endpoint.model.clone(),
                // --force: ask the model again (the new answers are still stored).
                read: !force,
            }))
            .await;
    }
    // Batch mode: the digest's calls go into batches; each time one comes back, the digest is
    // asked again and goes on to its next step (story grouping levels, then the digest).
    let mut batch = match (&store, settings.batch.enabled) {
        (Some(store), true) => Some(
            crate::batch::BatchRunner::new(
                settings,
                store.clone(),
                key_for_batch,
                shutdown.stop.clone(),
                None,
            )
            .await
            .map_err(|e| DigestError::Article(ArticleError::Llm(batch_failed(e.to_string()))))?,
        ),
        _ => None,
    };
    if let Some(b) = batch.as_mut() {
        client = client.with_deferral(b.queue());
        b.resume().await.map_err(runner_failed)?;
    }
    let mut phase = 0;
    let digest = loop {
        phase += 1;
        if let Some(b) = &batch {
            b.queue().begin_pass();
        }
        let mut tally = Tally::default();
        let digest = Digester::new(&client, &prompts, settings)
            .digest(&briefs, date, &mut tally)
            .await;
        match (digest, batch.as_mut()) {
            (Err(ArticleError::Llm(LlmError::Deferred)), Some(b)) => {
                match b.after_pass(phase, false).await {
                    Ok(crate::batch::Step::Collected) => continue,
                    Ok(_) => {
                        break Err(DigestError::Article(ArticleError::Llm(batch_failed(
                            "no batch left to wait for".into(),
                        ))));
                    }
                    Err(e) => break Err(runner_failed(e)),
                }
            }
            (other, _) => {
                if let Some(b) = batch.as_mut() {
                    b.finish();
                    if let Err(e) = b.forget_settled().await {
                        tracing::warn!("cannot tidy the batch requests in the state store ({e})");
                    }
                }
                break other.map_err(DigestError::Article);
            }
        }
    };
    if let Some(store) = &store
        && let Err(e) = store.flush().await
    {
        tracing::debug!("cannot record when cached calls were last used ({e})");
    }
    let digest = digest?;
    let (json, md) = write(&digest, briefs_dir, stem)?;
    Ok(Done { digest, json, md })
}
