//! What users touch: provider recipes, config commands, pipes, progress, generated docs.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::*;

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(completion(&brief_reply()))
}

fn recipe(name: &str) -> String {
    format!("{}/examples/providers/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// What one provider must receive.
struct Shape {
    recipe: &'static str,
    key_env: &'static str,
    /// Path of the base URL on the mock (the recipe's own path).
    base_path: &'static str,
    auth_header: &'static str,
    auth_value: &'static str,
    tokens_field: &'static str,
    other_tokens_field: &'static str,
    model: &'static str,
    query: Option<(&'static str, &'static str)>,
    extra_headers: &'static [(&'static str, &'static str)],
    format: &'static str,
}

const SHAPES: &[Shape] = &[
    Shape {
        recipe: "openai.toml",
        key_env: "OPENAI_API_KEY",
        base_path: "/v1",
        auth_header: "authorization",
        auth_value: "Bearer sk-openai-test-0123456789",
        tokens_field: "max_completion_tokens",
        other_tokens_field: "max_tokens",
        model: "gpt-4.1-mini",
        query: None,
        extra_headers: &[],
        format: "json_schema",
    },
    Shape {
        recipe: "azure-openai.toml",
        key_env: "AZURE_OPENAI_API_KEY",
        base_path: "/openai/deployments/brief-deployment",
        auth_header: "api-key",
        auth_value: "azure-test-0123456789",
        tokens_field: "max_completion_tokens",
        other_tokens_field: "max_tokens",
        model: "gpt-4o-mini",
        query: Some(("api-version", "2024-10-21")),
        extra_headers: &[],
        format: "json_schema",
    },
    Shape {
        recipe: "ollama.toml",
        key_env: "OLLAMA_API_KEY",
        base_path: "/v1",
        auth_header: "",
        auth_value: "",
        tokens_field: "max_tokens",
        other_tokens_field: "max_completion_tokens",
        model: "qwen2.5:7b",
        query: None,
        extra_headers: &[],
        format: "json_schema",
    },
    Shape {
        recipe: "vllm.toml",
        key_env: "VLLM_API_KEY",
        base_path: "/v1",
        auth_header: "authorization",
        auth_value: "Bearer vllm-test-0123456789",
        tokens_field: "max_tokens",
        other_tokens_field: "max_completion_tokens",
        model: "Qwen/Qwen2.5-7B-Instruct",
        query: None,
        extra_headers: &[],
        format: "json_schema",
    },
    Shape {
        recipe: "llamacpp-server.toml",
        key_env: "LLAMA_API_KEY",
        base_path: "/v1",
        auth_header: "",
        auth_value: "",
        tokens_field: "max_tokens",
        other_tokens_field: "max_completion_tokens",
        model: "local-gguf",
        query: None,
        extra_headers: &[],
        format: "json_object",
    },
    Shape {
        recipe: "local-llama.toml",
        key_env: "OPENAI_API_KEY",
        base_path: "/v1",
        auth_header: "",
        auth_value: "",
        tokens_field: "max_tokens",
        other_tokens_field: "max_completion_tokens",
        model: "gemma-3-270m",
        query: None,
        extra_headers: &[],
        format: "json_object",
    },
    Shape {
        recipe: "upstage.toml",
        key_env: "UPSTAGE_API_KEY",
        base_path: "/v1",
        auth_header: "authorization",
        auth_value: "Bearer up_test0123456789",
        tokens_field: "max_tokens",
        other_tokens_field: "max_completion_tokens",
        model: "solar-pro2",
        query: None,
        extra_headers: &[],
        format: "json_schema",
    },
    Shape {
        recipe: "openrouter.toml",
        key_env: "OPENROUTER_API_KEY",
        base_path: "/api/v1",
        auth_header: "authorization",
        auth_value: "Bearer sk-or-test-0123456789",
        tokens_field: "max_tokens",
        other_tokens_field: "max_completion_tokens",
        model: "openai/gpt-4.1-mini",
        query: None,
        extra_headers: &[
            ("x-title", "hanbrief"),
            ("http-referer", "https://github.com/hanbrief/hanbrief"),
        ],
        format: "json_schema",
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_recipe_sends_the_request_its_provider_expects() {
    for shape in SHAPES {
        let env = TestEnv::new().await;
        env.article("a.txt", SHORT_ARTICLE);
        Mock::given(method("POST"))
            .and(path(format!("{}/chat/completions", shape.base_path)))
            .respond_with(ok())
            .expect(1)
            .mount(&env.server)
            .await;
        let base = format!("{}{}", env.server.uri(), shape.base_path);
        let key = shape.auth_value.rsplit(' ').next().unwrap_or("");
        let env_vars: Vec<(&str, &str)> = if shape.auth_header.is_empty() {
            vec![]
        } else {
            vec![(shape.key_env, key)]
        };
        let out = env
            .run_raw(
                &[
                    "--config",
                    &recipe(shape.recipe),
                    "summarize",
                    env.input().to_str().unwrap(),
                    "-o",
                    env.out().to_str().unwrap(),
                    "--base-url",
                    &base,
                ],
                &env_vars,
                None,
            )
            .await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            shape.recipe,
            output_text(&out)
        );
        let requests = env.calls().await;
        let r = &requests[0];
        let body: Value = r.body_json().unwrap();
        let who = shape.recipe;
        assert_eq!(body["model"], shape.model, "{who}");
        assert!(
            body[shape.tokens_field].as_u64().is_some(),
            "{who}: {} missing in {body}",
            shape.tokens_field
        );
        assert!(
            body.get(shape.other_tokens_field).is_none(),
            "{who}: {} sent",
            shape.other_tokens_field
        );
        assert_eq!(body["response_format"]["type"], shape.format, "{who}");
        assert_eq!(
            body["messages"][body["messages"].as_array().unwrap().len() - 1]["role"],
            "user",
            "{who}"
        );
        if shape.auth_header.is_empty() {
            assert!(
                r.headers.get("authorization").is_none() && r.headers.get("api-key").is_none(),
                "{who}: a key was sent"
            );
        } else {
            assert_eq!(r.headers[shape.auth_header], shape.auth_value, "{who}");
        }
        if shape.auth_header == "api-key" {
            assert!(
                r.headers.get("authorization").is_none(),
                "{who}: Azure gets no bearer token"
            );
        }
        let query: Vec<(String, String)> = r
            .url
            .query_pairs()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match shape.query {
            Some((k, v)) => assert_eq!(query, vec![(k.to_string(), v.to_string())], "{who}"),
            None => assert!(query.is_empty(), "{who}: {query:?}"),
        }
        for (k, v) in shape.extra_headers {
            assert_eq!(r.headers[*k], *v, "{who}");
        }
        if shape.recipe == "local-llama.toml" {
            // The bounded schema beside json_object: both llama.cpp servers make it a grammar,
            // and its lengths stop a model this small from writing one field forever.
            let schema = &body["response_format"]["schema"];
            assert!(
                schema.to_string().contains("maxItems") || schema.to_string().contains("pattern"),
                "{who}: {schema}"
            );
            // Gemma has no system role: the system prompt rides in the user turn.
            assert!(
                body["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|m| m["role"] != "system")
            );
            assert!(
                body["messages"][0]["content"]
                    .as_str()
                    .unwrap()
                    .contains("data, not instructions")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_ping_succeeds_with_one_tiny_call() {
    let env = TestEnv::new().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("OK")))
        .expect(1)
        .mount(&env.server)
        .await;
    let out = env.run(&["config", "check", "--ping"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ping ok: test-model answered \"OK\""),
        "{stderr}"
    );
    let body: Value = env.calls().await[0].body_json().unwrap();
    assert_eq!(body["max_tokens"], 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_ping_says_exactly_what_is_wrong() {
    let cases: &[(u16, Value, &str)] = &[
        (
            401,
            json!({"error": {"message": "Incorrect API key provided: sk-t***789.", "code": "invalid_api_key"}}),
            "refused the API key",
        ),
        (
            404,
            json!({"error": {"message": "The model `test-model` does not exist or you do not have access to it.", "code": "model_not_found"}}),
            "404 Not Found for model `test-model`",
        ),
    ];
    for (status, body, expected) in cases {
        let env = TestEnv::new().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(*status).set_body_json(body.clone()))
            .expect(1)
            .mount(&env.server)
            .await;
        let out = env.run(&["config", "check", "--ping"]).await;
        assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{status}: {stderr}");
        assert!(
            !stderr.contains("sk-test-key-0123456789"),
            "the key leaked: {stderr}"
        );
    }
    let env = TestEnv::new().await;
    let out = env
        .run(&[
            "config",
            "check",
            "--ping",
            "--base-url",
            "http://127.0.0.1:9/v1",
        ])
        .await;
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot reach the endpoint at http://127.0.0.1:9/v1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_show_prints_sources_and_masks_the_key() {
    let env = TestEnv::new().await;
    let out = env
        .run_with_env(
            &["config", "show", "--model", "flag-model"],
            &[
                (KEY_ENV, "sk-secret-abcdefghijklmnop"),
                ("HANBRIEF_LIMITS__MAX_RETRIES", "4"),
            ],
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("sk-secret-abcdefghijklmnop"),
        "the key leaked: {stdout}"
    );
    assert!(
        stdout.contains("set (sk-…op) in HANBRIEF_TEST_KEY"),
        "{stdout}"
    );
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("{key} missing"))
            .to_string()
    };
    assert!(
        line("endpoint.model").contains("\"flag-model\"")
            && line("endpoint.model").contains("# flag --model")
    );
    assert!(line("limits.max_retries").contains("# environment HANBRIEF_LIMITS__MAX_RETRIES"));
    let file = std::fs::read_to_string(env.config_path()).unwrap();
    let base_url_line = file
        .lines()
        .position(|l| l.starts_with("base_url"))
        .unwrap()
        + 1;
    assert!(
        line("endpoint.base_url").contains(&format!("hanbrief.toml line {base_url_line}")),
        "{}",
        line("endpoint.base_url")
    );
    assert!(line("chunking.margin").contains("# default"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_goes_to_stdout_and_stdin_is_an_article() {
    let env = TestEnv::new().await;
    env.short_articles(3);
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ok())
        .mount(&env.server)
        .await;
    let out = env.summarize(&["--format", "jsonl", "-q"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|b| b["schema"] == "hanbrief.brief/2"));
    assert!(
        !env.out().join("a0.json").exists(),
        "jsonl alone writes no brief files"
    );
    // A second run prints every brief again (from the cache, no calls).
    let again = env.summarize(&["--format", "jsonl", "-q"]).await;
    assert_eq!(String::from_utf8_lossy(&again.stdout).lines().count(), 3);
    assert_eq!(env.report()["totals"]["calls"], 0);

    // One article on stdin, the brief on stdout: a pipe.
    let config = env.config_path().display().to_string();
    let out_dir = env.root().join("piped").display().to_string();
    let piped = env
        .run_raw(
            &[
                "--config",
                &config,
                "-q",
                "summarize",
                "-",
                "--format",
                "jsonl",
                "-o",
                &out_dir,
            ],
            &[(KEY_ENV, "k")],
            Some(SHORT_ARTICLE.replace("1일", "5일").into_bytes()),
        )
        .await;
    assert_eq!(piped.status.code(), Some(0), "{}", output_text(&piped));
    let brief: Value = serde_json::from_str(String::from_utf8_lossy(&piped.stdout).trim()).unwrap();
    assert_eq!(brief["source"]["path"], "-");
    assert_eq!(brief["source"]["encoding"], "UTF-8");
    assert_eq!(brief["title"]["en"], "Chip exports hit a record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_terminal_progress_is_a_log_line_when_something_moved() {
    let env = TestEnv::new()
        .await
        .with_config("[limits]\nmax_in_flight = 1\n");
    env.short_articles(4);
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ok().set_delay(std::time::Duration::from_millis(250)))
        .mount(&env.server)
        .await;
    let input = env.input().display().to_string();
    let out_dir = env.out().display().to_string();
    let out = env
        .summarize_with_env(&[], &[(KEY_ENV, "k"), ("HANBRIEF_PROGRESS_EVERY", "200ms")])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let progress: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(" progress "))
        .collect();
    assert!(progress.len() >= 2, "{stderr}");
    assert!(
        progress
            .iter()
            .all(|l| l.contains("total=4") && l.contains("in_flight=")),
        "{progress:?}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "no terminal escapes in piped output: {stderr:?}"
    );
    // The summary at the end.
    assert!(
        stderr.contains("4 articles: 4 written, 0 unchanged, 0 skipped, 0 failed"),
        "{stderr}"
    );

    // Machines get JSON lines.
    let json = env
        .run_with_env(
            &[
                "--log-format",
                "json",
                "summarize",
                &input,
                "-o",
                &out_dir,
                "--force",
            ],
            &[(KEY_ENV, "k"), ("HANBRIEF_PROGRESS_EVERY", "200ms")],
        )
        .await;
    let parsed: Vec<Value> = String::from_utf8_lossy(&json.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        parsed
            .iter()
            .any(|v| v["fields"]["message"] == "progress" && v["fields"]["total"] == 4),
        "{:?}",
        String::from_utf8_lossy(&json.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_man_page_and_prompts() {
    let env = TestEnv::new().await;
    let bash = env.run_raw(&["completions", "bash"], &[], None).await;
    assert!(String::from_utf8_lossy(&bash.stdout).contains("_hanbrief()"));
    let zsh = env.run_raw(&["completions", "zsh"], &[], None).await;
    assert!(String::from_utf8_lossy(&zsh.stdout).contains("#compdef hanbrief"));
    let man = env.run_raw(&["man"], &[], None).await;
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(
        man.contains(".TH hanbrief 1") && man.contains("summarize"),
        "{man}"
    );

    let list = env.run(&["prompts", "list"]).await;
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("brief.md") && list.contains("built-in"),
        "{list}"
    );
    let dir = env.root().join("my-prompts");
    let init = env.run(&["prompts", "init", dir.to_str().unwrap()]).await;
    assert_eq!(init.status.code(), Some(0), "{}", output_text(&init));
    assert!(dir.join("brief.md").is_file() && dir.join("digest.md").is_file());
    let show = env.run(&["prompts", "show", "nope"]).await;
    assert_eq!(show.status.code(), Some(2));
}
