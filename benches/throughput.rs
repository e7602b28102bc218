//! Throughput bench: the real pipeline against a simulated provider with real limits.
//!
//!     cargo bench --bench throughput -- [--scenario NAME|all] [--articles N]
//!
//! Scenarios (`--scenario all` runs them in this order):
//! - `known`:   the config states the provider's real limits.
//! - `unknown`: the config says 4x the real limits; the provider sends no rate-limit headers
//!   and bare 429s (with Retry-After), so the limiter must find the limits by itself.
//! - `faults`:  known limits, and 5 % 5xx, 2 % resets, 1 % malformed bodies, 1 % hangs past the
//!   request timeout.
//! - `cpu`:     1,000 requests/min of small articles through the whole pipeline; reports this
//!   process's CPU time (the provider runs in its own process) as a share of one core.
//! - `client`:  the same requests prepared beforehand and sent through the `ChatClient` alone at
//!   1,000 requests/min: the client's own overhead.
//! - `rerun`:   1,000 articles summarised once, then again unchanged: the second run's time and
//!   calls (the state store's cache must answer everything).
//!
//! The provider is `hanbrief mock-provider` in a child process (so its CPU is not ours); the
//! corpus is generated (seeded: the same articles every run), a few hundred Korean articles of
//! 1-60 KB with web clutter. "ideal" is `max(requests / RPM, tokens / TPM)` with the provider's
//! own counts (admitted requests; prompt + max_tokens charged); "ideal-b" also credits the
//! provider's initial bucket (1 s of requests, 10 s of tokens), which a run gets for free.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hanbrief::config::{self, Overrides};
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
    /// Well-formed 200 replies.
    ok: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    /// Tokens charged against the limit (prompt + max_tokens of admitted requests).
    charged_tokens: u64,
    /// Requests that arrived while a Retry-After sent earlier was still running.
    early: u64,
    /// Successful replies to a request body that had already been answered.
    repeated: u64,
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
    request_timeout: &'static str,
    jobs: u32,
}

