//! Throughput bench: the real pipeline against a simulated provider with real limits, scored
//! against the physical limit of the work.
//!
//!     cargo bench --bench throughput -- [--scenario NAME|all] [--articles N]
//!
//! Scenarios (`--scenario all` runs them in this order):
//! - `requests`: request-bound: 200 articles of 1-60 KB, the provider's requests per minute are
//!   what limits the run.
//! - `tokens`:   token-bound: the same articles, the provider's tokens per minute limit the run.
//! - `faults`:   the limits of `tokens`, and 5 % 5xx, 2 % resets, 1 % malformed bodies, 1 % hangs
//!   of 60 s; scored against the fault-free `tokens` run (run first if not already).
//! - `unknown`:  the limits of `tokens`, but the config says 4x them and the provider sends no
//!   rate-limit headers and bare 429s: the limiter must find the limits by itself.
//! - `cpu`:      1,000 requests/min of small articles through the whole pipeline; reports this
//!   process's CPU time (the provider runs in its own process) as a share of one core.
//! - `client`:   the same requests prepared beforehand and sent through the `ChatClient` alone at
//!   1,000 requests/min: the client's own overhead.
//! - `rerun`:    1,000 articles summarised once, then again unchanged: the second run's time and
//!   calls (the state store's cache must answer everything).
//!
//! Every run uses the user's default settings (`config.toml`: timeouts, retries, backoff,
//! chunking, budgets, model `gpt-4.1-mini`) but for the provider's limits, which a user states in
//! their config, and the calls in flight (`-j`), which a user with limits this high raises.
//!
//! **The physical limit comes from the work, not from the run.** Before scoring, every article
//! of the corpus is briefed once, in one call, against an unlimited provider: that gives each
//! article's prompt tokens and its reply's real size (the provider's own counts). The physical
//! limit is then the longer of (articles - the request bucket's initial burst) / RPM and
//! (prompt + reply tokens - the token bucket's initial burst) / TPM, plus one call's latency
//! for the last reply: one call per article, each reserving exactly the reply it writes. What a
//! run chose to send (map-reduce calls, oversized reservations, retries) makes its wall time
//! longer, never the limit shorter. Requests that did no useful work (refused, failed, hung,
//! cut at the token limit, repeated) are counted apart as "wasted".
//!
//! The provider is `hanbrief mock-provider` in a child process (so its CPU is not ours); the
//! corpus is generated (seeded: the same articles every run), Korean articles with web clutter.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hanbrief::config::{self, Overrides, Settings};
use hanbrief::pipeline::{self, RunOptions, Shutdown};
use hanbrief::report::RunReport;

/// The counters `hanbrief mock-provider` serves at `GET /v1/_mock/stats`: the ones this bench
/// reads, from the JSON as any client reads it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct MockStats {
    /// Requests received.
    requests: u64,
    /// Requests that passed the rate limits (and were charged).
    admitted: u64,
    /// 429s for exceeding the limits.
    rate_limited: u64,
    /// 429s injected as faults.
    injected_429: u64,
    server_errors: u64,
    resets: u64,
    malformed: u64,
    hangs: u64,
    context_exceeded: u64,
    /// Well-formed 200 replies.
    ok: u64,
    /// Of `ok`, replies cut at max_tokens.
    truncated: u64,
    /// Prompt and completion tokens of `ok` replies.
    prompt_tokens: u64,
    completion_tokens: u64,
    /// Prompt tokens of every admitted request.
    admitted_prompt_tokens: u64,
    /// Tokens charged against the limit (prompt + max_tokens of admitted requests).
    charged_tokens: u64,
    /// Requests that arrived while a Retry-After sent earlier was still running.
    early: u64,
    /// Successful replies to a request body that had already been answered.
    repeated: u64,
}

impl MockStats {
    /// Requests that did no useful work.
    fn wasted(&self) -> u64 {
        self.rate_limited
            + self.injected_429
            + self.server_errors
            + self.resets
            + self.malformed
            + self.hangs
            + self.context_exceeded
            + self.truncated
            + self.repeated
    }

