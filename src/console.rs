//! What commands tell people on stderr besides log events: run summaries, results such as
//! "digest of 5 briefs", top-level errors.
//!
//! For people these are plain lines. With `--log-format json` each is one JSON object in the
//! shape of the log events (`timestamp`, `level`, `fields` with `message` and the figures), so
//! that every line on stderr parses. With `-q` only warnings and errors are said: a cron job
//! that succeeds prints nothing. Lines go through [`crate::progress::LogWriter`], above a
//! progress bar when one is on screen.

use std::io::Write;
use std::sync::OnceLock;

use serde_json::{Map, Value};

/// How the process talks on stderr, from the global flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Console {
    /// `-q`: warnings and errors only.
    pub quiet: bool,
    /// `--log-format json`: one JSON object a line.
    pub json: bool,
}

static CONSOLE: OnceLock<Console> = OnceLock::new();

/// Sets how to talk for the rest of the process (first call wins).
pub fn init(console: Console) {
    let _ = CONSOLE.set(console);
}

/// How the process talks (plain and not quiet until [`init`]).
pub fn get() -> Console {
    CONSOLE.get().copied().unwrap_or_default()
}

/// How important a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

/// A result or summary line: `text` for people, `text` and `fields` for machines; nothing with
/// `-q`.
pub fn info(text: &str, fields: Value) {
    say(Level::Info, text, fields);
}

/// A warning: always said.
pub fn warn(text: &str, fields: Value) {
    say(Level::Warn, text, fields);
}

/// An error: always said.
pub fn error(text: &str, fields: Value) {
    say(Level::Error, text, fields);
}

/// Says one line at `level`. `fields` is a JSON object (or null) of figures for machines; in
/// text mode only `text` is printed.
pub fn say(level: Level, text: &str, fields: Value) {
    let c = get();
    if c.quiet && level == Level::Info {
        return;
    }
    let line = if c.json {
        json_line(level, text, fields)
    } else {
        let mut t = text.trim_end().to_string();
        t.push('\n');
        t
    };
    let _ = crate::progress::LogWriter.write_all(line.as_bytes());
}

/// One line in the shape `tracing-subscriber` gives log events with `--log-format json`.
pub fn json_line(level: Level, text: &str, fields: Value) -> String {
    let mut f = Map::new();
    f.insert("message".into(), Value::String(text.trim_end().to_string()));
    if let Value::Object(extra) = fields {
        f.extend(extra);
    }
    let line = serde_json::json!({
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": level.name(),
        "fields": f,
    });
    line.to_string() + "\n"
}

/// `n` and the noun, in the singular for one: "1 call", "2 calls".
pub fn count(n: impl Into<u64>, singular: &str, plural: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// A duration for people, to the second: "30 days", "1 day 6h", "6h 12m", "45s".
/// (`humantime` writes "30days".)
pub fn duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let days = secs / 86_400;
    let rest = std::time::Duration::from_secs(secs % 86_400);
    let rest_text = humantime::format_duration(rest).to_string();
    match days {
        0 => rest_text,
        _ => {
            let mut out = count(days, "day", "days");
            if !rest.is_zero() {
                out.push(' ');
                out.push_str(&rest_text);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_have_the_log_events_shape() {
        let line = json_line(
            Level::Warn,
            "failed a.txt: boom\n",
            serde_json::json!({"path": "a.txt"}),
        );
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["fields"]["message"], "failed a.txt: boom");
        assert_eq!(v["fields"]["path"], "a.txt");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn durations_read_as_words() {
        use std::time::Duration;
        assert_eq!(duration(Duration::from_secs(30 * 86_400)), "30 days");
        assert_eq!(duration(Duration::from_secs(86_400 + 6 * 3600)), "1 day 6h");
        assert_eq!(duration(Duration::from_secs(6 * 3600 + 12 * 60)), "6h 12m");
        assert_eq!(duration(Duration::from_millis(45_500)), "45s");
    }

    #[test]
    fn counts_agree_with_their_number() {
        assert_eq!(count(1u32, "call", "calls"), "1 call");
        assert_eq!(count(0u32, "call", "calls"), "0 calls");
        assert_eq!(count(2u64, "topic", "topics"), "2 topics");
    }
}
