//! The pipeline end to end: the real binary against a wiremock provider.

use serde_json::{Value, json};
use wiremock::ResponseTemplate;
use wiremock::matchers::body_string_contains;

use crate::support::*;

fn user_message(body: &Value) -> &str {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .expect("a user message")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_article_takes_exactly_one_call() {
    let env = TestEnv::new().await;
    env.article("economy/chips.txt", SHORT_ARTICLE);
    chat()
        .respond_with(
            ResponseTemplate::new(200).set_body_json(completion_with_usage(
                &brief_reply(),
                700,
                50,
            )),
        )
        .expect(1)
        .mount(&env.server)
        .await;

    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));

    let brief = env.brief("economy/chips.txt");
    assert_eq!(brief["schema"], "hanbrief.brief/2");
    assert_eq!(brief["title"]["ko"], "반도체 수출 역대 최대");
    assert_eq!(brief["title"]["en"], "Chip exports hit a record");
    assert_eq!(brief["key_points"].as_array().unwrap().len(), 2);
    assert_eq!(brief["entities"][0]["kind"], "organization");
    assert_eq!(brief["checks"]["unsupported_figures"], json!([]));
    assert_eq!(brief["usage"]["calls"], 1);
    // The server's own count, as it reported it.
    assert_eq!(brief["usage"]["prompt_tokens"], 700);
    assert_eq!(brief["source"]["encoding"], "UTF-8");
    assert_eq!(brief["source"]["title"], "반도체 수출 역대 최대");
    assert_eq!(brief["source"]["chunks"], 1);
    let md = std::fs::read_to_string(env.out().join("economy/chips.md")).unwrap();
    assert!(
        md.starts_with("# 반도체 수출 역대 최대\n\n*Chip exports hit a record*"),
        "{md}"
    );
    assert!(!md.contains("⚠️"), "{md}");

    let body = &bodies(&env).await[0];
    let user = user_message(body);
    assert!(
        user.contains("142억 달러로 1년 전보다 18.4% 늘었다고"),
        "{user}"
    );
    assert!(!user.contains("무단전재"), "clutter was sent: {user}");
    assert!(!user.contains("gildong@"), "the byline was sent: {user}");
    assert_eq!(body["model"], "test-model");
    // Nothing seen yet: what a short article's brief needs, under the configured 2,000.
    let budget = body["max_tokens"].as_u64().unwrap();
    assert!((500..2000).contains(&budget), "{budget}");
    assert_eq!(body["response_format"]["type"], "json_schema");
    let requests = env.calls().await;
    assert_eq!(
        requests[0].headers["authorization"],
        "Bearer sk-test-key-0123456789"
    );

    let report = env.report();
    assert_eq!(report["totals"]["written"], 1);
    assert_eq!(report["totals"]["calls"], 1);
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["articles"][0]["status"], "written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_article_is_mapped_in_chunks_and_reduced() {
    let env = TestEnv::new()
        .await
        .with_config("[chunking]\nchunk_tokens = 400\n");
    let article = env.article("long.txt", &long_article(14));
    // How many chunks the planner makes (inspect plans exactly as summarize does).
    let inspect = env
        .run(&["inspect", article.to_str().unwrap(), "--json"])
        .await;
    let plan: Value = serde_json::from_slice(&inspect.stdout).expect("inspect --json");
    let chunks = plan["chunks"].as_array().unwrap().len() as u64;
    assert!(chunks >= 3, "{plan}");
    assert_eq!(plan["one_call"], false);

    chat()
        .and(body_string_contains("of a long news article"))
        .respond_with(ok(
            "- 반도체 수출이 142억 달러로 18.4% 늘었다.\n- 한빛전자는 월 26만 장으로 늘린다.",
        ))
        .expect(chunks)
        .mount(&env.server)
        .await;
    chat()
        .and(body_string_contains("notes taken, part by part"))
        .respond_with(ok(&brief_reply()))
        .expect(1)
        .mount(&env.server)
        .await;

    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let brief = env.brief("long.txt");
    assert_eq!(brief["usage"]["calls"].as_u64(), Some(chunks + 1));
    assert_eq!(brief["source"]["chunks"].as_u64(), Some(chunks));
    // Every chunk was sent once, in its own map call, and the reduce call got all the notes.
    let bodies = bodies(&env).await;
    let reduce = bodies
        .iter()
        .map(user_message)
        .find(|u| u.contains("notes taken"))
        .unwrap();
    assert_eq!(reduce.matches("[part ").count() as u64, chunks, "{reduce}");
    for c in plan["chunks"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        let sent = bodies
            .iter()
            .map(user_message)
            .filter(|u| u.contains(text))
            .count();
        assert_eq!(sent, 1, "chunk {} sent {sent} times", c["index"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_reply_gets_one_repair_call_then_succeeds() {
    let env = TestEnv::new().await;
    env.article("chips.txt", SHORT_ARTICLE);
    chat()
        .and(body_string_contains("could not be used"))
        .respond_with(ok(&brief_reply()))
        .expect(1)
        .with_priority(1)
        .mount(&env.server)
        .await;
    chat()
        .respond_with(ok("Sure! Here is a summary: exports went up."))
        .expect(1)
        .with_priority(5)
        .mount(&env.server)
        .await;

    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(env.brief("chips.txt")["usage"]["calls"], 2);
    // The repair call quotes what was wrong, after the model's own reply.
    let repair = bodies(&env)
        .await
        .into_iter()
        .find(|b| b.to_string().contains("could not be used"))
        .unwrap();
    let messages = repair["messages"].as_array().unwrap();
    assert_eq!(messages[messages.len() - 2]["role"], "assistant");
    assert!(
        messages.last().unwrap()["content"]
            .as_str()
            .unwrap()
            .contains("JSON object")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_that_stays_invalid_fails_that_article_only() {
    let env = TestEnv::new().await;
    env.article("bad.txt", SHORT_ARTICLE);
    env.article(
        "good.txt",
        &SHORT_ARTICLE.replace("반도체 수출 역대 최대", "반도체 수출 최대 기록"),
    );
    chat()
        .and(body_string_contains("반도체 수출 최대 기록"))
        .respond_with(ok(&brief_reply()))
        .expect(1)
        .with_priority(1)
        .mount(&env.server)
        .await;
    // English where Korean belongs: shaped right, still not a brief.
    let wrong = brief_reply().replace("반도체 수출 역대 최대", "Record chip exports");
    chat()
        .respond_with(ok(&wrong))
        .expect(2)
        .with_priority(5)
        .mount(&env.server)
        .await;

    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        !env.out().join("bad.json").exists(),
        "no half-written brief"
    );
    assert!(!env.out().join("bad.md").exists());
    assert!(env.out().join("good.json").exists());
    let report = env.report();
    let bad = report["articles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"].as_str().unwrap().ends_with("bad.txt"))
        .unwrap();
    assert_eq!(bad["status"], "failed");
    assert!(
        bad["reason"]
            .as_str()
            .unwrap()
            .contains("\"title\".ko is not in Korean"),
        "{bad}"
    );
    assert_eq!(bad["calls"], 2);
    assert_eq!(report["totals"]["failed"], 1);
    assert_eq!(report["totals"]["written"], 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.txt"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_inputs_cost_no_call() {
    let env = TestEnv::new().await;
    env.article("empty.txt", "");
    env.article("blank.md", "  \n\n ");
    env.article_bytes("binary.txt", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0");
    env.article("clutter.html", "<html><body><nav>홈 | 정치</nav><p>좋아요 0</p><footer>ⓒ 한빛일보 무단전재 및 재배포 금지</footer></body></html>");
    env.article_bytes("photo.png", b"\x89PNG");
    env.article(".hidden.txt", SHORT_ARTICLE);
    chat()
        .respond_with(ok(&brief_reply()))
        .expect(0)
        .mount(&env.server)
        .await;

    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let report = env.report();
    let reasons: Vec<(String, String)> = report["articles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["status"], "skipped", "{a}");
            let name = a["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            (name, a["reason"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            (
                "binary.txt".to_string(),
                "binary file (not text)".to_string()
            ),
            ("blank.md".to_string(), "empty file".to_string()),
            (
                "clutter.html".to_string(),
                "nothing left after removing web clutter".to_string()
            ),
            ("empty.txt".to_string(), "empty file".to_string()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cp949_and_utf16_articles_are_decoded() {
    let env = TestEnv::new().await;
    let text = "서울시는 다음 달부터 출근 시간대 급행열차를 하루 8회 늘린다고 10일 밝혔다. 혼잡한 역 12곳에는 안전요원 96명을 배치한다.";
    let (cp949, _, unmappable) = encoding_rs::EUC_KR.encode(text);
    assert!(!unmappable);
    env.article_bytes("legacy.txt", &cp949);
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(
        text.replace("서울시는", "부산시는")
            .encode_utf16()
            .flat_map(u16::to_le_bytes),
    );
    env.article_bytes("wide.txt", &utf16);
    // Two calls per article: the canned brief's quotes are not in these articles, so each gets
    // the one grounding repair (answered with the same brief).
    chat()
        .respond_with(ok(&brief_reply()))
        .expect(4)
        .mount(&env.server)
        .await;

    let out = env.summarize(&[]).await;
    // The canned brief is about chips, not subways: written, with its figures and its
    // ungrounded points flagged.
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(env.brief("legacy.txt")["source"]["encoding"], "EUC-KR");
    assert_eq!(env.brief("wide.txt")["source"]["encoding"], "UTF-16LE");
    let users: Vec<String> = bodies(&env)
        .await
        .iter()
        .map(|b| user_message(b).to_string())
        .collect();
    assert!(
        users.iter().any(|u| u.contains(text)),
        "CP949 text not decoded"
    );
    assert!(
        users
            .iter()
            .any(|u| u.contains(&text.replace("서울시는", "부산시는"))),
        "UTF-16 text not decoded"
    );
    let flagged = &env.brief("legacy.txt")["checks"]["unsupported_figures"];
    assert!(
        flagged
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["text"] == "142억 달러"),
        "{flagged}"
    );
    let ungrounded = env.brief("legacy.txt")["checks"]["ungrounded"].clone();
    assert_eq!(ungrounded.as_array().map(Vec::len), Some(4), "{ungrounded}");
    let md = std::fs::read_to_string(env.out().join("legacy.md")).unwrap();
    assert!(md.contains("⚠️") && md.contains("`142억 달러`"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_utf8_article_with_stray_bytes_is_briefed_with_a_warning() {
    // Scraped text with three bytes that are not UTF-8 (a Latin-1 no-break space, half of a
    // Hangul syllable, a lone continuation byte): briefed, not skipped, and both the brief and
    // the report say what happened.
    let env = TestEnv::new().await;
    let mut bytes = Vec::new();
    for (i, line) in SHORT_ARTICLE.lines().enumerate() {
        bytes.extend_from_slice(line.as_bytes());
        match i {
            3 => bytes.push(0xA0),
            4 => bytes.extend_from_slice(&[0xED, 0x95]),
            5 => bytes.push(0x85),
            _ => {}
        }
        bytes.push(b'\n');
    }
    assert!(std::str::from_utf8(&bytes).is_err());
    env.article_bytes("scraped.txt", &bytes);
    chat()
        .respond_with(ok(&brief_reply()))
        .expect(1)
        .mount(&env.server)
        .await;

    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let brief = env.brief("scraped.txt");
    assert_eq!(brief["source"]["encoding"], "UTF-8");
    let warnings = brief["checks"]["warnings"].to_string();
    assert!(warnings.contains("3 invalid byte sequences"), "{warnings}");
    let report = env.report();
    let line = &report["articles"][0];
    assert_eq!(line["status"], "written", "{line}");
    assert!(
        line["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("3 invalid byte sequences")),
        "{line}"
    );
    let md = std::fs::read_to_string(env.out().join("scraped.md")).unwrap();
    assert!(md.contains("3 invalid byte sequences"), "{md}");
    let sent = bodies(&env).await;
    assert!(
        user_message(&sent[0]).contains("한국무역연구원이 1일 밝혔다."),
        "the article's text reached the model"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("scraped.txt") && stderr.contains("invalid byte"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_stops_the_run_with_exit_code_3_after_one_call() {
    let env = TestEnv::new().await;
    env.short_articles(4);
    chat()
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": {"message": "Incorrect API key provided: sk-test-***6789.", "type": "invalid_request_error", "code": "invalid_api_key"}
        })))
        .expect(1)
        .mount(&env.server)
        .await;

    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(KEY_ENV),
        "the message says which variable to fix: {stderr}"
    );
    assert!(
        !stderr.contains("sk-test-key-0123456789"),
        "the key leaked: {stderr}"
    );
    let report = std::fs::read_to_string(env.out().join("_report.json")).unwrap();
    assert!(
        !report.contains("sk-test-key"),
        "the key leaked into the report"
    );
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["exit_code"], 3);
    assert!(report["stopped"].as_str().unwrap().contains("refused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_exits_3_and_names_the_url() {
    let env = TestEnv::new().await;
    env.article("a.txt", SHORT_ARTICLE);
    // Nothing listens on port 9 of loopback.
    let out = env
        .summarize(&["--base-url", "http://127.0.0.1:9/v1"])
        .await;
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "cannot reach the endpoint at http://127.0.0.1:9/v1: connection refused (nothing \
             listens at 127.0.0.1:9)"
        ),
        "{stderr}"
    );
    // Nothing ever answered: no retries, and the cause is said once (not in the failed line,
    // the warning and the summary too), without reqwest's chain of wrappers.
    assert!(!stderr.contains("retrying"), "{stderr}");
    assert_eq!(stderr.matches("connection refused").count(), 1, "{stderr}");
    assert!(!stderr.contains("error sending request"), "{stderr}");
    assert!(!stderr.contains("refused us"), "{stderr}");
    let report = env.report();
    assert_eq!(report["totals"]["retries"], 0, "{report}");
    assert!(
        report["stopped"]
            .as_str()
            .unwrap()
            .starts_with("cannot reach the endpoint"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plans_without_network_or_files() {
    let env = TestEnv::new()
        .await
        .with_config("[chunking]\nchunk_tokens = 400\n");
    env.article("short.txt", SHORT_ARTICLE);
    env.article("long.txt", &long_article(14));
    env.article("empty.txt", "");
    chat()
        .respond_with(ok(&brief_reply()))
        .expect(0)
        .mount(&env.server)
        .await;

    let out = env.summarize(&["--dry-run"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(!env.out().exists(), "a dry run writes nothing");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("{name} missing: {stdout}"))
            .to_string()
    };
    let short = line("short.txt");
    let short: Vec<&str> = short.split_whitespace().collect();
    // tokens, chunks, calls, cost
    assert_eq!(short[1], "1");
    assert_eq!(short[2], "1");
    assert!(short[3].starts_with('$'));
    let long = line("long.txt");
    let long: Vec<&str> = long.split_whitespace().collect();
    assert!(long[1].parse::<u32>().unwrap() >= 3, "{stdout}");
    assert_eq!(
        long[2].parse::<u32>().unwrap(),
        long[1].parse::<u32>().unwrap() + 1
    );
    assert!(stdout.contains("empty.txt (empty file)"), "{stdout}");
    assert!(stdout.contains("3 articles (1 skipped)"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_mirror_subfolders_so_equal_names_never_collide() {
    let env = TestEnv::new().await;
    env.article("a/same.txt", SHORT_ARTICLE);
    env.article("b/same.txt", &SHORT_ARTICLE.replace("1일", "2일"));
    env.article(
        "b/same.html",
        &format!(
            "<html><body><article><h1>반도체 수출 역대 최대</h1><p>{}</p></article></body></html>",
            "반도체 수출이 142억 달러로 18.4% 늘었다고 밝혔다. 생산능력을 월 26만 장으로 늘린다. "
                .repeat(5)
        ),
    );
    chat()
        .respond_with(ok(&brief_reply()))
        .expect(3)
        .mount(&env.server)
        .await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    for f in [
        "a/same.json",
        "a/same.md",
        "b/same.txt.json",
        "b/same.html.json",
        "b/same.html.md",
    ] {
        assert!(env.out().join(f).is_file(), "{f} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_prints_the_decoding_cleaning_and_chunks_as_json() {
    let env = TestEnv::new().await;
    let path = env.article("chips.txt", SHORT_ARTICLE);
    let out = env
        .run(&["inspect", path.to_str().unwrap(), "--json"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "path",
        "encoding",
        "chars_raw",
        "chars_clean",
        "tokens",
        "cleaned",
        "chunks",
    ] {
        assert!(v.get(key).is_some(), "{key} missing in {v}");
    }
    assert_eq!(v["encoding"], "UTF-8");
    assert!(v["chars_clean"].as_u64() < v["chars_raw"].as_u64());
    assert!(!v["cleaned"].as_str().unwrap().contains("무단전재"));
    assert_eq!(v["chunks"][0]["index"], 0);
    assert_eq!(v["chunks"][0]["text"], v["cleaned"]);
    assert_eq!(v["chunks"][0]["tokens"], v["tokens"]);
    let reasons: Vec<&str> = v["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        vec!["timestamp", "interface", "byline", "copyright"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_exit_2_naming_the_key_and_line() {
    let env = TestEnv::new().await;
    std::fs::write(
        env.config_path(),
        "[endpoint]\nmodel = \"m\"\nbase_ulr = \"http://x\"\n",
    )
    .unwrap();
    env.article("a.txt", SHORT_ARTICLE);
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown config key `endpoint.base_ulr`"),
        "{stderr}"
    );
    assert!(stderr.contains("hanbrief.toml line 3"), "{stderr}");
}
