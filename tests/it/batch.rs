//! Batch mode: the exact request shapes of the files and batches endpoints (wiremock), and whole
//! runs against `hanbrief mock-provider` (phases, failed lines, an expired batch, the
//! enqueued-token limit, `--no-wait`, and a `kill -9` while waiting followed by a re-run).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::support::*;

/// Fast polling, so that tests take seconds.
const FAST_POLL: &str = "[batch]\npoll_min = \"100ms\"\npoll_max = \"300ms\"\n";

fn written(env: &TestEnv) -> u64 {
    env.report()["totals"]["written"].as_u64().unwrap()
}

// --- Exact request shapes (wiremock) ------------------------------------------------------------

/// `POST /v1/files`: keeps the uploaded body, answers with a file object. The answer is the
/// example response of OpenAI's API reference, "Files → Upload file"
/// (platform.openai.com/docs/api-reference/files/create), with purpose `batch`.
struct Upload(Arc<Mutex<Option<Request>>>);

impl Respond for Upload {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        *self.0.lock().unwrap() = Some(request.clone());
        ResponseTemplate::new(200).set_body_json(json!({
            "id": "file-abc123",
            "object": "file",
            "bytes": request.body.len(),
            "created_at": 1677610602,
            "filename": "batchinput.jsonl",
            "purpose": "batch"
        }))
    }
}

/// `GET /v1/files/file-out/content`: one output line per uploaded request, in the format of the
/// Batch guide's "Retrieve the results" (platform.openai.com/docs/guides/batch).
struct Results(Arc<Mutex<Option<Request>>>);

impl Respond for Results {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let upload = self.0.lock().unwrap().clone().expect("uploaded first");
        let text = String::from_utf8_lossy(&upload.body).into_owned();
        let mut out = String::new();
        for line in text.lines().filter(|l| l.starts_with('{')) {
            let v: Value = serde_json::from_str(line).unwrap();
            out.push_str(
                &json!({
                    "id": "batch_req_123",
                    "custom_id": v["custom_id"],
                    "response": {"status_code": 200, "request_id": "req_123", "body": completion_with_usage(&brief_reply(), 100, 50)},
                    "error": null
                })
                .to_string(),
            );
            out.push('\n');
        }
        ResponseTemplate::new(200).set_body_string(out)
    }
}