    fn wasted_detail(&self) -> String {
        let parts = [
            ("429", self.rate_limited + self.injected_429),
            ("5xx", self.server_errors),
            ("reset", self.resets),
            ("malformed", self.malformed),
            ("hung", self.hangs),
            ("context", self.context_exceeded),
            ("cut", self.truncated),
            ("repeat", self.repeated),
        ];
        let shown: Vec<String> = parts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        if shown.is_empty() {
            "none".into()
        } else {
            shown.join(", ")
        }
    }
}

#[derive(Debug, Clone)]
struct Scenario {
    name: &'static str,
    /// The provider's real limits.
    rpm: u32,
    tpm: u32,
    /// What the config says.
    config_rpm: u32,
    config_tpm: u32,
    headers: bool,
    latency_per_token: &'static str,
    faults: &'static [(&'static str, &'static str)],
    articles: usize,
    min_kb: f64,
    max_kb: f64,
    jobs: u32,
}

/// The provider's latency: before the first token, and per reply token.
const LATENCY_BASE: Duration = Duration::from_millis(30);
const HANG: &str = "60s";

fn scenarios(articles: Option<usize>) -> Vec<Scenario> {
    let requests = Scenario {
        name: "requests",
        rpm: 600,
        tpm: 50_000_000,
        config_rpm: 600,
        config_tpm: 50_000_000,
        headers: true,
        latency_per_token: "1ms",
        faults: &[],
        articles: articles.unwrap_or(200),
        min_kb: 1.0,
        max_kb: 60.0,
        jobs: 32,
    };
    let tokens = Scenario {
        name: "tokens",
        rpm: 10_000,
        tpm: 2_000_000,
        config_rpm: 10_000,
        config_tpm: 2_000_000,
        ..requests.clone()
    };
    // 1,000 small requests a minute: the whole pipeline's CPU ("cpu") or the client's alone
    // ("client").
    let busy = Scenario {
        name: "cpu",
        rpm: 1000,
        tpm: 100_000_000,
        config_rpm: 1000,
        config_tpm: 100_000_000,
        articles: articles.unwrap_or(600),
        min_kb: 1.0,
        max_kb: 3.0,
        latency_per_token: "0ms",
        ..requests.clone()
    };
    vec![
        requests.clone(),
        tokens.clone(),
        Scenario {
            name: "faults",
            faults: &[
                ("--fail-5xx", "0.05"),
                ("--fail-reset", "0.02"),
                ("--fail-malformed", "0.01"),
                ("--fail-hang", "0.01"),
            ],
            ..tokens.clone()
        },
        Scenario {
            name: "unknown",
            config_rpm: tokens.rpm * 4,
            config_tpm: tokens.tpm * 4,
            headers: false,
            ..tokens.clone()
        },
        busy.clone(),
        Scenario {
            name: "client",
            ..busy
        },
        Scenario {
            name: "rerun",
            rpm: 100_000,
            tpm: 1_000_000_000,
            config_rpm: 100_000,
            config_tpm: 1_000_000_000,
            articles: articles.unwrap_or(1000),
            min_kb: 1.0,
            max_kb: 8.0,
            latency_per_token: "0ms",
            jobs: 64,
            ..requests
        },
    ]
}

fn main() {
    let mut which = "all".to_string();
    let mut articles = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--scenario" => which = args.next().expect("--scenario NAME"),
            "--articles" => {
                articles = Some(
                    args.next()
                        .expect("--articles N")
                        .parse()
                        .expect("a number"),
                )
            }
            "--bench" => {}
            other => panic!("unknown argument {other}; see the file's docs"),
        }
    }
    // HANBRIEF_BENCH_LOG=hanbrief=debug shows the limiter's decisions on stderr.
    if let Ok(filter) = std::env::var("HANBRIEF_BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let all = scenarios(articles);
    let selected: Vec<&Scenario> = all
        .iter()
        .filter(|s| which == "all" || which == s.name)
        .collect();
    assert!(!selected.is_empty(), "no scenario named {which}");
    let mut fault_free: Option<f64> = None;
    let mut work_cache: Option<(usize, Work)> = None;
    let mut header = false;
    for s in selected {
        match s.name {
            "client" => runtime.block_on(run_client(s)),
            "cpu" | "rerun" => {
                runtime.block_on(run_plain(s));
            }
            _ => {
                let work = match &work_cache {
                    Some((n, w)) if *n == s.articles => w.clone(),
                    _ => {
                        let w = runtime.block_on(measure_work(s));
                        println!(
                            "the work: {} articles, one call each: {} prompt + {} reply tokens \
                             (median reply {} tokens)",
                            w.articles, w.prompt_tokens, w.reply_tokens, w.median_reply
                        );
                        work_cache = Some((s.articles, w.clone()));
                        w
                    }
                };
                if s.name == "faults" && fault_free.is_none() {
                    let twin = all.iter().find(|t| t.name == "tokens").expect("tokens");
                    if !header {
                        print_header();
                        header = true;
                    }
                    fault_free = Some(runtime.block_on(run_scored(twin, &work)));
                }
                if !header {
                    print_header();
                    header = true;
                }
                let wall = runtime.block_on(run_scored(s, &work));
                if s.name == "tokens" {
                    fault_free = Some(wall);
                }
                if s.name == "faults"
                    && let Some(free) = fault_free
                {
                    println!(
                        "         faults: {:.2} s against {:.2} s without faults: {:.3}x",
                        wall,
                        free,
                        wall / free
                    );
                }
            }
        }
    }
}

