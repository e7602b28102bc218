//! Grounded briefs end to end: quotes checked against the article, the one repair call for
//! quotes that are not the article's words, quotes kept through map-reduce, and the select
//! strategy, with the real binary against wiremock (and `hanbrief mock-provider`).

use serde_json::{Value, json};
use wiremock::matchers::body_string_contains;
use wiremock::{Request, Respond, ResponseTemplate};

use crate::support::*;

/// The last user message of a request.
fn last_user(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The text between the fence lines of a prompt.
fn fenced(prompt: &str) -> &str {
    let start = prompt.find("<<<ARTICLE-").expect("a fence");
    let body = &prompt[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    &body[..body.rfind("\nARTICLE-").unwrap()]
}

/// The brief fixture with its second key point quoting something the article never says.
fn brief_with_a_made_up_quote() -> String {
    // The key point's quote comes before the figure's (the same text) in the JSON.
    brief_reply().replacen(
        "\"quotes\":[\"생산능력을 월 26만 장으로\"]",
        "\"quotes\":[\"한빛전자는 공장을 새로 지어 생산을 두 배로 늘린다\"]",
        1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_not_in_the_article_gets_one_repair_call_that_shows_the_failing_point() {
    let env = TestEnv::new().await;
    env.article("chips.txt", SHORT_ARTICLE);
    assert_ne!(
        brief_with_a_made_up_quote(),
        brief_reply(),
        "the fixture changed"
    );
    chat()
        .and(body_string_contains("do not stand on the article"))
        .respond_with(ok(&brief_reply()))
        .expect(1)
        .with_priority(1)
        .mount(&env.server)
        .await;
    chat()
        .respond_with(ok(&brief_with_a_made_up_quote()))
        .expect(1)
        .with_priority(5)
        .mount(&env.server)
        .await;

    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let brief = env.brief("chips.txt");
    assert_eq!(brief["usage"]["calls"], 2);
    assert_eq!(brief["checks"]["ungrounded"], json!([]), "{brief}");
    // The repair call shows the failing point and what the model quoted, after its own reply.
    let repair = bodies(&env)
        .await
        .into_iter()
        .find(|b| last_user(b).contains("do not stand on the article"))
        .unwrap();
    let messages = repair["messages"].as_array().unwrap();
    assert_eq!(messages[messages.len() - 2]["role"], "assistant");
    let ask = last_user(&repair);
    assert!(ask.contains("key_points[1]"), "{ask}");
    assert!(
        ask.contains("한빛전자는 생산을 월 26만 장으로 늘린다."),
        "{ask}"
    );
    assert!(
        ask.contains("한빛전자는 공장을 새로 지어 생산을 두 배로 늘린다"),
        "{ask}"
    );
    assert!(
        !ask.contains("key_points[0]"),
        "only the failing point: {ask}"
    );
    // Every quote is now the article's own text, with its place.
    let article = std::fs::read_to_string(env.input().join("chips.txt")).unwrap();
    let cleaned: String = {
        let inspect = env
            .run(&[
                "inspect",
                env.input().join("chips.txt").to_str().unwrap(),
                "--json",
            ])
            .await;
        let v: Value = serde_json::from_slice(&inspect.stdout).unwrap();
        v["cleaned"].as_str().unwrap().to_string()
    };
    assert!(article.contains("생산능력을 월 26만 장으로"));
    let quote = &brief["key_points"][1]["quotes"][0];
    assert_eq!(quote["text"], "생산능력을 월 26만 장으로");
    let start = quote["start"].as_u64().unwrap() as usize;
    let at: String = cleaned.chars().skip(start).take(15).collect();
    assert_eq!(
        at, "생산능력을 월 26만 장으로",
        "start is a character offset into the cleaned text"
    );
    assert_eq!(
        cleaned
            .lines()
            .nth(quote["line"].as_u64().unwrap() as usize - 1)
            .map(|l| l.contains("생산능력을")),
        Some(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_whose_repair_fails_is_kept_with_a_visible_warning() {
    let env = TestEnv::new().await;
    env.article("chips.txt", SHORT_ARTICLE);
    chat()
        .respond_with(ok(&brief_with_a_made_up_quote()))
        .expect(2)
        .mount(&env.server)
        .await;

    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let brief = env.brief("chips.txt");
    assert_eq!(
        brief["key_points"].as_array().unwrap().len(),
        2,
        "the point is kept"
    );
    let ungrounded = &brief["checks"]["ungrounded"];
    assert_eq!(ungrounded.as_array().unwrap().len(), 1, "{ungrounded}");
    assert_eq!(ungrounded[0]["field"], "key_points[1]");
    assert_eq!(
        ungrounded[0]["problem"],
        "the quote is not in the article word for word"
    );
    assert_eq!(brief["key_points"][1]["quotes"][0]["start"], Value::Null);
    let md = std::fs::read_to_string(env.out().join("chips.md")).unwrap();
    assert!(
        md.contains("Not found in the source word for word:** 핵심 2 · key point 2"),
        "{md}"
    );
    // Under the point itself: the made-up quote, marked; under the good one, its sentence.
    let point = md
        .find("- 한빛전자는 생산을 월 26만 장으로 늘린다.")
        .unwrap();
    let under = &md[point..];
    assert!(
        under
            .lines()
            .nth(2)
            .unwrap()
            .starts_with("  > ⚠️ 원문에 없는 인용 · not in the source: 한빛전자는 공장을"),
        "{under}"
    );
    assert!(
        md.contains("  > 반도체 수출이 142억 달러로 <sub>(원문 3행 · line 3)</sub>\n  >\n  > 18.4% 늘었다 <sub>"),
        "{md}"
    );
}

/// A long article whose paragraphs each say something of their own.
fn factories(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{i}번 공장은 {}억 원을 들여 지었다고 회사가 {}일 밝혔다. 이 공장에서는 직원 {}명이 하루 {}시간씩 일하며, \
                 생산한 부품은 모두 수출된다. 회사는 {i}번 공장의 설비를 내년까지 {}% 늘릴 계획이다.",
                100 + i,
                i + 1,
                20 + i,
                8 + i % 3,
                10 + i
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Plays a model that follows the prompts: its notes quote their chunk's first sentence (and
/// one sentence it made up), and its brief quotes the notes of the last part.
struct QuotingModel;

impl Respond for QuotingModel {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap();
        let prompt = last_user(&body);
        if prompt.contains("of a long news article") {
            let chunk = fenced(&prompt);
            let first = chunk.split(". ").next().unwrap().trim().to_string() + ".";
            return ok(&format!(
                "- 공장을 지었다.\n  > {first}\n- 모델이 지어낸 내용.\n  > 이 문장은 기사에 없는데 모델이 지어냈다."
            ));
        }
        let quotes: Vec<&str> = fenced(&prompt)
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("> "))
            .collect();
        let last = *quotes.last().unwrap();
        ok(&json!({
            "title": {"ko": "공장 소식", "en": "Factory news"},
            "summary": {"ko": "회사가 공장을 지었다.", "en": "The company built factories."},
            "key_points": [{"ko": "마지막 공장을 지었다.", "en": "The last factory was built.", "quotes": [last]}],
            "entities": [],
            "figures": []
        })
        .to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_reduce_article_keeps_its_quotes_through_the_reduce() {
    let env = TestEnv::new()
        .await
        .with_config("[chunking]\nchunk_tokens = 400\n");
    let path = env.article("long.txt", &factories(14));
    let inspect = env
        .run(&["inspect", path.to_str().unwrap(), "--json"])
        .await;
    let plan: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let chunks = plan["chunks"].as_array().unwrap();
    assert!(chunks.len() >= 3, "{plan}");
    let cleaned = plan["cleaned"].as_str().unwrap();
    chat().respond_with(QuotingModel).mount(&env.server).await;

    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let brief = env.brief("long.txt");
    // Maps and one reduce: the quote was found, so no repair call.
    assert_eq!(
        brief["usage"]["calls"].as_u64(),
        Some(chunks.len() as u64 + 1)
    );
    // The reduce saw every part's quote, checked: the made-up ones were dropped.
    let reduce = bodies(&env)
        .await
        .into_iter()
        .map(|b| last_user(&b))
        .find(|u| u.contains("notes taken, part by part"))
        .unwrap();
    assert_eq!(reduce.matches("\n  > ").count(), chunks.len(), "{reduce}");
    assert!(!reduce.contains("지어냈다"), "{reduce}");
    assert_eq!(
        reduce.matches("- 모델이 지어낸 내용.").count(),
        chunks.len(),
        "notes stay, unquoted"
    );
    // The brief's quote comes from the last part and is found in the whole article.
    let last_chunk = chunks.last().unwrap()["text"].as_str().unwrap();
    let quote = &brief["key_points"][0]["quotes"][0];
    let text = quote["text"].as_str().unwrap();
    assert!(last_chunk.starts_with(text), "{text}");
    let start = quote["start"].as_u64().expect("found in the article") as usize;
    let first_chunk_chars = chunks[0]["text"].as_str().unwrap().chars().count();
    assert!(
        start > first_chunk_chars,
        "{start}: a place in the whole article, past part 1"
    );
    let at: String = cleaned
        .chars()
        .skip(start)
        .take(text.chars().count())
        .collect();
    assert_eq!(at, text);
    assert_eq!(brief["checks"]["ungrounded"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_select_strategy_sends_picked_sentences_and_quotes_them() {
    let env = TestEnv::new().await.with_config(
        "[summary]\nstrategy = \"select\"\nsentences = 3\n[chunking]\nchunk_tokens = 400\n",
    );
    // Long enough for map-reduce under the free strategy: select needs one call whatever the length.
    let path = env.article("long.txt", &factories(14));
    let inspect = env
        .run(&["inspect", path.to_str().unwrap(), "--json"])
        .await;
    let plan: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        (plan["one_call"].clone(), plan["planned_calls"].clone()),
        (json!(true), json!(1))
    );
    let selected = plan["selected"]
        .as_array()
        .expect("inspect shows the picked sentences");
    assert_eq!(selected.len(), 3);
    let reply = json!({
        "title": {"ko": "공장 소식", "en": "Factory news"},
        "summary": {"ko": "회사가 공장을 지었다.", "en": "The company built factories."},
        "key_points": [
            {"ko": "0번 공장을 100억 원에 지었다.", "en": "Factory 0 cost 10 billion won."},
            {"ko": "둘째 공장이다.", "en": "The second factory."},
            {"ko": "셋째 공장이다.", "en": "The third factory."}
        ],
        "entities": [],
        "figures": [{"ko": "100억 원", "en": "10 billion won"}, {"ko": "2018년", "en": "2018"}]
    });
    chat()
        .and(body_string_contains("most informative sentences"))
        .respond_with(ok(&reply.to_string()))
        .expect(1)
        .mount(&env.server)
        .await;

    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let request = bodies(&env).await.remove(0);
    let prompt = last_user(&request);
    let numbered: Vec<&str> = fenced(&prompt).lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(numbered.len(), 3, "{prompt}");
    assert!(
        numbered[0].starts_with("[1] 0번 공장은 100억 원을"),
        "the lead first: {prompt}"
    );
    // The schema asks for points without quotes.
    let schema = &request["response_format"]["json_schema"]["schema"];
    assert!(schema["properties"]["key_points"]["items"]["properties"]["quotes"].is_null());

    let brief = env.brief("long.txt");
    assert_eq!(brief["usage"]["calls"], 1);
    assert_eq!(brief["source"]["chunks"], 1);
    for (i, line) in numbered.iter().enumerate() {
        let sentence = line.split_once("] ").unwrap().1;
        assert_eq!(
            selected[i]["text"], sentence,
            "inspect picks what summarize sends"
        );
        let quote = &brief["key_points"][i]["quotes"][0];
        assert_eq!(quote["text"], sentence);
        assert!(quote["start"].is_u64() && quote["line"].is_u64());
    }
    // Point 2 lost its sentence's figures, so the sentence stands as the point; the Markdown
    // gives its place instead of printing it twice.
    let second = numbered[1].split_once("] ").unwrap().1;
    assert_eq!(brief["key_points"][1]["ko"], second);
    let md = std::fs::read_to_string(env.out().join("long.md")).unwrap();
    assert!(
        md.contains(&format!(
            "- {second}\n  <br>*The second factory.*\n  > 원문 그대로 · the article's own words <sub>(원문"
        )),
        "{md}"
    );
    assert_eq!(md.matches(second).count(), 1, "{md}");
    // A figure gets the picked sentence that carries it; one no sentence of the article
    // carries (the model made it up) is dropped: a select brief's figures are its sentences'.
    assert_eq!(
        brief["figures"][0]["quotes"][0]["text"],
        numbered[0].split_once("] ").unwrap().1
    );
    assert_eq!(brief["figures"].as_array().unwrap().len(), 1, "{brief}");
    assert_eq!(brief["checks"]["ungrounded"], json!([]));
    assert_eq!(brief["checks"]["unsupported_figures"], json!([]));
}

/// `--strategy` overrides `[summary] strategy` for one run (here `inspect`, which shows the
/// sentences `select` would pick, and none under the default `free`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_strategy_flag_overrides_the_config_for_one_run() {
    let env = TestEnv::new().await;
    let path = env.article("long.txt", &factories(6));
    let path = path.to_str().unwrap();
    let plan = |args: &[&str]| {
        let mut all = vec!["inspect", path, "--json"];
        all.extend_from_slice(args);
        let out = env.command(&all).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert!(plan(&[])["selected"].is_null(), "free by default");
    let selected = plan(&["--strategy", "select"])["selected"].clone();
    assert!(
        selected.as_array().is_some_and(|s| !s.is_empty()),
        "{selected}"
    );
    let bad = env
        .command(&["inspect", path, "--strategy", "extract"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", output_text(&bad));
}
