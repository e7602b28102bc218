//! `hanbrief config show` and `config check`: the resolved settings with their sources (secrets
//! masked), and a check of the settings, the prompts and optionally the endpoint.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use super::load_settings;
use crate::cli::ConfigCommand;
use crate::config::{Settings, Source};
use crate::console;
use crate::error::{EXIT_OK, EXIT_PROVIDER, EXIT_USAGE};
use crate::llm::{ApiKey, ChatClient, ChatRequest, LlmError};
use crate::pricing::PriceSource;
use crate::prompt::Prompts;
use crate::schedule::ScheduleError;
use crate::tokens::Tokenizer;

/// `hanbrief config show|check`.
pub(super) async fn run(config_flag: &Option<PathBuf>, cmd: ConfigCommand) -> Result<u8> {
    match cmd {
        ConfigCommand::Show(args) => {
            show(&load_settings(config_flag, args.endpoint.into())?)?;
            Ok(EXIT_OK)
        }
        ConfigCommand::Check(args) => {
            check(
                &load_settings(config_flag, args.endpoint.into())?,
                args.ping,
            )
            .await
        }
    }
}

/// `hanbrief config show`: every setting with its value and where it came from.
fn show(settings: &Settings) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match &settings.config_file {
        Some(f) => writeln!(out, "# config file: {}", f.display())?,
        None => writeln!(out, "# config file: none (built-in defaults)")?,
    }
    let width = settings
        .provenance
        .iter()
        .map(|(k, _, _)| k.len())
        .max()
        .unwrap_or(10);
    for (key, value, source) in &settings.provenance {
        // A header that carries a credential is shown masked, like the key.
        let name = key.to_ascii_lowercase();
        let secret = name.starts_with("endpoint.headers.")
            && ["auth", "key", "token", "secret", "cookie", "password"]
                .iter()
                .any(|w| name.contains(w));
        let value = if secret {
            "\"****\"".to_string()
        } else {
            value.clone()
        };
        writeln!(out, "{key:<width$} = {value:<30} # {source}")?;
    }
    let key_line = match ApiKey::from_env(&settings.endpoint.api_key_env) {
        Some(k) => format!("set ({}) in {}", k.masked(), settings.endpoint.api_key_env),
        None => format!(
            "not set ({} is empty or unset)",
            settings.endpoint.api_key_env
        ),
    };
    writeln!(out, "{:<width$} = {key_line}", "api key")?;
    writeln!(
        out,
        "# resolved: context window {} tokens, tokenizer {} ({}), reply field {}",
        settings.endpoint.context_window,
        settings.chunking.encoding.name(),
        if settings.chunking.exact_counts {
            "exact"
        } else {
            "estimates"
        },
        settings.endpoint.max_tokens_field.as_str()
    )?;
    writeln!(
        out,
        "# price: {}",
        settings.pricing.describe(&settings.endpoint.model)
    )?;
    Ok(())
}

/// Hosted endpoints that refuse every call without a key.
const KEYED_HOSTS: &[&str] = &[
    "api.openai.com",
    ".openai.azure.com",
    "openrouter.ai",
    "api.upstage.ai",
];

/// What `config check` found, beyond "it parses": errors make it fail (exit 2), warnings do
/// not.
#[derive(Debug, Default)]
struct Findings {
    errors: Vec<String>,
    warnings: Vec<String>,
    notes: Vec<String>,
}