fn scenarios(articles: Option<usize>) -> Vec<Scenario> {
    let known = Scenario {
        name: "known",
        rpm: 400,
        tpm: 1_500_000,
        config_rpm: 400,
        config_tpm: 1_500_000,
        headers: true,
        latency_per_token: "1ms",
        faults: &[],
        articles: articles.unwrap_or(300),
        min_kb: 1.0,
        max_kb: 60.0,
        request_timeout: "30s",
        jobs: 32,
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
        ..known.clone()
    };
    vec![
        known.clone(),
        Scenario {
            name: "unknown",
            config_rpm: known.rpm * 4,
            config_tpm: known.tpm * 4,
            headers: false,
            ..known.clone()
        },
        Scenario {
            name: "faults",
            faults: &[
                ("--fail-5xx", "0.05"),
                ("--fail-reset", "0.02"),
                ("--fail-malformed", "0.01"),
                ("--fail-hang", "0.01"),
            ],
            request_timeout: "4s",
            ..known.clone()
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
            ..known
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

    println!(
        "{:<8} {:>9} {:>8} {:>8} {:>8} {:>6} {:>6} {:>8} {:>6} {:>8} {:>7} {:>11} {:>10} {:>5} {:>5} {:>6}",
        "scenario",
        "written",
        "wall s",
        "ideal s",
        "ideal-b",
        "ratio",
        "ratio-b",
        "requests",
        "429s",
        "429 %",
        "retries",
        "prompt tok",
        "compl tok",
        "early",
        "repeat",
        "cpu %"
    );
    for s in scenarios(articles) {
        if which != "all" && which != s.name {
            continue;
        }
        if s.name == "client" {
            runtime.block_on(run_client(&s));
        } else {
            runtime.block_on(run(&s));
        }
    }
}

async fn run(s: &Scenario) {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("articles");
    generate(&input, s.articles, s.min_kb, s.max_kb, 42);
    let mut provider = Provider::start(s);
    let config = write_config(dir.path(), s, &provider.base_url);
    let settings = config::load(Some(&config), &Default::default(), &Overrides::default())
        .expect("bench config");
    let opts = RunOptions {
        inputs: vec![input.clone()],
        out: dir.path().join("out"),
        dry_run: false,
        force: false,
        progress: None,
        jsonl: false,
        no_wait: false,
    };
    let shutdown = Shutdown::default();

    let (u0, s0) = cpu_times();
    let t0 = Instant::now();
    let report = pipeline::run(&settings, &opts, &shutdown)
        .await
        .expect("run");
    let wall = t0.elapsed();
    let (u1, s1) = cpu_times();
    let cpu = (u1 - u0) + (s1 - s0);
    if s.name == "cpu" {
        println!(
            "         cpu: {:.2}s user + {:.2}s system over {:.1}s wall: {:.2} ms per request",
            u1 - u0,
            s1 - s0,
            wall.as_secs_f64(),
            1000.0 * cpu / report.totals.requests.max(1) as f64
        );
    }
    let stats = provider.stats().await;
    print_row(s.name, s, &report, &stats, wall, cpu);

    if s.name == "rerun" {
        let before = provider.stats().await;
        let t1 = Instant::now();
        let report = pipeline::run(&settings, &opts, &Shutdown::default())
            .await
            .expect("rerun");
        let wall = t1.elapsed();
        let after = provider.stats().await;
        let calls = after.requests - before.requests;
        println!(
            "rerun-2  {:>4}/{:<4} {:>8.2}   (second run over the unchanged folder: {} requests, {} unchanged)",
            report.totals.written + report.totals.unchanged,
            report.totals.articles,
            wall.as_secs_f64(),
            calls,
            report.totals.unchanged
        );
    }
    provider.stop();
}

/// The `ChatClient` alone: requests prepared beforehand (decoded, cleaned, rendered), then sent
/// through one client at the provider's rate while this process's CPU is measured. This is the
/// client's own overhead: limiter, tokenizing the prompt, cache key, JSON, HTTP, accounting.
async fn run_client(s: &Scenario) {
    use futures::StreamExt;
    use hanbrief::llm::{ChatClient, ChatRequest, Message, Purpose, ReplyFormat};

    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("articles");
    generate(&input, s.articles, s.min_kb, s.max_kb, 42);
    let mut provider = Provider::start(s);
    let config = write_config(dir.path(), s, &provider.base_url);
    let settings = config::load(Some(&config), &Default::default(), &Overrides::default())
        .expect("bench config");
    let prompts = hanbrief::prompt::Prompts::load(None).expect("prompts");
    let system = prompts
        .render("system.md", &serde_json::json!({}))
        .expect("system");
    let found = hanbrief::ingest::discover(std::slice::from_ref(&input), &[]).expect("articles");
    let requests: Vec<ChatRequest> = found
        .files
        .iter()
        .map(|f| {
            let a = hanbrief::ingest::read(f).expect("article");
            let c = hanbrief::clean::clean(&a.text, None);
            let user = prompts
                .render(
                    "brief.md",
                    &serde_json::json!({"title": c.title, "glossary": [], "fence": hanbrief::prompt::fence_for(&c.text), "article": c.text}),
                )
                .expect("prompt");
            ChatRequest {
                messages: vec![Message::system(system.clone()), Message::user(user)],
                max_tokens: 2000,
                format: ReplyFormat::Json {
                    name: "brief",
                    schema: hanbrief::brief::content_schema(),
                    bounded: hanbrief::brief::content_schema_bounded(),
                },
                purpose: Purpose::Brief,
                partial_ok: false,
                counted: None,
            }
        })
        .collect();
    let client = ChatClient::new(
        &settings.endpoint,
        &settings.limits,
        hanbrief::tokens::Tokenizer::new(settings.chunking.encoding),
        None,
        Default::default(),
    )
    .expect("client");
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
    let ideal = stats.admitted as f64 / s.rpm as f64 * 60.0;
    println!(
        "{:<8} {:>4}/{:<4} {:>8.2} {:>8.2} {:>8} {:>6.3} {:>6} {:>8} {:>6} {:>7.2}% {:>7} {:>11} {:>10} {:>5} {:>5} {:>5.2}%",
        "client",
        stats.ok,
        n,
        wall,
        ideal,
        "-",
        wall / ideal,
        "-",
        stats.requests,
        stats.rate_limited,
        100.0 * stats.rate_limited as f64 / stats.requests.max(1) as f64,
        client.stats().snapshot().retries,
        stats.prompt_tokens,
        stats.completion_tokens,
        stats.early,
        stats.repeated,
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

fn print_row(
    name: &str,
    s: &Scenario,
    report: &RunReport,
    stats: &MockStats,
    wall: Duration,
    cpu: f64,
) {
    let ideal = (stats.admitted as f64 / s.rpm as f64)
        .max(stats.charged_tokens as f64 / s.tpm as f64)
        * 60.0;
    let cap_r = (s.rpm as f64 / 60.0).max(1.0);
    let cap_t = s.tpm as f64 / 6.0;
    let ideal_b = ((stats.admitted as f64 - cap_r).max(0.0) / s.rpm as f64)
        .max((stats.charged_tokens as f64 - cap_t).max(0.0) / s.tpm as f64)
        * 60.0;
    let wall_s = wall.as_secs_f64();
    let limited = stats.rate_limited + stats.injected_429;
    println!(
        "{:<8} {:>4}/{:<4} {:>8.2} {:>8.2} {:>8.2} {:>6.3} {:>6.3} {:>8} {:>6} {:>7.2}% {:>7} {:>11} {:>10} {:>5} {:>5} {:>5.2}%",
        name,
        report.totals.written,
        report.totals.articles,
        wall_s,
        ideal,
        ideal_b,
        wall_s / ideal.max(1e-9),
        wall_s / ideal_b.max(1e-9),
        stats.requests,
        limited,
        100.0 * limited as f64 / stats.requests.max(1) as f64,
        report.totals.retries,
        stats.prompt_tokens,
        stats.completion_tokens,
        stats.early,
        stats.repeated,
        100.0 * cpu / wall_s.max(1e-9),
    );
}

fn write_config(dir: &Path, s: &Scenario, base_url: &str) -> PathBuf {
    let path = dir.join("bench.toml");
    let text = format!(
        r#"[endpoint]
base_url = "{base_url}"
model = "mock-bench"
api_key_env = "HANBRIEF_BENCH_KEY_UNSET"
context_window = 128000
request_timeout = "{timeout}"
connect_timeout = "2s"

[limits]
requests_per_minute = {rpm}
tokens_per_minute = {tpm}
max_in_flight = {jobs}
max_retries = 8
backoff_base = "250ms"
backoff_max = "8s"
"#,
        timeout = s.request_timeout,
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
        cmd.args([
            "mock-provider",
            "--port",
            "0",
            "--latency",
            "30ms",
            "--hang",
            "120s",
        ])
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
