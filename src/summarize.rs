//! Summarize: the model steps that turn a cleaned article into a brief's content.
//!
//! - **One call** whenever the whole article plus its prompt fits one call: the context window
//!   (configured, known for the model, or learned from the server's context errors) with room
//!   for the whole reply budget, and the provider's tokens per minute (no request may carry more
//!   than a minute's budget). `chunk_tokens`, when set, caps it for models that lose facts in
//!   long prompts.
//! - Otherwise **map** (each chunk → notes, in parallel; the client bounds the concurrency) and
//!   **reduce** (all notes → the brief). When the notes themselves overflow one call they are
//!   **collapsed** in groups (notes → shorter notes) until they fit: a reduce tree.
//!
//! Budgets are counted with our tokenizer and widened by the configured margin (and by what the
//! client has learnt of the server's own counts). If the server still says the prompt is too
//! long, the step splits its input and goes on: a chunk into two halves, a one-call article into
//! map-reduce, a reduce into a collapse level. A reply that is not a valid brief gets one repair
//! call that quotes what was wrong.
//!
//! **Grounding.** Every key point and figure quotes the article. A brief whose quotes are
//! missing or not the article's words gets one more repair call that lists the failing points;
//! the repaired brief is taken if fewer points fail, and what still fails is kept and flagged by
//! the check step. In map-reduce, notes carry their quotes (`  > …` under each note), which are
//! checked against the article before the reduce sees them, and the reduce's quotes are checked
//! against the whole article.
//!
//! **Select** (`[summary] strategy = "select"`): no notes and no whole article for the model.
//! [`crate::select`] picks the article's most informative sentences (whatever its length, so
//! there is no map-reduce), the model writes one key point per sentence, and the sentences are
//! the key points' quotes.

use std::collections::BTreeMap;

use futures::future::{BoxFuture, FutureExt, join_all};
use serde::Serialize;
use serde_json::{Value, json};

use crate::brief::{self, BriefContent, Quote};
use crate::check::{self, Passages};
use crate::chunk::{self, Chunk};
use crate::clean::CleanArticle;
use crate::config::{ChunkSettings, Settings, Strategy, SummarySettings};
use crate::error::ArticleError;
use crate::llm::{
    ChatClient, ChatReply, ChatRequest, FinishReason, FormatInstructions, LlmError, Message,
    Purpose, ReplyFormat, Usage,
};
use crate::prompt::{Prompts, fence_for};
use crate::tokens::Tokenizer;

/// Prompt sizes without their variable part, measured once per run.
#[derive(Debug, Clone, Copy)]
struct Overheads {
    brief: usize,
    map: usize,
    collapse: usize,
    reduce: usize,
    select: usize,
    /// Per note: its `[part n]` label and separators.
    per_note: usize,
    /// The format instructions the client appends to brief and reduce prompts (the longer
    /// variant; not in `brief` and `reduce`, which are what the messages themselves hold).
    format: usize,
}

/// How an article will be summarised.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Tokens of the cleaned text.
    pub tokens: usize,
    /// One chunk (the whole text) for a one-call brief; several for map-reduce.
    pub chunks: Vec<Chunk>,
    pub one_call: bool,
    /// Calls the plan will make, assuming notes as long as they may be.
    pub planned_calls: usize,
    /// Prompt and reply tokens the plan will spend at most (for cost estimates).
    pub est_prompt_tokens: u64,
    pub est_completion_tokens: u64,
    /// The calls step by step, each step needing the one before (batch mode runs a step per
    /// phase): a one-call brief has one; map-reduce has the chunks' notes, each tree level,
    /// then the reduce.
    pub steps: Vec<PlanStep>,
}

/// One step of a [`Plan`]: calls that can be sent together, and the prompt tokens they carry
/// at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PlanStep {
    pub calls: usize,
    pub prompt_tokens: u64,
}

impl Plan {
    /// The whole article (`tokens` of it) in one call: a prompt of `prompt_tokens`, a reply of
    /// up to `reply_tokens`.
    fn one_call(
        clean: &CleanArticle,
        tokens: usize,
        prompt_tokens: usize,
        reply_tokens: u32,
    ) -> Plan {
        Plan {
            tokens,
            chunks: vec![Chunk {
                index: 0,
                tokens,
                text: clean.text.clone(),
            }],
            one_call: true,
            planned_calls: 1,
            est_prompt_tokens: prompt_tokens as u64,
            est_completion_tokens: reply_tokens as u64,
            steps: vec![PlanStep {
                calls: 1,
                prompt_tokens: prompt_tokens as u64,
            }],
        }
    }
}

/// What summarising cost, and what a reader of the brief should know about how it was made.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    pub calls: u32,
    pub cached_calls: u32,
    pub usage: Usage,
    /// Of `calls` and `usage`, what went through the provider's Batch API (batch prices).
    pub batch_calls: u32,
    pub batch_usage: Usage,
    /// E.g. notes cut off at the token limit: shown in the brief's checks.
    pub warnings: Vec<String>,
}

impl Tally {
    fn add(&mut self, reply: &ChatReply) {
        if reply.cached {
            self.cached_calls += 1;
        } else {
            self.calls += 1;
            self.usage += reply.usage;
            if reply.batch {
                self.batch_calls += 1;
                self.batch_usage += reply.usage;
            }
        }
    }

    /// What the calls cost with `model`: ordinary calls at the standard price, batch calls at
    /// the batch price; `None` when the model's price is unknown.
    pub fn cost(&self, pricing: &crate::pricing::Pricing, model: &str) -> Option<f64> {
        use crate::pricing::Tier;
        let (u, b) = (self.usage, self.batch_usage);
        let standard = Usage {
            prompt_tokens: u.prompt_tokens.saturating_sub(b.prompt_tokens),
            completion_tokens: u.completion_tokens.saturating_sub(b.completion_tokens),
            reasoning_tokens: u.reasoning_tokens.saturating_sub(b.reasoning_tokens),
        };
        crate::pricing::sum([
            pricing.cost(model, standard, Tier::Standard),
            pricing.cost(model, b, Tier::Batch),
        ])
    }

    fn merge(&mut self, other: Tally) {
        self.calls += other.calls;
        self.cached_calls += other.cached_calls;
        self.usage += other.usage;
        self.batch_calls += other.batch_calls;
        self.batch_usage += other.batch_usage;
        self.warnings.extend(other.warnings);
    }

    /// The text of a notes reply; a reply cut at the token limit keeps its complete lines and
    /// leaves a warning.
    fn notes(&mut self, reply: &ChatReply, what: impl FnOnce() -> String) -> String {
        self.add(reply);
        let text = reply.content.trim();
        if reply.finish_reason != FinishReason::Length {
            return text.to_string();
        }
        let looping = crate::llm::sizing::is_looping(text);
        self.warnings.push(if looping {
            format!(
                "{} were cut off at the token limit while the model repeated itself; the brief \
                 may miss some of it",
                what()
            )
        } else {
            format!(
                "{} were cut off at the token limit; the brief may miss some of it",
                what()
            )
        });
        let kept = match text.rfind('\n') {
            Some(i) => &text[..i],
            None => text,
        };
        // Whole lines only; after a loop, each once (the model wrote the same lines again). Not
        // otherwise: two notes may rightly quote the same sentence of the article.
        let mut seen = std::collections::HashSet::new();
        kept.lines()
            .filter(|l| !looping || l.trim().is_empty() || seen.insert(l.trim()))
            .collect::<Vec<_>>()
            .join("\n")
            .trim_end()
            .to_string()
    }
}

