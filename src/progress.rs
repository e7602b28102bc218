//! Progress of a run, for people and for machines.
//!
//! The pipeline counts articles into a [`Progress`] and hands it the client's call counters and
//! the limiter. A display task reads them: on a terminal, a live bar (articles done/total, calls
//! in flight, tokens per minute against the limit, retries and 429s, elapsed and ETA); otherwise
//! a log line when something moved, and at least once a minute (plain text, or JSON with
//! `--log-format json`). Log lines
//! printed while a bar is on screen go above it ([`LogWriter`]).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::llm::ClientStats;
use crate::ratelimit::Limiter;
use crate::report::Status;

/// Live counts of a run.
#[derive(Default)]
pub struct Progress {
    total: AtomicUsize,
    done: AtomicUsize,
    written: AtomicUsize,
    unchanged: AtomicUsize,
    skipped: AtomicUsize,
    failed: AtomicUsize,
    client: OnceLock<(Arc<ClientStats>, Arc<Limiter>)>,
    /// Batch mode: what the batches in flight are doing (shown instead of the call counters).
    batch: Mutex<Option<String>>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("total", &self.total)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Progress {
    /// The number of articles found.
    pub fn set_total(&self, n: usize) {
        self.total.store(n, Ordering::Relaxed);
    }

    /// The client whose calls to show.
    pub fn watch(&self, stats: Arc<ClientStats>, limiter: Arc<Limiter>) {
        let _ = self.client.set((stats, limiter));
    }

    /// Batch mode: what the batches in flight are doing, or `None` when nothing waits.
    pub fn set_batch(&self, status: Option<String>) {
        *self.batch.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    fn batch_status(&self) -> Option<String> {
        self.batch.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// One article is finished.
    pub fn finished(&self, status: Status) {
        self.done.fetch_add(1, Ordering::Relaxed);
        let counter = match status {
            Status::Written => &self.written,
            Status::Unchanged => &self.unchanged,
            Status::Skipped => &self.skipped,
            Status::Failed => &self.failed,
            Status::NotDone | Status::Planned | Status::Waiting => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A live bar on the terminal.
    Bar,
    /// A log line when something moved, looked at every `every` (and at least once a minute).
    Lines {
        every: Duration,
    },
    Off,
}

/// The bar on screen, if any: log lines are printed above it.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// A `tracing` writer that prints above the progress bar when one is on screen.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = BAR.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter
    }
}

/// A running display; [`Display::finish`] clears the bar.
pub struct Display {
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Display {
    /// Starts showing `progress` in `mode`.
    pub fn start(progress: Arc<Progress>, mode: Mode) -> Display {
        let stop = CancellationToken::new();
        let task = match mode {
            Mode::Off => None,
            Mode::Bar => Some(tokio::spawn(bar(progress, stop.clone()))),
            Mode::Lines { every } => Some(tokio::spawn(lines(progress, every, stop.clone()))),
        };
        Display { stop, task }
    }

    /// Stops the display (the bar disappears; the summary follows).
    pub async fn finish(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// What a display shows at one moment.
#[derive(Clone, PartialEq)]
struct Snapshot {
    total: usize,
    done: usize,
    written: usize,
    unchanged: usize,
    skipped: usize,
    failed: usize,
    in_flight: u64,
    retries: u64,
    rate_limited: u64,
    tokens: u64,
    tpm_limit: u32,
}

fn snapshot(p: &Progress) -> Snapshot {
    let g = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    let (stats, tpm_limit) = match p.client.get() {
        Some((stats, limiter)) => (stats.snapshot(), limiter.current().tokens_per_minute),
        None => (Default::default(), 0),
    };
    Snapshot {
        total: g(&p.total),
        done: g(&p.done),
        written: g(&p.written),
        unchanged: g(&p.unchanged),
        skipped: g(&p.skipped),
        failed: g(&p.failed),
        in_flight: stats.in_flight,
        retries: stats.retries,
        rate_limited: stats.rate_limited,
        tokens: stats.prompt_tokens + stats.completion_tokens,
        tpm_limit,
    }
}

/// Tokens per minute over the last minute, from samples of the running total.
struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    fn new() -> Rate {
        Rate {
            samples: VecDeque::new(),
        }
    }

    fn per_minute(&mut self, now: Instant, total: u64) -> u64 {
        self.samples.push_back((now, total));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.samples.pop_front();
        }
        let (t0, v0) = *self.samples.front().expect("just pushed");
        let span = now.duration_since(t0).as_secs_f64();
        if span < 1.0 {
            return 0;
        }
        ((total - v0) as f64 * 60.0 / span) as u64
    }
}

fn eta(started: Instant, done: usize, total: usize) -> Option<Duration> {
    if done == 0 || done >= total {
        return None;
    }
    let per = started.elapsed().as_secs_f64() / done as f64;
    Some(Duration::from_secs_f64(per * (total - done) as f64))
}

fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

async fn bar(progress: Arc<Progress>, stop: CancellationToken) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(8));
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:28.cyan/blue}] {pos}/{len} articles · {msg}",
        )
        .expect("a valid template")
        .progress_chars("█▉▊▋▌▍▎▏ "),
    );
    *BAR.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar.clone());
    let mut rate = Rate::new();
    let started = Instant::now();
    loop {
        let s = snapshot(&progress);
        bar.set_length(s.total as u64);
        bar.set_position(s.done as u64);
        let tpm = rate.per_minute(Instant::now(), s.tokens);
        let mut msg = format!(
            "{} in flight · {} tok/min of {} · {} · {} rate-limited",
            s.in_flight,
            crate::render::group(tpm as usize),
            crate::render::group(s.tpm_limit as usize),
            crate::console::count(s.retries, "retry", "retries"),
            s.rate_limited
        );
        if let Some(batch) = progress.batch_status() {
            msg = batch;
        }
        if s.failed > 0 {
            msg.push_str(&format!(" · {} failed", s.failed));
        }
        if let Some(eta) = eta(started, s.done, s.total) {
            msg.push_str(&format!(" · ETA {}", human(eta)));
        }
        bar.set_message(msg);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.cancelled() => break,
        }
    }
    *BAR.lock().unwrap_or_else(|p| p.into_inner()) = None;
    bar.finish_and_clear();
}

