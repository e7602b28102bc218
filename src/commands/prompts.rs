//! `hanbrief prompts`: lists the templates and where each comes from, shows one, or copies them
//! all into a folder to edit.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::load_settings;
use crate::cli::PromptsCommand;
use crate::config::Overrides;
use crate::error::{EXIT_OK, UsageError};
use crate::prompt::{self, Prompts};

/// `hanbrief prompts list|show|init`.
pub(super) fn run(config_flag: &Option<PathBuf>, cmd: PromptsCommand) -> Result<u8> {
    let settings = load_settings(config_flag, Overrides::default())?;
    let dir = settings.prompts_dir.as_deref();
    let mut out = std::io::stdout().lock();
    match cmd {
        PromptsCommand::List => {
            let loaded = Prompts::load(dir)?;
            for b in prompt::BUILTINS {
                writeln!(
                    out,
                    "{:<16} {:<40} {}",
                    b.name,
                    loaded.origin(b.name),
                    b.purpose
                )?;
            }
        }
        PromptsCommand::Show { name } => {
            Prompts::load(dir)?;
            let Some(b) = prompt::BUILTINS
                .iter()
                .find(|b| b.name == name || b.name == format!("{name}.md"))
            else {
                return Err(UsageError(format!(
                    "no prompt named {name}; `hanbrief prompts list` shows them ({})",
                    prompt::BUILTINS
                        .iter()
                        .map(|b| b.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .into());
            };
            let text = match dir.map(|d| d.join(b.name)).filter(|p| p.is_file()) {
                Some(p) => std::fs::read_to_string(&p).map_err(|e| {
                    UsageError(format!("cannot read {} ([prompts] dir): {e}", p.display()))
                })?,
                None => b.text.to_string(),
            };
            write!(out, "{text}")?;
        }
        PromptsCommand::Init { dir } => {
            let written = prompt::init_dir(&dir)
                .with_context(|| format!("cannot write prompts to {}", dir.display()))?;
            for p in &written {
                writeln!(out, "wrote {}", p.display())?;
            }
            writeln!(
                out,
                "{} templates in {} ({} new). Point [prompts] dir at it in your config:\n\n[prompts]\ndir = \"{}\"",
                prompt::BUILTINS.len(),
                dir.display(),
                written.len(),
                display_for_config(&dir)
            )?;
        }
    }
    Ok(EXIT_OK)
}

fn display_for_config(p: &Path) -> String {
    p.display().to_string().replace('\\', "/")
}