/// Notes on one chunk (or on a group of chunks, after collapsing).
#[derive(Debug, Clone, Serialize)]
struct Note {
    index: usize,
    text: String,
}

/// Runs the model steps for articles, over one client.
pub struct Summarizer<'a> {
    client: &'a ChatClient,
    prompts: &'a Prompts,
    chunking: &'a ChunkSettings,
    summary: SummarySettings,
    glossary: &'a BTreeMap<String, String>,
    system: String,
    /// `format.md` rendered for both output modes (see [`FormatInstructions`]).
    instructions: std::sync::Arc<FormatInstructions>,
    overheads: Overheads,
}

#[derive(Serialize)]
struct GlossaryEntry<'a> {
    ko: &'a str,
    en: &'a str,
}

// The variables each template is rendered with, in one place: the pipeline's calls and
// `config check`'s sample renders ([`render_samples`]) use the same ones.

fn brief_vars(title: &str, glossary: &[GlossaryEntry], fence: &str, article: &str) -> Value {
    json!({"title": title, "glossary": glossary, "fence": fence, "article": article})
}

fn map_vars(title: &str, fence: &str, chunk: &str, index: usize, total: usize) -> Value {
    json!({"title": title, "fence": fence, "chunk": chunk, "index": index, "total": total})
}

fn collapse_vars(title: &str, fence: &str, notes: &[Note]) -> Value {
    json!({"title": title, "fence": fence, "notes": notes})
}

fn reduce_vars(title: &str, glossary: &[GlossaryEntry], fence: &str, notes: &[Note]) -> Value {
    json!({"title": title, "glossary": glossary, "fence": fence, "notes": notes})
}

fn repair_vars(problem: &str) -> Value {
    json!({ "error": problem })
}

fn select_vars(title: &str, glossary: &[GlossaryEntry], fence: &str, sentences: &[&str]) -> Value {
    json!({"title": title, "glossary": glossary, "fence": fence, "sentences": sentences})
}

fn ground_vars(problems: &[check::Ungrounded]) -> Value {
    json!({ "problems": problems })
}

/// A short article of our own, for sample renders.
pub const SAMPLE_ARTICLE: &str = "반도체 수출이 142억 달러로 1년 전보다 18.4% 늘었다고 한국무역연구원이 1일 \
밝혔다.\n한빛전자는 웨이퍼 생산능력을 월 26만 장으로 늘릴 계획이라고 말했다.";

/// Renders every template of the brief pipeline (system, brief, map, collapse, reduce,
/// repair, ground, select) with a sample article, once with every optional part (title, glossary) and once
/// without: a template that uses a variable hanbrief does not give, or breaks in a branch,
/// fails here instead of in the middle of a run.
pub fn render_samples(prompts: &Prompts) -> Vec<crate::prompt::PromptError> {
    let glossary = [GlossaryEntry {
        ko: "한빛전자",
        en: "Hanbit Electronics",
    }];
    let notes = [
        Note {
            index: 1,
            text: "- 반도체 수출 142억 달러, 18.4% 증가\n  > 반도체 수출이 142억 달러로 1년 전보다 18.4% 늘었다고"
                .into(),
        },
        Note {
            index: 2,
            text: "- 한빛전자 생산능력 월 26만 장 계획\n  > 한빛전자는 웨이퍼 생산능력을 월 26만 장으로 늘릴 계획이라고 말했다."
                .into(),
        },
    ];
    let sentences: Vec<&str> = SAMPLE_ARTICLE.lines().collect();
    let problems = [
        check::Ungrounded {
            field: "key_points[1]".into(),
            ko: "한빛전자는 생산을 늘린다.".into(),
            quotes: vec!["한빛전자는 공장을 새로 짓는다".into()],
            problem: "the quote is not in the article word for word".into(),
        },
        check::Ungrounded {
            field: "figures[0]".into(),
            ko: "142억 달러".into(),
            quotes: vec![],
            problem: "it has no quote".into(),
        },
    ];
    let text = SAMPLE_ARTICLE;
    let notes_fence = fence_for(&notes_text(&notes));
    let mut errors = Vec::new();
    for (title, glossary) in [("반도체 수출 역대 최대", &glossary[..]), ("", &[][..])] {
        let renders = [
            ("system.md", json!({})),
            (
                "brief.md",
                brief_vars(title, glossary, &fence_for(text), text),
            ),
            ("map.md", map_vars(title, &fence_for(text), text, 1, 2)),
            ("collapse.md", collapse_vars(title, &notes_fence, &notes)),
            (
                "reduce.md",
                reduce_vars(title, glossary, &notes_fence, &notes),
            ),
            ("repair.md", repair_vars("\"summary\".en is not in English")),
            ("ground.md", ground_vars(&problems)),
            (
                "select.md",
                select_vars(
                    title,
                    glossary,
                    &fence_for(&sentences.join("\n")),
                    &sentences,
                ),
            ),
        ];
        for (name, vars) in renders {
            crate::prompt::keep_new_error(&mut errors, prompts.render(name, &vars));
        }
    }
    errors
}

