//! Correctness at the edges: exit codes that say what happened (eval, internal errors),
//! stopping within the grace period, caps on what is read, and results that do not depend on
//! timing.

use std::time::{Duration, Instant};

use wiremock::ResponseTemplate;

use crate::support::*;

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(completion(&brief_reply()))
}

/// An eval set of one article whose brief (`brief_reply`) carries two of its three facts.
fn eval_set(env: &TestEnv) -> String {
    let set = env.root().join("set");
    std::fs::create_dir_all(set.join("articles")).unwrap();
    std::fs::write(set.join("articles").join("a.txt"), SHORT_ARTICLE).unwrap();
    std::fs::write(
        set.join("facts.toml"),
        "[\"a.txt\"]\nfacts = [{ any = [\"Hanbit Electronics\"] }, { figure = \"18.4%\" }, { any = [\"a fact no brief has\"] }]\n",
    )
    .unwrap();
    set.display().to_string()
}

/// Waits until the provider has received a call, so that a signal lands while it is in flight.
async fn first_call_in_flight(env: &TestEnv) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.calls().await.is_empty() {
        assert!(Instant::now() < deadline, "no call reached the provider");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[cfg(unix)]
fn interrupt(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

mod eval {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_key_fails_the_eval_with_3() {
        let env = TestEnv::new().await;
        let set = eval_set(&env);
        chat()
            .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
                "error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}
            })))
            .mount(&env.server)
            .await;
        let out = env.run(&["eval", &set]).await;
        assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("partial"),
            "{}",
            output_text(&out)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quality_threshold_fails_the_eval_with_1_and_says_which() {
        let env = TestEnv::new().await;
        let set = eval_set(&env);
        chat().respond_with(ok()).mount(&env.server).await;
        let out_dir = env.root().join("eval-out").display().to_string();
        // Two facts of three: 66.7 %.
        let missed = env
            .run(&["eval", &set, "-o", &out_dir, "--min-coverage", "0.9"])
            .await;
        assert_eq!(missed.status.code(), Some(1), "{}", output_text(&missed));
        let stderr = String::from_utf8_lossy(&missed.stderr);
        assert!(
            stderr.contains("fact coverage 66.7 % is below --min-coverage 90.0 %"),
            "{stderr}"
        );
        let met = env
            .run(&[
                "eval",
                &set,
                "-o",
                &out_dir,
                "--min-coverage",
                "60%",
                "--max-unsupported",
                "0",
                "--min-valid",
                "1",
            ])
            .await;
        assert_eq!(met.status.code(), Some(0), "{}", output_text(&met));
        let bad = env.run(&["eval", &set, "--min-coverage", "120%"]).await;
        assert_eq!(bad.status.code(), Some(2), "{}", output_text(&bad));
    }

    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_interrupted_eval_exits_130() {
        let env = TestEnv::new()
            .await
            .with_config("[limits]\nshutdown_grace = \"1s\"\n");
        let set = eval_set(&env);
        chat()
            .respond_with(ok().set_delay(Duration::from_secs(3)))
            .mount(&env.server)
            .await;
        let config = env.config_path().display().to_string();
        let child = env
            .command(&["--config", &config, "eval", &set])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        first_call_in_flight(&env).await;
        interrupt(child.id());
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(130), "{}", output_text(&out));
    }
}

/// The briefs are written, then the report cannot be: not a usage error (2), but hanbrief's
/// own work failing (4), and the briefs stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_that_cannot_be_written_exits_4_and_keeps_the_briefs() {
    let env = TestEnv::new().await;
    env.short_articles(1);
    chat().respond_with(ok()).mount(&env.server).await;
    // A folder where the report goes: renaming the report over it fails.
    std::fs::create_dir_all(env.out().join("_report.json").join("x")).unwrap();
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(4), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("_report.json"),
        "{}",
        output_text(&out)
    );
    assert!(env.out().join("a0.json").is_file());
    assert!(env.out().join("a0.md").is_file());
}

