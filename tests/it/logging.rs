//! Quiet means quiet, JSON means JSON, and each -v says more than the one before.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::*;

async fn answer_everything(env: &TestEnv) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(Newsroom {
            merge_first_two: false,
            drop_last: false,
            map_merges_pairs: false,
        })
        .mount(&env.server)
        .await;
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_runs_print_nothing_on_success_and_only_warnings_otherwise() {
    let env = TestEnv::new().await;
    env.short_articles(2);
    answer_everything(&env).await;
    let (input, out) = (env.input(), env.out());
    let (input, out) = (input.to_str().unwrap(), out.to_str().unwrap());

    // The README's cron recipe: summarize, then digest, both silent when all is well.
    let o = env.run(&["-q", "summarize", input, "-o", out]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert!(
        o.stderr.is_empty() && o.stdout.is_empty(),
        "{}",
        output_text(&o)
    );
    let o = env.run(&["-q", "digest", out, "--since", "24h"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert!(
        o.stderr.is_empty() && o.stdout.is_empty(),
        "{}",
        output_text(&o)
    );
    // Without -q the same commands do talk.
    let o = env.run(&["digest", out]).await;
    assert!(
        stderr(&o).contains("digest of 2 briefs"),
        "{}",
        output_text(&o)
    );

    // A failure is said, as a warning, once; the summary is not.
    env.article("a0.txt", &SHORT_ARTICLE.replace("142억", "150억"));
    env.server.reset().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("not a brief")))
        .mount(&env.server)
        .await;
    let o = env.run(&["-q", "summarize", input, "-o", out]).await;
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    let text = stderr(&o);
    assert!(!text.trim().is_empty(), "a failure is not silent");
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.contains("WARN") || line.contains("ERROR"),
            "only warnings and errors under -q: {line}\n{text}"
        );
    }
    assert!(!text.contains("articles:"), "no summary under -q: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_verbosity_level_says_more() {
    let env = TestEnv::new().await;
    env.article("a.txt", SHORT_ARTICLE);
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(&brief_reply())))
        .mount(&env.server)
        .await;
    let mut outputs = Vec::new();
    for flags in [&[][..], &["-v"], &["-vv"], &["-vvv"]] {
        let (input, out) = (env.input(), env.out());
        let mut args: Vec<&str> = flags.to_vec();
        args.extend([
            "summarize",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--force",
        ]);
        // No progress lines: under load a run can last long enough for one, and they would
        // blur the comparison.
        let o = env
            .run_with_env(
                &args,
                &[
                    (KEY_ENV, "sk-test-key-0123456789"),
                    ("HANBRIEF_PROGRESS_EVERY", "1h"),
                ],
            )
            .await;
        assert_eq!(o.status.code(), Some(0), "{flags:?}: {}", output_text(&o));
        outputs.push(stderr(&o));
    }
    let [plain, v, vv, vvv] = &outputs[..] else {
        unreachable!()
    };
    let lines = |s: &str| s.lines().count();
    assert!(
        lines(plain) < lines(v) && lines(v) < lines(vv) && lines(vv) < lines(vvv),
        "{} {} {} {} lines:\n{plain}\n----\n{v}",
        lines(plain),
        lines(v),
        lines(vv),
        lines(vvv)
    );
    // -v: the plan of each article and each call with its tokens.
    assert!(!plain.contains("plan"), "{plain}");
    assert!(
        v.contains("plan") && v.contains("tokens=") && v.contains("call"),
        "{v}"
    );
    assert!(
        !v.contains("한빛전자는 웨이퍼"),
        "-v does not dump prompts: {v}"
    );
    // -vv: the request as sent, the article inside the rendered prompt, the key masked; and
    // the reply.
    assert!(vv.contains("POST http://127.0.0.1"), "{vv}");
    assert!(vv.contains("--- user ---"), "{vv}");
    assert!(vv.contains("한빛전자는 웨이퍼 생산능력을"), "{vv}");
    assert!(vv.contains("authorization: Bearer sk-…89"), "{vv}");
    assert!(vv.contains("Chip exports hit a record"), "the reply: {vv}");
    for text in [plain, v, vv, vvv] {
        assert!(!text.contains("sk-test-key-0123456789"), "the key leaked");
    }
    // -vvv: the HTTP client's own log.
    assert!(vvv.contains("starting new connection"), "{vvv}");
    assert!(!vv.contains("starting new connection"), "{vv}");
}

/// Every non-empty line of `text` parses as a JSON object with a level and a message.
fn all_json(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{text}"));
            assert!(v["level"].is_string(), "{l}");
            assert!(v["fields"]["message"].is_string(), "{l}");
            v
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_json_logs_every_stderr_line_is_json() {
    let env = TestEnv::new().await;
    env.short_articles(3);
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"error": {"message": "Incorrect API key provided.", "code": "invalid_api_key"}}),
        ))
        .mount(&env.server)
        .await;
    let (input, out) = (env.input(), env.out());
    let (input, out) = (input.to_str().unwrap(), out.to_str().unwrap());

    // A run the provider stops: failed, not done, stopped early, the summary.
    let o = env
        .run(&["--log-format", "json", "summarize", input, "-o", out])
        .await;
    assert_eq!(o.status.code(), Some(3), "{}", output_text(&o));
    let lines = all_json(&stderr(&o));
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l["fields"]["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("not done")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("stopped early")),
        "{messages:?}"
    );
    let summary = lines
        .iter()
        .find(|l| l["fields"]["articles"] == 3)
        .expect("the summary line carries the totals");
    assert_eq!(summary["fields"]["not_done"], 2, "{summary}");

    // Top-level errors: from hanbrief, and from the command line parser.
    let o = env
        .run(&[
            "--log-format",
            "json",
            "summarize",
            "no-such-folder",
            "-o",
            out,
        ])
        .await;
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    let lines = all_json(&stderr(&o));
    assert_eq!(lines.last().unwrap()["level"], "ERROR");
    let o = env
        .run(&["--log-format", "json", "summarize", input, "--jobs", "0"])
        .await;
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    let lines = all_json(&stderr(&o));
    assert!(
        lines[0]["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("--jobs"),
        "{lines:?}"
    );

    // Digest and config check too.
    env.server.reset().await;
    answer_everything(&env).await;
    let o = env
        .run(&["--log-format", "json", "summarize", input, "-o", out])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    all_json(&stderr(&o));
    let o = env.run(&["--log-format", "json", "digest", out]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let lines = all_json(&stderr(&o));
    assert!(
        lines.iter().any(|l| l["fields"]["briefs"] == 3),
        "{lines:?}"
    );
    let o = env.run(&["--log-format", "json", "config", "check"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert!(!all_json(&stderr(&o)).is_empty());
}
