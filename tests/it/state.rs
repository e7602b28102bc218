//! Incremental, crash-safe runs: the state store's cache and manifest, and the run lock.

use std::time::Duration;

use serde_json::Value;
use wiremock::ResponseTemplate;
use wiremock::matchers::body_string_contains;

use crate::support::*;

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(completion(&brief_reply()))
}

fn notes() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(completion("- 반도체 수출이 142억 달러로 18.4% 늘었다."))
}

/// Forgets the mocks and the recorded requests of the previous run.
async fn next_run(env: &TestEnv) {
    env.server.verify().await;
    env.server.reset().await;
}

async fn cache_stats(env: &TestEnv) -> Value {
    let out = env.out().display().to_string();
    let o = env.run(&["cache", "stats", "--json", "-o", &out]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_folder_costs_no_call_the_second_time() {
    let env = TestEnv::new().await;
    env.short_articles(3);
    chat().respond_with(ok()).expect(3).mount(&env.server).await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let first = std::fs::read_to_string(env.out().join("a0.json")).unwrap();

    next_run(&env).await;
    chat().respond_with(ok()).expect(0).mount(&env.server).await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let report = env.report();
    assert_eq!(report["totals"]["unchanged"], 3, "{report}");
    assert_eq!(report["totals"]["calls"], 0);
    assert_eq!(report["articles"][0]["status"], "unchanged");
    assert_eq!(
        std::fs::read_to_string(env.out().join("a0.json")).unwrap(),
        first,
        "an unchanged brief is not rewritten"
    );
    let stats = cache_stats(&env).await;
    assert_eq!(stats["calls"], 3);
    assert_eq!(stats["runs"], 2);
    assert_eq!(stats["last_run"]["unchanged"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touching_one_article_redoes_only_its_calls() {
    let env = TestEnv::new().await;
    env.short_articles(3);
    chat().respond_with(ok()).expect(3).mount(&env.server).await;
    assert_eq!(env.summarize(&[]).await.status.code(), Some(0));

    next_run(&env).await;
    env.article("a1.txt", &SHORT_ARTICLE.replace("1일", "9일"));
    chat()
        .and(body_string_contains("9일 밝혔다"))
        .respond_with(ok())
        .expect(1)
        .mount(&env.server)
        .await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let report = env.report();
    assert_eq!(report["totals"]["written"], 1);
    assert_eq!(report["totals"]["unchanged"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_output_is_rewritten_from_the_cache_without_a_call() {
    let env = TestEnv::new().await;
    env.short_articles(1);
    chat().respond_with(ok()).expect(1).mount(&env.server).await;
    assert_eq!(env.summarize(&[]).await.status.code(), Some(0));
    next_run(&env).await;
    std::fs::remove_file(env.out().join("a0.md")).unwrap();
    chat().respond_with(ok()).expect(0).mount(&env.server).await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(env.out().join("a0.md").is_file());
    assert_eq!(env.report()["totals"]["cached_calls"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_prompt_reruns_the_articles() {
    let env = TestEnv::new().await;
    env.short_articles(2);
    chat().respond_with(ok()).expect(2).mount(&env.server).await;
    assert_eq!(env.summarize(&[]).await.status.code(), Some(0));

    next_run(&env).await;
    let prompts = env.root().join("my-prompts");
    std::fs::create_dir_all(&prompts).unwrap();
    let builtin = env.run(&["prompts", "show", "brief.md"]).await.stdout;
    let mut custom = String::from_utf8(builtin).unwrap();
    custom.push_str("\nKeep the Korean summary under 100 characters.\n");
    std::fs::write(prompts.join("brief.md"), custom).unwrap();
    let env = env.with_config("[prompts]\ndir = \"my-prompts\"\n");
    chat()
        .and(body_string_contains("under 100 characters"))
        .respond_with(ok())
        .expect(2)
        .mount(&env.server)
        .await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    // Both articles were asked again with the new prompt (the mock's `expect(2)`): two calls
    // paid for, two briefs written, even though the mock answers the same brief (a run that
    // paid for 2 calls and said "2 unchanged" was not honest).
    let report = env.report();
    assert_eq!(report["totals"]["calls"], 2);
    assert_eq!(report["totals"]["written"], 2, "{report}");
    assert_eq!(report["totals"]["unchanged"], 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_whose_notes_are_cached_are_not_sent_again() {
    let env = TestEnv::new()
        .await
        .with_config("[chunking]\nchunk_tokens = 400\n");
    let text = long_article(14);
    env.article("long.txt", &text);
    chat()
        .and(body_string_contains("of a long news article"))
        .respond_with(notes())
        .mount(&env.server)
        .await;
    chat()
        .and(body_string_contains("notes taken, part by part"))
        .respond_with(ok())
        .expect(1)
        .mount(&env.server)
        .await;
    assert_eq!(env.summarize(&[]).await.status.code(), Some(0));
    let chunks = env.brief("long.txt")["source"]["chunks"].as_u64().unwrap();
    assert!(chunks >= 3);

    next_run(&env).await;
    // An edit inside the last paragraph that keeps every chunk's size: only the last chunk's
    // notes are asked again, then the reduce.
    let edited = {
        let last = text
            .rfind("13번째 문단이다. 정부는 올해 반도체 수출이 142억")
            .unwrap();
        let mut t = text.clone();
        t.replace_range(
            last..last + "13번째 문단이다. 정부는 올해 반도체 수출이 142억".len(),
            "13번째 문단이다. 정부는 올해 반도체 수출이 143억",
        );
        t
    };
    env.article("long.txt", &edited);
    chat()
        .and(body_string_contains("of a long news article"))
        .respond_with(notes())
        .expect(1)
        .mount(&env.server)
        .await;
    chat()
        .and(body_string_contains("notes taken, part by part"))
        .respond_with(ok())
        .expect(0)
        .mount(&env.server)
        .await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    // The mocked notes are the same for every chunk, so the reduce prompt is unchanged too and
    // comes from the cache: one call in all.
    let brief = env.brief("long.txt");
    assert_eq!(brief["usage"]["calls"], 1, "{}", brief["usage"]);
    assert_eq!(brief["usage"]["cached_calls"].as_u64(), Some(chunks));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_ignores_the_cache_and_the_manifest() {
    let env = TestEnv::new().await;
    env.short_articles(2);
    chat().respond_with(ok()).expect(2).mount(&env.server).await;
    assert_eq!(env.summarize(&[]).await.status.code(), Some(0));
    next_run(&env).await;
    chat().respond_with(ok()).expect(2).mount(&env.server).await;
    let out = env.summarize(&["--force"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(env.report()["totals"]["calls"], 2);
    assert_eq!(env.report()["totals"]["cached_calls"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_the_same_folder_is_refused_while_the_first_runs() {
    let env = TestEnv::new()
        .await
        .with_config("[limits]\nmax_in_flight = 1\n");
    env.short_articles(2);
    chat()
        .respond_with(ok().set_delay(Duration::from_millis(1500)))
        .mount(&env.server)
        .await;
    let first = env
        .summarize_command()
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first run holds the folder (its first call has arrived).
    for _ in 0..100 {
        if !env.calls().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = env.summarize(&[]).await;
    assert_eq!(second.status.code(), Some(2), "{}", output_text(&second));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!("another hanbrief run (pid {}", first.id())),
        "{stderr}"
    );
    let status = tokio::task::spawn_blocking(move || {
        let mut first = first;
        first.wait().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(0));
    // Once the first run is over, the folder is free again.
    let third = env.summarize(&[]).await;
    assert_eq!(third.status.code(), Some(0), "{}", output_text(&third));
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_with_sigkill_loses_no_finished_call() {
    let env = TestEnv::new()
        .await
        .with_config("[limits]\nmax_in_flight = 1\n");
    let n = 5;
    env.short_articles(n);
    chat()
        .respond_with(ok().set_delay(Duration::from_millis(400)))
        .mount(&env.server)
        .await;
    let mut child = env
        .summarize_command()
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it hard while its third call is in flight. The wait is long because a loaded
    // machine can take seconds to start the child; it ends as soon as the calls arrive.
    for _ in 0..3000 {
        if env.calls().await.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal");
    let sent_before = env.calls().await.len();
    let finished = cache_stats(&env).await["calls"].as_u64().unwrap() as usize;
    assert!(
        finished >= 2 && finished < n,
        "{finished} calls finished before the kill"
    );

    next_run(&env).await;
    chat()
        .respond_with(ok())
        .expect((n - finished) as u64)
        .mount(&env.server)
        .await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    // Every brief is complete and valid, and nothing half-written was left behind.
    for i in 0..n {
        let brief = env.brief(&format!("a{i}.txt"));
        assert_eq!(brief["schema"], "hanbrief.brief/2");
        assert!(brief["summary"]["ko"].as_str().unwrap().contains("142억"));
    }
    let leftovers: Vec<_> = std::fs::read_dir(env.out())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(sent_before >= finished);
    let stats = cache_stats(&env).await;
    assert_eq!(stats["calls"].as_u64(), Some(n as u64));
    assert_eq!(
        stats["interrupted_runs"], 1,
        "the killed run shows as interrupted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_prune_and_clear() {
    let env = TestEnv::new().await;
    env.short_articles(2);
    chat().respond_with(ok()).expect(2).mount(&env.server).await;
    assert_eq!(env.summarize(&[]).await.status.code(), Some(0));
    let out = env.out().display().to_string();
    let o = env
        .run(&["cache", "prune", "--older-than", "1h", "-o", &out])
        .await;
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("removed 0 cached calls"),
        "{}",
        output_text(&o)
    );
    let o = env.run(&["cache", "stats", "-o", &out]).await;
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("2 cached") && text.contains("written 2"),
        "{text}"
    );
    let o = env.run(&["cache", "clear", "-o", &out]).await;
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("removed 2 cached calls"),
        "{}",
        output_text(&o)
    );
    assert_eq!(cache_stats(&env).await["calls"], 0);
    let o = env
        .run(&["cache", "stats", "-o", "/nonexistent/folder"])
        .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("has no state store yet"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_change_that_changes_nothing_leaves_briefs_unchanged() {
    let env = TestEnv::new().await;
    env.short_articles(2);
    chat().respond_with(ok()).expect(2).mount(&env.server).await;
    assert_eq!(env.summarize(&[]).await.status.code(), Some(0));
    let before = std::fs::read_to_string(env.out().join("a0.json")).unwrap();

    next_run(&env).await;
    // A glossary entry for a name none of the articles mention: every brief is re-made from the
    // cache, identical, so nothing is rewritten and the next digest is not flooded.
    let env = env.with_config("[glossary]\n\"박지훈\" = \"Park Ji-hoon\"\n");
    chat().respond_with(ok()).expect(0).mount(&env.server).await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let report = env.report();
    assert_eq!(report["totals"]["unchanged"], 2, "{report}");
    assert_eq!(report["totals"]["written"], 0);
    assert_eq!(report["totals"]["cached_calls"], 2);
    assert_eq!(
        std::fs::read_to_string(env.out().join("a0.json")).unwrap(),
        before
    );
    // And the run after that skips them outright.
    let again = env.summarize(&[]).await;
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(env.report()["totals"]["cached_calls"], 0);
    assert_eq!(env.report()["totals"]["unchanged"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_that_was_not_a_brief_is_asked_again_next_time() {
    let env = TestEnv::new().await;
    env.short_articles(1);
    chat()
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("not a brief")))
        .expect(2)
        .mount(&env.server)
        .await;
    assert_eq!(env.summarize(&[]).await.status.code(), Some(1));
    next_run(&env).await;
    // Nothing unusable was cached: the next run pays for the calls again, and this time gets
    // a brief.
    chat().respond_with(ok()).expect(1).mount(&env.server).await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(env.report()["totals"]["written"], 1);
}
