//! Shared test scaffolding: a temporary workspace with a config pointing at a wiremock server,
//! articles written into it, and the real `hanbrief` binary run against it.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};
use tempfile::TempDir;
use wiremock::MockServer;

/// The environment variable tests use for the API key (never the user's real one).
pub const KEY_ENV: &str = "HANBRIEF_TEST_KEY";

/// A workspace for one test: input and output folders, a config file, a mock provider.
pub struct TestEnv {
    pub dir: TempDir,
    pub server: MockServer,
    extra_config: String,
}

impl TestEnv {
    /// A fresh workspace with its own mock server.
    pub async fn new() -> TestEnv {
        let env = TestEnv {
            dir: tempfile::tempdir().expect("temp dir"),
            server: MockServer::start().await,
            extra_config: String::new(),
        };
        env.write_config();
        env
    }

    /// Extra config appended to the base test config (later keys in the same section win is not
    /// TOML: pass whole sections that the base does not have, or use `set`).
    pub fn with_config(mut self, extra: &str) -> TestEnv {
        self.extra_config = extra.to_string();
        self.write_config();
        self
    }

    fn write_config(&self) {
        let base = format!(
            r#"[endpoint]
base_url = "{uri}/v1"
model = "test-model"
api_key_env = "{KEY_ENV}"
context_window = 8192
request_timeout = "5s"
connect_timeout = "2s"

[limits]
requests_per_minute = 100000
tokens_per_minute = 100000000
max_in_flight = 4
max_retries = 2
backoff_base = "10ms"
backoff_max = "50ms"
shutdown_grace = "2s"

# The server is on loopback, which is free unless priced: price the test model, so that
# costs are computed and checked.
[pricing]
"test-model" = {{ input = 1.0, output = 2.0 }}
"#,
            uri = self.server.uri()
        );
        std::fs::write(self.config_path(), merge_toml(&base, &self.extra_config))
            .expect("write config");
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.root().join("hanbrief.toml")
    }

    pub fn input(&self) -> PathBuf {
        self.root().join("articles")
    }

    pub fn out(&self) -> PathBuf {
        self.root().join("out")
    }

    /// Writes an article (UTF-8) under the input folder.
    pub fn article(&self, rel: &str, text: &str) -> PathBuf {
        self.article_bytes(rel, text.as_bytes())
    }

    /// Writes an article's raw bytes under the input folder.
    pub fn article_bytes(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let path = self.input().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write article");
        path
    }