impl<'a> Summarizer<'a> {
    /// A summarizer with the run's chunking, summary strategy and glossary; renders each
    /// template once to measure its fixed size.
    pub fn new(
        client: &'a ChatClient,
        prompts: &'a Prompts,
        settings: &'a Settings,
    ) -> Result<Summarizer<'a>, ArticleError> {
        let chunking = &settings.chunking;
        let glossary = &settings.glossary;
        let system = prompts.render("system.md", &serde_json::json!({}))?;
        let tok = client.tokenizer();
        let count = |s: &str| tok.count(s);
        let empty_notes: Vec<Note> = Vec::new();
        let sys =
            count(&system) + crate::tokens::MESSAGE_OVERHEAD * 2 + crate::tokens::REPLY_PRIMING;
        let no_glossary: Vec<GlossaryEntry> = Vec::new();
        let fence = "ARTICLE-00000000";
        let brief = count(&prompts.render("brief.md", &brief_vars("", &no_glossary, fence, ""))?);
        let map = count(&prompts.render("map.md", &map_vars("", fence, "", 10, 10))?);
        let collapse =
            count(&prompts.render("collapse.md", &collapse_vars("", fence, &empty_notes))?);
        let reduce = count(&prompts.render(
            "reduce.md",
            &reduce_vars("", &no_glossary, fence, &empty_notes),
        )?);
        let select =
            count(&prompts.render("select.md", &select_vars("", &no_glossary, fence, &[]))?);
        let instructions = std::sync::Arc::new(FormatInstructions {
            enforced: prompts.render("format.md", &serde_json::json!({"enforced": true}))?,
            free: prompts.render("format.md", &serde_json::json!({"enforced": false}))?,
        });
        // The client appends one variant to brief and reduce prompts: plan for the longer.
        let format = count(&instructions.enforced).max(count(&instructions.free)) + 2;
        Ok(Summarizer {
            client,
            prompts,
            chunking,
            summary: settings.summary,
            glossary,
            system,
            instructions,
            overheads: Overheads {
                brief: sys + brief,
                map: sys + map,
                collapse: sys + collapse,
                reduce: sys + reduce,
                select: sys + select,
                format,
                per_note: 8,
            },
        })
    }

    /// Server tokens per counted token: the margin for foreign tokenizers and what has been
    /// learnt of this server.
    fn factor(&self) -> f64 {
        let margin = if self.chunking.exact_counts {
            0.02
        } else {
            self.chunking.margin as f64
        };
        (1.0 + margin) * self.client.calibration().ratio().max(1.0)
    }

    /// Counted tokens that fit in the prompt of a call for `purpose` whose reply may take up to
    /// `ceiling` tokens. Two things bound it:
    ///
    /// - the context window, which must hold the prompt and the whole reply allowed (and a
    ///   reasoning model's room to think); the window is the server's when it said it is smaller
    ///   than configured, and a server that cut a prompt silently caps every prompt below what
    ///   it kept;
    /// - the provider's token budget: one request, with the reply it reserves, must fit what a
    ///   minute of the tokens-per-minute limit can ever admit.
    fn room(&self, purpose: Purpose, ceiling: u32) -> usize {
        let reasoning = self.client.reasoning_room() as usize;
        let window = self.client.context_window();
        let mut server_room = window.saturating_sub(ceiling as usize + reasoning);
        if let Some(max_prompt) = self.client.max_prompt_tokens() {
            server_room = server_room.min(max_prompt);
        }
        let reserved = self.client.reply_budget(purpose, 1, 0, ceiling) as usize + reasoning;
        server_room = server_room.min(self.client.request_token_budget().saturating_sub(reserved));
        (server_room as f64 / self.factor()) as usize
    }

    /// Plans how to summarise `clean`.
    pub fn plan(&self, clean: &CleanArticle) -> Plan {
        if self.summary.strategy == Strategy::Select {
            let tok = self.client.tokenizer();
            let picked = self.pick(clean);
            if !picked.is_empty() {
                let tokens = tok.count(&clean.text);
                let sentences: usize = picked.iter().map(|s| tok.count(&s.text) + 4).sum();
                return Plan::one_call(
                    clean,
                    tokens,
                    self.overheads.select + sentences,
                    self.client.reply_budget(
                        Purpose::Brief,
                        1,
                        self.overheads.select + sentences,
                        self.chunking.brief_max_tokens,
                    ),
                );
            }
        }
        let c = self.chunking;
        let rooms = Rooms {
            brief: self.room(Purpose::Brief, c.brief_max_tokens),
            notes: self.room(Purpose::Map, c.notes_max_tokens),
            brief_reply: self
                .client
                .reply_budget(Purpose::Brief, 1, 0, c.brief_max_tokens),
            notes_reply: self
                .client
                .reply_budget(Purpose::Map, 1, 0, c.notes_max_tokens),
        };
        plan(
            clean,
            self.client.tokenizer(),
            self.chunking,
            self.overheads,
            rooms,
        )
    }

    fn glossary_for(&self, text: &str) -> Vec<GlossaryEntry<'a>> {
        self.glossary
            .iter()
            .filter(|(ko, _)| text.contains(ko.as_str()))
            .map(|(ko, en)| GlossaryEntry { ko, en })
            .collect()
    }

    fn messages(&self, user: String) -> Vec<Message> {
        vec![Message::system(self.system.clone()), Message::user(user)]
    }

    fn json_format(&self) -> ReplyFormat {
        ReplyFormat::Json {
            name: "brief",
            schema: brief::content_schema(),
            bounded: brief::content_schema_bounded(),
            instructions: self.instructions.clone(),
        }
    }

    /// The sentences the select strategy picks from `clean`.
    fn pick(&self, clean: &CleanArticle) -> Vec<crate::select::Selected> {
        crate::select::select(&clean.text, clean.title.as_deref(), self.summary.sentences)
    }

    /// The messages of the one call that briefs `clean` whole, and their size counted without
    /// tokenizing the article again (`tokens`: the article's, as the plan counted them).
    fn one_call_prompt(
        &self,
        clean: &CleanArticle,
        tokens: usize,
    ) -> Result<(Vec<Message>, usize), ArticleError> {
        let title = clean.title.clone().unwrap_or_default();
        let glossary = self.glossary_for(&clean.text);
        let prompt = self.prompts.render(
            "brief.md",
            &brief_vars(&title, &glossary, &fence_for(&clean.text), &clean.text),
        )?;
        let tok = self.client.tokenizer();
        let glossary: usize = glossary
            .iter()
            .map(|g| tok.count(g.ko) + tok.count(g.en) + 4)
            .sum();
        let counted = self.overheads.brief + tokens + tok.count(&title) + glossary;
        Ok((self.messages(prompt), counted))
    }

    /// The request that briefs `clean` in one call, as a one-call plan sends it first: what
    /// the throughput bench counts as the work of an article.
    pub fn brief_request(&self, clean: &CleanArticle) -> Result<ChatRequest, ArticleError> {
        let tokens = self.client.tokenizer().count(&clean.text);
        let (messages, counted) = self.one_call_prompt(clean, tokens)?;
        Ok(ChatRequest {
            messages,
            max_tokens: self.chunking.brief_max_tokens,
            format: self.json_format(),
            purpose: Purpose::Brief,
            partial_ok: false,
            counted: Some(counted),
            units: 1,
        })
    }

    /// Summarises `clean` following `plan`, adding what the calls cost to `tally` (also when it
    /// fails: the report counts failed articles' calls too).
    pub async fn summarize(
        &self,
        clean: &CleanArticle,
        plan: &Plan,
        tally: &mut Tally,
    ) -> Result<BriefContent, ArticleError> {
        let title = clean.title.clone().unwrap_or_default();
        if self.summary.strategy == Strategy::Select {
            let picked = self.pick(clean);
            if !picked.is_empty() {
                return self.select_brief(&title, clean, picked, tally).await;
            }
            tracing::info!(
                "no sentence of the article reads as prose; briefing it from the whole text instead"
            );
        }
        if plan.one_call {
            let (messages, counted) = self.one_call_prompt(clean, plan.tokens)?;
            return match self
                .brief_call(messages, Purpose::Brief, Some(counted), &clean.text, tally)
                .await
            {
                Err(ArticleError::Llm(LlmError::ContextLength { message })) => {
                    // The server counts more tokens than we do: go the map-reduce way instead.
                    tracing::info!(%message, "article too long for one call after all; mapping it in chunks");
                    let budget = (plan.tokens / 2).max(200);
                    let chunks = chunk::chunk(&clean.text, self.client.tokenizer(), budget);
                    self.map_reduce(&title, &clean.text, &chunks, tally).await
                }
                other => other,
            };
        }
        self.map_reduce(&title, &clean.text, &plan.chunks, tally)
            .await
    }

    async fn map_reduce(
        &self,
        title: &str,
        text: &str,
        chunks: &[Chunk],
        tally: &mut Tally,
    ) -> Result<BriefContent, ArticleError> {
        let total = chunks.len();
        let results =
            join_all(chunks.iter().map(|c| {
                self.map_chunk(title, c.text.clone(), Some(c.tokens), c.index + 1, total)
            }))
            .await;
        let passages = Passages::new(text);
        let mut notes = Vec::new();
        for (note, t) in all_or_first_error(results, tally)? {
            tally.merge(t);
            notes.push(Note {
                index: notes.len() + 1,
                text: verified_notes(&note, &passages),
            });
        }
        loop {
            notes = self.collapse_until_fits(title, notes, tally).await?;
            for n in &mut notes {
                n.text = verified_notes(&n.text, &passages);
            }
            let prompt = self.prompts.render(
                "reduce.md",
                &reduce_vars(
                    title,
                    &self.glossary_for(text),
                    &fence_for(&notes_text(&notes)),
                    &notes,
                ),
            )?;
            match self
                .brief_call(self.messages(prompt), Purpose::Reduce, None, text, tally)
                .await
            {
                Err(ArticleError::Llm(LlmError::ContextLength { .. })) if notes.len() > 1 => {
                    // Still too long for the server: collapse one more level, in pairs.
                    notes = self.collapse(title, notes, 2, tally).await?;
                }
                other => return other,
            }
        }
    }

    /// Notes on one chunk. A chunk the server finds too long is split in two and each half is
    /// noted; the halves' notes are joined.
    fn map_chunk(
        &self,
        title: &str,
        text: String,
        tokens: Option<usize>,
        index: usize,
        total: usize,
    ) -> BoxFuture<'_, Result<(String, Tally), ArticleError>> {
        let title = title.to_string();
        let counted =
            tokens.map(|t| self.overheads.map + t + self.client.tokenizer().count(&title));
        async move {
            let prompt = self.prompts.render(
                "map.md",
                &map_vars(&title, &fence_for(&text), &text, index, total),
            )?;
            let request = ChatRequest {
                messages: self.messages(prompt),
                max_tokens: self.chunking.notes_max_tokens,
                format: ReplyFormat::Text,
                purpose: Purpose::Map,
                partial_ok: true,
                counted,
                units: 1,
            };
            match self.client.chat(request).await {
                Ok(reply) => {
                    let mut t = Tally::default();
                    let notes = t.notes(&reply, || format!("the notes on part {index} of {total}"));
                    Ok((notes, t))
                }
                Err(LlmError::ContextLength { message }) => {
                    let tokens = self.client.tokenizer().count(&text);
                    if tokens < 100 {
                        return Err(LlmError::ContextLength { message }.into());
                    }
                    tracing::info!(tokens, "chunk too long for the server; splitting it in two");
                    let halves = chunk::chunk(&text, self.client.tokenizer(), tokens.div_ceil(2));
                    let mut notes = Vec::new();
                    let mut t = Tally::default();
                    for half in halves {
                        let (n, ht) = self
                            .map_chunk(&title, half.text, Some(half.tokens), index, total)
                            .await?;
                        notes.push(n);
                        t.merge(ht);
                    }
                    Ok((notes.join("\n"), t))
                }
                Err(e) => Err(e.into()),
            }
        }
        .boxed()
    }

    /// Collapses notes in groups until the reduce prompt fits.
    async fn collapse_until_fits(
        &self,
        title: &str,
        mut notes: Vec<Note>,
        tally: &mut Tally,
    ) -> Result<Vec<Note>, ArticleError> {
        let tok = self.client.tokenizer();
        let room = self.room(Purpose::Reduce, self.chunking.brief_max_tokens);
        loop {
            let size = self.overheads.reduce
                + self.overheads.format
                + notes
                    .iter()
                    .map(|n| tok.count(&n.text) + self.overheads.per_note)
                    .sum::<usize>();
            if size <= room || notes.len() <= 1 {
                return Ok(notes);
            }
            // Groups as large as a collapse call allows, at least two notes each.
            let capacity = self
                .room(Purpose::Collapse, self.chunking.notes_max_tokens)
                .saturating_sub(self.overheads.collapse);
            let mut groups = 0usize;
            let mut current = 0usize;
            for n in &notes {
                let t = tok.count(&n.text) + self.overheads.per_note;
                if current > 0 && current + t > capacity {
                    groups += 1;
                    current = 0;
                }
                current += t;
            }
            groups += 1;
            let per_group = notes.len().div_ceil(groups.max(1)).max(2);
            notes = self.collapse(title, notes, per_group, tally).await?;
        }
    }

    /// One collapse level: notes in groups of `per_group` → one note per group.
    async fn collapse(
        &self,
        title: &str,
        notes: Vec<Note>,
        per_group: usize,
        tally: &mut Tally,
    ) -> Result<Vec<Note>, ArticleError> {
        let groups: Vec<Vec<Note>> = notes
            .chunks(per_group.max(2))
            .map(<[Note]>::to_vec)
            .collect();
        let calls = groups.into_iter().map(|group| async move {
            if group.len() == 1 {
                return Ok::<_, ArticleError>((group[0].text.clone(), Tally::default()));
            }
            let prompt = self.prompts.render(
                "collapse.md",
                &collapse_vars(title, &fence_for(&notes_text(&group)), &group),
            )?;
            let reply = self
                .client
                .chat(ChatRequest {
                    messages: self.messages(prompt),
                    max_tokens: self.chunking.notes_max_tokens,
                    format: ReplyFormat::Text,
                    purpose: Purpose::Collapse,
                    partial_ok: true,
                    counted: None,
                    units: 1,
                })
                .await?;
            let mut t = Tally::default();
            let notes = t.notes(&reply, || "the merged notes on some parts".to_string());
            Ok((notes, t))
        });
        let results = all_or_first_error(join_all(calls).await, tally)?;
        Ok(results
            .into_iter()
            .enumerate()
            .map(|(i, (text, t))| {
                tally.merge(t);
                Note { index: i + 1, text }
            })
            .collect())
    }

    /// A call that must return a brief, with one repair call if the reply is not one, and one
    /// more if its quotes are not the words of `source` (the cleaned article).
    async fn brief_call(
        &self,
        messages: Vec<Message>,
        purpose: Purpose,
        counted: Option<usize>,
        source: &str,
        tally: &mut Tally,
    ) -> Result<BriefContent, ArticleError> {
        let call = JsonCall {
            client: self.client,
            prompts: self.prompts,
            format: self.json_format(),
            max_tokens: self.chunking.brief_max_tokens,
            purpose,
            what: "brief",
            counted,
            units: 1,
        };
        let (content, reply) = call
            .run_keeping_reply(messages.clone(), brief::parse_content, tally)
            .await?;
        self.ground(messages, content, reply, source, tally).await
    }

    /// One repair call for the key points and figures whose quotes are missing or not in
    /// `source`, showing the model those points. The repaired brief is taken only if fewer of
    /// its points fail; otherwise (or if the call fails) the brief stays as it was, and the check
    /// step flags what fails.
    async fn ground(
        &self,
        messages: Vec<Message>,
        content: BriefContent,
        reply: String,
        source: &str,
        tally: &mut Tally,
    ) -> Result<BriefContent, ArticleError> {
        let problems = check::ungrounded(&content, source);
        if problems.is_empty() {
            return Ok(content);
        }
        tracing::info!(
            points = problems.len(),
            "some quotes are not the article's words; asking once more"
        );
        let mut repair = messages;
        repair.push(Message::assistant(reply));
        repair.push(Message::user(
            self.prompts.render("ground.md", &ground_vars(&problems))?,
        ));
        let request = ChatRequest {
            messages: repair,
            max_tokens: self.chunking.brief_max_tokens,
            format: self.json_format(),
            purpose: Purpose::Repair,
            partial_ok: false,
            counted: None,
            units: 1,
        };
        let reply = match self.client.chat(request.clone()).await {
            Ok(reply) => reply,
            Err(e) if e.is_fatal() || matches!(e, LlmError::Cancelled) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(
                    "the repair call for quotes failed ({e}); the brief keeps its ungrounded points, flagged"
                );
                return Ok(content);
            }
        };
        tally.add(&reply);
        match brief::parse_content(&reply.content) {
            Ok(repaired) if check::ungrounded(&repaired, source).len() < problems.len() => {
                Ok(repaired)
            }
            _ => {
                // Not used: the next run asks again instead of reusing a useless answer.
                self.client.forget(&request).await;
                tracing::info!(
                    "the repair did not ground more points; keeping the first brief, flagged"
                );
                Ok(content)
            }
        }
    }

    /// The select strategy: the model writes the brief from the picked sentences, one key
    /// point per sentence, and each sentence becomes its point's quote ([`settle_select`] says
    /// what the sentences settle, figures included, before the reply is judged).
    async fn select_brief(
        &self,
        title: &str,
        clean: &CleanArticle,
        picked: Vec<crate::select::Selected>,
        tally: &mut Tally,
    ) -> Result<BriefContent, ArticleError> {
        let sentences: Vec<&str> = picked.iter().map(|s| s.text.as_str()).collect();
        let joined = sentences.join("\n");
        let prompt = self.prompts.render(
            "select.md",
            &select_vars(
                title,
                &self.glossary_for(&joined),
                &fence_for(&joined),
                &sentences,
            ),
        )?;
        let call = JsonCall {
            client: self.client,
            prompts: self.prompts,
            format: ReplyFormat::Json {
                name: "brief",
                schema: brief::select_schema(picked.len(), false),
                bounded: brief::select_schema(picked.len(), true),
                // select.md spells out its own fields (one point per sentence).
                instructions: Default::default(),
            },
            max_tokens: self.chunking.brief_max_tokens,
            purpose: Purpose::Brief,
            what: "brief",
            counted: None,
            units: 1,
        };
        // The sentences settle what the model lost before the brief is judged: a reply whose
        // points are not Korean at all is still a brief of the picked sentences, not a failure.
        let parse = |reply: &str| {
            brief::parse_content_then(reply, |c| settle_select(c, &picked, title, &clean.text))
        };
        call.run(self.messages(prompt), parse, tally).await
    }
}

