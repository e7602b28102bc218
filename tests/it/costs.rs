//! Honest numbers: a price per model (or "unknown"), nothing for servers on this machine, a
//! re-made brief counted as written, briefs with warnings counted.

use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::*;

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(completion(&brief_reply()))
}

/// The dry run's last line (the totals) for `model` against `base_url`.
async fn dry_run_total(env: &TestEnv, model: &str, base_url: &str) -> String {
    let out = env
        .summarize(&["--dry-run", "--model", model, "--base-url", base_url])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_price_each_model_and_say_when_the_price_is_unknown() {
    let env = TestEnv::new().await;
    env.article("a.txt", &long_article(3));
    let openai = "https://api.openai.com/v1";
    let mut costs = Vec::new();
    for model in ["gpt-4.1", "gpt-4o", "o3", "gpt-4.1-mini"] {
        let line = dry_run_total(&env, model, openai).await;
        let cost = line
            .split("at most $")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no cost for {model}: {line}"));
        costs.push((model, cost.to_string()));
    }
    // gpt-4.1 and o3 share a price; gpt-4o and gpt-4.1-mini do not.
    assert_eq!(costs[0].1, costs[2].1, "{costs:?}");
    assert_ne!(costs[0].1, costs[1].1, "{costs:?}");
    assert_ne!(costs[0].1, costs[3].1, "{costs:?}");

    let line = dry_run_total(&env, "llama3", openai).await;
    assert!(line.contains("unknown cost"), "{line}");
    assert!(
        line.contains("[pricing] \"llama3\""),
        "says how to price it: {line}"
    );
    assert!(!line.contains('$'), "no made-up figure: {line}");

    // A server on this machine (the mock provider, llama.cpp, Ollama) costs nothing, whatever
    // the model is called.
    let line = dry_run_total(&env, "gpt-4.1", "http://127.0.0.1:8787/v1").await;
    assert!(line.contains("at most $0.0000"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_against_a_local_server_cost_nothing_and_priced_models_cost_their_price() {
    let env = TestEnv::new().await;
    env.article("a.txt", SHORT_ARTICLE);
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ok())
        .mount(&env.server)
        .await;
    // The test server is on 127.0.0.1 and the test config prices only "test-model".
    let out = env.summarize(&["--model", "gpt-4.1-mini"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let report = env.report();
    assert_eq!(report["totals"]["cost_usd"], 0.0, "{report}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("$0.0000"),
        "{}",
        output_text(&out)
    );
    assert_eq!(env.brief("a.txt")["usage"]["cost_usd"], 0.0);

    // A priced model: its tokens at $1 (prompt) and $2 (completion) per million.
    let out = env.summarize(&["--force"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let totals = &env.report()["totals"];
    let tokens = |k: &str| totals[k].as_f64().unwrap();
    let expected = (tokens("prompt_tokens") + 2.0 * tokens("completion_tokens")) / 1e6;
    let cost = totals["cost_usd"].as_f64().unwrap();
    assert!(
        expected > 0.0 && (cost - expected).abs() < 1e-12,
        "{totals}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_made_brief_is_written_and_names_the_model_that_made_it() {
    let env = TestEnv::new().await;
    env.short_articles(2);
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ok())
        .mount(&env.server)
        .await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(env.brief("a0.txt")["usage"]["model"], "test-model");

    // Another model: every article is asked again (the mock answers the same brief).
    let out = env.summarize(&["--model", "other-model"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let report = env.report();
    assert_eq!(report["totals"]["calls"], 2, "{report}");
    assert_eq!(report["totals"]["written"], 2, "{report}");
    assert_eq!(report["totals"]["unchanged"], 0, "{report}");
    assert_eq!(env.brief("a0.txt")["usage"]["model"], "other-model");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 written, 0 unchanged"), "{stderr}");

    // --force: paid for again, so written again.
    let out = env.summarize(&["--model", "other-model", "--force"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(env.report()["totals"]["written"], 2);

    // Nothing changed: unchanged, no call.
    let out = env.summarize(&["--model", "other-model"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let report = env.report();
    assert_eq!(report["totals"]["unchanged"], 2, "{report}");
    assert_eq!(report["totals"]["calls"], 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_counts_briefs_with_warnings() {
    let env = TestEnv::new().await;
    env.short_articles(2);
    // A subway article: the canned brief's chip figures are not in it.
    env.article(
        "subway.txt",
        "지하철 요금 인상\n\n서울시는 지하철 기본요금을 다음 달부터 150원 올린다고 밝혔다.\n시민들의 반응은 엇갈렸다.\n",
    );
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ok())
        .mount(&env.server)
        .await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3 written (1 with warnings)"), "{stderr}");
    assert_eq!(env.report()["totals"]["with_warnings"], 1);
}
