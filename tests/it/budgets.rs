//! Plans sized to the model, reservations sized to replies, hangs cut short, instructions sent
//! once: what a run sends, request by request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::{Request, Respond, ResponseTemplate};

use crate::support::*;

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(completion(&brief_reply()))
}

/// The reply budget of every request received, in order.
async fn budgets(env: &TestEnv) -> Vec<u64> {
    env.calls()
        .await
        .iter()
        .map(|r| {
            r.body_json::<Value>().unwrap()["max_tokens"]
                .as_u64()
                .expect("max_tokens")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_budgets_follow_the_replies_seen_and_are_remembered() {
    let env = TestEnv::new()
        .await
        .with_config("[limits]\nmax_in_flight = 1\n");
    env.short_articles(3);
    chat().respond_with(ok()).mount(&env.server).await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let first = budgets(&env).await;
    // Nothing seen yet: what a prompt of this size needs (500 tokens and half the prompt),
    // under the configured 2,000. Then the replies seen, with a margin that narrows as they
    // accumulate, and never under an eighth of the configured budget.
    assert!(first[0] > 500 && first[0] < 2000, "{first:?}");
    assert!(
        first[1] < 1000 && first[1] >= 250 && first[2] <= first[1],
        "{first:?}"
    );

    // The next run over the same output folder starts from what this one saw.
    env.server.reset().await;
    chat().respond_with(ok()).mount(&env.server).await;
    let out = env.summarize(&["--force"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let again = budgets(&env).await;
    assert!(!again.is_empty());
    assert!(again[0] < 1000, "{again:?}");
}

/// Briefs normally, but the third request's reply needs more than 1,000 tokens: cut at the
/// budget unless the budget allows that.
struct LongThird {
    seen: AtomicUsize,
}

impl Respond for LongThird {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let n = self.seen.fetch_add(1, Ordering::SeqCst);
        let budget = req.body_json::<Value>().unwrap()["max_tokens"]
            .as_u64()
            .unwrap();
        if n == 2 && budget < 1000 {
            let mut cut = completion(&brief_reply()[..40]);
            cut["choices"][0]["finish_reason"] = json!("length");
            return ResponseTemplate::new(200).set_body_json(cut);
        }
        ok()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_longer_than_its_sized_budget_is_asked_again_with_the_whole_budget() {
    let env = TestEnv::new()
        .await
        .with_config("[limits]\nmax_in_flight = 1\n");
    env.short_articles(3);
    chat()
        .respond_with(LongThird {
            seen: AtomicUsize::new(0),
        })
        .mount(&env.server)
        .await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let sent = budgets(&env).await;
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert!(sent[0] < 2000, "{sent:?}");
    assert!(sent[2] < 1000, "{sent:?}");
    assert_eq!(
        sent[3], 2000,
        "the safety net asks with the whole budget: {sent:?}"
    );
    assert_eq!(env.report()["totals"]["written"], 3);
}

/// Answers at once, but leaves the `hang`-th request (0-based) without an answer for `for_`.
struct HangOnce {
    seen: AtomicUsize,
    hang: usize,
    for_: Duration,
}

impl Respond for HangOnce {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        if self.seen.fetch_add(1, Ordering::SeqCst) == self.hang {
            return ok().set_delay(self.for_);
        }
        ok()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_call_is_cut_once_honest_calls_show_how_long_they_take() {
    // The default request timeout: ten minutes. The hang lasts 20 s; calls like it come back
    // in milliseconds, so after a few of them the hung one is cut within seconds and retried.
    let env = TestEnv::new()
        .await
        .with_config("[endpoint]\nrequest_timeout = \"10m\"\n\n[limits]\nmax_in_flight = 1\n");
    env.short_articles(12);
    chat()
        .respond_with(HangOnce {
            seen: AtomicUsize::new(0),
            hang: 10,
            for_: Duration::from_secs(20),
        })
        .mount(&env.server)
        .await;
    let started = Instant::now();
    let out = env.summarize(&[]).await;
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(env.report()["totals"]["written"], 12);
    assert!(
        took < Duration::from_secs(15),
        "waited {took:?} for the hang\n{}",
        output_text(&out)
    );
    assert!(
        output_text(&out).contains("taken for hung"),
        "{}",
        output_text(&out)
    );
    assert_eq!(env.report()["totals"]["retries"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_honest_server_is_not_cut() {
    // Every call takes about a second: the deadline learned from them leaves room for all.
    let env = TestEnv::new()
        .await
        .with_config("[endpoint]\nrequest_timeout = \"10m\"\n\n[limits]\nmax_in_flight = 1\n");
    env.short_articles(12);
    chat()
        .respond_with(ok().set_delay(Duration::from_millis(900)))
        .mount(&env.server)
        .await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(env.report()["totals"]["retries"], 0);
    assert_eq!(env.calls().await.len(), 12);
}

/// Records the first user message of every request.
struct FirstUser(Arc<Mutex<Vec<String>>>);

impl Respond for FirstUser {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap();
        let user = body["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_string();
        self.0.lock().unwrap().push(user);
        ok()
    }
}

/// The first user message of the one request a run over one short article sends, with
/// `config` added and, if given, one prompt template overridden.
async fn prompt_sent(config: &str, template: Option<(&str, &str)>) -> String {
    let env = TestEnv::new().await.with_config(config);
    if let Some((name, text)) = template {
        let dir = env.root().join("my-prompts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }
    env.short_articles(1);
    let seen = Arc::new(Mutex::new(Vec::new()));
    chat()
        .respond_with(FirstUser(seen.clone()))
        .mount(&env.server)
        .await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let sent = seen.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    sent[0].clone()
}

/// What only the full variant of format.md says: the shape of each field.
const SHAPE: &str = "as {\"ko\": Korean, \"en\": English}";
/// What both variants say.
const FIELDS: &str = "\"key_points\": 3 to 5 main points";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shape_is_spelled_out_only_where_no_schema_enforces_it() {
    // json_schema (the default's first try): the schema carries the shape.
    let enforced = prompt_sent("", None).await;
    assert!(enforced.contains(FIELDS), "{enforced}");
    assert!(!enforced.contains(SHAPE), "{enforced}");
    // json_object without a schema: the words must carry it.
    let free = prompt_sent("[endpoint]\nstructured_output = \"json_object\"\n", None).await;
    assert!(free.contains(FIELDS) && free.contains(SHAPE), "{free}");
    // Either way the instructions come after the article, once.
    assert!(free.find(FIELDS) > free.find("반도체 수출"), "{free}");
    assert_eq!(free.matches(FIELDS).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_override_that_includes_the_format_gets_it_once() {
    // A brief.md written before format.md was appended by hanbrief: it includes it itself.
    let brief = "<<<{{ fence }}\n{{ article }}\n{{ fence }}>>>\n\nBrief it.\n\n{% include \"format.md\" %}\n";
    for mode in ["json_object", "json_schema"] {
        let sent = prompt_sent(
            &format!(
                "[prompts]\ndir = \"my-prompts\"\n\n[endpoint]\nstructured_output = \"{mode}\"\n"
            ),
            Some(("brief.md", brief)),
        )
        .await;
        assert_eq!(sent.matches(FIELDS).count(), 1, "{mode}: {sent}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_article_that_fits_the_window_goes_in_one_call() {
    // About 7,500 tokens: more than the old fixed 6,000-token chunks, well within the window.
    let env = TestEnv::new()
        .await
        .with_config("[endpoint]\ncontext_window = 32768\n");
    env.article("long.txt", &long_article(80));
    chat().respond_with(ok()).mount(&env.server).await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(env.calls().await.len(), 1);
    assert_eq!(env.brief("long.txt")["source"]["chunks"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quality_cap_still_chunks_long_articles() {
    let env = TestEnv::new()
        .await
        .with_config("[endpoint]\ncontext_window = 32768\n\n[chunking]\nchunk_tokens = 3000\n");
    env.article("long.txt", &long_article(80));
    chat().respond_with(ok()).mount(&env.server).await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let chunks = env.brief("long.txt")["source"]["chunks"].as_u64().unwrap();
    assert!(chunks >= 3, "{chunks}");
    assert_eq!(env.calls().await.len() as u64, chunks + 1);
}

/// A small model's habit: the reply repeats one sentence until the token limit.
fn looping_cut() -> ResponseTemplate {
    let mut cut = completion(&format!(
        "{{\"title\": {{\"ko\": \"반도체 수출\", \"en\": \"Chip exports\"}}, \"summary\": {{\"ko\": \"{}",
        "반도체 수출이 142억 달러로 18.4% 늘었다. ".repeat(40)
    ));
    cut["choices"][0]["finish_reason"] = json!("length");
    ResponseTemplate::new(200).set_body_json(cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_cut_while_looping_gets_no_more_room_sized_or_not() {
    let env = TestEnv::new().await;
    env.short_articles(1);
    chat().respond_with(looping_cut()).mount(&env.server).await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    // The first budget is sized (below the configured 2,000), so the safety net would ask
    // again with the whole budget, and then with twice that: neither for a loop.
    let sent = budgets(&env).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0] < 2000, "{sent:?}");
    let reason = env.report()["articles"][0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("repeated itself"), "{reason}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("while repeating itself"), "{stderr}");
}

/// Notes that loop: three good lines, then the same line over and over until the limit.
struct LoopingNotes;

impl Respond for LoopingNotes {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap();
        if body.to_string().contains("of a long news article") {
            let mut cut = completion(&format!(
                "- 반도체 수출이 142억 달러로 늘었다.\n- 한빛전자는 월 26만 장으로 늘린다.\n{}- 업계는",
                "- 업계의 반응은 엇갈렸다.\n".repeat(30)
            ));
            cut["choices"][0]["finish_reason"] = json!("length");
            return ResponseTemplate::new(200).set_body_json(cut);
        }
        ok()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looping_notes_are_kept_once_without_asking_again_for_more_room() {
    let env = TestEnv::new()
        .await
        .with_config("[chunking]\nchunk_tokens = 400\n");
    env.article("long.txt", &long_article(14));
    chat().respond_with(LoopingNotes).mount(&env.server).await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let brief = env.brief("long.txt");
    let chunks = brief["source"]["chunks"].as_u64().unwrap();
    let bodies: Vec<Value> = env
        .calls()
        .await
        .iter()
        .map(|r| r.body_json().unwrap())
        .collect();
    let maps = bodies
        .iter()
        .filter(|b| b.to_string().contains("of a long news article"))
        .count() as u64;
    assert_eq!(
        maps, chunks,
        "a looping reply was asked again with more room"
    );
    let reduce = bodies
        .iter()
        .find(|b| b.to_string().contains("notes taken, part by part"))
        .unwrap();
    let reduce = reduce["messages"][1]["content"].as_str().unwrap();
    assert_eq!(
        reduce.matches("업계의 반응은 엇갈렸다.").count() as u64,
        chunks,
        "each chunk's repeated line is kept once: {reduce}"
    );
    let warnings = brief["checks"]["warnings"].to_string();
    assert!(warnings.contains("repeated itself"), "{warnings}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grammar_bounded_brief_gets_room_for_its_whole_grammar() {
    // llama.cpp makes json_object + schema a grammar that ends the reply by itself: its budget
    // is what the grammar allows, not the smaller budget a free reply of this article gets.
    let env = TestEnv::new()
        .await
        .with_config("[endpoint]\nstructured_output = \"json_object+schema\"\n");
    env.short_articles(1);
    chat().respond_with(ok()).mount(&env.server).await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let body: Value = env.calls().await[0].body_json().unwrap();
    assert_eq!(body["response_format"]["type"], "json_object");
    let budget = body["max_tokens"].as_u64().unwrap() as u32;
    let bound = hanbrief::llm::sizing::grammar_bound(&hanbrief::brief::content_schema_bounded());
    assert!(
        budget >= bound.min(2000),
        "{budget} vs the grammar's {bound}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repetition_controls_are_sent_only_when_set() {
    let env = TestEnv::new()
        .await
        .with_config("[endpoint]\nrepeat_penalty = 1.15\nfrequency_penalty = 0.3\n");
    env.short_articles(1);
    chat().respond_with(ok()).mount(&env.server).await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let body: Value = env.calls().await[0].body_json().unwrap();
    assert_eq!(body["repeat_penalty"], json!(1.15));
    assert_eq!(body["frequency_penalty"], json!(0.3));
    assert!(body.get("presence_penalty").is_none(), "{body}");

    let plain = TestEnv::new().await;
    plain.short_articles(1);
    chat().respond_with(ok()).mount(&plain.server).await;
    let out = plain.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let body: Value = plain.calls().await[0].body_json().unwrap();
    for key in ["repeat_penalty", "frequency_penalty", "presence_penalty"] {
        assert!(body.get(key).is_none(), "{key} sent by default: {body}");
    }

    let bad = TestEnv::new()
        .await
        .with_config("[endpoint]\npresence_penalty = 3\n");
    bad.short_articles(1);
    let out = bad.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("endpoint.presence_penalty"),
        "{}",
        output_text(&out)
    );
}