/// Select, then write: settles a parsed reply against the picked sentences before it is
/// judged (and before its texts are trimmed, so that a point the model left empty still pairs
/// with its own sentence).
///
/// - Each key point gets its sentence as its quote, by position; points past the picked
///   sentences are cut. The sentences stand in for what the model lost
///   ([`keep_what_the_sentences_say`]).
/// - A title or summary that is not Korean, or that carries a figure none of the sentences (nor
///   the headline) has, gives way to the article's headline and its first picked sentence
///   (news puts what happened first), as does a summary that only repeats the title. Without a
///   headline, the title takes the first sentence and the summary the second.
/// - Each figure is quoted with the first picked sentence (else the first sentence of the
///   article) that carries the numbers of its Korean side. One whose Korean has numbers that
///   no sentence of the article carries is dropped: the model made it up (the 270M model
///   turned "1.8기가와트시" into "2.0GW", "3.0GW"…), and a select brief's figures are its
///   sentences'. One without numbers (`두 배`) stays, unquoted, and the checks flag it.
fn settle_select(
    content: &mut BriefContent,
    picked: &[crate::select::Selected],
    title: &str,
    article: &str,
) {
    use crate::figures::SourceFigures;
    content.key_points.truncate(picked.len());
    for (point, s) in content.key_points.iter_mut().zip(picked) {
        point.quotes = vec![Quote {
            text: s.text.clone(),
            start: Some(s.start),
            line: Some(s.line),
        }];
    }
    let sentences: Vec<&str> = picked.iter().map(|s| s.text.as_str()).collect();
    let joined = sentences.join("\n");
    let headline = brief::plain_heading(title);
    let known = SourceFigures::new(&format!("{headline}\n{joined}"));
    let strays = |ko: &str| !brief::is_korean(ko) || !known.unsupported(ko).is_empty();
    let mut lead = sentences.iter();
    if strays(&content.title.ko) {
        let stand_in = if brief::is_korean(&headline) {
            Some(headline)
        } else {
            lead.next().map(|s| s.to_string())
        };
        if let Some(stand_in) = stand_in {
            tracing::debug!(title = %content.title.ko, stand_in = %stand_in, "the model's Korean title strays from the sentences");
            content.title.ko = stand_in;
        }
    }
    let only_the_title = squash(&content.summary.ko) == squash(&content.title.ko);
    if let Some(next) = lead.next()
        && (strays(&content.summary.ko) || only_the_title)
    {
        tracing::debug!(summary = %content.summary.ko, stand_in = %next, "the model's Korean summary strays from the sentences");
        content.summary.ko = next.to_string();
    }
    let title_ko = content.title.ko.clone();
    keep_what_the_sentences_say(content, &title_ko);

    let picked_passages = Passages::new(&joined);
    let article = Passages::new(article);
    content.figures.retain_mut(|f| {
        let found = picked_passages
            .sentence_with_figures(&f.ko)
            .or_else(|| article.sentence_with_figures(&f.ko))
            .and_then(|found| article.find(&found.text).ok());
        match found {
            Some(found) => {
                f.quotes = vec![Quote {
                    text: found.text,
                    start: Some(found.start),
                    line: Some(found.line),
                }];
                true
            }
            None if crate::figures::extract(&f.ko).is_empty() => {
                f.quotes.clear();
                true
            }
            None => {
                tracing::debug!(figure = %f.ko, "no sentence of the article carries this figure; dropped");
                false
            }
        }
    });
}

