//! The small things a newcomer trips over: heading marks in titles, months read as counts,
//! "1 calls", shares above 1, PDFs passed over in silence, a man page pointing nowhere, the key's
//! variable missing from --help.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::*;

async fn answer(env: &TestEnv, reply: Value) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(&reply.to_string())))
        .mount(&env.server)
        .await;
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_title_copied_from_a_markdown_heading_loses_its_marks() {
    let env = TestEnv::new().await;
    env.article(
        "wind.md",
        &format!("# 반도체 수출 역대 최대\n\n{SHORT_ARTICLE}"),
    );
    let mut reply: Value = serde_json::from_str(&brief_reply()).unwrap();
    reply["title"] = json!({"ko": "# 반도체 수출 역대 최대", "en": "## Chip exports hit a record"});
    answer(&env, reply).await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let md = std::fs::read_to_string(env.out().join("wind.md")).unwrap();
    assert!(md.starts_with("# 반도체 수출 역대 최대\n"), "{md}");
    assert!(!md.contains("# #") && !md.contains("*## "), "{md}");
    let brief = env.brief("wind.md");
    assert_eq!(brief["title"]["ko"], "반도체 수출 역대 최대");
    assert_eq!(brief["title"]["en"], "Chip exports hit a record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_range_is_not_a_count_and_one_is_singular() {
    let env = TestEnv::new().await;
    env.article(
        "exports.txt",
        "반도체 수출 증가\n\n반도체 수출이 3월과 4월에 142억 달러로 늘었다고 한국무역연구원이 밝혔다.\n",
    );
    let mut reply: Value = serde_json::from_str(&brief_reply()).unwrap();
    reply["summary"] = json!({
        "ko": "반도체 수출이 3~4월에 142억 달러로 늘었다.",
        "en": "Chip exports rose to $14.2 billion in March and April."
    });
    reply["key_points"] = json!([{"ko": "3~4월 수출이 늘었다.", "en": "Exports grew in March and April.",
            "quotes": ["반도체 수출이 3월과 4월에 142억 달러로 늘었다고"]}]);
    reply["figures"] = json!([{"ko": "142억 달러", "en": "$14.2 billion",
        "quotes": ["반도체 수출이 3월과 4월에 142억 달러로 늘었다고"]}]);
    reply["entities"] = json!([]);
    answer(&env, reply).await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let flagged = &env.brief("exports.txt")["checks"]["unsupported_figures"];
    assert_eq!(flagged, &json!([]), "3 of 3~4월 is a month: {flagged}");
    // One article, one call: said in the singular.
    let text = stderr(&out);
    assert!(
        text.contains("1 article: 1 written") && text.contains("1 call (0 cached)"),
        "{text}"
    );
    assert!(
        !text.contains("1 calls") && !text.contains("1 articles"),
        "{text}"
    );

    // cache prune says "30 days", not "30days".
    let out_dir = env.out().display().to_string();
    let o = env
        .run(&["cache", "prune", "-o", &out_dir, "--older-than", "30d"])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("30 days"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_above_one_are_refused() {
    let env = TestEnv::new().await;
    for args in [
        &["mock-provider", "--fail-rate", "2"][..],
        &["mock-provider", "--fail-5xx", "1.5"],
        &["mock-provider", "--fail-hang=-0.1"],
    ] {
        let o = env.run_raw(args, &[], None).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", output_text(&o));
        assert!(stderr(&o).contains("from 0 to 1"), "{}", output_text(&o));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_of_unsupported_types_are_named() {
    let env = TestEnv::new().await;
    env.short_articles(1);
    env.article_bytes("report.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n");
    env.article_bytes("old/minutes.hwp", b"HWP Document File");
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(&brief_reply())))
        .mount(&env.server)
        .await;
    // In a folder: one warning per type, and the articles go on.
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let text = stderr(&out);
    assert!(
        text.contains("1 .pdf file of an unsupported type") && text.contains(".hwp"),
        "{text}"
    );
    assert!(text.contains("pdftotext"), "says what to do: {text}");
    // Named on the command line: skipped, with the reason in the report.
    let pdf = env.input().join("report.pdf").display().to_string();
    let out_dir = env.out().display().to_string();
    let o = env.run(&["summarize", &pdf, "-o", &out_dir]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let report = env.report();
    assert_eq!(report["articles"][0]["status"], "skipped");
    assert!(
        report["articles"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("unsupported type .pdf"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_man_page_and_help_say_where_the_key_comes_from_and_what_exit_codes_mean() {
    let env = TestEnv::new().await;
    let man = env.run_raw(&["man"], &[], None).await;
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(
        !man.contains("hanbrief\\-summarize(1)"),
        "a page nothing installs"
    );
    assert!(man.contains(".SH \"EXIT STATUS\"") && man.contains(".SH ENVIRONMENT"));
    assert!(man.contains("OPENAI_API_KEY") && man.contains("\\-\\-dry\\-run"));
    let help = env.run_raw(&["--help"], &[], None).await;
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("OPENAI_API_KEY") && help.contains("Exit status"),
        "{help}"
    );
    let help = env.run_raw(&["summarize", "--help"], &[], None).await;
    assert!(String::from_utf8_lossy(&help.stdout).contains("OPENAI_API_KEY"));
}
