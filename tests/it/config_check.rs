//! `config check` is the place to find out: everything `summarize`, `digest` and `schedule`
//! would trip over later fails here first; and `schedule --once` tries a schedule config.

use wiremock::Mock;
use wiremock::matchers::{method, path};

use crate::support::*;

/// `config check` with the test config plus `extra`: (exit code, stderr).
async fn check(extra: &str, args: &[&str], env_vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let env = TestEnv::new().await.with_config(extra);
    std::fs::create_dir_all(env.input()).unwrap();
    let mut all = vec!["config", "check"];
    all.extend_from_slice(args);
    let o = env.run_with_env(&all, env_vars).await;
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const KEY: (&str, &str) = (KEY_ENV, "sk-test-key-0123456789");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_finds_what_later_commands_would_trip_over() {
    let cases: &[(&str, &[&str])] = &[
        // A prompts folder that is not there (summarize used the built-in prompts silently).
        (
            "[prompts]\ndir = \"my-prompts\"\n",
            &["my-prompts", "does not exist", "prompts init"],
        ),
        // A cron expression and a time zone that cannot work.
        (
            "[schedule]\ncron = \"every minute\"\n",
            &["\"every minute\"", "it has 2 fields", "5 fields"],
        ),
        ("[schedule]\ntimezone = \"Mars/Base\"\n", &["Mars/Base"]),
        // A schedule input that is not there (schedule then failed every tick, forever).
        (
            "[schedule]\ninput = \"no-such-folder\"\n",
            &["no-such-folder", "schedule.input", "does not exist"],
        ),
    ];
    for (extra, expected) in cases {
        let (code, stderr) = check(extra, &[], &[KEY]).await;
        assert_eq!(code, Some(2), "{extra}: {stderr}");
        for e in *expected {
            assert!(stderr.contains(e), "{extra}: {e:?} missing in {stderr}");
        }
        assert!(!stderr.contains("config ok"), "{extra}: {stderr}");
    }

    // No key for an endpoint that needs one (a dry config check makes no call).
    let (code, stderr) = check(
        "[endpoint]\nbase_url = \"https://api.openai.com/v1\"\n",
        &[],
        &[],
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{KEY_ENV} is not set")) && stderr.contains("api.openai.com"),
        "{stderr}"
    );
    // A local server needs none.
    let (code, stderr) = check("", &[], &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_prompt_is_rendered_with_a_sample_article() {
    let env = TestEnv::new()
        .await
        .with_config("[prompts]\ndir = \"my-prompts\"\n");
    std::fs::create_dir_all(env.input()).unwrap();
    let dir = env.root().join("my-prompts");
    std::fs::create_dir_all(&dir).unwrap();
    // A variable hanbrief never gives, only used when the article has a headline: a render
    // with empty values (what summarize does at start) does not reach it.
    std::fs::write(
        dir.join("brief.md"),
        "<<<{{ fence }}\n{{ article }}\n{{ fence }}>>>\n{% if title %}\nHeadline: {{ headline }}\n{% endif %}\n{% include \"format.md\" %}\n",
    )
    .unwrap();
    std::fs::write(dir.join("digset.md"), "a typo: not a template name").unwrap();
    let o = env.run(&["config", "check"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("brief.md") && stderr.contains("undefined"),
        "{stderr}"
    );
    assert!(
        stderr.contains("digset.md") && stderr.contains("not used"),
        "{stderr}"
    );

    // The same template, fixed: config ok, and it says where the values came from.
    std::fs::write(
        dir.join("brief.md"),
        "<<<{{ fence }}\n{{ article }}\n{{ fence }}>>>\n{% if title %}\nHeadline: {{ title }}\n{% endif %}\n{% include \"format.md\" %}\n",
    )
    .unwrap();
    let o = env
        .run(&["config", "check", "--model", "other-model"])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("config ok: other-model") && stderr.contains("flags --model"),
        "{stderr}"
    );
    assert!(stderr.contains("hanbrief.toml"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summarize_refuses_a_prompts_folder_that_is_not_there() {
    let env = TestEnv::new()
        .await
        .with_config("[prompts]\ndir = \"my-prompts\"\n");
    env.short_articles(1);
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("my-prompts"),
        "{}",
        output_text(&out)
    );
    assert!(env.calls().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_once_runs_one_tick_and_a_missing_input_stops_it_at_once() {
    let env = TestEnv::new().await.with_config(
        "[schedule]\ncron = \"0 7 * * *\"\ntimezone = \"Asia/Seoul\"\ninput = \"articles\"\noutput = \"out\"\n",
    );
    env.short_articles(2);
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(Newsroom {
            merge_first_two: false,
            drop_last: false,
            map_merges_pairs: false,
        })
        .mount(&env.server)
        .await;
    let o = env.run(&["schedule", "--once"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("would run next at"), "{stderr}");
    assert!(stderr.contains("KST"), "in the schedule's zone: {stderr}");
    assert!(stderr.contains("digest written"), "{stderr}");
    assert_eq!(env.report()["totals"]["written"], 2);

    let env = TestEnv::new()
        .await
        .with_config("[schedule]\ninput = \"no-such-folder\"\n");
    let o = env.run(&["schedule"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no-such-folder"),
        "{}",
        output_text(&o)
    );
}