/// Select, then write: each key point is its picked sentence shortened, and that sentence is its
/// quote. A small model often "shortens" a sentence into the headline's first name, or into the
/// same words as another point, losing the sentence's figures (the 270M model of the quickstart
/// did so for most points), or adds figures of its own ("1.8GWh, 1.8GWh"). Where a point has
/// lost a figure of its sentence, has one its sentence does not, is not Korean, or only repeats
/// the title or an earlier point, the sentence itself stands as the Korean point: it is the
/// article's own words, and says what the point was asked to keep. The English side stays the
/// model's (the bilingual check still reads it).
fn keep_what_the_sentences_say(content: &mut BriefContent, title_ko: &str) {
    use crate::figures::SourceFigures;
    let mut seen: Vec<String> = vec![squash(title_ko)];
    for (i, point) in content.key_points.iter_mut().enumerate() {
        let Some(sentence) = point.quotes.first().map(|q| q.text.clone()) else {
            continue;
        };
        let ko = squash(&point.ko);
        let lost = SourceFigures::new(&point.ko).unsupported(&sentence);
        let added = SourceFigures::new(&sentence).unsupported(&point.ko);
        let korean = brief::is_korean(&point.ko);
        let repeated = !ko.is_empty() && seen.contains(&ko);
        if !lost.is_empty() || !added.is_empty() || !korean || repeated {
            tracing::debug!(
                point = i + 1,
                lost = ?lost.iter().map(|f| f.text.as_str()).collect::<Vec<_>>(),
                added = ?added.iter().map(|f| f.text.as_str()).collect::<Vec<_>>(),
                korean,
                repeated,
                "the model's point strays from what its sentence says; the sentence stands as written"
            );
            point.ko = sentence;
        }
        seen.push(squash(&point.ko));
    }
}

