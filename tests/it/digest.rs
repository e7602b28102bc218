//! The daily digest and the scheduled job.

use std::time::{Duration, Instant};

use wiremock::matchers::body_string_contains;

use crate::support::*;

async fn briefed(env: &TestEnv, n: usize, newsroom: Newsroom) {
    env.short_articles(n);
    chat().respond_with(newsroom).mount(&env.server).await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
}

fn digest_files(env: &TestEnv) -> Vec<std::path::PathBuf> {
    let dir = env.out().join("_digest");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_groups_by_topic_merges_events_and_links_every_source() {
    let env = TestEnv::new().await;
    briefed(
        &env,
        4,
        Newsroom {
            merge_first_two: true,
            drop_last: false,
            map_merges_pairs: false,
        },
    )
    .await;
    let out_dir = env.out().display().to_string();
    let out = env.run(&["digest", &out_dir]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let files = digest_files(&env);
    assert_eq!(files.len(), 1);
    let d = read_json(&files[0]);
    assert_eq!(d["schema"], "hanbrief.digest/1");
    assert_eq!(d["briefs"], 4);
    assert_eq!(d["title"]["ko"], "오늘의 반도체 소식");
    let topics = d["topics"].as_array().unwrap();
    // The most important story's topic comes first; the merged story links both sources.
    assert_eq!(topics[0]["topic"], "economy");
    let first = &topics[0]["stories"][0];
    assert_eq!(first["importance"], 5);
    let ids: Vec<&str> = first["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["a0", "a1"]);
    let all: usize = topics
        .iter()
        .map(|t| {
            t["stories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["sources"].as_array().unwrap().len())
                .sum::<usize>()
        })
        .sum();
    assert_eq!(all, 4, "every brief is in exactly one story");
    assert_eq!(d["checks"]["unplaced_briefs"], serde_json::json!([]));
    // The Markdown links resolve to the briefs.
    let md_path = files[0].with_extension("md");
    let md = std::fs::read_to_string(&md_path).unwrap();
    assert!(md.starts_with("# 오늘의 반도체 소식 · "), "{md}");
    for link in md.split("](").skip(1) {
        let target = &link[..link.find(')').unwrap()];
        assert!(
            md_path.parent().unwrap().join(target).is_file(),
            "broken link {target}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brief_the_model_leaves_out_is_still_in_the_digest() {
    let env = TestEnv::new().await;
    briefed(
        &env,
        3,
        Newsroom {
            merge_first_two: false,
            drop_last: true,
            map_merges_pairs: false,
        },
    )
    .await;
    let out_dir = env.out().display().to_string();
    let out = env
        .run(&[
            "digest",
            &out_dir,
            "-o",
            &env.root().join("today.md").display().to_string(),
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let d = read_json(&env.root().join("today.json"));
    assert_eq!(d["checks"]["unplaced_briefs"], serde_json::json!(["a2"]));
    let other = d["topics"].as_array().unwrap().last().unwrap();
    assert_eq!(other["topic"], "other");
    assert_eq!(other["stories"][0]["sources"][0]["id"], "a2");
    let md = std::fs::read_to_string(env.root().join("today.md")).unwrap();
    assert!(md.contains("left out by the model"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn briefs_of_the_old_format_without_quotes_are_still_digested() {
    let env = TestEnv::new().await;
    briefed(
        &env,
        2,
        Newsroom {
            merge_first_two: false,
            drop_last: false,
            map_merges_pairs: false,
        },
    )
    .await;
    // A brief that hanbrief wrote before quotes existed (format /1; see tests/data/briefs/).
    let old = env.out().join("old/semiconductor-export.json");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/briefs/v1-semiconductor-export.json"
        ),
        &old,
    )
    .unwrap();
    assert_eq!(read_json(&old)["schema"], "hanbrief.brief/1");
    let out_dir = env.out().display().to_string();
    // The old brief's date is long past the default window.
    let out = env.run(&["digest", &out_dir, "--all"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let d = read_json(&digest_files(&env)[0]);
    assert_eq!(d["briefs"], 3, "{d}");
    let ids: Vec<String> = d["topics"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["stories"].as_array().unwrap().clone())
        .flat_map(|s| s["sources"].as_array().unwrap().clone())
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        ids.contains(&"old/semiconductor-export".to_string()),
        "{ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn briefs_that_overflow_one_call_are_digested_in_a_tree() {
    let env = TestEnv::new().await.with_config(
        "[endpoint]\ncontext_window = 2600\n[chunking]\nbrief_max_tokens = 500\n[digest]\nmax_tokens = 800\n",
    );
    briefed(
        &env,
        20,
        Newsroom {
            merge_first_two: false,
            drop_last: false,
            map_merges_pairs: true,
        },
    )
    .await;
    env.server.reset().await;
    chat()
        .and(body_string_contains("Group these items into stories"))
        .respond_with(Newsroom {
            merge_first_two: false,
            drop_last: false,
            map_merges_pairs: true,
        })
        .expect(2..)
        .mount(&env.server)
        .await;
    chat()
        .and(body_string_contains("Write the daily digest"))
        .respond_with(Newsroom {
            merge_first_two: false,
            drop_last: false,
            map_merges_pairs: true,
        })
        .expect(1)
        .mount(&env.server)
        .await;
    let out_dir = env.out().display().to_string();
    let out = env.run(&["digest", &out_dir]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let d = read_json(&digest_files(&env)[0]);
    assert_eq!(d["briefs"], 20);
    let sources: usize = d["topics"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["stories"].as_array().unwrap())
        .map(|s| s["sources"].as_array().unwrap().len())
        .sum();
    assert_eq!(sources, 20);
    assert_eq!(d["checks"]["unplaced_briefs"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_folder_has_nothing_to_digest() {
    let env = TestEnv::new().await;
    std::fs::create_dir_all(env.out()).unwrap();
    let out_dir = env.out().display().to_string();
    let out = env.run(&["digest", &out_dir]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to digest"));
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_runs_ticks_picks_up_only_new_articles_and_stops_on_sigterm() {
    let env = TestEnv::new().await.with_config(
        "[schedule]\ncron = \"*/2 * * * * *\"\ntimezone = \"Asia/Seoul\"\ninput = \"articles\"\noutput = \"out\"\n",
    );
    env.short_articles(2);
    chat()
        .respond_with(Newsroom {
            merge_first_two: false,
            drop_last: false,
            map_merges_pairs: false,
        })
        .mount(&env.server)
        .await;
    // `hanbrief schedule --config FILE` is all it takes.
    let child = env
        .command(&["schedule", "--config", env.config_path().to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let wait_for_digests = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if digest_files(&env).len() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    assert!(
        tokio::task::block_in_place(|| wait_for_digests(1)),
        "no first tick"
    );
    let first = read_json(&digest_files(&env)[0]);
    assert_eq!(first["briefs"], 2);
    env.article("a2.txt", &SHORT_ARTICLE.replace("1일", "7일"));
    assert!(
        tokio::task::block_in_place(|| wait_for_digests(2)),
        "no second tick with the new article"
    );
    let second = read_json(&digest_files(&env)[1]);
    assert_eq!(second["briefs"], 1, "only the new article: {second}");
    assert_eq!(second["topics"][0]["stories"][0]["sources"][0]["id"], "a2");
    // The old articles cost nothing in later ticks: 2 briefs + 1 digest, then 1 brief + 1 digest.
    let briefs_calls = env
        .calls()
        .await
        .iter()
        .filter(|r| !String::from_utf8_lossy(&r.body).contains("daily digest"))
        .count();
    assert_eq!(briefs_calls, 3);

    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0) | Some(130)),
        "{}",
        output_text(&out)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("tick done") && log.contains("digest written") && log.contains("next run at"),
        "{log}"
    );
    // The lock was released: a manual run on the same folder works.
    let again = env.summarize(&[]).await;
    assert_eq!(again.status.code(), Some(0), "{}", output_text(&again));
    assert_eq!(env.report()["totals"]["unchanged"], 3);
}

/// Briefs from the newsroom, then a digest whose title and overview carry a figure no brief
/// has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invented_figure_in_the_digest_title_or_overview_is_flagged() {
    let env = TestEnv::new().await;
    briefed(
        &env,
        2,
        Newsroom {
            merge_first_two: false,
            drop_last: false,
            map_merges_pairs: false,
        },
    )
    .await;
    env.server.reset().await;
    chat()
        .respond_with(|req: &wiremock::Request| {
            let body = String::from_utf8_lossy(&req.body);
            let ids: Vec<String> = body
                .split("[sources: ")
                .skip(1)
                .map(|r| r[..r.find(']').unwrap()].to_string())
                .collect();
            let stories: Vec<serde_json::Value> = ids
                .iter()
                .map(|id| {
                    serde_json::json!({
                        "topic": "economy",
                        "headline": {"ko": "반도체 수출 역대 최대", "en": "Chip exports hit a record"},
                        "summary": {"ko": "반도체 수출이 142억 달러로 늘었다.", "en": "Chip exports rose to $14.2 billion."},
                        "importance": 3,
                        "sources": [id]
                    })
                })
                .collect();
            let digest = serde_json::json!({
                "title": {"ko": "반도체 투자 9,876억 원", "en": "Chip investment of 987.6 billion won"},
                "overview": {"ko": "반도체 수출이 142억 달러로 늘고 투자가 9,876억 원에 이르렀다.", "en": "Chip exports rose to $14.2 billion."},
                "stories": stories
            });
            wiremock::ResponseTemplate::new(200).set_body_json(completion(&digest.to_string()))
        })
        .mount(&env.server)
        .await;
    let out_dir = env.out().display().to_string();
    let out = env.run(&["digest", &out_dir]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let d = read_json(&digest_files(&env)[0]);
    let flagged: Vec<(String, String)> = d["checks"]["unsupported_figures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["text"].as_str().unwrap().to_string(),
                f["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for field in ["title.ko", "title.en", "overview.ko"] {
        assert!(
            flagged.iter().any(|(_, f)| f == field),
            "{field} not flagged: {flagged:?}"
        );
    }
    assert!(
        flagged.iter().any(|(t, _)| t.contains("9,876억")),
        "{flagged:?}"
    );
    assert!(
        !flagged.iter().any(|(t, _)| t.contains("142억")),
        "a figure the briefs have is fine: {flagged:?}"
    );
    let md = std::fs::read_to_string(digest_files(&env)[0].with_extension("md")).unwrap();
    assert!(md.contains("`9,876억 원`"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_resolve_from_a_relative_briefs_folder_to_an_absolute_output_and_force_asks_again() {
    let env = TestEnv::new().await;
    briefed(
        &env,
        2,
        Newsroom {
            merge_first_two: false,
            drop_last: false,
            map_merges_pairs: false,
        },
    )
    .await;
    let elsewhere = tempfile::tempdir().unwrap();
    let stem = elsewhere.path().join("digests").join("today");
    // The briefs folder as a user types it, relative to where hanbrief runs (the workspace).
    let out = env
        .run(&["digest", "out", "-o", stem.to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let md_path = stem.with_extension("md");
    let md = std::fs::read_to_string(&md_path).unwrap();
    let links: Vec<&str> = md
        .split("](")
        .skip(1)
        .map(|l| &l[..l.find(')').unwrap()])
        .collect();
    assert_eq!(links.len(), 2, "{md}");
    for target in links {
        assert!(
            md_path.parent().unwrap().join(target).is_file(),
            "broken link {target} in {}",
            md_path.display()
        );
    }

    // Again: from the cache, no call. With --force: the model is asked again.
    let before = env.calls().await.len();
    let out = env
        .run(&["digest", "out", "-o", stem.to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(env.calls().await.len(), before);
    let out = env
        .run(&["digest", "out", "-o", stem.to_str().unwrap(), "--force"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(env.calls().await.len(), before + 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 call (0 cached)"),
        "{}",
        output_text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_without_since_takes_the_schedules_period_and_all_takes_everything() {
    let env = TestEnv::new().await;
    briefed(
        &env,
        2,
        Newsroom {
            merge_first_two: false,
            drop_last: false,
            map_merges_pairs: false,
        },
    )
    .await;
    // A brief written five days ago (the format /1 brief, redated).
    let mut old = read_json(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/briefs/v1-semiconductor-export.json"
    )));
    let five_days_ago = chrono::Utc::now() - chrono::Duration::days(5);
    old["generated_at"] = serde_json::json!(five_days_ago.to_rfc3339());
    let path = env.out().join("old/semiconductor-export.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, old.to_string()).unwrap();
    let out_dir = env.out().display().to_string();

    // The default: the schedule's period, a day with the default daily cron.
    let out = env.run(&["digest", &out_dir]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(read_json(&digest_files(&env)[0])["briefs"], 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("digest of 2 briefs written in the last 1 day (the schedule's period)"),
        "{stderr}"
    );

    // A weekly schedule reaches back a week; --all and a long --since take everything.
    for args in [vec!["--all"], vec!["--since", "30d"]] {
        let mut all = vec!["digest", out_dir.as_str()];
        all.extend(args.iter().copied());
        let out = env.run(&all).await;
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        assert_eq!(read_json(&digest_files(&env)[0])["briefs"], 3, "{args:?}");
    }
    let weekly = TestEnv::new()
        .await
        .with_config("[schedule]\ncron = \"0 7 * * 1\"\n");
    chat()
        .respond_with(Newsroom {
            merge_first_two: false,
            drop_last: false,
            map_merges_pairs: false,
        })
        .mount(&weekly.server)
        .await;
    let out = weekly.run(&["digest", &out_dir]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in the last 7 days"), "{stderr}");
    assert!(stderr.contains("digest of 3 briefs"), "{stderr}");
}
