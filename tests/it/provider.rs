//! Provider faults, one rule per test: what is retried, what stops the run, who waits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::{Request, Respond, ResponseTemplate};

use crate::support::*;

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(completion(&brief_reply()))
}

/// Answers by sequence number and records when each request arrived.
struct Script {
    next: AtomicUsize,
    answers: Vec<ResponseTemplate>,
    fallback: ResponseTemplate,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Respond for Script {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.arrivals.lock().unwrap().push(Instant::now());
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        self.answers
            .get(i)
            .cloned()
            .unwrap_or_else(|| self.fallback.clone())
    }
}

fn script(answers: Vec<ResponseTemplate>) -> (Script, Arc<Mutex<Vec<Instant>>>) {
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    (
        Script {
            next: AtomicUsize::new(0),
            answers,
            fallback: ok(),
            arrivals: arrivals.clone(),
        },
        arrivals,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_pauses_every_worker() {
    let env = TestEnv::new()
        .await
        .with_config("[limits]\nmax_in_flight = 2\n");
    env.short_articles(4);
    let limited = ResponseTemplate::new(429)
        .insert_header("retry-after", "2")
        .set_body_json(json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}));
    // The first call (which goes alone) succeeds; the second is told to come back in 2 s.
    let (responder, arrivals) = script(vec![ok(), limited]);
    chat()
        .respond_with(responder)
        .expect(5)
        .mount(&env.server)
        .await;

    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let arrivals = arrivals.lock().unwrap().clone();
    let limited_at = arrivals[1];
    // Requests already on their way when the 429 was sent may arrive just after it; every
    // request sent after the client saw it waits the full 2 s, whichever worker sends it.
    let late: Vec<f64> = arrivals[2..]
        .iter()
        .map(|t| t.duration_since(limited_at).as_secs_f64())
        .filter(|d| *d > 0.1)
        .collect();
    assert!(late.len() >= 2, "{late:?}");
    assert!(
        late.iter().all(|d| *d >= 1.95),
        "sent before Retry-After expired: {late:?}"
    );
    let report = env.report();
    assert_eq!(report["totals"]["rate_limited"], 1);
    assert_eq!(report["totals"]["written"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_quota_stops_the_run_after_exactly_one_call() {
    let env = TestEnv::new().await;
    env.short_articles(4);
    chat()
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1").set_body_json(json!({
            "error": {"message": "You exceeded your current quota, please check your plan and billing details.", "type": "insufficient_quota", "code": "insufficient_quota"}
        })))
        .expect(1)
        .mount(&env.server)
        .await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("quota is used up"), "{stderr}");
    let report = env.report();
    assert_eq!(report["totals"]["failed"], 1);
    assert_eq!(report["totals"]["not_done"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_stops_the_run_after_exactly_one_call() {
    let env = TestEnv::new().await;
    env.short_articles(3);
    chat()
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": {"message": "Project does not have access to model", "code": "model_not_found"}})))
        .expect(1)
        .mount(&env.server)
        .await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_then_success_takes_two_calls() {
    let env = TestEnv::new().await;
    env.short_articles(1);
    let (responder, _) = script(vec![
        ResponseTemplate::new(500).set_body_string("upstream failed"),
    ]);
    chat()
        .respond_with(responder)
        .expect(2)
        .mount(&env.server)
        .await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(env.report()["totals"]["retries"], 1);
    assert_eq!(
        env.brief("a0.txt")["usage"]["calls"],
        1,
        "a retried call is one call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_not_retried() {
    let env = TestEnv::new().await;
    env.short_articles(1);
    chat()
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {"message": "Invalid value for 'temperature'", "code": "invalid_value"}})))
        .expect(1)
        .mount(&env.server)
        .await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let reason = env.report()["articles"][0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("rejected the request (400)") && reason.contains("temperature"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_hits_the_timeout_and_is_retried() {
    let env = TestEnv::new()
        .await
        .with_config("[endpoint]\nrequest_timeout = \"500ms\"\n");
    env.short_articles(1);
    let (responder, _) = script(vec![ok().set_delay(Duration::from_secs(3))]);
    chat()
        .respond_with(responder)
        .expect(2)
        .mount(&env.server)
        .await;
    let started = Instant::now();
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "waited for the hang instead of timing out"
    );
    assert_eq!(env.report()["totals"]["retries"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_connection_and_a_cut_body_are_retried() {
    // wiremock cannot reset a connection: a hand-made server does it for the first request,
    // cuts the body of the second, and answers the third.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let s = served.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 20];
                let mut read = 0;
                // Read the head and the body (Content-Length) before answering.
                loop {
                    let n = stream.read(&mut buf[read..]).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    read += n;
                    let text = String::from_utf8_lossy(&buf[..read]);
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let len = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if read >= head_end + 4 + len {
                            break;
                        }
                    }
                }
                // The run's one `GET /models` (which model answers) is not a chat call: a
                // server without a list answers it 404.
                if buf.starts_with(b"GET ") {
                    let _ = stream
                        .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                    return;
                }
                match s.fetch_add(1, Ordering::SeqCst) {
                    0 => {
                        // Close without a reply: the client sees the connection end mid-request.
                        drop(stream);
                    }

                    1 => {
                        let body = completion(&brief_reply()).to_string();
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(head.as_bytes()).await;
                        let _ = stream.write_all(&body.as_bytes()[..body.len() / 2]).await;
                        drop(stream);
                    }
                    _ => {
                        let body = completion(&brief_reply()).to_string();
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(resp.as_bytes()).await;
                    }
                }
            });
        }
    });
    let env = TestEnv::new().await;
    env.short_articles(1);
    let url = format!("http://{addr}/v1");
    let out = env.summarize(&["--base-url", &url]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(served.load(Ordering::SeqCst), 3);
    assert_eq!(env.report()["totals"]["retries"], 2);
}

