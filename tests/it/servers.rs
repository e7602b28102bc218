//! Real servers' wire behaviour, replayed: every fixture under `tests/data/providers/<server>/`
//! is one situation a real server puts hanbrief in (its answers, taken from the server's source
//! code or documentation, named in the fixture's `source`), and what hanbrief must do next. The
//! format is described in `tests/data/providers/README.md`; adding a server or a situation is
//! adding files.
//!
//! With `HANBRIEF_FIXTURE_TABLE=FILE`, the test also writes the servers × behaviours table of
//! BENCHMARKS.md from what it observed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hanbrief::tokens::{Encoding, Tokenizer};
use serde::Deserialize;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::support::*;

/// One situation: the server's answers to hanbrief's first requests, and what must follow.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    server: String,
    situation: String,
    /// Which behaviour of hanbrief it tests (a column of the table).
    behaviour: String,
    /// Where the server's answers come from: repository, file and commit, or a documentation
    /// page.
    source: Vec<String>,
    /// What hanbrief should do, in words (for the table).
    did: String,
    /// TOML merged into the test config.
    #[serde(default)]
    config: String,
    #[serde(default)]
    articles: Articles,
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Answers to the first requests, in arrival order; later requests get the folder's ok.json.
    #[serde(default)]
    replies: Vec<Reply>,
    expect: Expect,
    /// A second run on the same output folder, to see what was remembered.
    #[serde(default)]
    rerun: Option<Rerun>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Articles {
    /// Short articles (one call each).
    #[serde(default)]
    short: usize,
    /// One long article of this many paragraphs.
    #[serde(default)]
    long: usize,
}

/// One HTTP answer. Strings in `body` may hold `{{content}}` (a valid brief), `{{prompt_tokens}}`
/// (the request's prompt, counted like hanbrief counts it) and `{{budget}}` (the request's reply
/// budget); a string that is only a placeholder for a number becomes that number.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    #[serde(default)]
    source: Vec<String>,
    #[serde(default = "ok_status")]
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
    /// A body that is not JSON (an HTML page).
    #[serde(default)]
    body_text: Option<String>,
    #[serde(default)]
    delay_ms: u64,
}

fn ok_status() -> u16 {
    200
}

