//! Which model answers: a model file swapped behind the same alias, or another server under the
//! same name, is a new model (its briefs are made again, its calls paid again); the same model
//! stays "unchanged" however its server stamps the time or sizes its context; a `/models` list
//! that fails never breaks a run. The model lists are real servers' (tests/data/providers).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::support::*;

/// What the fake server's `GET /v1/models` does.
#[derive(Clone, Copy, PartialEq)]
enum List {
    /// The llama.cpp server's list (its recorded fixture), describing the loaded file, with
    /// `created` stamped with the time of the request, as llama.cpp does.
    Served,
    Status(u16),
    Html,
    /// Answers after far longer than a run waits for it.
    Hang,
}

/// A llama.cpp-like server: which model file it has loaded (0: the recorded one, else another
/// behind the same alias), the context it was started with, and what its list does.
#[derive(Clone, Copy)]
struct State {
    file: u64,
    n_ctx: u64,
    list: List,
}

#[derive(Clone)]
struct Server(Arc<Mutex<State>>);

impl Server {
    fn set(&self, file: u64, n_ctx: u64, list: List) {
        *self.0.lock().unwrap() = State { file, n_ctx, list };
    }

    fn state(&self) -> State {
        *self.0.lock().unwrap()
    }
}

/// The llama.cpp server's recorded `/v1/models` body.
fn llama_cpp_list() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/providers/llamacpp-server/models.json");
    read_json(&path)["body"].clone()
}

/// `GET /v1/models`.
struct Models(Server);

impl Respond for Models {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let State { file, n_ctx, list } = self.0.state();
        match list {
            List::Served => {
                let mut body = llama_cpp_list();
                let model = &mut body["data"][0];
                model["created"] = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
                    .into();
                model["meta"]["n_ctx"] = n_ctx.into();
                if file > 0 {
                    // Another GGUF behind the same alias: another size and parameter count.
                    model["meta"]["size"] = (1_000_000_000 + file).into();
                    model["meta"]["n_params"] = (1_000_000_000 + file).into();
                    model["meta"]["ftype"] = "Q8_0".into();
                }
                ResponseTemplate::new(200).set_body_json(body)
            }
            List::Status(code) => ResponseTemplate::new(code).set_body_json(
                serde_json::json!({"error": {"message": "File Not Found", "type": "not_found_error", "code": code}}),
            ),
            List::Html => ResponseTemplate::new(200)
                .set_body_raw("<html><body>It works!</body></html>", "text/html"),
            List::Hang => ResponseTemplate::new(200)
                .set_body_json(llama_cpp_list())
                .set_delay(Duration::from_secs(60)),
        }
    }
}

/// Chat: briefs that say which file made them (so that a brief re-made by another model is
/// not identical to the one on disk); digests as the newsroom writes them.
struct Chat(Server);

impl Respond for Chat {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body = String::from_utf8_lossy(&req.body);
        if body.contains("Group these items into stories")
            || body.contains("Write the daily digest")
        {
            return Newsroom {
                merge_first_two: false,
                drop_last: false,
                map_merges_pairs: false,
            }
            .respond(req);
        }
        let file = self.0.state().file;
        let brief = brief_reply().replace(
            "Chip exports hit a record",
            &format!("Chip exports hit a record (file {file})"),
        );
        ResponseTemplate::new(200).set_body_json(completion(&brief))
    }
}