/// Ctrl-C during `digest` while its call hangs: the call is dropped when the grace is over, and
/// the command exits 130 without waiting for the request timeout.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_digest_whose_call_hangs_within_the_grace() {
    let env = TestEnv::new().await.with_config(
        "[endpoint]\nrequest_timeout = \"120s\"\n\n[limits]\nshutdown_grace = \"1s\"\n",
    );
    env.short_articles(2);
    chat().respond_with(ok()).mount(&env.server).await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    env.server.reset().await;
    chat()
        .respond_with(ok().set_delay(Duration::from_secs(60)))
        .mount(&env.server)
        .await;
    let config = env.config_path().display().to_string();
    let briefs = env.out().display().to_string();
    let child = env
        .command(&["--config", &config, "digest", &briefs])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    first_call_in_flight(&env).await;
    let signalled = Instant::now();
    interrupt(child.id());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let took = signalled.elapsed();
    assert_eq!(out.status.code(), Some(130), "{}", output_text(&out));
    // The grace (1 s) and some room for a loaded machine; the hang is 60 s.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("interrupted; no digest written"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("still busy"),
        "ended by the backstop: {stderr}"
    );
}

/// A command stuck where no token reaches (here: reading a pipe that never closes) still ends
/// after the grace, with 130.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_ends_a_command_stuck_reading_a_pipe() {
    let env = TestEnv::new()
        .await
        .with_config("[limits]\nshutdown_grace = \"1s\"\n");
    let config = env.config_path().display().to_string();
    let out_dir = env.out().display().to_string();
    let mut child = env
        .command(&["--config", &config, "summarize", "-", "-o", &out_dir])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Keep the pipe open (and empty) for the whole test.
    let _stdin = child.stdin.take().unwrap();
    // Until the process has set up its signal handlers (it logs nothing before reading).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let signalled = Instant::now();
    interrupt(child.id());
    let deadline = signalled + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running 30 s after the signal");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(130));
}

/// A reply body far larger than any chat completion is not read whole, and not asked for again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_reply_body_fails_the_call_without_a_retry() {
    let env = TestEnv::new().await;
    env.short_articles(1);
    let huge = format!("{{\"choices\": \"{}\"}}", "x".repeat(17 * 1024 * 1024));
    chat()
        .respond_with(ResponseTemplate::new(200).set_body_raw(huge, "application/json"))
        .expect(1)
        .mount(&env.server)
        .await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let reason = env.report()["articles"][0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("larger than 16 MB"), "{reason}");
}

/// An article on standard input longer than the file limit is skipped as too large, after
/// reading only up to the limit, and costs no call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_input_is_read_up_to_the_limit_only() {
    use std::io::Write;
    let env = TestEnv::new().await;
    chat().respond_with(ok()).expect(0).mount(&env.server).await;
    let config = env.config_path().display().to_string();
    let out_dir = env.out().display().to_string();
    let mut child = env
        .command(&["--config", &config, "summarize", "-", "-o", &out_dir])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // 21 MiB of text: more than the 20 MiB limit. The writer stops when hanbrief stops reading.
    let writer = std::thread::spawn(move || {
        let line = "반도체 수출이 142억 달러로 늘었다.\n".repeat(1024);
        let mut written = 0usize;
        while written < 21 * 1024 * 1024 {
            if stdin.write_all(line.as_bytes()).is_err() {
                return written;
            }
            written += line.len();
        }
        written
    });
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let report = env.report();
    assert_eq!(report["articles"][0]["status"], "skipped", "{report}");
    assert!(
        report["articles"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("longer than the limit"),
        "{report}"
    );
}

mod names {
    use serde_json::json;
    use wiremock::{Request, Respond};

    use super::*;

    const ARTICLE: &str = "반도체 수출 역대 최대\n\n최태원 회장은 반도체 수출이 142억 달러로 1년 전보다 18.4% 늘었다고 {day}일 밝혔다.\n";