impl Reply {
    /// The reply as recorded, without placeholders (a model list has none).
    fn template(&self) -> ResponseTemplate {
        let mut template = ResponseTemplate::new(self.status);
        for (k, v) in &self.headers {
            template = template.insert_header(k.as_str(), v.as_str());
        }
        match &self.body {
            Some(body) => template.set_body_json(body),
            None => template,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    exit: i32,
    #[serde(default)]
    written: Option<u64>,
    #[serde(default)]
    failed: Option<u64>,
    #[serde(default)]
    not_done: Option<u64>,
    #[serde(default)]
    requests: Option<Count>,
    /// Checks on single requests, by index.
    #[serde(default)]
    request: BTreeMap<usize, Check>,
    /// Checks on every request after the scripted replies.
    #[serde(default)]
    later: Option<Check>,
    /// Text in the failed article's reason.
    #[serde(default)]
    reason: Option<String>,
    /// Texts that must each appear within one stderr line.
    #[serde(default)]
    log: Vec<String>,
    #[serde(default)]
    not_log: Vec<String>,
    /// Request `after + 1` arrives at least `min_ms` after request `after`.
    #[serde(default)]
    gap: Option<Gap>,
    /// The run takes at most this long (it is killed after it, and fails).
    #[serde(default = "default_seconds")]
    seconds_max: u64,
}

fn default_seconds() -> u64 {
    60
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
enum Count {
    Exactly(usize),
    Range { min: usize, max: usize },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    /// Fields that must be present, with this value (or any value for "*").
    #[serde(default)]
    has: BTreeMap<String, Value>,
    #[serde(default)]
    lacks: Vec<String>,
    /// The reply budget (max_tokens or max_completion_tokens) at least this many times the first
    /// request's.
    #[serde(default)]
    budget_vs_first: Option<f64>,
    /// The prompt (counted like hanbrief counts it) at most this many tokens.
    #[serde(default)]
    prompt_tokens_at_most: Option<usize>,
    /// The prompt plus the reply budget at most this many tokens.
    #[serde(default)]
    prompt_plus_budget_at_most: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Gap {
    after: usize,
    min_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rerun {
    #[serde(default)]
    args: Vec<String>,
    expect: Expect,
}

/// A request as it arrived.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    body: Value,
}

/// Replays a fixture's replies, then the server's normal reply.
struct Replay {
    script: Vec<Reply>,
    ok: Reply,
    next: AtomicUsize,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn tokenizer() -> &'static Tokenizer {
    static T: std::sync::OnceLock<Tokenizer> = std::sync::OnceLock::new();
    T.get_or_init(|| Tokenizer::new(Encoding::O200kBase))
}

fn prompt_tokens(body: &Value) -> usize {
    let contents: Vec<&str> = body["messages"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["content"].as_str()).collect())
        .unwrap_or_default();
    tokenizer().count_messages(contents)
}

fn budget(body: &Value) -> Option<u64> {
    body.get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
}

/// Fills the placeholders of `value` for the request `body`: `{{content}}` (a valid brief),
/// `{{prompt_tokens}}` (the prompt counted like hanbrief counts it), `{{budget}}` (the reply
/// budget asked for), `{{total}}` (the two added) and `{{prompt_tokens+N}}`. A string that is
/// only a number placeholder becomes a number.
fn render(value: &Value, body: &Value) -> Value {
    match value {
        Value::String(s) => {
            let tokens = prompt_tokens(body) as u64;
            let budget = budget(body).unwrap_or(0);
            let number = match s.as_str() {
                "{{prompt_tokens}}" => Some(tokens),
                "{{budget}}" => Some(budget),
                "{{total}}" => Some(tokens + budget),
                other => other
                    .strip_prefix("{{prompt_tokens+")
                    .and_then(|r| r.strip_suffix("}}"))
                    .and_then(|n| n.parse::<u64>().ok())
                    .map(|n| tokens + n),
            };
            match number {
                Some(n) => json!(n),
                None => Value::String(
                    s.replace("{{content}}", &brief_reply())
                        .replace("{{prompt_tokens}}", &tokens.to_string())
                        .replace("{{budget}}", &budget.to_string())
                        .replace("{{total}}", &(tokens + budget).to_string()),
                ),
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| render(v, body)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), render(v, body)))
                .collect(),
        ),
        other => other.clone(),
    }
}

impl Respond for Replay {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap_or(Value::Null);
        self.seen.lock().unwrap().push(Seen {
            at: Instant::now(),
            body: body.clone(),
        });
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        let reply = self.script.get(i).unwrap_or(&self.ok);
        let mut template = ResponseTemplate::new(reply.status);
        for (k, v) in &reply.headers {
            template = template.insert_header(k.as_str(), v.as_str());
        }
        if let Some(text) = &reply.body_text {
            let kind = reply
                .headers
                .get("content-type")
                .cloned()
                .unwrap_or_else(|| "text/html".into());
            template = template.set_body_raw(text.clone(), &kind);
        } else if let Some(value) = &reply.body {
            template = template.set_body_json(render(value, &body));
        }
        if reply.delay_ms > 0 {
            template = template.set_delay(Duration::from_millis(reply.delay_ms));
        }
        template
    }
}

fn providers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/providers")
}

/// Every fixture file, by server folder.
fn fixture_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for server in std::fs::read_dir(providers_dir()).expect("tests/data/providers") {
        let server = server.unwrap().path();
        if !server.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&server).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".json") && name != "ok.json" && name != "models.json" {
                files.push(f);
            }
        }
    }
    files.sort();
    files
}

/// What one run showed.
struct Observed {
    exit: Option<i32>,
    stderr: String,
    report: Value,
    seen: Vec<Seen>,
}

async fn run_once(env: &TestEnv, fixture: &Fixture, args: &[String], limit: u64) -> Observed {
    let mut cmd = env.summarize_command();
    cmd.args(args);
    for (k, v) in &fixture.env {
        cmd.env(k, v);
    }
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("run hanbrief");
    let pid = child.id();
    let waiting = tokio::task::spawn_blocking(move || child.wait_with_output());
    let output = match tokio::time::timeout(Duration::from_secs(limit), waiting).await {
        Ok(out) => out.expect("join").expect("wait for hanbrief"),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            return Observed {
                exit: None,
                stderr: format!("killed after {limit} s"),
                report: Value::Null,
                seen: Vec::new(),
            };
        }
    };
    let report_path = env.out().join("_report.json");
    Observed {
        exit: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        report: std::fs::read_to_string(report_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null),
        seen: Vec::new(),
    }
}