/// A text compared for repetition: letters and digits only.
fn squash(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).collect()
}

/// Notes as the next step sees them: each quoted line (`> …`) is looked up in the article and
/// replaced by the article's own text, or dropped if it is not the article's words (its note
/// stays, unquoted), so that the brief's quotes can only come from real sentences.
fn verified_notes(notes: &str, passages: &Passages<'_>) -> String {
    let mut out = Vec::new();
    for line in notes.lines() {
        let Some(quote) = line.trim_start().strip_prefix('>') else {
            out.push(line.to_string());
            continue;
        };
        match passages.find(quote.trim()) {
            Ok(found) => out.push(format!("  > {}", found.text)),
            Err(problem) => {
                tracing::debug!(quote = quote.trim(), %problem, "a note's quote dropped")
            }
        }
    }
    out.join("\n")
}

/// A call whose reply must parse as JSON of a given shape. A reply that does not gets one
/// repair call, which quotes the model's reply and what was wrong with it; a second failure is
/// an error, never a half-parsed result.
pub(crate) struct JsonCall<'a> {
    pub client: &'a ChatClient,
    pub prompts: &'a Prompts,
    pub format: ReplyFormat,
    pub max_tokens: u32,
    pub purpose: Purpose,
    /// What the reply should be, for messages: "brief", "digest".
    pub what: &'static str,
    /// The first request's size, if the caller knows it (see `ChatRequest::counted`).
    pub counted: Option<usize>,
    /// Units of input the reply covers (see `ChatRequest::units`).
    pub units: u32,
}

impl JsonCall<'_> {
    pub(crate) async fn run<T>(
        self,
        messages: Vec<Message>,
        parse: impl Fn(&str) -> Result<T, String>,
        tally: &mut Tally,
    ) -> Result<T, ArticleError> {
        Ok(self.run_keeping_reply(messages, parse, tally).await?.0)
    }

    /// [`JsonCall::run`], also returning the text of the reply that parsed (for a later repair
    /// that shows the model its own answer).
    pub(crate) async fn run_keeping_reply<T>(
        self,
        messages: Vec<Message>,
        parse: impl Fn(&str) -> Result<T, String>,
        tally: &mut Tally,
    ) -> Result<(T, String), ArticleError> {
        let request = |messages: Vec<Message>, purpose: Purpose, counted| ChatRequest {
            messages,
            max_tokens: self.max_tokens,
            format: self.format.clone(),
            purpose,
            partial_ok: false,
            counted,
            units: self.units,
        };
        let first = request(messages.clone(), self.purpose, self.counted);
        let reply = self.client.chat(first.clone()).await?;
        tally.add(&reply);
        let problem = match parse(&reply.content) {
            Ok(value) => return Ok((value, reply.content)),
            Err(problem) => problem,
        };
        // Not kept: the next run asks again instead of failing the same way for free.
        self.client.forget(&first).await;
        let (purpose, what) = (self.purpose, self.what);
        tracing::info!(%purpose, %problem, "the reply is not a valid {what}; asking once more");
        tracing::debug!(reply = %crate::text::truncate(&reply.content, 400), "the invalid reply");
        let mut repair = messages;
        repair.push(Message::assistant(reply.content));
        repair.push(Message::user(
            self.prompts.render("repair.md", &repair_vars(&problem))?,
        ));
        let repair = request(repair, Purpose::Repair, None);
        let reply = self.client.chat(repair.clone()).await?;
        tally.add(&reply);
        match parse(&reply.content) {
            Ok(value) => Ok((value, reply.content)),
            Err(problem) => {
                self.client.forget(&repair).await;
                Err(ArticleError::InvalidReply { what, problem })
            }
        }
    }
}

/// All results, or the first error once every call has finished: calls that succeeded beside a
/// failing one were paid for and cached, and their cost belongs in the report.
fn all_or_first_error(
    results: Vec<Result<(String, Tally), ArticleError>>,
    tally: &mut Tally,
) -> Result<Vec<(String, Tally)>, ArticleError> {
    if let Some(i) = results.iter().position(Result::is_err) {
        let mut results = results;
        let err = results.swap_remove(i).expect_err("an error at i");
        for (_, t) in results.into_iter().flatten() {
            tally.merge(t);
        }
        return Err(err);
    }
    Ok(results.into_iter().flatten().collect())
}

