//! `hanbrief inspect`: how one file is decoded, cleaned and chunked (no network), as text or
//! JSON: what a user reads to see why a line was removed or how many calls an article costs,
//! and, under `[summary] strategy = "select"`, which sentences would be the brief's key points.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use super::load_settings;
use crate::cli::InspectArgs;
use crate::config::{Overrides, Strategy};
use crate::error::{EXIT_OK, UsageError};
use crate::ingest::{self, InputFile};
use crate::llm::ChatClient;
use crate::prompt::Prompts;
use crate::summarize::Summarizer;
use crate::tokens::Tokenizer;
use crate::{clean, render};

/// The decoding, cleaning and chunk plan of one file, as `inspect` prints it.
#[derive(serde::Serialize)]
struct Inspection {
    path: String,
    encoding: String,
    /// Invalid byte sequences replaced while decoding (0 for a clean file).
    replaced: usize,
    format: String,
    bytes: usize,
    chars_raw: usize,
    chars_clean: usize,
    tokens: usize,
    tokenizer: String,
    exact_tokens: bool,
    title: Option<String>,
    one_call: bool,
    planned_calls: usize,
    cleaned: String,
    chunks: Vec<crate::chunk::Chunk>,
    /// The sentences the select strategy picks (empty under the free strategy).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    selected: Vec<crate::select::Selected>,
    removed: Vec<clean::Removed>,
}

/// `hanbrief inspect FILE`: decoding, cleaning and the chunk plan of one file, with no network.
pub(super) fn run(config_flag: &Option<PathBuf>, args: InspectArgs) -> Result<u8> {
    let settings = load_settings(
        config_flag,
        Overrides {
            model: args.model,
            strategy: args.strategy.map(crate::cli::StrategyArg::name),
            ..Default::default()
        },
    )?;
    let input = InputFile {
        path: args.file.clone(),
        rel: args
            .file
            .file_name()
            .map(Into::into)
            .unwrap_or_else(|| args.file.clone()),
    };
    let usage = |message: String| anyhow::Error::new(UsageError(message));
    if !args.file.is_file() {
        return Err(usage(format!("{} is not a file", args.file.display())));
    }
    let article = match ingest::read(&input) {
        Ok(a) => a,
        Err(ingest::ReadError::Skip(skip)) => {
            return Err(usage(format!(
                "{}: {skip}; hanbrief would skip it",
                args.file.display()
            )));
        }
        Err(ingest::ReadError::Io(e)) => {
            return Err(usage(format!("cannot read {}: {e}", args.file.display())));
        }
    };
    let cleaned = clean::clean(&article.text, article.html_title.as_deref());
    let prompts = Prompts::load(settings.prompts_dir.as_deref())?;
    let tokenizer = Tokenizer::new(settings.chunking.encoding);
    // A client that never calls: the planner needs its window and token estimates.
    let client = ChatClient::new(
        &settings.endpoint,
        &settings.limits,
        tokenizer,
        None,
        Default::default(),
    )?;
    let summarizer = Summarizer::new(&client, &prompts, &settings)?;
    let plan = summarizer.plan(&cleaned);
    let selected = match settings.summary.strategy {
        Strategy::Select => crate::select::select(
            &cleaned.text,
            cleaned.title.as_deref(),
            settings.summary.sentences,
        ),
        Strategy::Free => Vec::new(),
    };
    let report = Inspection {
        path: args.file.display().to_string(),
        encoding: article.encoding.to_string(),
        replaced: article.replaced,
        format: format!("{:?}", article.format).to_lowercase(),
        bytes: article.bytes,
        chars_raw: article.text.chars().count(),
        chars_clean: cleaned.chars(),
        tokens: plan.tokens,
        tokenizer: settings.chunking.encoding.name().to_string(),
        exact_tokens: settings.chunking.exact_counts,
        title: cleaned.title.clone(),
        one_call: plan.one_call,
        planned_calls: plan.planned_calls,
        cleaned: cleaned.text.clone(),
        chunks: plan.chunks,
        selected,
        removed: cleaned.removed,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(EXIT_OK);
    }
    writeln!(out, "{}", report.path)?;
    writeln!(
        out,
        "  encoding   {} ({}, {} bytes)",
        report.encoding,
        report.format,
        render::group(report.bytes)
    )?;
    if let Some(w) = article.decode_warning() {
        writeln!(out, "  warning    {w}")?;
    }
    writeln!(
        out,
        "  text       {} chars → {} after cleaning ({} lines removed)",
        render::group(report.chars_raw),
        render::group(report.chars_clean),
        report.removed.len()
    )?;
    writeln!(
        out,
        "  tokens     {} ({}{})",
        render::group(report.tokens),
        report.tokenizer,
        if report.exact_tokens {
            ""
        } else {
            ", an estimate for this model"
        }
    )?;
    writeln!(
        out,
        "  title      {}",
        report.title.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "  plan       {} ({} chunk{}, {} call{})",
        if report.one_call {
            "one call"
        } else {
            "map-reduce"
        },
        report.chunks.len(),
        if report.chunks.len() == 1 { "" } else { "s" },
        report.planned_calls,
        if report.planned_calls == 1 { "" } else { "s" }
    )?;
    if !report.removed.is_empty() {
        writeln!(out, "\nremoved:")?;
        for r in &report.removed {
            let text = crate::text::truncate(&r.text, 70);
            writeln!(
                out,
                "  {:>4}  {:<13} {}",
                r.line,
                format!("{:?}", r.reason).to_lowercase(),
                text
            )?;
        }
    }
    if !report.selected.is_empty() {
        writeln!(
            out,
            "\nselected (strategy \"select\": the key points' quotes, in the article's order):"
        )?;
        for (i, s) in report.selected.iter().enumerate() {
            writeln!(
                out,
                "  [{}] line {:>3} · score {:.2}  {}",
                i + 1,
                s.line,
                s.score,
                s.text
            )?;
        }
    }
    for c in &report.chunks {
        writeln!(
            out,
            "\n── chunk {} · {} tokens ──\n{}",
            c.index, c.tokens, c.text
        )?;
    }
    Ok(EXIT_OK)
}