/// The batch object of OpenAI's API reference, "Batch → Create batch" example response
/// (platform.openai.com/docs/api-reference/batch/create), with the status and files given.
fn batch_object(status: &str, output_file_id: Option<&str>, completed: u64) -> Value {
    json!({
        "id": "batch_abc123",
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "errors": null,
        "input_file_id": "file-abc123",
        "completion_window": "24h",
        "status": status,
        "output_file_id": output_file_id,
        "error_file_id": null,
        "created_at": 1711471533,
        "in_progress_at": null,
        "expires_at": null,
        "finalizing_at": null,
        "completed_at": null,
        "failed_at": null,
        "expired_at": null,
        "cancelling_at": null,
        "cancelled_at": null,
        "request_counts": {"total": completed, "completed": completed, "failed": 0},
        "metadata": {"customer_id": "user_123456789", "batch_description": "Nightly eval job"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_requests_have_the_documented_shapes() {
    let env = TestEnv::new().await.with_config(FAST_POLL);
    env.short_articles(2);
    let upload = Arc::new(Mutex::new(None));
    Mock::given(method("POST"))
        .and(path("/v1/files"))
        .respond_with(Upload(upload.clone()))
        .expect(1)
        .mount(&env.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/batches"))
        .respond_with(ResponseTemplate::new(200).set_body_json(batch_object("validating", None, 0)))
        .expect(1)
        .mount(&env.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/batches/batch_abc123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(batch_object(
            "completed",
            Some("file-out"),
            2,
        )))
        .mount(&env.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/files/file-out/content"))
        .respond_with(Results(upload.clone()))
        .expect(1)
        .mount(&env.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&env.server)
        .await;

    let o = env.summarize(&["--batch"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(written(&env), 2);
    let totals = &env.report()["totals"];
    assert_eq!(totals["batch_calls"], 2);
    // At batch prices: half of 2 × (100 prompt + 50 completion tokens) at $1 / $2 per million.
    let cost = totals["cost_usd"].as_f64().unwrap();
    assert!((cost - 0.0002).abs() < 1e-9, "{cost}: {}", env.report());
    assert!(
        output_text(&o).contains("at batch prices"),
        "{}",
        output_text(&o)
    );

    // The upload: multipart/form-data with `purpose=batch` and the JSONL file.
    let req = upload.lock().unwrap().clone().unwrap();
    let ct = req.headers["content-type"].to_str().unwrap().to_string();
    let boundary = ct
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap_or_else(|| panic!("{ct}"));
    assert_eq!(
        req.headers["authorization"].to_str().unwrap(),
        "Bearer sk-test-key-0123456789"
    );
    let body = String::from_utf8(req.body.clone()).unwrap();
    let purpose = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
    );
    assert!(body.starts_with(&purpose), "{body}");
    assert!(
        body.contains("Content-Disposition: form-data; name=\"file\"; filename=\"hb"),
        "{body}"
    );
    assert!(body.ends_with(&format!("\r\n--{boundary}--\r\n")));
    let lines: Vec<Value> = body
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert_eq!(line["method"], "POST");
        assert_eq!(line["url"], "/v1/chat/completions");
        assert_eq!(line["custom_id"].as_str().unwrap().len(), 64, "{line}");
        assert_eq!(line["body"]["model"], "test-model");
        assert_eq!(line["body"]["messages"][0]["role"], "system");
        assert_eq!(line["body"]["response_format"]["type"], "json_schema");
        assert!(line["body"]["max_tokens"].as_u64().unwrap() > 0);
    }
    assert_ne!(lines[0]["custom_id"], lines[1]["custom_id"]);

    // The batch: the uploaded file, the chat endpoint, 24h, and the tag that finds it again.
    let create = env
        .server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/v1/batches" && r.method.as_str() == "POST")
        .unwrap();
    let create: Value = serde_json::from_slice(&create.body).unwrap();
    assert_eq!(create["input_file_id"], "file-abc123");
    assert_eq!(create["endpoint"], "/v1/chat/completions");
    assert_eq!(create["completion_window"], "24h");
    assert!(
        create["metadata"]["hanbrief_batch"]
            .as_str()
            .unwrap()
            .starts_with("hb")
    );

    // One cache: an ordinary run that must redo a brief finds its call answered by the batch
    // (the chat endpoint above would fail the test if it were called).
    std::fs::remove_file(env.out().join("a0.json")).unwrap();
    let o = env.summarize(&[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(env.report()["totals"]["cached_calls"], 1);
}

// --- Whole runs against mock-provider ----------------------------------------------------------

fn mock_env_config(url: &str, extra: &str) -> String {
    format!("[endpoint]\nbase_url = \"{url}\"\n{extra}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_runs_write_every_brief_in_phases_without_chat_calls() {
    let mock = MockProvider::start(&["--batch-completion", "300ms"]);
    let env = TestEnv::new()
        .await
        .with_config(&(mock_env_config(&mock.url, FAST_POLL) + "[chunking]\nchunk_tokens = 400\n"));
    env.short_articles(2);
    // Long enough for map-reduce with a collapse level at 400-token chunks.
    env.article("long.txt", &long_article(60));
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/articles");
    let input = env.input().display().to_string();
    let out = env.out().display().to_string();
    let o = env
        .run(&["summarize", &input, examples, "-o", &out, "--batch"])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let report = env.report();
    assert_eq!(report["totals"]["written"], 8, "{report}");
    assert_eq!(report["totals"]["batch_calls"], report["totals"]["calls"]);
    assert!(report["batch"]["phases"].as_u64().unwrap() >= 2, "{report}");
    let long = report["articles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"].as_str().unwrap().ends_with("long.txt"))
        .unwrap();
    assert!(long["chunks"].as_u64().unwrap() > 1, "{long}");
    let stats = mock.stats().await;
    assert_eq!(stats["requests"], 0, "no synchronous chat call: {stats}");
    assert_eq!(stats["batch_repeated"], 0, "{stats}");
    assert_eq!(stats["batch_lines"], stats["batch_answered"], "{stats}");
}

/// The shared corpus of real articles (beside the repository, as CI lays it out), which holds a
/// 45 KB article that needs map-reduce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_runs_over_the_shared_corpus() {
    // HANBRIEF_TEST_CORPUS points elsewhere (a worktree whose parent has no shared/).
    let corpus = std::env::var("HANBRIEF_TEST_CORPUS")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus").into());
    let corpus = corpus.as_str();
    if !std::path::Path::new(corpus).is_dir() {
        eprintln!("no {corpus}: skipped (CI has it)");
        return;
    }
    let (mock, env) = batch_env(&["--batch-completion", "300ms"]).await;
    let out = env.out().display().to_string();
    let o = env.run(&["summarize", corpus, "-o", &out, "--batch"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let report = env.report();
    let articles = report["totals"]["articles"].as_u64().unwrap();
    assert_eq!(
        report["totals"]["written"].as_u64().unwrap(),
        articles,
        "{report}"
    );
    assert!(
        report["articles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["chunks"].as_u64().unwrap() > 1),
        "one article needs map-reduce: {report}"
    );
    assert!(report["batch"]["phases"].as_u64().unwrap() >= 2, "{report}");
    let stats = mock.stats().await;
    assert_eq!(stats["requests"], 0, "no synchronous chat call: {stats}");
    assert_eq!(stats["batch_repeated"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_lines_failed_and_expired_batches_end_with_every_article_written() {
    let mock = MockProvider::start(&[
        "--batch-completion",
        "300ms",
        "--batch-fail-lines",
        "0.3",
        "--batch-fail",
        "1",
        "--batch-expire",
        "1",
    ]);
    let env = TestEnv::new().await.with_config(&mock_env_config(
        &mock.url,
        &(FAST_POLL.to_string() + "max_attempts = 6\n"),
    ));
    env.short_articles(6);
    let o = env.summarize(&["--batch"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(written(&env), 6);
    let report = env.report();
    assert!(
        report["batch"]["retried"].as_u64().unwrap() >= 6,
        "{report}"
    );
    let stats = mock.stats().await;
    assert_eq!(stats["batch_repeated"], 0, "{stats}");
    assert!(stats["batches"].as_u64().unwrap() >= 2, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_attempts_are_sent_as_ordinary_calls() {
    // Every line fails: after one batch, the calls go the ordinary way.
    let mock = MockProvider::start(&["--batch-completion", "200ms", "--batch-fail-lines", "1"]);
    let env = TestEnv::new().await.with_config(&mock_env_config(
        &mock.url,
        &(FAST_POLL.to_string() + "max_attempts = 1\n"),
    ));
    env.short_articles(2);
    let o = env.summarize(&["--batch"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(written(&env), 2);
    let report = env.report();
    assert_eq!(report["batch"]["sent_synchronously"], 2, "{report}");
    assert_eq!(report["totals"]["batch_calls"], 0, "{report}");
    assert_eq!(mock.stats().await["ok"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enqueued_token_limit_is_learnt_and_kept() {
    // Each short request is about 600 prompt tokens: 1,500 lets two at a time, and the first
    // file (all five) is refused.
    let (mock, env) =
        batch_env(&["--batch-completion", "200ms", "--batch-token-limit", "1500"]).await;
    env.short_articles(5);
    let o = env.summarize(&["--batch"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(written(&env), 5);
    assert!(
        output_text(&o).contains("enqueued-token limit"),
        "{}",
        output_text(&o)
    );
    let stats = mock.stats().await;
    assert!(stats["batches"].as_u64().unwrap() >= 2, "{stats}");
    assert!(stats["files"].as_u64().unwrap() >= 3, "{stats}");
    assert_eq!(stats["requests"], 0, "{stats}");
    assert_eq!(stats["batch_repeated"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wait_submits_and_the_next_run_picks_up() {
    let (mock, env) = batch_env(&["--batch-completion", "500ms"]).await;
    env.short_articles(3);
    let o = env.summarize(&["--batch", "--no-wait"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let report = env.report();
    assert_eq!(report["totals"]["waiting"], 3, "{report}");
    assert_eq!(report["batch"]["in_flight"], 1, "{report}");
    assert!(
        output_text(&o).contains("waiting for batches"),
        "{}",
        output_text(&o)
    );
    let o = env.summarize(&["--batch"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(written(&env), 3);
    let stats = mock.stats().await;
    assert_eq!(stats["batches"], 1, "{stats}");
    assert_eq!(stats["batch_lines"], 3, "{stats}");
    assert_eq!(stats["batch_repeated"], 0, "{stats}");
    assert_eq!(stats["requests"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_while_waiting_then_a_rerun_submits_nothing_twice() {
    let (mock, env) = batch_env(&["--batch-completion", "3s"]).await;
    env.short_articles(4);
    let command = summarize_batch(&env);
    // Wait until the batch is at the provider, then kill -9 while the run waits for it.
    let mut child = spawn_until_a_batch_is_out(&mock, command).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !env.out().join("a0.json").exists(),
        "killed before any brief"
    );

    let o = env.summarize(&["--batch"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(written(&env), 4);
    let stats = mock.stats().await;
    assert_eq!(stats["batches"], 1, "one batch for both runs: {stats}");
    assert_eq!(stats["batch_lines"], 4, "{stats}");
    assert_eq!(stats["batch_repeated"], 0, "{stats}");
    assert_eq!(stats["requests"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_listed_checked_and_cancelled() {
    let (mock, env) = batch_env(&["--batch-completion", "6s"]).await;
    env.short_articles(2);
    let o = env.summarize(&["--batch", "--no-wait"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let out = env.out().display().to_string();

    let o = env.run(&["batch", "list", "-o", &out]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let list = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(list.contains("batch-mock"), "{list}");
    let o = env.run(&["batch", "status", "-o", &out, "--json"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let status: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(status[0]["requests"], 2, "{status}");
    assert!(
        matches!(
            status[0]["status"].as_str(),
            Some("validating" | "in_progress")
        ),
        "{status}"
    );

    let o = env.run(&["batch", "cancel", "-o", &out]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("cancelling"),
        "{}",
        output_text(&o)
    );
    let o = env.run(&["batch", "cancel", "-o", &out]).await;
    assert!(
        output_text(&o).contains("no batches in flight"),
        "{}",
        output_text(&o)
    );

    // The next run collects the cancelled batch and submits its requests afresh.
    let o = env.summarize(&["--batch"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(written(&env), 2);
    let stats = mock.stats().await;
    assert_eq!(stats["batches"], 2, "{stats}");
    assert_eq!(stats["batch_repeated"], 0, "{stats}");
}

/// Azure OpenAI's batch endpoints, as the Azure recipe sets them up: `/openai/files` and
/// `/openai/batches` with `api-version`, the `api-key` header, `url` `/chat/completions` and the
/// global-batch deployment named in every request (learn.microsoft.com, "Getting started with
/// Azure OpenAI batch deployments", REST tab).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_azure_recipe_uses_azures_batch_endpoints() {
    let env = TestEnv::new().await;
    let recipe = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/providers/azure-openai.toml"
    );
    let uri = env.server.uri();
    let config = std::fs::read_to_string(recipe)
        .unwrap()
        .replace("https://YOUR-RESOURCE.openai.azure.com", &uri)
        .replace("AZURE_OPENAI_API_KEY", KEY_ENV)
        .replace("YOUR-GLOBAL-BATCH-DEPLOYMENT", "mini-batch")
        // FAST_POLL's keys go into [batch], the recipe's last table.
        + FAST_POLL.trim_start_matches("[batch]\n");
    std::fs::write(env.root().join("azure.toml"), config).unwrap();
    env.short_articles(1);
    let upload = Arc::new(Mutex::new(None));
    let azure_object = || {
        let mut b = batch_object("validating", None, 0);
        b["endpoint"] = json!("/chat/completions");
        b
    };
    Mock::given(method("POST"))
        .and(path("/openai/files"))
        .and(wiremock::matchers::query_param("api-version", "2024-10-21"))
        .and(wiremock::matchers::header(
            "api-key",
            "sk-test-key-0123456789",
        ))
        .respond_with(Upload(upload.clone()))
        .expect(1)
        .mount(&env.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/openai/batches"))
        .and(wiremock::matchers::query_param("api-version", "2024-10-21"))
        .respond_with(ResponseTemplate::new(200).set_body_json(azure_object()))
        .expect(1)
        .mount(&env.server)
        .await;
    let mut done = batch_object("completed", Some("file-out"), 1);
    done["endpoint"] = json!("/chat/completions");
    Mock::given(method("GET"))
        .and(path("/openai/batches/batch_abc123"))
        .and(wiremock::matchers::query_param("api-version", "2024-10-21"))
        .respond_with(ResponseTemplate::new(200).set_body_json(done))
        .mount(&env.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/openai/files/file-out/content"))
        .and(wiremock::matchers::query_param("api-version", "2024-10-21"))
        .respond_with(Results(upload.clone()))
        .expect(1)
        .mount(&env.server)
        .await;
    let config = env.root().join("azure.toml").display().to_string();
    let (input, out) = (
        env.input().display().to_string(),
        env.out().display().to_string(),
    );
    let o = env
        .run_raw(
            &[
                "--config",
                &config,
                "summarize",
                &input,
                "-o",
                &out,
                "--batch",
            ],
            &[(KEY_ENV, "sk-test-key-0123456789")],
            None,
        )
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(written(&env), 1);
    let create = env
        .server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/openai/batches" && r.method.as_str() == "POST")
        .unwrap();
    let create: Value = serde_json::from_slice(&create.body).unwrap();
    assert_eq!(create["endpoint"], "/chat/completions");
    let body = String::from_utf8(upload.lock().unwrap().clone().unwrap().body).unwrap();
    let line: Value =
        serde_json::from_str(body.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
    assert_eq!(line["url"], "/chat/completions");
    assert_eq!(line["body"]["model"], "mini-batch");
    assert!(
        line["body"]["max_completion_tokens"].as_u64().unwrap() > 0,
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_and_eval_take_batch_too() {
    let (mock, env) = batch_env(&["--batch-completion", "200ms"]).await;
    env.short_articles(3);
    let o = env.summarize(&["--batch"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let out = env.out().display().to_string();
    let o = env.run(&["digest", &out, "--batch"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let set = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/eval");
    let eval_out = env.root().join("eval").display().to_string();
    let o = env
        .run(&["eval", set, "--json", "-o", &eval_out, "--batch"])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["valid_brief_rate"], 1.0, "{r}");
    let stats = mock.stats().await;
    assert_eq!(stats["requests"], 0, "no synchronous chat call: {stats}");
    assert!(stats["batches"].as_u64().unwrap() >= 3, "{stats}");
    assert_eq!(stats["batch_repeated"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_batch_prints_phases_files_and_batch_prices() {
    let env = TestEnv::new()
        .await
        .with_config("[chunking]\nchunk_tokens = 400\n[batch]\nmax_requests_per_file = 4\n");
    env.short_articles(3);
    env.article("long.txt", &long_article(60));
    let openai = [
        "--model",
        "gpt-4.1-mini",
        "--base-url",
        "https://api.openai.com/v1",
    ];
    let dry = |batch: bool| {
        let mut args = vec!["--dry-run"];
        args.extend_from_slice(&openai);
        if batch {
            args.push("--batch");
        }
        let env = &env;
        async move {
            let o = env.summarize(&args).await;
            assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
            String::from_utf8_lossy(&o.stdout).into_owned()
        }
    };
    let cost = |text: &str| -> f64 {
        text.split("at most $")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no cost: {text}"))
            .parse()
            .unwrap()
    };
    let sync = dry(false).await;
    let batch = dry(true).await;
    assert!(!sync.contains("phase"), "{sync}");
    assert!(batch.contains("at batch prices"), "{batch}");
    let (s, b) = (cost(&sync), cost(&batch));
    assert!((b - s / 2.0).abs() <= 0.0001, "half the price: {s} vs {b}");

    // Phase 1: three one-call briefs and the long article's notes, four requests a file; then
    // the long article's reduce tree, one phase per level.
    let line = |phase: u32| {
        batch
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("phase {phase}:")))
            .unwrap_or_else(|| panic!("no phase {phase}: {batch}"))
            .to_string()
    };
    let requests = |l: &str| -> u64 {
        l.split(": ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let first = line(1);
    let n = requests(&first);
    assert!(n > 3 + 1, "{first}");
    assert!(
        first.contains(&format!("in {} request files of 4 + 4", n.div_ceil(4))),
        "{first}"
    );
    let last = batch
        .lines()
        .rfind(|l| l.trim_start().starts_with("phase "))
        .unwrap();
    assert!(last.contains(": 1 request in 1 request file"), "{last}");
    assert!(batch.contains("batch mode: "), "{batch}");
    // Nothing was sent, and nothing recorded for a later run.
    assert!(env.server.received_requests().await.unwrap().is_empty());
    assert!(!env.out().join(".hanbrief").join("state.db").exists());
}

/// Naming a folder that has no state store, or a batch it does not have, is the user's to fix
/// (exit 2, and the message says what to do), not hanbrief failing at its own work (4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_commands_on_a_folder_or_batch_that_is_not_there_are_usage_errors() {
    let env = TestEnv::new().await;
    let empty = tempfile::tempdir().unwrap();
    let empty = empty.path().display().to_string();
    for command in ["list", "status", "cancel"] {
        let o = env.run(&["batch", command, "-o", &empty]).await;
        assert_eq!(o.status.code(), Some(2), "{command}: {}", output_text(&o));
        assert!(
            output_text(&o).contains("has no state store")
                && output_text(&o).contains("hanbrief summarize --batch -o"),
            "{command}: {}",
            output_text(&o)
        );
    }
    // A folder with a store (an ordinary run made it) but no such batch.
    env.short_articles(1);
    chat()
        .respond_with(ok(&brief_reply()))
        .mount(&env.server)
        .await;
    let o = env.summarize(&[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let out = env.out().display().to_string();
    let o = env.run(&["batch", "cancel", "7", "-o", &out]).await;
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("no batch 7") && output_text(&o).contains("hanbrief batch list"),
        "{}",
        output_text(&o)
    );
}

/// A mock provider started with `args` (its batch behaviour) and a test folder whose config
/// points at it, polling fast.
async fn batch_env(args: &[&str]) -> (MockProvider, TestEnv) {
    let mock = MockProvider::start(args);
    let env = TestEnv::new()
        .await
        .with_config(&mock_env_config(&mock.url, FAST_POLL));
    (mock, env)
}

/// `summarize articles -o out --batch`, as a command to spawn.
fn summarize_batch(env: &TestEnv) -> std::process::Command {
    let mut command = env.summarize_command();
    command.arg("--batch");
    command
}

/// Spawns `command` (output piped) and returns it once it has submitted a batch to `mock`.
async fn spawn_until_a_batch_is_out(
    mock: &MockProvider,
    mut command: std::process::Command,
) -> std::process::Child {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while mock.stats().await["batches"] == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no batch submitted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

/// [`spawn_until_a_batch_is_out`], then runs `sql` on the output folder's state store under the
/// waiting run, as another program would; returns the still-running child.
async fn tamper_while_waiting(
    env: &TestEnv,
    mock: &MockProvider,
    command: std::process::Command,
    sql: &str,
) -> std::process::Child {
    let child = spawn_until_a_batch_is_out(mock, command).await;
    let db = rusqlite::Connection::open(env.out().join(".hanbrief/state.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch(sql).unwrap();
    child
}

/// The damage the store tests do: the batches table loses a column every read of it names.
const DAMAGE: &str = "ALTER TABLE batches RENAME COLUMN status TO damaged";

async fn wait_for_output(child: std::process::Child) -> std::process::Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

/// The state store failing while a run waits for its batch is hanbrief's own work failing
/// (exit 4, the store named), not the provider refusing us (3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_store_that_fails_while_waiting_for_a_batch_exits_4() {
    let (mock, env) = batch_env(&["--batch-completion", "3s"]).await;
    env.short_articles(2);
    let command = summarize_batch(&env);
    // Another program damages the store under the waiting run: the batches table loses a
    // column the run reads.
    let child = tamper_while_waiting(&env, &mock, command, DAMAGE).await;
    let o = wait_for_output(child).await;
    assert_eq!(o.status.code(), Some(4), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("the state store") && output_text(&o).contains("is not usable"),
        "{}",
        output_text(&o)
    );
    assert!(
        !output_text(&o).contains("the endpoint rejected"),
        "{}",
        output_text(&o)
    );
    assert_eq!(env.report()["exit_code"], 4, "{}", env.report());
    // The store's error was logged once; the articles it stopped point at it.
    assert_eq!(
        output_text(&o).matches("is not usable").count(),
        1,
        "{}",
        output_text(&o)
    );
}

/// The digest's batch mode too: a store that fails under the waiting digest is hanbrief's own
/// failure (4), not the provider refusing it, and the message does not blame the endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_store_that_fails_while_a_digest_waits_for_its_batch_exits_4() {
    let (mock, env) = batch_env(&["--batch-completion", "3s"]).await;
    env.short_articles(2);
    let o = env.summarize(&[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let (config, out) = (env.config_path(), env.out());
    let command = env.command(&[
        "--config",
        config.to_str().unwrap(),
        "digest",
        out.to_str().unwrap(),
        "--batch",
    ]);
    let child = tamper_while_waiting(&env, &mock, command, DAMAGE).await;
    let o = wait_for_output(child).await;
    assert_eq!(o.status.code(), Some(4), "{}", output_text(&o));
    let text = output_text(&o);
    assert!(text.contains("cannot use the state store"), "{text}");
    assert!(!text.contains("the endpoint rejected"), "{text}");
}

/// The batches a waiting run knows of vanish from its store (another program deleted them):
/// nothing can finish any more, so the run stops with "no batch left to wait for" instead of
/// polling forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_batches_vanish_from_the_store_stops_instead_of_polling_forever() {
    let (mock, env) = batch_env(&["--batch-completion", "30s"]).await;
    env.short_articles(2);
    let command = summarize_batch(&env);
    let mut child = tamper_while_waiting(&env, &mock, command, "DELETE FROM batches").await;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("still polling 20 s after its batches vanished");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let o = child.wait_with_output().unwrap();
    assert!(!status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("no batch left to wait for"),
        "{}",
        output_text(&o)
    );
}