    /// Runs `hanbrief --config <test config> ARGS…` in the workspace, with the test key set.
    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with_env(args, &[(KEY_ENV, "sk-test-key-0123456789")])
            .await
    }

    /// Runs the binary with extra environment variables.
    pub async fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let config = self.config_path().display().to_string();
        let mut all = vec!["--config", config.as_str()];
        all.extend_from_slice(args);
        self.run_raw(&all, env, None).await
    }

    /// Runs the binary with exactly these arguments (no test config), these environment
    /// variables and optionally this standard input.
    pub async fn run_raw(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<Vec<u8>>,
    ) -> Output {
        let mut cmd = self.command(args);
        cmd.env_remove(KEY_ENV);
        for (k, v) in env {
            cmd.env(k, v);
        }
        tokio::task::spawn_blocking(move || match stdin {
            None => cmd
                .stdin(std::process::Stdio::null())
                .output()
                .expect("run hanbrief"),
            Some(bytes) => {
                use std::io::Write;
                let mut child = cmd
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("run hanbrief");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(&bytes)
                    .expect("write stdin");
                child.wait_with_output().expect("wait for hanbrief")
            }
        })
        .await
        .expect("join")
    }

    /// `n` short articles `a0.txt`, `a1.txt`…, each a little different so that none is a copy.
    pub fn short_articles(&self, n: usize) {
        for i in 0..n {
            self.article(
                &format!("a{i}.txt"),
                &SHORT_ARTICLE.replace("1일", &format!("{}일", i + 1)),
            );
        }
    }

    /// The binary with exactly these arguments, run in the workspace with the test key set and
    /// none of the caller's hanbrief settings: for tests that need a child process of their own
    /// (signals, kill -9, a long-running schedule).
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hanbrief"));
        cmd.current_dir(self.root())
            .args(args)
            .env(KEY_ENV, "sk-test-key-0123456789")
            .env_remove("OPENAI_API_KEY")
            .env_remove("HANBRIEF_CONFIG")
            .env_remove("HANBRIEF_LOG")
            .env_remove("RUST_LOG");
        cmd
    }

    /// `hanbrief --config <test config> summarize articles -o out`, as a command to spawn.
    pub fn summarize_command(&self) -> std::process::Command {
        let (config, input, out) = (self.config_path(), self.input(), self.out());
        self.command(&[
            "--config",
            config.to_str().unwrap(),
            "summarize",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
    }

    /// `summarize articles -o out` plus `extra` arguments.
    pub async fn summarize(&self, extra: &[&str]) -> Output {
        self.summarize_with_env(extra, &[(KEY_ENV, "sk-test-key-0123456789")])
            .await
    }

    /// [`TestEnv::summarize`] with these environment variables (the key among them, if any).
    pub async fn summarize_with_env(&self, extra: &[&str], vars: &[(&str, &str)]) -> Output {
        let input = self.input().display().to_string();
        let out = self.out().display().to_string();
        let mut args = vec!["summarize", input.as_str(), "-o", out.as_str()];
        args.extend_from_slice(extra);
        self.run_with_env(&args, vars).await
    }

    /// The JSON brief for an input path relative to the input folder (`economy/a.txt` →
    /// `out/economy/a.json`).
    pub fn brief(&self, rel: &str) -> Value {
        let stem = Path::new(rel).with_extension("json");
        read_json(&self.out().join(stem))
    }

    /// The run report.
    pub fn report(&self) -> Value {
        read_json(&self.out().join("_report.json"))
    }

    /// The chat-completions calls the provider received, in order: not the `GET /models` that
    /// a run asks once to learn which model answers, nor Batch API traffic.
    pub async fn calls(&self) -> Vec<wiremock::Request> {
        self.server
            .received_requests()
            .await
            .expect("recording is on")
            .into_iter()
            .filter(|r| r.method.as_str() == "POST" && r.url.path().ends_with("/chat/completions"))
            .collect()
    }

    /// The `GET …/models` requests the provider received.
    pub async fn model_lists(&self) -> usize {
        self.server
            .received_requests()
            .await
            .expect("recording is on")
            .iter()
            .filter(|r| r.method.as_str() == "GET" && r.url.path().ends_with("/models"))
            .count()
    }
}

/// Appends `extra` to `base`, merging sections that appear in both (keys in `extra` win).
fn merge_toml(base: &str, extra: &str) -> String {
    let mut table: toml::Table = toml::from_str(base).expect("base config");
    let extra: toml::Table = toml::from_str(extra).expect("extra config");
    for (section, values) in extra {
        match (table.get_mut(&section), values) {
            (Some(toml::Value::Table(t)), toml::Value::Table(v)) => t.extend(v),
            (_, v) => {
                table.insert(section, v);
            }
        }
    }
    toml::to_string(&table).expect("serialise config")
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A chat-completions response carrying `content`, without `usage` (some servers send none;
/// a made-up count would not match what was sent, and hanbrief reads a count far below what it
/// sent as a prompt the server cut).
pub fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]
    })
}

/// [`completion`] with the server's token counts.
pub fn completion_with_usage(content: &str, prompt_tokens: u64, completion_tokens: u64) -> Value {
    let mut reply = completion(content);
    reply["usage"] = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens
    });
    reply
}

/// A valid brief reply about the standard test article (and `long_article`), every key point
/// and figure quoting both word for word.
pub fn brief_reply() -> String {
    json!({
        "title": {"ko": "반도체 수출 역대 최대", "en": "Chip exports hit a record"},
        "summary": {"ko": "반도체 수출이 142억 달러로 18.4% 늘었다.", "en": "Chip exports rose 18.4% to $14.2 billion."},
        "key_points": [
            {"ko": "수출이 18.4% 늘었다.", "en": "Exports grew 18.4%.", "quotes": ["반도체 수출이 142억 달러로", "18.4% 늘었다"]},
            {"ko": "한빛전자는 생산을 월 26만 장으로 늘린다.", "en": "Hanbit Electronics will raise output to 260,000 wafers a month.", "quotes": ["생산능력을 월 26만 장으로"]}
        ],
        "entities": [{"ko": "한빛전자", "en": "Hanbit Electronics", "kind": "organization"}],
        "figures": [
            {"ko": "142억 달러", "en": "$14.2 billion", "quotes": ["반도체 수출이 142억 달러로"]},
            {"ko": "월 26만 장", "en": "260,000 wafers a month", "quotes": ["생산능력을 월 26만 장으로"]}
        ]
    })
    .to_string()
}

/// A short article that `brief_reply` is faithful to, with some web clutter around it.
pub const SHORT_ARTICLE: &str = "반도체 수출 역대 최대
입력 2026-03-04 09:12
가장작게 작게 기본 크게 가장크게

반도체 수출이 142억 달러로 1년 전보다 18.4% 늘었다고 한국무역연구원이 1일 밝혔다.
한빛전자는 웨이퍼 생산능력을 월 26만 장으로 늘릴 계획이라고 말했다.
홍길동 기자 gildong@example.co.kr
ⓒ 한빛일보, 무단전재 및 재배포 금지
";