/// What one call per article costs: the bench's measure of the work.
#[derive(Debug, Clone)]
struct Work {
    articles: usize,
    prompt_tokens: u64,
    reply_tokens: u64,
    median_reply: u64,
}

impl Work {
    /// The shortest wall time any client could achieve against `s`'s provider: the longer of
    /// the request-bound and the token-bound times after the initial bursts, plus one call's
    /// latency for the last reply.
    fn physical_limit(&self, s: &Scenario) -> f64 {
        let burst_r = (s.rpm as f64 / 60.0).max(1.0);
        let burst_t = s.tpm as f64 / 6.0;
        let t_req = (self.articles as f64 - burst_r).max(0.0) / s.rpm as f64 * 60.0;
        let t_tok = ((self.prompt_tokens + self.reply_tokens) as f64 - burst_t).max(0.0)
            / s.tpm as f64
            * 60.0;
        let per_token = humantime::parse_duration(s.latency_per_token)
            .expect("a duration")
            .as_secs_f64();
        t_req.max(t_tok) + LATENCY_BASE.as_secs_f64() + per_token * self.median_reply as f64
    }
}

/// Briefs every article of `s`'s corpus once, in one call (the request a one-call plan sends),
/// against an unlimited provider, and adds up the provider's counts.
async fn measure_work(s: &Scenario) -> Work {
    use futures::StreamExt;
    use hanbrief::llm::ChatClient;
    use hanbrief::summarize::Summarizer;

    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("articles");
    generate(&input, s.articles, s.min_kb, s.max_kb, 42);
    let unlimited = Scenario {
        rpm: 1_000_000,
        tpm: 2_000_000_000,
        config_rpm: 1_000_000,
        config_tpm: 2_000_000_000,
        faults: &[],
        latency_per_token: "0ms",
        ..s.clone()
    };
    let mut provider = Provider::start(&unlimited);
    let settings = settings(dir.path(), &unlimited, &provider.base_url);
    let prompts = hanbrief::prompt::Prompts::load(None).expect("prompts");
    let client = ChatClient::new(
        &settings.endpoint,
        &settings.limits,
        hanbrief::tokens::Tokenizer::new(settings.chunking.encoding),
        None,
        Default::default(),
    )
    .expect("client");
    let summarizer = Summarizer::new(&client, &prompts, &settings).expect("summarizer");
    let found = hanbrief::ingest::discover(std::slice::from_ref(&input), &[]).expect("articles");
    let requests: Vec<_> = found
        .files
        .iter()
        .map(|f| {
            let a = hanbrief::ingest::read(f).expect("article");
            let c = hanbrief::clean::clean(&a.text, a.html_title.as_deref());
            summarizer.brief_request(&c).expect("request")
        })
        .collect();
    let replies: Vec<(u64, u64)> = futures::stream::iter(requests)
        .map(|r| {
            let client = &client;
            async move {
                let reply = client.chat(r).await.expect("a reply");
                (reply.usage.prompt_tokens, reply.usage.completion_tokens)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    provider.stop();
    let mut sizes: Vec<u64> = replies.iter().map(|r| r.1).collect();
    sizes.sort_unstable();
    Work {
        articles: replies.len(),
        prompt_tokens: replies.iter().map(|r| r.0).sum(),
        reply_tokens: replies.iter().map(|r| r.1).sum(),
        median_reply: sizes.get(sizes.len() / 2).copied().unwrap_or(0),
    }
}

fn print_header() {
    println!(
        "{:<8} {:>9} {:>7} {:>7} {:>6} {:>8} {:>7} {:>6} {:>11} {:>6} {:>6} {:>5} {:>5}  wasted",
        "scenario",
        "written",
        "wall s",
        "phys s",
        "×phys",
        "requests",
        "wasted",
        "429 %",
        "prompt tok",
        "×1call",
        "early",
        "rep",
        "cpu %",
    );
}

/// Runs `s` and prints its row against the physical limit of `work`; returns the wall time.
async fn run_scored(s: &Scenario, work: &Work) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("articles");
    generate(&input, s.articles, s.min_kb, s.max_kb, 42);
    let mut provider = Provider::start(s);
    let settings = settings(dir.path(), s, &provider.base_url);
    let opts = options(&input, dir.path());
    let (u0, s0) = cpu_times();
    let t0 = Instant::now();
    let report = pipeline::run(&settings, &opts, &Shutdown::default())
        .await
        .expect("run");
    let wall = t0.elapsed().as_secs_f64();
    let (u1, s1) = cpu_times();
    let cpu = (u1 - u0) + (s1 - s0);
    let stats = provider.stats().await;
    provider.stop();
    let physical = work.physical_limit(s);
    let limited = stats.rate_limited + stats.injected_429;
    println!(
        "{:<8} {:>4}/{:<4} {:>7.2} {:>7.2} {:>6.3} {:>8} {:>7} {:>5.2}% {:>11} {:>6.3} {:>6} {:>5} {:>5.1}%  {}",
        s.name,
        report.totals.written,
        report.totals.articles,
        wall,
        physical,
        wall / physical.max(1e-9),
        stats.requests,
        stats.wasted(),
        100.0 * limited as f64 / stats.requests.max(1) as f64,
        stats.admitted_prompt_tokens,
        stats.admitted_prompt_tokens as f64 / work.prompt_tokens.max(1) as f64,
        stats.early,
        stats.repeated,
        100.0 * cpu / wall.max(1e-9),
        stats.wasted_detail(),
    );
    wall
}

/// The `cpu` and `rerun` scenarios: wall, requests and this process's CPU.
async fn run_plain(s: &Scenario) {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("articles");
    generate(&input, s.articles, s.min_kb, s.max_kb, 42);
    let mut provider = Provider::start(s);
    let settings = settings(dir.path(), s, &provider.base_url);
    let opts = options(&input, dir.path());
    let (u0, s0) = cpu_times();
    let t0 = Instant::now();
    let report = pipeline::run(&settings, &opts, &Shutdown::default())
        .await
        .expect("run");
    let wall = t0.elapsed();
    let (u1, s1) = cpu_times();
    let cpu = (u1 - u0) + (s1 - s0);
    let stats = provider.stats().await;
    print_plain(s.name, &report, &stats, wall, cpu);
    if s.name == "cpu" {
        println!(
            "         cpu: {:.2}s user + {:.2}s system over {:.1}s wall: {:.2} ms per request",
            u1 - u0,
            s1 - s0,
            wall.as_secs_f64(),
            1000.0 * cpu / report.totals.requests.max(1) as f64
        );
    }
    if s.name == "rerun" {
        let before = provider.stats().await;
        let t1 = Instant::now();
        let report = pipeline::run(&settings, &opts, &Shutdown::default())
            .await
            .expect("rerun");
        let wall = t1.elapsed();
        let after = provider.stats().await;
        println!(
            "rerun-2  {:>4}/{:<4} {:>8.2}   (second run over the unchanged folder: {} requests, {} unchanged)",
            report.totals.written + report.totals.unchanged,
            report.totals.articles,
            wall.as_secs_f64(),
            after.requests - before.requests,
            report.totals.unchanged
        );
    }
    provider.stop();
}

fn print_plain(name: &str, report: &RunReport, stats: &MockStats, wall: Duration, cpu: f64) {
    let wall_s = wall.as_secs_f64();
    println!(
        "{:<8} {:>4}/{:<4} {:>8.2} s · {} requests ({} wasted) · {} retries · cpu {:.2}%",
        name,
        report.totals.written,
        report.totals.articles,
        wall_s,
        stats.requests,
        stats.wasted(),
        report.totals.retries,
        100.0 * cpu / wall_s.max(1e-9),
    );
}

fn options(input: &Path, dir: &Path) -> RunOptions {
    RunOptions {
        inputs: vec![input.to_path_buf()],
        out: dir.join("out"),
        dry_run: false,
        force: false,
        progress: None,
        jsonl: false,
        no_wait: false,
    }
}

/// The user's defaults, but for the provider's limits (which a user states) and the calls in
/// flight (which a user with limits this high raises).
fn settings(dir: &Path, s: &Scenario, base_url: &str) -> Settings {
    let config = write_config(dir, s, base_url);
    config::load(Some(&config), &Default::default(), &Overrides::default()).expect("bench config")
}

fn write_config(dir: &Path, s: &Scenario, base_url: &str) -> PathBuf {
    let path = dir.join("bench.toml");
    let text = format!(
        r#"[endpoint]
base_url = "{base_url}"
api_key_env = "HANBRIEF_BENCH_KEY_UNSET"

[limits]
requests_per_minute = {rpm}
tokens_per_minute = {tpm}
max_in_flight = {jobs}
"#,
        rpm = s.config_rpm,
        tpm = s.config_tpm,
        jobs = s.jobs,
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// `hanbrief mock-provider` in a child process.
struct Provider {
    child: Child,
    base_url: String,
}

impl Provider {
    fn start(s: &Scenario) -> Provider {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hanbrief"));
        cmd.args(["mock-provider", "--port", "0", "--hang", HANG])
            .args(["--latency", &format!("{}ms", LATENCY_BASE.as_millis())])
            .args(["--rpm", &s.rpm.to_string(), "--tpm", &s.tpm.to_string()])
            .args(["--latency-per-token", s.latency_per_token]);
        for (flag, value) in s.faults {
            cmd.args([flag, value]);
        }
        if !s.headers {
            cmd.arg("--no-rate-limit-headers");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mock-provider");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the URL");
        Provider {
            child,
            base_url: line.trim().to_string(),
        }
    }

    async fn stats(&self) -> MockStats {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let body = reqwest::get(format!("{}/_mock/stats", self.base_url))
            .await
            .expect("stats")
            .text()
            .await
            .expect("stats body");
        serde_json::from_str::<MockStats>(&body).expect("stats JSON")
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `ChatClient` alone: requests prepared beforehand (decoded, cleaned, rendered), then sent
/// through one client at the provider's rate while this process's CPU is measured. This is the
/// client's own overhead: limiter, tokenizing the prompt, cache key, JSON, HTTP, accounting.
async fn run_client(s: &Scenario) {
    use futures::StreamExt;
    use hanbrief::llm::ChatClient;

    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("articles");
    generate(&input, s.articles, s.min_kb, s.max_kb, 42);
    let mut provider = Provider::start(s);
    let settings = settings(dir.path(), s, &provider.base_url);
    let prompts = hanbrief::prompt::Prompts::load(None).expect("prompts");
    let client = ChatClient::new(
        &settings.endpoint,
        &settings.limits,
        hanbrief::tokens::Tokenizer::new(settings.chunking.encoding),
        None,
        Default::default(),
    )
    .expect("client");
    let summarizer =
        hanbrief::summarize::Summarizer::new(&client, &prompts, &settings).expect("summarizer");
    let found = hanbrief::ingest::discover(std::slice::from_ref(&input), &[]).expect("articles");
    let requests: Vec<_> = found
        .files
        .iter()
        .map(|f| {
            let a = hanbrief::ingest::read(f).expect("article");
            let c = hanbrief::clean::clean(&a.text, None);
            summarizer.brief_request(&c).expect("request")
        })
        .collect();
    let n = requests.len();
    let (u0, s0) = cpu_times();
    let t0 = Instant::now();
    futures::stream::iter(requests)
        .for_each_concurrent(s.jobs as usize, |r| {
            let client = &client;
            async move {
                client.chat(r).await.expect("a reply");
            }
        })
        .await;
    let wall = t0.elapsed().as_secs_f64();
    let (u1, s1) = cpu_times();
    let cpu = (u1 - u0) + (s1 - s0);
    let stats = provider.stats().await;
    println!(
        "client   {:>4}/{:<4} {:>8.2} s · {} requests ({} wasted) · {} retries · cpu {:.2}%",
        stats.ok,
        n,
        wall,
        stats.requests,
        stats.wasted(),
        client.stats().snapshot().retries,
        100.0 * cpu / wall
    );
    println!(
        "         client: {:.2}s user + {:.2}s system over {:.1}s wall: {:.2} ms per request",
        u1 - u0,
        s1 - s0,
        wall,
        1000.0 * cpu / n as f64
    );
    provider.stop();
}

/// User and system CPU seconds of this process (Linux: /proc/self/stat).
fn cpu_times() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    (ticks(11) / 100.0, ticks(12) / 100.0)
}

/// Writes `n` generated Korean articles of `min_kb`..`max_kb` (log-uniform) under `dir`.
fn generate(dir: &Path, n: usize, min_kb: f64, max_kb: f64, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let orgs = [
        "한빛전자",
        "미래모빌리티",
        "누리바이오",
        "세종에너지",
        "다온금융",
        "가람건설",
        "하늘항공",
        "바다해운",
    ];
    let people = [
        "김서연",
        "박지훈",
        "이수진",
        "최민준",
        "정하윤",
        "강도현",
        "윤태호",
        "한도윤",
    ];
    let places = [
        "서울", "부산", "세종", "대전", "광주", "인천", "울산", "제주",
    ];
    let topics = [
        "반도체",
        "배터리",
        "해상풍력",
        "수소",
        "인공지능",
        "바이오",
        "조선",
        "물류",
    ];
    for i in 0..n {
        let target = (min_kb.ln() + rng.f64() * (max_kb.ln() - min_kb.ln())).exp() * 1024.0;
        let org = orgs[rng.usize(..orgs.len())];
        let topic = topics[rng.usize(..topics.len())];
        let mut text = format!(
            "{org}, {topic} 투자 {}억 원 늘린다…{}년 가동 목표\n입력 2026-03-{:02} 09:{:02}\n가장작게 작게 기본 크게 가장크게\n\n",
            rng.u32(100..9000),
            rng.u32(2026..2031),
            rng.u32(1..28),
            rng.u32(0..60)
        );
        let mut p = 0;
        while text.len() < target as usize {
            p += 1;
            let person = people[rng.usize(..people.len())];
            let place = places[rng.usize(..places.len())];
            let sentences = [
                format!(
                    "{org}는 {}일 {place}에서 {topic} 사업 계획을 발표했다.",
                    rng.u32(1..29)
                ),
                format!(
                    "올해 {topic} 관련 투자는 {}억 원으로 지난해보다 {}.{}% 늘었다.",
                    rng.u32(10..5000),
                    rng.u32(1..40),
                    rng.u32(0..10)
                ),
                format!(
                    "{person} 대표는 \"{topic} 시장에서 {}위를 지키겠다\"고 말했다.",
                    rng.u32(1..5)
                ),
                format!(
                    "업계에서는 {}년까지 시장 규모가 {}조 {}천억 원에 이를 것으로 본다.",
                    rng.u32(2027..2035),
                    rng.u32(1..30),
                    rng.u32(1..10)
                ),
                format!(
                    "{place} 공장의 생산능력은 월 {}만 장 수준이다.",
                    rng.u32(1..90)
                ),
                format!(
                    "다만 {person} 연구위원은 수요 둔화 가능성을 경고하며 {}%의 성장률 전망을 내놨다.",
                    rng.u32(2..15)
                ),
            ];
            let count = 3 + rng.usize(..3);
            let paragraph: Vec<&str> = (0..count)
                .map(|_| sentences[rng.usize(..sentences.len())].as_str())
                .collect();
            text.push_str(&format!("{p}번째 문단이다. {}\n\n", paragraph.join(" ")));
        }
        text.push_str("홍길동 기자 gildong@example.co.kr\nⓒ 한빛일보, 무단전재 및 재배포 금지\n관련기사\n- 다른 기사 제목 | 한빛일보\n");
        let sub = dir.join(format!("batch-{:02}", i % 10));
        std::fs::create_dir_all(&sub).expect("mkdir");
        std::fs::write(sub.join(format!("article-{i:04}.txt")), text).expect("write article");
    }
}