/// The problems with `seen` (the requests of this run, from index `first`) against `expect`.
fn check(expect: &Expect, observed: &Observed, first_scripted: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let seen = &observed.seen;
    if observed.exit != Some(expect.exit) {
        problems.push(format!(
            "exit {:?}, expected {}",
            observed.exit, expect.exit
        ));
    }
    let totals = &observed.report["totals"];
    for (name, want) in [
        ("written", expect.written),
        ("failed", expect.failed),
        ("not_done", expect.not_done),
    ] {
        if let Some(want) = want
            && totals[name].as_u64() != Some(want)
        {
            problems.push(format!("{name} = {}, expected {want}", totals[name]));
        }
    }
    match expect.requests {
        Some(Count::Exactly(n)) if seen.len() != n => {
            problems.push(format!("{} requests, expected {n}", seen.len()))
        }
        Some(Count::Range { min, max }) if seen.len() < min || seen.len() > max => {
            problems.push(format!("{} requests, expected {min} to {max}", seen.len()))
        }
        _ => {}
    }
    let first_budget = seen.first().and_then(|s| budget(&s.body));
    let check_one = |i: usize, c: &Check, problems: &mut Vec<String>| {
        let Some(req) = seen.get(i) else {
            problems.push(format!("no request {i}"));
            return;
        };
        for (field, want) in &c.has {
            match req.body.get(field) {
                None => problems.push(format!("request {i} lacks {field}")),
                Some(got) if !matches(want, got) => {
                    problems.push(format!("request {i}: {field} = {got}, expected {want}"))
                }
                _ => {}
            }
        }
        for field in &c.lacks {
            if req.body.get(field).is_some() {
                problems.push(format!("request {i} still has {field}"));
            }
        }
        if let (Some(times), Some(first)) = (c.budget_vs_first, first_budget) {
            let got = budget(&req.body).unwrap_or(0);
            if (got as f64) < first as f64 * times {
                problems.push(format!(
                    "request {i}: budget {got}, expected at least {times} × {first}"
                ));
            }
        }
        if let Some(max) = c.prompt_plus_budget_at_most {
            let got = prompt_tokens(&req.body) + budget(&req.body).unwrap_or(0) as usize;
            if got > max {
                problems.push(format!(
                    "request {i}: prompt + budget = {got} tokens, expected ≤ {max}"
                ));
            }
        }
        if let Some(max) = c.prompt_tokens_at_most {
            let got = prompt_tokens(&req.body);
            if got > max {
                problems.push(format!(
                    "request {i}: {got} prompt tokens, expected ≤ {max}"
                ));
            }
        }
    };
    for (i, c) in &expect.request {
        check_one(*i, c, &mut problems);
    }
    if let Some(later) = &expect.later {
        for i in first_scripted..seen.len() {
            check_one(i, later, &mut problems);
        }
    }
    if let Some(want) = &expect.reason {
        let reasons: Vec<String> = observed.report["articles"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|a| a["reason"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if !reasons.iter().any(|r| r.contains(want.as_str())) {
            problems.push(format!(
                "no failed article's reason says {want:?}: {reasons:?}"
            ));
        }
    }
    for want in &expect.log {
        if !observed.stderr.lines().any(|l| l.contains(want.as_str())) {
            problems.push(format!("no log line says {want:?}"));
        }
    }
    for unwanted in &expect.not_log {
        if observed.stderr.contains(unwanted.as_str()) {
            problems.push(format!("the log says {unwanted:?}"));
        }
    }
    if let Some(gap) = &expect.gap {
        match (seen.get(gap.after), seen.get(gap.after + 1)) {
            (Some(a), Some(b)) => {
                let ms = b.at.duration_since(a.at).as_millis() as u64;
                if ms < gap.min_ms {
                    problems.push(format!(
                        "request {} came {ms} ms after request {}, expected ≥ {} ms",
                        gap.after + 1,
                        gap.after,
                        gap.min_ms
                    ));
                }
            }
            _ => problems.push(format!("no requests {} and {}", gap.after, gap.after + 1)),
        }
    }
    problems
}

/// Whether `got` is `want`, where "*" stands for any value and an object for the fields it
/// names.
fn matches(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::String(w), _) if w == "*" => true,
        (Value::Object(w), Value::Object(g)) => w
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|gv| matches(v, gv))),
        _ => want == got,
    }
}