/// Everything `summarize`, `digest` and `schedule` would trip over later, found now: the
/// prompts folder and every template rendered with a sample article, the schedule (cron, time
/// zone, input folder), the API key an endpoint needs, the model's price.
fn findings(settings: &Settings) -> Findings {
    let mut f = Findings::default();
    match Prompts::load(settings.prompts_dir.as_deref()) {
        Ok(prompts) => {
            let mut errors = crate::summarize::render_samples(&prompts);
            errors.extend(crate::digest::render_samples(&prompts));
            f.errors.extend(errors.iter().map(|e| {
                format!("{e} (rendered with a sample article, as `summarize` and `digest` will)")
            }));
        }
        Err(e) => f.errors.push(e.to_string()),
    }
    if let Some(dir) = settings.prompts_dir.as_deref() {
        let names: Vec<&str> = crate::prompt::BUILTINS.iter().map(|b| b.name).collect();
        for stray in crate::prompt::strays(dir) {
            f.warnings.push(format!(
                "{} is not one of the templates ({}) and is not used",
                stray.display(),
                names.join(", ")
            ));
        }
    }

    // The schedule matters to whoever set it; the built-in one only if its input is missing.
    let scheduled = settings
        .provenance
        .iter()
        .any(|(k, _, src)| k.starts_with("schedule.") && *src != Source::Default);
    for e in crate::schedule::problems(settings) {
        match e {
            ScheduleError::NoInput { .. } if !scheduled => f
                .notes
                .push(format!("{e} (only `hanbrief schedule` uses it)")),
            e => f.errors.push(e.to_string()),
        }
    }

    let e = &settings.endpoint;
    if ApiKey::from_env(&e.api_key_env).is_none() {
        let host = reqwest::Url::parse(&e.base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default();
        let keyed = KEYED_HOSTS.iter().any(|k| {
            host == k.trim_start_matches('.') || (k.starts_with('.') && host.ends_with(k))
        });
        let what = format!(
            "{} is not set (endpoint.api_key_env names the environment variable that holds the key)",
            e.api_key_env
        );
        if keyed {
            f.errors.push(format!(
                "{what}, and {host} refuses calls without a key: export {}=…",
                e.api_key_env
            ));
        } else if !settings.pricing.is_local() {
            f.warnings.push(format!(
                "{what}: calls go to {host} without a key, which most hosted endpoints refuse"
            ));
        }
    }

    match settings.pricing.price(&e.model) {
        None => f.warnings.push(format!(
            "no price for {}: costs will be reported as unknown; {}",
            e.model,
            crate::pricing::how_to_price(&e.model)
        )),
        Some((_, PriceSource::Local { .. })) if crate::pricing::is_listed(&e.model) => {
            f.notes.push(format!(
                "{} costs nothing because the endpoint is on this machine; if it forwards to a paid API (a proxy such as LiteLLM), {}",
                e.model,
                crate::pricing::how_to_price(&e.model)
            ))
        }
        Some(_) => {}
    }
    f
}

/// Where the settings came from: the file (or the defaults), then environment variables and
/// flags that set something.
fn sources(settings: &Settings) -> String {
    let mut out = match &settings.config_file {
        Some(p) => p.display().to_string(),
        None => "built-in defaults".to_string(),
    };
    let mut env: Vec<String> = Vec::new();
    let mut flags: Vec<String> = Vec::new();
    for (_, _, src) in &settings.provenance {
        match src {
            Source::Env(var) if !env.contains(var) => env.push(var.clone()),
            Source::Flag(flag) if !flags.iter().any(|f| f == flag) => flags.push(flag.to_string()),
            _ => {}
        }
    }
    if !env.is_empty() {
        out.push_str(&format!(", environment {}", env.join(", ")));
    }
    if !flags.is_empty() {
        out.push_str(&format!(", flags {}", flags.join(", ")));
    }
    out
}

/// `hanbrief config check [--ping]`: the settings, prompts, schedule, key and price; with
/// `--ping`, one tiny call. Errors exit 2, before any call.
async fn check(settings: &Settings, ping: bool) -> Result<u8> {
    let f = findings(settings);
    for note in &f.notes {
        console::info(&format!("note: {note}"), json!({"note": note}));
    }
    for w in &f.warnings {
        console::warn(&format!("warning: {w}"), json!({"warning": w}));
    }
    for e in &f.errors {
        console::error(&format!("error: {e}"), json!({"error": e}));
    }
    let src = sources(settings);
    if !f.errors.is_empty() {
        console::error(
            &format!(
                "config has {} ({}): `summarize`, `digest` or `schedule` would fail on {}",
                console::count(f.errors.len() as u64, "error", "errors"),
                src,
                if f.errors.len() == 1 { "it" } else { "them" }
            ),
            json!({"errors": f.errors.len(), "warnings": f.warnings.len()}),
        );
        return Ok(EXIT_USAGE);
    }
    console::info(
        &format!(
            "config ok: {} at {} ({}){}",
            settings.endpoint.model,
            settings.endpoint.base_url,
            src,
            match f.warnings.len() {
                0 => String::new(),
                n => format!(", {}", console::count(n as u64, "warning", "warnings")),
            }
        ),
        json!({
            "model": settings.endpoint.model,
            "base_url": settings.endpoint.base_url,
            "sources": src,
            "warnings": f.warnings.len(),
        }),
    );
    if !ping {
        return Ok(EXIT_OK);
    }
    let key = ApiKey::from_env(&settings.endpoint.api_key_env);
    if key.is_none() {
        console::warn(
            &format!(
                "note: {} is not set; calling without a key",
                settings.endpoint.api_key_env
            ),
            json!(null),
        );
    }
    let mut limits = settings.limits.clone();
    limits.max_retries = limits.max_retries.min(2);
    let client = ChatClient::new(
        &settings.endpoint,
        &limits,
        Tokenizer::new(settings.chunking.encoding),
        key,
        Default::default(),
    )?;
    let started = std::time::Instant::now();
    let reply = client.chat(ChatRequest::ping()).await;
    match reply {
        Ok(r) => {
            console::info(
                &format!(
                    "ping ok: {} answered {:?} in {:.1}s ({} prompt + {} completion tokens)",
                    settings.endpoint.model,
                    r.content.trim().chars().take(40).collect::<String>(),
                    started.elapsed().as_secs_f64(),
                    r.usage.prompt_tokens,
                    r.usage.completion_tokens
                ),
                json!({"seconds": started.elapsed().as_secs_f64()}),
            );
            Ok(EXIT_OK)
        }
        // A model that talks past the tiny budget still answered: the endpoint works.
        Err(LlmError::Truncated { .. }) => {
            console::info(
                &format!(
                    "ping ok: {} answered in {:.1}s",
                    settings.endpoint.model,
                    started.elapsed().as_secs_f64()
                ),
                json!({"seconds": started.elapsed().as_secs_f64()}),
            );
            Ok(EXIT_OK)
        }
        Err(e) => {
            console::error(&format!("ping failed: {e}"), json!(null));
            Ok(if e.is_fatal() {
                EXIT_PROVIDER
            } else {
                EXIT_USAGE
            })
        }
    }
}
