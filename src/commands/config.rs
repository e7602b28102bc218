//! `hanbrief config show` and `config check`: the resolved settings with their sources (secrets
//! masked), and a check of the settings, the prompts and optionally the endpoint.

use std::io::Write;

use anyhow::Result;
use serde_json::json;

use crate::config::Settings;
use crate::console;
use crate::error::{EXIT_OK, EXIT_PROVIDER, EXIT_USAGE};
use crate::llm::{ApiKey, ChatClient, ChatRequest, LlmError, Message, Purpose, ReplyFormat};
use crate::prompt::Prompts;
use crate::tokens::Tokenizer;

/// `hanbrief config show`: every setting with its value and where it came from.
pub(super) fn show(settings: &Settings) -> Result<()> {
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

/// `hanbrief config check [--ping]`: the settings and prompts load; with `--ping`, one tiny call.
pub(super) async fn check(settings: &Settings, ping: bool) -> Result<u8> {
    Prompts::load(settings.prompts_dir.as_deref())?;
    console::info(
        &format!(
            "config ok: {} at {} ({})",
            settings.endpoint.model,
            settings.endpoint.base_url,
            settings
                .config_file
                .as_deref()
                .map_or("built-in defaults".to_string(), |p| p.display().to_string())
        ),
        json!({"model": settings.endpoint.model, "base_url": settings.endpoint.base_url}),
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
    let reply = client
        .chat(ChatRequest {
            messages: vec![Message::user("Reply with the single word: OK")],
            max_tokens: 16,
            format: ReplyFormat::Text,
            purpose: Purpose::Ping,
            partial_ok: false,
            counted: None,
        })
        .await;
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