/// Answers `context_length_exceeded` to any request whose body is larger than `limit` bytes.
struct SmallWindow {
    limit: usize,
    too_long: Arc<AtomicUsize>,
}

impl Respond for SmallWindow {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        if req.body.len() > self.limit {
            self.too_long.fetch_add(1, Ordering::SeqCst);
            return ResponseTemplate::new(400).set_body_json(json!({
                "error": {"message": "This model's maximum context length is 4096 tokens.", "type": "invalid_request_error", "code": "context_length_exceeded"}
            }));
        }
        let body: Value = req.body_json().unwrap();
        let user = body["messages"][1]["content"].as_str().unwrap_or("");
        if user.contains("of a long news article") {
            ResponseTemplate::new(200)
                .set_body_json(completion("- 반도체 수출이 142억 달러로 18.4% 늘었다."))
        } else {
            ok()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_length_exceeded_splits_into_smaller_calls_that_succeed() {
    let env = TestEnv::new().await;
    env.article("long.txt", &long_article(12));
    let too_long = Arc::new(AtomicUsize::new(0));
    // The planner thinks the article fits one call (8192-token window); the server's real
    // window is smaller.
    chat()
        .respond_with(SmallWindow {
            limit: 5000,
            too_long: too_long.clone(),
        })
        .mount(&env.server)
        .await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(too_long.load(Ordering::SeqCst) >= 1);
    let brief = env.brief("long.txt");
    assert_eq!(brief["title"]["en"], "Chip exports hit a record");
    let requests = env.calls().await;
    let maps = requests
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("of a long news article"))
        .count();
    assert!(
        maps >= 2,
        "the article went through map-reduce in smaller pieces ({maps} map calls)"
    );
    assert!(requests.iter().rev().take(1).all(|r| r.body.len() <= 5000));
}

/// Cuts the reply off ("length") unless the request allows at least `room` tokens.
struct NeedsRoom {
    room: u64,
}

impl Respond for NeedsRoom {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap();
        if body["max_tokens"].as_u64().unwrap_or(0) >= self.room {
            return ok();
        }
        let mut cut = completion(&brief_reply()[..40]);
        cut["choices"][0]["finish_reason"] = json!("length");
        ResponseTemplate::new(200).set_body_json(cut)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_cut_at_the_limit_is_retried_with_more_room_never_accepted() {
    let env = TestEnv::new().await;
    env.short_articles(1);
    chat()
        .respond_with(NeedsRoom { room: 4000 })
        .expect(3)
        .mount(&env.server)
        .await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let requests = env.calls().await;
    let budgets: Vec<u64> = requests
        .iter()
        .map(|r| {
            r.body_json::<Value>().unwrap()["max_tokens"]
                .as_u64()
                .unwrap()
        })
        .collect();
    // Sized for a short article first; cut there, the whole configured budget; cut there
    // too, twice that.
    assert_eq!(budgets.len(), 3, "{budgets:?}");
    assert!(budgets[0] < 2000, "{budgets:?}");
    assert_eq!(budgets[1..], [2000, 4000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_that_never_fits_is_reported_not_written() {
    let env = TestEnv::new()
        .await
        .with_config("[endpoint]\ncontext_window = 4000\n");
    env.short_articles(1);
    chat()
        .respond_with(NeedsRoom { room: 100_000 })
        .mount(&env.server)
        .await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(!env.out().join("a0.json").exists());
    let reason = env.report()["articles"][0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("cut off"), "{reason}");
}

#[cfg(unix)]
mod signals {
    use super::*;

    fn signal(pid: u32) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until the provider has received a call (a loaded machine can take seconds to get
    /// there), so the signal lands while that call is in flight.
    async fn first_call_in_flight(env: &TestEnv) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while env.calls().await.is_empty() {
            assert!(Instant::now() < deadline, "no call reached the provider");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    fn spawn(env: &TestEnv) -> std::process::Child {
        env.summarize_command()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigterm_finishes_calls_in_flight_writes_the_report_and_exits_130() {
        let env = TestEnv::new()
            .await
            .with_config("[limits]\nmax_in_flight = 1\n");
        env.short_articles(4);
        chat()
            .respond_with(ok().set_delay(Duration::from_millis(1500)))
            .mount(&env.server)
            .await;
        let child = spawn(&env);
        first_call_in_flight(&env).await;
        signal(child.id());
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(130), "{}", output_text(&out));
        let report = env.report();
        assert_eq!(report["exit_code"], 130);
        assert_eq!(report["stopped"], "interrupted by a signal");
        // The call in flight finished and its brief was written; nothing new was started.
        assert_eq!(report["totals"]["written"], 1, "{report}");
        assert_eq!(report["totals"]["not_done"], 3, "{report}");
        assert_eq!(env.calls().await.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_signal_exits_at_once() {
        let env = TestEnv::new()
            .await
            .with_config("[limits]\nmax_in_flight = 1\nshutdown_grace = \"60s\"\n");
        env.short_articles(2);
        chat()
            .respond_with(ok().set_delay(Duration::from_secs(20)))
            .mount(&env.server)
            .await;
        let child = spawn(&env);
        first_call_in_flight(&env).await;
        let started = Instant::now();
        signal(child.id());
        tokio::time::sleep(Duration::from_millis(300)).await;
        signal(child.id());
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(130), "{}", output_text(&out));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "did not exit at once"
        );
    }
}

/// Notes that always run past the limit; briefs that fit.
struct RamblingNotes;

impl Respond for RamblingNotes {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap();
        if body.to_string().contains("of a long news article") {
            let mut cut = completion(
                "- 반도체 수출이 142억 달러로 늘었다.\n- 한빛전자는 월 26만 장으로 늘린다.\n- 업계는 이어서",
            );
            cut["choices"][0]["finish_reason"] = json!("length");
            return ResponseTemplate::new(200).set_body_json(cut);
        }
        ok()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_cut_at_the_limit_are_kept_whole_lines_only_with_a_warning() {
    let env = TestEnv::new()
        .await
        .with_config("[chunking]\nchunk_tokens = 400\n");
    env.article("long.txt", &long_article(14));
    chat().respond_with(RamblingNotes).mount(&env.server).await;
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let brief = env.brief("long.txt");
    let chunks = brief["source"]["chunks"].as_u64().unwrap();
    let requests = env.calls().await;
    let bodies: Vec<Value> = requests.iter().map(|r| r.body_json().unwrap()).collect();
    let maps: Vec<&Value> = bodies
        .iter()
        .filter(|b| b.to_string().contains("of a long news article"))
        .collect();
    // Each chunk's notes were sized first, then asked with the whole budget (the safety net),
    // then once more with twice that, then taken as they were.
    assert_eq!(maps.len() as u64, 3 * chunks);
    assert!(maps.iter().any(|b| b["max_tokens"] == 1400));
    let reduce = bodies
        .iter()
        .find(|b| b.to_string().contains("notes taken, part by part"))
        .unwrap();
    let reduce = reduce["messages"][1]["content"].as_str().unwrap();
    assert!(reduce.contains("26만 장으로 늘린다."), "{reduce}");
    assert!(
        !reduce.contains("업계는 이어서"),
        "the cut line was passed on: {reduce}"
    );
    let warnings = brief["checks"]["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("cut off at the token limit")),
        "{warnings:?}"
    );
    let md = std::fs::read_to_string(env.out().join("long.md")).unwrap();
    assert!(
        md.contains("cut off at the token limit"),
        "the warning is visible to readers"
    );
}

/// A llama-cpp-python-like server: refuses `json_schema` with HTTP 500 and a validation error,
/// answers anything else; records the `response_format` of every request.
struct NoJsonSchema {
    formats: Arc<Mutex<Vec<String>>>,
}

impl Respond for NoJsonSchema {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap();
        let format = &body["response_format"];
        let name = match (format["type"].as_str(), format.get("schema").is_some()) {
            (Some(t), true) => format!("{t}+schema"),
            (Some(t), false) => t.to_string(),
            (None, _) => "none".into(),
        };
        self.formats.lock().unwrap().push(name.clone());
        if name == "json_schema" {
            return ResponseTemplate::new(500).set_body_json(json!({"error": {
                "message": "1 validation error:\n  {'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\"}\n\n  File \"app.py\", line 376",
                "type": "internal_server_error"
            }}));
        }
        ok()
    }
}

/// Summarizes `n` articles against [`NoJsonSchema`]; the output and the formats sent, in order.
async fn summarize_recording_formats(
    env: &TestEnv,
    n: usize,
) -> (std::process::Output, Vec<String>) {
    let formats = Arc::new(Mutex::new(Vec::new()));
    chat()
        .respond_with(NoJsonSchema {
            formats: formats.clone(),
        })
        .mount(&env.server)
        .await;
    env.short_articles(n);
    let out = env.summarize(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let sent = formats.lock().unwrap().clone();
    (out, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_output_mode_steps_down_once_for_the_whole_run() {
    let env = TestEnv::new().await;
    let (out, formats) = summarize_recording_formats(&env, 3).await;
    // One refused try, then every call (the first article's again, and the others') with the
    // schema as a grammar; the refusal is not retried as a server error.
    assert_eq!(
        formats,
        [
            "json_schema",
            "json_object+schema",
            "json_object+schema",
            "json_object+schema"
        ]
    );
    assert_eq!(env.report()["totals"]["retries"], 0);
    // The log says so on one line, without the server's traceback layout.
    let log = output_text(&out);
    let line = log
        .lines()
        .find(|l| l.contains("stepping down"))
        .expect("a step-down log line");
    assert!(line.contains("Input should be"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_output_mode_is_used_from_the_first_call() {
    let env = TestEnv::new()
        .await
        .with_config("[endpoint]\nstructured_output = \"json_object+schema\"\n");
    let (_, formats) = summarize_recording_formats(&env, 2).await;
    assert_eq!(formats, ["json_object+schema", "json_object+schema"]);
}

/// A slow server: the run says, at the default log level, why nothing has moved (here after
/// 1 s instead of a minute), in one well-formed line, and still writes the brief.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waiting_on_a_slow_server_says_why() {
    let env = TestEnv::new().await;
    env.short_articles(1);
    chat()
        .respond_with(ok().set_delay(Duration::from_millis(2500)))
        .expect(1)
        .mount(&env.server)
        .await;
    let out = env
        .summarize_with_env(
            &[],
            &[
                (KEY_ENV, "sk-test-key-0123456789"),
                ("HANBRIEF_STALL_WARNING", "1s"),
            ],
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("nothing has moved for"))
        .unwrap_or_else(|| panic!("no line says why the run waits: {text}"));
    assert!(
        line.contains("1 request(s) sent and waiting for the endpoint's answer")
            && line.contains("endpoint.request_timeout cuts a hung one"),
        "{line}"
    );
    assert!(
        !line.contains("  "),
        "a run of spaces in the message: {line:?}"
    );
}
