//! `hanbrief man`: one man page for the whole tool. Every command is described in it, with its
//! options (clap_mangen alone would point at `hanbrief-summarize(1)` and the like, pages that
//! nothing installs), followed by EXIT STATUS and ENVIRONMENT.

use std::io::Write;

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, ENVIRONMENT, EXIT_STATUS};

/// The page, in roff, on `w`.
pub(super) fn render(w: &mut dyn Write) -> Result<()> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    writeln!(w, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        command(w, sub)?;
    }
    writeln!(w, ".SH \"EXIT STATUS\"")?;
    for (code, what) in EXIT_STATUS {
        writeln!(w, ".TP\n\\fB{}\\fR\n{}", escape(code), escape(what))?;
    }
    writeln!(w, ".SH ENVIRONMENT")?;
    for (name, what) in ENVIRONMENT {
        writeln!(w, ".TP\n\\fB{}\\fR\n{}", escape(name), escape(what))?;
    }
    writeln!(
        w,
        ".SH FILES\n.TP\n\\fBconfig.toml\\fR\nThe configuration (every key documented in the one the repository ships, which is also the built-in default).\n.TP\n\\fBOUT/.hanbrief/\\fR\nThe state store of an output folder: cached calls, the article manifest, the run history.\n.TP\n\\fBOUT/_report.json\\fR\nThe report of the last run."
    )?;
    man.render_version_section(w)?;
    Ok(())
}

/// One command (and its own sub-commands) as a subsection: synopsis, what it does, options.
fn command(w: &mut dyn Write, cmd: &clap::Command) -> Result<()> {
    let name = cmd.get_bin_name().unwrap_or_else(|| cmd.get_name());
    writeln!(w, ".SS \"{}\"", escape(name))?;
    let man = clap_mangen::Man::new(cmd.clone());
    // The sections' own headings go: these are parts of COMMANDS.
    for part in [
        section(|b| man.render_synopsis_section(b))?,
        section(|b| man.render_description_section(b))?,
        section(|b| man.render_options_section(b))?,
    ] {
        if !part.trim().is_empty() {
            writeln!(w, ".PP")?;
            w.write_all(part.as_bytes())?;
        }
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        command(w, sub)?;
    }
    Ok(())
}

/// What `render` writes, without its `.SH` heading lines.
fn section(render: impl Fn(&mut Vec<u8>) -> std::io::Result<()>) -> Result<String> {
    let mut buf = Vec::new();
    render(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf)
        .lines()
        .filter(|l| !l.starts_with(".SH"))
        .map(|l| format!("{l}\n"))
        .collect())
}

/// Text safe in roff: backslashes and hyphens escaped, no line starting with a control
/// character.
fn escape(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with(['.', '\'']) {
        format!("\\&{t}")
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_no_page_that_does_not_exist() {
        let mut buf = Vec::new();
        render(&mut buf).unwrap();
        let page = String::from_utf8(buf).unwrap();
        assert!(!page.contains("hanbrief\\-summarize(1)"), "{page}");
        assert!(!page.contains("(1)"), "no references to other pages");
        for heading in [".SH COMMANDS", ".SH \"EXIT STATUS\"", ".SH ENVIRONMENT"] {
            assert!(page.contains(heading), "{heading}");
        }
        assert!(page.contains(".SS \"hanbrief summarize\""), "{page}");
        assert!(page.contains(".SS \"hanbrief config check\""), "{page}");
        assert!(page.contains("OPENAI_API_KEY"));
        assert!(
            page.contains("\\-\\-dry\\-run"),
            "options of commands are in: {page}"
        );
        for (code, _) in EXIT_STATUS {
            assert!(page.contains(&format!("\\fB{code}\\fR")), "{code}");
        }
    }
}
