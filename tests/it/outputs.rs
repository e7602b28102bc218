//! Where briefs go: hanbrief never writes over an article or any file it did not write, and an
//! article's output names are stable across runs, folders and argument orders.

use wiremock::ResponseTemplate;

use crate::support::*;

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(completion(&brief_reply()))
}

/// Every output mode: Markdown files, JSON files, JSON lines on stdout.
const MODES: [&str; 3] = ["md", "json", "jsonl"];

fn file_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_article_is_never_overwritten_by_its_own_brief_in_any_output_mode() {
    let env = TestEnv::new().await;
    chat().respond_with(ok()).expect(0).mount(&env.server).await;
    let article = env.article("x/offshore-wind.md", SHORT_ARTICLE);
    let folder = article.parent().unwrap().to_path_buf();
    for mode in MODES {
        let out = env
            .run(&[
                "summarize",
                article.to_str().unwrap(),
                "-o",
                folder.to_str().unwrap(),
                "--format",
                mode,
            ])
            .await;
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{mode}: {text}");
        assert!(text.contains("holds the article"), "{mode}: {text}");
        assert!(
            text.contains("its brief would replace it"),
            "{mode}: {text}"
        );
        assert!(text.contains("-o "), "says what to do instead: {text}");
        assert_eq!(
            std::fs::read_to_string(&article).unwrap(),
            SHORT_ARTICLE,
            "{mode}"
        );
        // Refused before anything was written: no state folder, no report beside the article.
        assert_eq!(file_names(&folder), ["offshore-wind.md"], "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_input_folder_as_output_folder_is_refused_and_says_why() {
    let env = TestEnv::new().await;
    chat().respond_with(ok()).expect(0).mount(&env.server).await;
    env.article("a.md", SHORT_ARTICLE);
    let input = env.input().display().to_string();
    for mode in MODES {
        for extra in [&[][..], &["--dry-run"][..]] {
            let mut args = vec!["summarize", &input, "-o", &input, "--format", mode];
            args.extend_from_slice(extra);
            let out = env.run(&args).await;
            let text = output_text(&out);
            assert_eq!(out.status.code(), Some(2), "{mode} {extra:?}: {text}");
            assert!(text.contains("is the input folder"), "{text}");
            assert!(
                text.contains("articles-briefs"),
                "suggests a folder: {text}"
            );
        }
    }
    // The parent of the input folder holds it: refused too.
    let parent = env.root().display().to_string();
    let out = env.run(&["summarize", &input, "-o", &parent]).await;
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(output_text(&out).contains("holds the input folder"));
    assert_eq!(file_names(&env.input()), ["a.md"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earlier_output_folders_inside_the_input_tree_are_passed_over() {
    let env = TestEnv::new().await;
    chat().respond_with(ok()).expect(1).mount(&env.server).await;
    env.article("economy/chips.txt", SHORT_ARTICLE);
    let input = env.input().display().to_string();
    let nested = env.input().join("briefs").display().to_string();
    // Output inside the input tree: allowed, and the folder is left out of that run's walk.
    let out = env.run(&["summarize", &input, "-o", &nested]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(env.input().join("briefs/economy/chips.md").is_file());
    // A later run into another folder plans the article only, not the briefs beside it.
    let other = env.root().join("other").display().to_string();
    let out = env
        .run(&["summarize", &input, "-o", &other, "--dry-run"])
        .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(
        stdout.contains("1 articles") || stdout.contains("1 article"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("briefs"),
        "briefs planned as articles: {stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("an output folder of an earlier run"),
        "{}",
        output_text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_hanbrief_did_not_write_is_left_alone_and_nothing_is_paid() {
    let env = TestEnv::new().await;
    chat().respond_with(ok()).expect(1).mount(&env.server).await;
    env.article("x.txt", SHORT_ARTICLE);
    env.article("y.txt", &SHORT_ARTICLE.replace("1일", "2일"));
    std::fs::create_dir_all(env.out()).unwrap();
    let mine = "# 내 메모\n\n직접 쓴 글이다.\n";
    std::fs::write(env.out().join("x.md"), mine).unwrap();
    let out = env.summarize(&[]).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("was not written by hanbrief"), "{text}");
    assert_eq!(
        std::fs::read_to_string(env.out().join("x.md")).unwrap(),
        mine
    );
    assert!(
        env.out().join("y.md").is_file(),
        "the other article is written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_too_long_for_the_file_system_is_shortened_before_paying_and_stays_put() {
    let env = TestEnv::new().await;
    chat().respond_with(ok()).expect(1).mount(&env.server).await;
    // 83 Hangul syllables: 249 bytes, 253 with ".txt"; with ".json" the brief's name would
    // not fit in 255 bytes.
    let name = format!("{}.txt", "가".repeat(83));
    env.article(&name, SHORT_ARTICLE);
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let names = file_names(&env.out());
    let brief = names
        .iter()
        .find(|n| n.ends_with(".json") && n.starts_with("가"))
        .unwrap_or_else(|| panic!("no brief in {names:?}"));
    assert!(brief.len() <= 255, "{brief}");
    // The next run finds the same name: nothing to do, nothing paid.
    let again = env.summarize(&[]).await;
    assert_eq!(again.status.code(), Some(0), "{}", output_text(&again));
    assert_eq!(env.report()["totals"]["unchanged"], 1);
    assert_eq!(file_names(&env.out()), names);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namesake_arriving_later_does_not_move_an_existing_brief() {
    let env = TestEnv::new().await;
    chat().respond_with(ok()).expect(2).mount(&env.server).await;
    env.article("a.txt", SHORT_ARTICLE);
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(env.out().join("a.md").is_file());
    env.article(
        "a.html",
        &format!(
            "<html><body><article><h1>반도체 수출 역대 최대</h1><p>{}</p></article></body></html>",
            "반도체 수출이 142억 달러로 18.4% 늘었다고 밝혔다. 생산능력을 월 26만 장으로 늘린다. "
                .repeat(5)
        ),
    );
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let names = file_names(&env.out());
    assert!(names.contains(&"a.md".to_string()), "{names:?}");
    assert!(names.contains(&"a.html.md".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("a.txt")), "{names:?}");
    let a = read_json(&env.out().join("a.json"));
    assert!(a["source"]["path"].as_str().unwrap().ends_with("a.txt"));
    assert_eq!(env.report()["totals"]["unchanged"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_folders_into_one_output_folder_keep_their_own_briefs_and_manifest() {
    let env = TestEnv::new().await;
    chat().respond_with(ok()).expect(2).mount(&env.server).await;
    let one = env.root().join("one");
    let two = env.root().join("two");
    for (dir, day) in [(&one, "1일"), (&two, "2일")] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("x.txt"), SHORT_ARTICLE.replace("1일", day)).unwrap();
    }
    let out_dir = env.out().display().to_string();
    let run = |dir: &std::path::Path| {
        let dir = dir.display().to_string();
        let out_dir = out_dir.clone();
        let env = &env;
        async move { env.run(&["summarize", &dir, "-o", &out_dir]).await }
    };
    for dir in [&one, &two, &one, &two] {
        let out = run(dir).await;
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    }
    // Two briefs, each naming its own source; the reruns found both unchanged (2 calls in all).
    let briefs: Vec<String> = file_names(&env.out())
        .into_iter()
        .filter(|n| n.ends_with(".json") && n != "_report.json")
        .collect();
    assert_eq!(briefs.len(), 2, "{briefs:?}");
    assert!(briefs.contains(&"x.json".to_string()), "{briefs:?}");
    let sources: Vec<String> = briefs
        .iter()
        .map(|b| {
            read_json(&env.out().join(b))["source"]["path"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(sources.iter().any(|s| s.contains("one")), "{sources:?}");
    assert!(sources.iter().any(|s| s.contains("two")), "{sources:?}");
    assert_eq!(env.report()["totals"]["unchanged"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_named_twice_is_briefed_once() {
    let env = TestEnv::new().await;
    chat().respond_with(ok()).expect(1).mount(&env.server).await;
    let article = env.article("x.txt", SHORT_ARTICLE);
    let input = env.input().display().to_string();
    let out_dir = env.out().display().to_string();
    let out = env
        .run(&[
            "summarize",
            &input,
            article.to_str().unwrap(),
            "-o",
            &out_dir,
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(env.report()["totals"]["articles"], 1);
}