/// Without news, a progress line at most this often: a log read later should not be a wall of
/// identical lines (the quickstart's five articles made 24 of them), and a run that waits on
/// its endpoint says why on its own ([`crate::llm`]'s stall warning).
const HEARTBEAT: Duration = Duration::from_secs(60);

/// Whether the state `now` is worth a log line: something moved since the `last` line (an
/// article finished, a call started or was refused; not the token count, which moves with
/// every reply), or the heartbeat is due.
fn worth_a_line(
    last: Option<&(Snapshot, String)>,
    now: &(Snapshot, String),
    since: Duration,
) -> bool {
    let moved = |(a, batch_a): &(Snapshot, String), (b, batch_b): &(Snapshot, String)| {
        Snapshot {
            tokens: 0,
            tpm_limit: 0,
            ..a.clone()
        } != Snapshot {
            tokens: 0,
            tpm_limit: 0,
            ..b.clone()
        } || batch_a != batch_b
    };
    match last {
        None => true,
        Some(last) => moved(last, now) || since >= HEARTBEAT,
    }
}

async fn lines(progress: Arc<Progress>, every: Duration, stop: CancellationToken) {
    let mut rate = Rate::new();
    let started = Instant::now();
    let mut last: Option<((Snapshot, String), Instant)> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        let s = snapshot(&progress);
        let tpm = rate.per_minute(Instant::now(), s.tokens);
        let state = (s.clone(), progress.batch_status().unwrap_or_default());
        let since = last.as_ref().map_or(Duration::MAX, |(_, at)| at.elapsed());
        if !worth_a_line(last.as_ref().map(|(state, _)| state), &state, since) {
            continue;
        }
        last = Some((state, Instant::now()));
        tracing::info!(
            target: "hanbrief::progress",
            done = s.done,
            total = s.total,
            written = s.written,
            unchanged = s.unchanged,
            skipped = s.skipped,
            failed = s.failed,
            in_flight = s.in_flight,
            tokens_per_min = tpm,
            tokens_per_min_limit = s.tpm_limit,
            retries = s.retries,
            rate_limited = s.rate_limited,
            elapsed = %human(started.elapsed()),
            eta = %eta(started, s.done, s.total).map(human).unwrap_or_else(|| "-".into()),
            batch = progress.batch_status().unwrap_or_default(),
            "progress"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_only_when_something_moved_or_a_minute_passed() {
        let state = |done: usize, tokens: u64, batch: &str| {
            let s = Snapshot {
                total: 5,
                done,
                written: done,
                unchanged: 0,
                skipped: 0,
                failed: 0,
                in_flight: 1,
                retries: 0,
                rate_limited: 0,
                tokens,
                tpm_limit: 1000,
            };
            (s, batch.to_string())
        };
        let s = Duration::from_secs;
        assert!(worth_a_line(None, &state(0, 0, ""), s(0)), "the first");
        let last = state(1, 100, "");
        assert!(!worth_a_line(Some(&last), &state(1, 100, ""), s(5)), "same");
        assert!(
            !worth_a_line(Some(&last), &state(1, 900, ""), s(5)),
            "tokens alone move with every reply"
        );
        assert!(
            worth_a_line(Some(&last), &state(2, 900, ""), s(5)),
            "one more done"
        );
        assert!(worth_a_line(
            Some(&last),
            &state(1, 100, "in progress"),
            s(5)
        ));
        assert!(
            worth_a_line(Some(&last), &state(1, 100, ""), s(60)),
            "heartbeat"
        );
    }

    #[test]
    fn rates_and_etas() {
        let mut r = Rate::new();
        let t0 = Instant::now();
        assert_eq!(r.per_minute(t0, 0), 0);
        assert_eq!(r.per_minute(t0 + Duration::from_secs(30), 1000), 2000);
        let started = Instant::now() - Duration::from_secs(10);
        let e = eta(started, 1, 3).unwrap();
        assert!(
            e >= Duration::from_secs(19) && e <= Duration::from_secs(21),
            "{e:?}"
        );
        assert_eq!(eta(started, 0, 3), None);
        assert_eq!(eta(started, 3, 3), None);
    }

    #[test]
    fn counts() {
        let p = Progress::default();
        p.set_total(3);
        p.finished(Status::Written);
        p.finished(Status::Failed);
        let s = snapshot(&p);
        assert_eq!((s.total, s.done, s.written, s.failed), (3, 2, 1, 1));
    }
}