/// The fixture's config with a request timeout no loaded test machine reaches (the test config's
/// 5 s is for the timeout tests; no fixture tests a timeout, and a retry after one would change
/// the request counts the fixtures check).
fn patient(config: &str) -> String {
    let mut table: toml::Table = toml::from_str(config).expect("the fixture's config is TOML");
    let endpoint = table
        .entry("endpoint")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(e) = endpoint {
        e.entry("request_timeout")
            .or_insert_with(|| toml::Value::String("120s".into()));
    }
    toml::to_string(&table).expect("serialise the config")
}

/// What a run did, in a few words for the table.
fn summary(observed: &Observed) -> String {
    let t = &observed.report["totals"];
    let outcome = match observed.exit {
        Some(0) => format!("written ({})", t["written"]),
        Some(1) => format!("{} failed, with its reason", t["failed"]),
        Some(3) => "run stopped (exit 3)".to_string(),
        Some(c) => format!("exit {c}"),
        None => "killed".to_string(),
    };
    format!("{outcome}; {} request(s)", observed.seen.len())
}

struct Outcome {
    fixture: Fixture,
    file: String,
    problems: Vec<String>,
    summary: String,
    /// The outcome in two or three words, for the matrix.
    short: String,
}

async fn replay(file: PathBuf) -> Outcome {
    let text = std::fs::read_to_string(&file).unwrap();
    let name = file
        .strip_prefix(providers_dir())
        .unwrap()
        .display()
        .to_string();
    let fixture: Fixture =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not a fixture: {e}"));
    let ok_path = file.parent().unwrap().join("ok.json");
    let ok: Reply = serde_json::from_str(
        &std::fs::read_to_string(&ok_path).unwrap_or_else(|_| panic!("{}", ok_path.display())),
    )
    .unwrap_or_else(|e| panic!("{} is not a reply: {e}", ok_path.display()));

    let env = TestEnv::new().await.with_config(&patient(&fixture.config));
    env.short_articles(fixture.articles.short);
    if fixture.articles.long > 0 {
        env.article("long.txt", &long_article(fixture.articles.long));
    }
    if fixture.articles.short == 0 && fixture.articles.long == 0 {
        env.short_articles(1);
    }
    // The server's model list, where the folder has one (a run asks for it once); without one
    // the request goes unanswered (404), as on a server that has no list.
    if let Some(models) = model_list(file.parent().unwrap()) {
        Mock::given(method("GET"))
            .and(path("/v1/models"))
            .respond_with(models.template())
            .mount(&env.server)
            .await;
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(Replay {
            script: fixture.replies.clone(),
            ok,
            next: AtomicUsize::new(0),
            seen: seen.clone(),
        })
        .mount(&env.server)
        .await;

    let mut observed = run_once(&env, &fixture, &[], fixture.expect.seconds_max).await;
    observed.seen = seen.lock().unwrap().clone();
    let mut problems = check(&fixture.expect, &observed, fixture.replies.len());
    let summary = summary(&observed);
    let short = match observed.exit {
        Some(0) => format!("written, {} req.", observed.seen.len()),
        Some(1) => "article failed, reason given".to_string(),
        Some(3) => "run stopped after 1 req.".to_string(),
        Some(c) => format!("exit {c}"),
        None => "killed".to_string(),
    };
    if !problems.is_empty() {
        problems.push(format!("stderr:\n{}", observed.stderr));
    }
    if let Some(rerun) = &fixture.rerun {
        let before = seen.lock().unwrap().len();
        let mut again = run_once(&env, &fixture, &rerun.args, rerun.expect.seconds_max).await;
        again.seen = seen.lock().unwrap()[before..].to_vec();
        let more = check(&rerun.expect, &again, 0);
        if !more.is_empty() {
            problems.extend(more.into_iter().map(|p| format!("rerun: {p}")));
            problems.push(format!("rerun stderr:\n{}", again.stderr));
        }
    }
    Outcome {
        fixture,
        file: name,
        problems,
        summary,
        short,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_fixture_replays_and_hanbrief_does_the_right_thing() {
    let mut files = fixture_files();
    assert!(files.len() >= 20, "only {} fixtures", files.len());
    // HANBRIEF_FIXTURES=ollama/ replays only the fixtures whose path contains it.
    if let Ok(only) = std::env::var("HANBRIEF_FIXTURES") {
        files.retain(|f| f.to_string_lossy().contains(&only));
    }
    let outcomes: Vec<Outcome> = futures::stream::iter(files)
        .map(replay)
        .buffer_unordered(1)
        .collect()
        .await;
    let mut outcomes = outcomes;
    outcomes.sort_by(|a, b| a.file.cmp(&b.file));
    if let Ok(path) = std::env::var("HANBRIEF_FIXTURE_TABLE") {
        std::fs::write(path, table(&outcomes)).expect("write the table");
    }
    let failures: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.problems.is_empty())
        .map(|o| format!("{}: {}", o.file, o.problems.join("\n  ")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        outcomes.len(),
        failures.join("\n\n")
    );
}

/// The two tables of BENCHMARKS.md: servers × behaviours (what hanbrief did, in short), then
/// every situation with what hanbrief does about it.
fn table(outcomes: &[Outcome]) -> String {
    let mut servers: Vec<&str> = Vec::new();
    let mut behaviours: Vec<&str> = Vec::new();
    for o in outcomes {
        if !servers.contains(&o.fixture.server.as_str()) {
            servers.push(&o.fixture.server);
        }
        if !behaviours.contains(&o.fixture.behaviour.as_str()) {
            behaviours.push(&o.fixture.behaviour);
        }
    }
    behaviours.sort();
    let mut out = format!("| server | {} |\n|---|", behaviours.join(" | "));
    out.push_str(&"---|".repeat(behaviours.len()));
    out.push('\n');
    for server in &servers {
        out.push_str(&format!("| {server} |"));
        for behaviour in &behaviours {
            let cells: Vec<String> = outcomes
                .iter()
                .filter(|o| o.fixture.server == *server && o.fixture.behaviour == *behaviour)
                .map(|o| {
                    let mark = if o.problems.is_empty() { "✓" } else { "✗" };
                    format!("{mark} {}", o.short)
                })
                .collect();
            out.push_str(&format!(" {} |", cells.join("<br>")));
        }
        out.push('\n');
    }
    out.push_str(
        "\n| server | situation (fixture) | what hanbrief does | observed |\n|---|---|---|---|\n",
    );
    for o in outcomes {
        out.push_str(&format!(
            "| {} | {} (`{}`) | {} | {}{} |\n",
            o.fixture.server,
            o.fixture.situation,
            o.file,
            o.fixture.did,
            o.summary,
            if o.problems.is_empty() {
                ""
            } else {
                " **FAILED**"
            }
        ));
    }
    out
}

/// The server's answer to `GET /v1/models` (`models.json` in its folder), if recorded.
fn model_list(server: &Path) -> Option<Reply> {
    let path = server.join("models.json");
    let text = std::fs::read_to_string(&path).ok()?;
    Some(
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a reply: {e}", path.display())),
    )
}

#[test]
fn every_fixture_names_its_source_and_every_server_has_a_normal_reply() {
    let mut servers = std::collections::BTreeSet::new();
    for file in fixture_files() {
        let fixture: Fixture = serde_json::from_str(&std::fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            fixture.source.iter().all(|s| s.len() > 20) && !fixture.source.is_empty(),
            "{}: name the source of the server's answers",
            file.display()
        );
        servers.insert(file.parent().unwrap().to_path_buf());
    }
    for server in servers {
        let ok: Reply =
            serde_json::from_str(&std::fs::read_to_string(server.join("ok.json")).unwrap())
                .unwrap();
        assert!(!ok.source.is_empty(), "{}/ok.json", server.display());
        if let Some(models) = model_list(&server) {
            assert!(
                models.source.iter().all(|s| s.len() > 20) && !models.source.is_empty(),
                "{}/models.json: name the source",
                server.display()
            );
        }
    }
}