fn notes_text(notes: &[Note]) -> String {
    notes
        .iter()
        .map(|n| n.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// What fits in one call, and the reply budgets the calls will reserve.
#[derive(Debug, Clone, Copy)]
struct Rooms {
    /// Counted prompt tokens a brief call (one-call or reduce) may carry.
    brief: usize,
    /// Counted prompt tokens a notes call (map or collapse) may carry.
    notes: usize,
    /// The reply budgets those calls will be sent with.
    brief_reply: u32,
    notes_reply: u32,
}

/// Plans an article: one call whenever the article fits one call (and the configured quality
/// cap, if any), else map-reduce with chunks as large as a notes call takes; how many calls, and
/// how many tokens they will reserve.
fn plan(
    clean: &CleanArticle,
    tok: &Tokenizer,
    chunking: &ChunkSettings,
    o: Overheads,
    rooms: Rooms,
) -> Plan {
    let tokens = tok.count(&clean.text);
    // Brief and reduce prompts carry the format instructions on top of their messages.
    let (brief, reduce) = (o.brief + o.format, o.reduce + o.format);
    let capped = |n: usize| match chunking.chunk_tokens {
        0 => n,
        cap => n.min(cap),
    };
    if brief + tokens <= rooms.brief && capped(tokens) == tokens {
        return Plan::one_call(clean, tokens, brief + tokens, rooms.brief_reply);
    }
    let budget = capped(rooms.notes.saturating_sub(o.map)).max(200);
    let chunks = chunk::chunk(&clean.text, tok, budget);
    let mut calls = chunks.len();
    let mut prompt: u64 = chunks.iter().map(|c| (o.map + c.tokens) as u64).sum();
    let mut completion = chunks.len() as u64 * rooms.notes_reply as u64;
    let mut steps = vec![PlanStep {
        calls: chunks.len(),
        prompt_tokens: prompt,
    }];
    // Reduce tree, assuming every note is as long as its budget.
    let note = rooms.notes_reply as usize + o.per_note;
    let mut notes = chunks.len();
    let capacity = rooms.notes.saturating_sub(o.collapse).max(2 * note);
    while notes > 1 && reduce + notes * note > rooms.brief {
        let per_group = (capacity / note).max(2);
        let groups = notes.div_ceil(per_group);
        calls += groups;
        prompt += (groups * o.collapse + notes * note) as u64;
        steps.push(PlanStep {
            calls: groups,
            prompt_tokens: (groups * o.collapse + notes * note) as u64,
        });
        completion += groups as u64 * rooms.notes_reply as u64;
        notes = groups;
    }
    calls += 1;
    prompt += (reduce + notes * note) as u64;
    completion += rooms.brief_reply as u64;
    steps.push(PlanStep {
        calls: 1,
        prompt_tokens: (reduce + notes * note) as u64,
    });
    Plan {
        tokens,
        chunks,
        one_call: false,
        planned_calls: calls,
        est_prompt_tokens: prompt,
        est_completion_tokens: completion,
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::Encoding;

    fn settings(chunk_tokens: usize) -> ChunkSettings {
        ChunkSettings {
            encoding: Encoding::O200kBase,
            exact_counts: true,
            chunk_tokens,
            margin: 0.0,
            brief_max_tokens: 500,
            notes_max_tokens: 200,
        }
    }

    fn overheads() -> Overheads {
        Overheads {
            brief: 300,
            map: 150,
            collapse: 120,
            reduce: 300,
            select: 300,
            per_note: 8,
            format: 0,
        }
    }

    fn article(sentences: usize) -> CleanArticle {
        let text = (0..sentences)
            .map(|i| format!("{i}번째 문장에서 정부는 예산을 5% 늘렸다고 밝혔다."))
            .collect::<Vec<_>>()
            .join("\n");
        crate::clean::clean(&text, None)
    }

    /// What a window of `window` tokens and a per-minute budget of `tpm` tokens leave, with
    /// replies reserved at 250 (briefs) and 100 (notes) tokens.
    fn rooms(window: usize, tpm: usize) -> Rooms {
        let s = settings(0);
        Rooms {
            brief: (window - s.brief_max_tokens as usize).min(tpm - 250),
            notes: (window - s.notes_max_tokens as usize).min(tpm - 100),
            brief_reply: 250,
            notes_reply: 100,
        }
    }

    /// `article`'s plan with chunks capped at `chunk_tokens` (0: no cap) within `rooms`.
    fn planned(article: &CleanArticle, chunk_tokens: usize, rooms: Rooms) -> Plan {
        let tok = Tokenizer::new(Encoding::O200kBase);
        plan(article, &tok, &settings(chunk_tokens), overheads(), rooms)
    }

    /// `article`'s text in tokens, counted as the plan counts it.
    fn tokens_of(article: &CleanArticle) -> usize {
        Tokenizer::new(Encoding::O200kBase).count(&article.text)
    }

    #[test]
    fn short_articles_take_one_call() {
        let p = planned(&article(5), 0, rooms(8192, 200_000));
        assert!(p.one_call);
        assert_eq!(p.planned_calls, 1);
        assert_eq!(p.chunks.len(), 1);
        assert_eq!(
            p.est_completion_tokens, 250,
            "the reply as it will be reserved"
        );
        assert_eq!(
            p.steps,
            vec![PlanStep {
                calls: 1,
                prompt_tokens: p.est_prompt_tokens
            }]
        );
    }

    #[test]
    fn an_article_that_fits_the_window_takes_one_call_however_long() {
        let a = article(400);
        let tokens = tokens_of(&a);
        assert!(tokens > 6000, "{tokens}");
        let p = planned(&a, 0, rooms(128_000, 2_000_000));
        assert!(p.one_call);
        assert_eq!(p.est_prompt_tokens, (300 + tokens) as u64);
    }

    #[test]
    fn a_quality_cap_maps_and_reduces_longer_articles() {
        let a = article(200);
        let p = planned(&a, 1000, rooms(128_000, 2_000_000));
        assert!(!p.one_call);
        assert!(p.chunks.len() >= 3, "{}", p.chunks.len());
        assert!(p.chunks.iter().all(|c| c.tokens <= 1000));
        assert_eq!(p.planned_calls, p.chunks.len() + 1);
        // Two steps (two batch phases): the notes, then the reduce.
        let calls: Vec<usize> = p.steps.iter().map(|s| s.calls).collect();
        assert_eq!(calls, vec![p.chunks.len(), 1]);
        let prompt: u64 = p.steps.iter().map(|s| s.prompt_tokens).sum();
        assert_eq!(prompt, p.est_prompt_tokens);
    }

    #[test]
    fn chunks_are_as_large_as_the_window_allows() {
        let a = article(600);
        let tokens = tokens_of(&a);
        let r = rooms(8192, 2_000_000);
        let p = planned(&a, 0, r);
        assert!(!p.one_call);
        let fewest = tokens.div_ceil(r.notes - 150);
        assert!(
            (fewest..=fewest + 1).contains(&p.chunks.len()),
            "{} chunks of {tokens} tokens",
            p.chunks.len()
        );
        assert!(p.chunks.iter().all(|c| 150 + c.tokens <= r.notes));
    }

    #[test]
    fn one_request_fits_the_providers_token_budget() {
        let a = article(400);
        // A huge window, but 4,000 tokens a minute: no request may carry more.
        let r = rooms(1_000_000, 4000);
        let p = planned(&a, 0, r);
        assert!(!p.one_call);
        assert!(p.chunks.iter().all(|c| 150 + c.tokens + 100 <= 4000));
    }

    #[test]
    fn overflowing_notes_plan_a_reduce_tree() {
        let a = article(400);
        // A small window: a few notes per reduce call at most.
        let p = planned(&a, 300, rooms(1500, 2_000_000));
        assert!(!p.one_call);
        assert!(
            p.planned_calls > p.chunks.len() + 1,
            "{} calls for {} chunks",
            p.planned_calls,
            p.chunks.len()
        );
        // A step per tree level between the notes and the reduce, each smaller than the last.
        assert!(p.steps.len() >= 3, "{:?}", p.steps);
        assert_eq!(p.steps[0].calls, p.chunks.len());
        assert!(p.steps.windows(2).all(|w| w[1].calls < w[0].calls));
        assert_eq!(p.steps.last().unwrap().calls, 1);
        let calls: usize = p.steps.iter().map(|s| s.calls).sum();
        assert_eq!(calls, p.planned_calls);
    }
}

#[cfg(test)]
mod select_tests {
    use super::*;
    use crate::brief::{Bilingual, Grounded};

    fn point(ko: &str, sentence: &str) -> Grounded {
        Grounded {
            ko: ko.into(),
            en: "a point".into(),
            quotes: vec![Quote {
                text: sentence.into(),
                start: Some(0),
                line: Some(1),
            }],
        }
    }

    fn content(points: Vec<Grounded>) -> BriefContent {
        BriefContent {
            title: Bilingual {
                ko: "다온유통".into(),
                en: "Daon".into(),
            },
            summary: Bilingual::default(),
            key_points: points,
            entities: vec![],
            figures: vec![],
        }
    }

    #[test]
    fn a_point_that_lost_its_sentence_s_figures_or_repeats_gives_way_to_the_sentence() {
        let s1 = "다온유통이 이음24를 1조 1,800억 원에 인수한다.";
        let s2 = "이음24는 점포 3,200개를 운영한다.";
        let s3 = "업계 순위도 5위에서 3위로 올라선다.";
        let s4 = "인수는 연내 마무리된다.";
        let mut c = content(vec![
            point("다온유통", s1),            // lost 1조 1,800억 원
            point("이음24 점포 3,200개", s2), // kept: stays the model's
            point("Daon rises to third", s3), // no Hangul
            point("이음24 점포 3,200개", s4), // repeats point 2
        ]);
        keep_what_the_sentences_say(&mut c, "다온유통");
        let ko: Vec<&str> = c.key_points.iter().map(|p| p.ko.as_str()).collect();
        assert_eq!(ko, vec![s1, "이음24 점포 3,200개", s3, s4]);
        // The English stays the model's.
        assert!(c.key_points.iter().all(|p| p.en == "a point"));
    }

    #[test]
    fn a_point_with_a_figure_its_sentence_does_not_have_gives_way_to_the_sentence() {
        let s = "햇살그리드는 저장용량 1.8기가와트시 규모의 단지를 짓는다.";
        let mut c = content(vec![point("1.8GWh, 2.0GWh 전력", s)]);
        keep_what_the_sentences_say(&mut c, "제주 ESS");
        assert_eq!(c.key_points[0].ko, s);
    }

    fn picked(texts: &[&str]) -> Vec<crate::select::Selected> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| crate::select::Selected {
                text: t.to_string(),
                start: i * 100,
                line: i + 1,
                score: 1.0,
            })
            .collect()
    }

    /// A reply of the 270M model on a real server (the local eval, 2026-11-30): every Korean
    /// field in Latin letters. The sentences settle it into a valid brief instead of a failed
    /// article: the points are their sentences, the summary the first one, the title the
    /// headline; the English stays the model's.
    #[test]
    fn a_reply_without_korean_is_settled_by_the_sentences_before_it_is_judged() {
        let sentences = [
            "다온유통이 편의점 이음24를 1조 1,800억 원에 인수한다.",
            "이음24는 전국에서 점포 3,200개를 운영한다.",
        ];
        let reply = r#"{"title":{"ko":"Koreanship","en":"Koreanship"},
            "summary":{"ko":"Koreanship (K), en:K(K)","en":"Koreanship (K)"},
            "key_points":[{"ko":"Koreanship (K)","en":"Koreanship (K)"},
                          {"ko":"Koreanship (K)","en":"Koreanship (K)"}],
            "entities":[],"figures":[]}"#;
        assert!(brief::parse_content(reply).is_err(), "invalid as it stands");
        let picked = picked(&sentences);
        let headline = "다온유통, 이음24 인수";
        let c = brief::parse_content_then(reply, |c| settle_select(c, &picked, headline, ""))
            .expect("settled into a valid brief");
        assert_eq!(c.title.ko, headline);
        assert_eq!(c.summary.ko, sentences[0]);
        let ko: Vec<&str> = c.key_points.iter().map(|p| p.ko.as_str()).collect();
        assert_eq!(ko, sentences);
        assert_eq!(c.key_points[1].quotes[0].text, sentences[1]);
        assert_eq!(c.key_points[1].quotes[0].line, Some(2));
        assert_eq!(c.summary.en, "Koreanship (K)");
    }

    #[test]
    fn a_korean_summary_with_a_figure_of_its_own_gives_way_to_the_first_sentence() {
        let sentences = ["다온유통이 이음24를 1조 1,800억 원에 인수한다."];
        let mut c = content(vec![point("다온유통이 이음24를 인수한다", sentences[0])]);
        c.summary = Bilingual {
            ko: "다온유통이 2조 원에 인수했다".into(),
            en: "Daon buys it".into(),
        };
        settle_select(&mut c, &picked(&sentences), "다온유통, 이음24 인수", "");
        assert_eq!(c.summary.ko, sentences[0]);
        assert_eq!(
            c.title.ko, "다온유통",
            "a Korean title without figures stays"
        );

        // A summary that only repeats the title says nothing more: the first sentence does.
        c.summary.ko = "다온유통".into();
        settle_select(&mut c, &picked(&sentences), "다온유통, 이음24 인수", "");
        assert_eq!(c.summary.ko, sentences[0]);
    }

    #[test]
    fn without_a_headline_the_title_takes_the_first_sentence_and_the_summary_the_second() {
        let sentences = ["다온유통이 이음24를 인수한다.", "이음24는 점포를 운영한다."];
        let mut c = content(vec![
            point("다온유통이 인수한다", sentences[0]),
            point("이음24는 점포를 운영한다", sentences[1]),
        ]);
        c.title.ko = "Daon".into();
        c.summary.ko = "Daon buys".into();
        settle_select(&mut c, &picked(&sentences), "", "");
        assert_eq!(
            (c.title.ko.as_str(), c.summary.ko.as_str()),
            (sentences[0], sentences[1])
        );
    }

    /// Points pair with sentences by position, before empty ones are trimmed away, and points
    /// past the picked sentences go.
    #[test]
    fn points_pair_with_their_own_sentences() {
        let sentences = ["다온유통이 이음24를 인수한다.", "이음24는 점포를 운영한다."];
        let picked = picked(&sentences);
        let reply = |points: &str| {
            format!(
                r#"{{"title":{{"ko":"다온유통","en":"Daon"}},"summary":{{"ko":"다온유통이 인수한다","en":"Daon buys"}},
                "key_points":[{points}],"entities":[],"figures":[]}}"#
            )
        };
        let empty_first = reply(
            r#"{"ko":"","en":""},{"ko":"이음24는 점포를 운영한다","en":"Eum24 runs stores"}"#,
        );
        let err = brief::parse_content_then(&empty_first, |c| settle_select(c, &picked, "", ""))
            .unwrap_err();
        assert!(err.contains("\"key_points[0]\".en is empty"), "{err}");
        let three = reply(
            r#"{"ko":"다온유통이 인수한다","en":"Daon buys"},{"ko":"이음24는 점포를 운영한다","en":"Eum24 runs stores"},{"ko":"덤","en":"Extra"}"#,
        );
        let c = brief::parse_content_then(&three, |c| settle_select(c, &picked, "", "")).unwrap();
        assert_eq!(c.key_points.len(), 2);
        assert_eq!(c.key_points[1].quotes[0].text, sentences[1]);
    }

    #[test]
    fn figures_are_quoted_by_their_korean_and_invented_ones_go() {
        use crate::brief::Grounded;
        let article = "다온유통이 이음24를 1조 1,800억 원에 인수한다.\n매출은 두 배로 늘었다.";
        let sentences = ["다온유통이 이음24를 1조 1,800억 원에 인수한다."];
        let mut c = content(vec![point(
            "다온유통이 이음24를 1조 1,800억 원에 인수한다",
            sentences[0],
        )]);
        let figure = |ko: &str, en: &str| Grounded {
            ko: ko.into(),
            en: en.into(),
            quotes: vec![],
        };
        c.figures = vec![
            figure("1조 1,800억 원", "1,180 billion won"), // the English is wrong: kept, quoted
            figure("두 배", "double"),                     // no number: kept, unquoted
            figure("2조 원", "2 trillion won"),            // no sentence has it: dropped
        ];
        settle_select(
            &mut c,
            &picked(&sentences),
            "다온유통, 이음24 인수",
            article,
        );
        let kept: Vec<(&str, usize)> = c
            .figures
            .iter()
            .map(|f| (f.ko.as_str(), f.quotes.len()))
            .collect();
        assert_eq!(kept, vec![("1조 1,800억 원", 1), ("두 배", 0)]);
        assert_eq!(c.figures[0].quotes[0].text, sentences[0]);
    }

    #[test]
    fn a_faithful_short_point_is_kept() {
        let s = "이날 다온유통 주가는 4.2% 내린 7만 8,300원에 마감했다.";
        let mut c = content(vec![point("다온유통 주가 4.2% 내린 7만 8,300원", s)]);
        keep_what_the_sentences_say(&mut c, "다온유통, 편의점 인수");
        assert_eq!(c.key_points[0].ko, "다온유통 주가 4.2% 내린 7만 8,300원");
    }
}