/// A long article of `paragraphs` paragraphs.
pub fn long_article(paragraphs: usize) -> String {
    (0..paragraphs)
        .map(|i| {
            format!(
                "{i}번째 문단이다. 정부는 올해 반도체 수출이 142억 달러로 18.4% 늘었다고 밝혔다. \
                 산업부는 \"하반기에도 증가세가 이어질 것\"이라고 내다봤다. 업계의 반응은 엇갈렸다. \
                 한빛전자는 생산능력을 월 26만 장으로 늘리고, 미래경제연구소는 둔화 가능성을 경고했다."
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Lossy stdout + stderr, for assertion messages.
pub fn output_text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A provider that answers every kind of prompt: briefs, story grouping (`digest_map.md`) and
/// digests (`digest.md`), with stories built from the `[sources: …]` lines it was sent.
pub struct Newsroom {
    /// Merge the first two items of a digest into one story (one event, two sources).
    pub merge_first_two: bool,
    /// Leave the last item out of the digest (the model forgetting a brief).
    pub drop_last: bool,
    /// In story grouping, one story per pair of items.
    pub map_merges_pairs: bool,
}

impl Newsroom {
    fn groups(body: &str) -> Vec<Vec<String>> {
        body.split("[sources: ")
            .skip(1)
            .map(|rest| {
                let end = rest.find(']').unwrap_or(rest.len());
                rest[..end].split(", ").map(str::to_string).collect()
            })
            .collect()
    }

    fn story(sources: Vec<String>, n: usize) -> Value {
        json!({
            "topic": if n.is_multiple_of(2) { "economy" } else { "technology" },
            "headline": {"ko": "반도체 수출 역대 최대", "en": "Chip exports hit a record"},
            "summary": {"ko": "반도체 수출이 142억 달러로 늘었다.", "en": "Chip exports rose to $14.2 billion."},
            "importance": if n == 0 { 5 } else { 2 },
            "sources": sources
        })
    }
}

impl wiremock::Respond for Newsroom {
    fn respond(&self, req: &wiremock::Request) -> wiremock::ResponseTemplate {
        let body: Value = req.body_json().expect("JSON body");
        let user = body["messages"]
            .as_array()
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_string();
        let reply = if user.contains("Group these items into stories") {
            let mut groups = Self::groups(&user);
            if self.map_merges_pairs {
                groups = groups.chunks(2).map(|c| c.concat()).collect();
            }
            let stories: Vec<Value> = groups
                .into_iter()
                .enumerate()
                .map(|(i, g)| Self::story(g, i))
                .collect();
            json!({"stories": stories}).to_string()
        } else if user.contains("Write the daily digest") {
            let mut groups = Self::groups(&user);
            if self.drop_last {
                groups.pop();
            }
            if self.merge_first_two && groups.len() >= 2 {
                let second = groups.remove(1);
                groups[0].extend(second);
            }
            let stories: Vec<Value> = groups
                .into_iter()
                .enumerate()
                .map(|(i, g)| Self::story(g, i))
                .collect();
            json!({
                "title": {"ko": "오늘의 반도체 소식", "en": "Chips today"},
                "overview": {"ko": "반도체 수출이 늘었다.", "en": "Chip exports rose."},
                "stories": stories
            })
            .to_string()
        } else {
            brief_reply()
        };
        wiremock::ResponseTemplate::new(200).set_body_json(completion(&reply))
    }
}

/// The chat-completions endpoint, as a mock to answer.
pub fn chat() -> wiremock::MockBuilder {
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/v1/chat/completions"))
}

/// A 200 chat completion whose message is `content`.
pub fn ok(content: &str) -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(200).set_body_json(completion(content))
}

/// The JSON bodies of the chat calls the provider received, in order.
pub async fn bodies(env: &TestEnv) -> Vec<serde_json::Value> {
    env.calls()
        .await
        .iter()
        .map(|r| {
            r.body_json::<serde_json::Value>()
                .expect("JSON request body")
        })
        .collect()
}

/// `hanbrief mock-provider` on a free port (with `extra` options); killed on drop.
pub struct MockProvider {
    child: std::process::Child,
    /// Its base URL, `http://127.0.0.1:PORT/v1`.
    pub url: String,
}

impl MockProvider {
    pub fn start(extra: &[&str]) -> MockProvider {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hanbrief"))
            .args(["mock-provider", "--port", "0"])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut url = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut url)
            .unwrap();
        MockProvider {
            child,
            url: url.trim().to_string(),
        }
    }

    /// What it counted (`/_mock/stats`).
    pub async fn stats(&self) -> Value {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::get(format!("{}/_mock/stats", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