    /// Per article (by the day in its text): how its brief renders 최태원 (`None`: it names
    /// nobody), and how long the reply takes.
    struct Renders(Vec<(u32, Option<&'static str>, u64)>);

    impl Respond for Renders {
        fn respond(&self, req: &Request) -> ResponseTemplate {
            let body = String::from_utf8_lossy(&req.body);
            let (_, en, delay) = self
                .0
                .iter()
                .find(|(day, _, _)| body.contains(&format!("{day}일 밝혔다")))
                .copied()
                .unwrap_or((0, None, 0));
            let entities = match en {
                Some(en) => json!([{"ko": "최태원", "en": en, "kind": "person"}]),
                None => json!([]),
            };
            let brief = json!({
                "title": {"ko": "반도체 수출 역대 최대", "en": "Chip exports hit a record"},
                "summary": {"ko": "최태원 회장은 반도체 수출이 142억 달러로 늘었다고 말했다.", "en": format!("{} said exports rose to $14.2 billion.", en.unwrap_or("The chairman"))},
                "key_points": [{"ko": "수출이 18.4% 늘었다.", "en": "Exports grew 18.4%."}],
                "entities": entities,
                "figures": [{"ko": "142억 달러", "en": "$14.2 billion"}]
            });
            ResponseTemplate::new(200)
                .set_body_json(completion(&brief.to_string()))
                .set_delay(Duration::from_millis(delay))
        }
    }

    fn articles(env: &TestEnv, days: &[u32]) {
        for day in days {
            env.article(
                &format!("a{day}.txt"),
                &ARTICLE.replace("{day}", &day.to_string()),
            );
        }
    }

    fn rendering(env: &TestEnv, day: u32) -> String {
        let b = env.brief(&format!("a{day}.txt"));
        assert_eq!(
            b["summary"]["en"].as_str().unwrap(),
            format!(
                "{} said exports rose to $14.2 billion.",
                b["entities"][0]["en"].as_str().unwrap()
            ),
            "the English text follows the entity"
        );
        b["entities"][0]["en"].as_str().unwrap().to_string()
    }

    /// The first call goes alone (a1, naming nobody); then a2 writes "Choi" slowly and a3
    /// "Chey" at once. One brief each: the tie goes to the first article by key (a2), not to
    /// the brief that happened to be made first (a3).
    fn tie() -> Renders {
        Renders(vec![
            (1, None, 0),
            (2, Some("Choi Tae-won"), 1500),
            (3, Some("Chey Tae-won"), 0),
        ])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tie_goes_to_the_first_article_not_to_the_first_brief_made() {
        let env = TestEnv::new().await;
        articles(&env, &[1, 2, 3]);
        chat().respond_with(tie()).mount(&env.server).await;
        let out = env.summarize(&[]).await;
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        assert_eq!(rendering(&env, 2), "Choi Tae-won");
        assert_eq!(rendering(&env, 3), "Choi Tae-won");
        let warnings = env.brief("a3.txt")["checks"]["warnings"].clone();
        assert!(
            warnings.to_string().contains("as in the other briefs"),
            "{warnings}"
        );
        let md = std::fs::read_to_string(env.out().join("a3.md")).unwrap();
        assert!(
            md.contains("Choi Tae-won said") && !md.contains("Chey Tae-won said"),
            "{md}"
        );
        // The report counts the renamed brief's finding.
        assert_eq!(env.report()["articles"][2]["check_findings"], 1);
    }

    /// Most briefs win: a2 and a3 write "Chey", a1 (made first, and first by key) "Choi".
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_rendering_most_briefs_use_wins_and_holds_the_next_day() {
        let env = TestEnv::new().await;
        articles(&env, &[1, 2, 3]);
        let renders = || {
            Renders(vec![
                (1, Some("Choi Tae-won"), 0),
                (2, Some("Chey Tae-won"), 0),
                (3, Some("Chey Tae-won"), 0),
                (11, Some("Choi Tae-won"), 0),
            ])
        };
        chat().respond_with(renders()).mount(&env.server).await;
        let out = env.summarize(&[]).await;
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        for day in [1, 2, 3] {
            assert_eq!(rendering(&env, day), "Chey Tae-won", "a{day}");
        }
        // The next day, a new article's brief writes "Choi": the settled rendering holds.
        articles(&env, &[11]);
        let out = env.summarize(&[]).await;
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        assert_eq!(rendering(&env, 11), "Chey Tae-won");
    }

    /// With `--format jsonl`, a brief whose names are settled at the end of the run is printed
    /// then, already renamed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn json_lines_carry_the_settled_rendering() {
        let env = TestEnv::new().await;
        articles(&env, &[1, 2, 3]);
        chat().respond_with(tie()).mount(&env.server).await;
        let out = env.summarize(&["--format", "jsonl"]).await;
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        for l in lines.iter().filter(|l| l["entities"][0].is_object()) {
            assert_eq!(l["entities"][0]["en"], "Choi Tae-won", "{l}");
        }
    }
}