/// A workspace whose model is the alias `local-gguf`, served by a llama.cpp-like server with
/// its first file loaded and its list answering as `list`.
async fn local(list: List, extra: &str) -> (TestEnv, Server) {
    let env = TestEnv::new().await.with_config(&format!(
        "[endpoint]\nmodel = \"local-gguf\"\n{extra}\n[pricing]\n\"local-gguf\" = {{ input = 1.0, output = 2.0 }}\n"
    ));
    let server = Server(Arc::new(Mutex::new(State {
        file: 0,
        n_ctx: 8192,
        list,
    })));
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(Models(server.clone()))
        .mount(&env.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(Chat(server.clone()))
        .mount(&env.server)
        .await;
    (env, server)
}

/// Runs `summarize` and returns (articles unchanged, articles written, chat calls it made).
async fn summarize(env: &TestEnv) -> (u64, u64, usize) {
    let before = env.calls().await.len();
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let report = env.report();
    (
        report["totals"]["unchanged"].as_u64().unwrap(),
        report["totals"]["written"].as_u64().unwrap(),
        env.calls().await.len() - before,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_file_swapped_behind_the_same_alias_is_made_again_and_the_same_file_is_not() {
    let (env, server) = local(List::Served, "").await;
    env.short_articles(2);
    assert_eq!(summarize(&env).await, (0, 2, 2));
    assert_eq!(env.model_lists().await, 1, "the list is asked once per run");

    // The same file, the server restarted with another context (and, as always, another
    // `created`): the same model.
    server.set(0, 4096, List::Served);
    assert_eq!(summarize(&env).await, (2, 0, 0));

    // Another file behind the alias: every brief is made again, and paid for.
    server.set(1, 4096, List::Served);
    let before = env.calls().await.len();
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("local-gguf at http://127.0.0.1:")
            && stderr.contains("is not the model this output folder first saw"),
        "the user is told why every brief is made again: {stderr}"
    );
    assert_eq!(env.report()["totals"]["written"], 2, "{}", env.report());
    assert_eq!(env.calls().await.len() - before, 2);
    assert_eq!(summarize(&env).await, (2, 0, 0), "the new file, unchanged");

    // Back to the first file: its briefs are made again (the outputs are the other file's),
    // from its answers still in the cache: nothing is paid.
    server.set(0, 8192, List::Served);
    assert_eq!(summarize(&env).await, (0, 2, 0));
    assert_eq!(
        env.brief("a0.txt")["title"]["en"],
        "Chip exports hit a record (file 0)"
    );

    // A dry run uses no network: it assumes the model last seen (the first file), and plans
    // nothing; the run that asks sees the swap.
    server.set(2, 8192, List::Served);
    let lists = env.model_lists().await;
    let out = env.summarize(&["--dry-run"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 calls"),
        "{}",
        output_text(&out)
    );
    assert_eq!(env.model_lists().await, lists, "a dry run asked the server");
    assert_eq!(summarize(&env).await, (0, 2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_models_list_that_fails_never_breaks_a_run_and_the_last_description_stands_in() {
    // A server with no list at all: the run goes on, keyed as the folder's first model.
    let (env, server) = local(List::Status(404), "request_timeout = \"2s\"").await;
    env.short_articles(1);
    assert_eq!(summarize(&env).await, (0, 1, 1));
    // The list appears: the model seen without one is the same model.
    server.set(0, 8192, List::Served);
    assert_eq!(summarize(&env).await, (1, 0, 0));
    // The file is swapped, and the list breaks afterwards: the run goes on with the model
    // last described at this endpoint (the swapped one), not the first.
    server.set(1, 8192, List::Served);
    assert_eq!(summarize(&env).await, (0, 1, 1));
    for broken in [List::Status(500), List::Html, List::Status(401), List::Hang] {
        let started = std::time::Instant::now();
        server.set(1, 8192, broken);
        assert_eq!(summarize(&env).await, (1, 0, 0));
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "a hanging list is waited for briefly"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_cache_follows_the_model_too() {
    let (env, server) = local(List::Served, "").await;
    env.short_articles(2);
    assert_eq!(summarize(&env).await, (0, 2, 2));
    let first = digest(&env).await;
    assert!(first >= 1);
    assert_eq!(digest(&env).await, 0, "the same model: from the cache");
    server.set(1, 8192, List::Served);
    assert_eq!(digest(&env).await, first, "another file: asked again");
    assert_eq!(digest(&env).await, 0);
    // And when the list fails, the model last seen stands in.
    server.set(1, 8192, List::Status(404));
    assert_eq!(digest(&env).await, 0);
}

/// Runs `digest` over every brief and returns the chat calls it made.
async fn digest(env: &TestEnv) -> usize {
    let out_dir = env.out().display().to_string();
    let before = env.calls().await.len();
    let out = env.run(&["digest", out_dir.as_str(), "--all"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    env.calls().await.len() - before
}
