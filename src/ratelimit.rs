//! One rate limiter for every call of a run: requests per minute and tokens per minute, with
//! governor's GCRA doing the arithmetic, and what governor does not do:
//!
//! - **Fair admission.** governor is not FIFO; waiting workers are admitted in arrival order
//!   through a fair `tokio` mutex, so only the head of the queue ever sleeps on the buckets and
//!   many workers never wake at once.
//! - **A shared pause.** A 429 with `Retry-After` (or a provider header saying the budget is
//!   spent) pauses *every* worker until then, plus a little jitter.
//! - **Headroom.** The buckets run at 97 % of the limits: a provider running its own bucket at
//!   exactly our rate would refuse every request that loopback or network jitter delivers a
//!   millisecond early.
//! - **Reservations larger than the burst** (tokens: ten seconds' worth) are paid in
//!   installments before the call goes, so a long prompt waits its turn instead of failing.
//! - **Adaptation.** The configured limits are a ceiling, not a belief. The provider's
//!   `x-ratelimit-limit-*` headers, or the limit its 429 message states ("… on tokens per min
//!   (TPM): Limit 30000 …"), lower them at once. A bare 429 cuts them to the throughput that
//!   actually succeeded over the last minute. After a cut, calm periods raise them again in small
//!   steps, but not above the rate that tripped the last 429 for a while, so a run whose config
//!   is too optimistic converges to the real limits instead of storming.
//! - **Distrust of headers.** A limit header that is zero, negative or not a number says nothing
//!   (gateways send `x-ratelimit-limit-requests: 0` when no limit is set; Azure sends `-1`), and
//!   no limit ever goes below [`MIN_LIMITS`]. A `remaining` budget short of one call's
//!   reservation pauses only for the shortfall at the provider's refill rate, not until its full
//!   reset.
//! - **Saying why.** [`Limiter::waiting`] tells what the head of the queue waits for, so that a
//!   run that has not moved for a while can say so.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use reqwest::header::HeaderMap;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::llm::retry::parse_reset;

/// Requests and tokens per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub requests_per_minute: u32,
    pub tokens_per_minute: u32,
}

/// The share of the limits the buckets actually use.
pub const HEADROOM: f64 = 0.97;

/// No limit goes below these, whatever a provider's headers or 429s say: a limit of 0 (or of a
/// few tokens a minute) would hold a run forever.
pub const MIN_LIMITS: Limits = Limits {
    requests_per_minute: 1,
    tokens_per_minute: 1000,
};

type Gcra<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The two GCRA buckets for one pair of limits, on any governor clock (a fake one in tests).
pub struct Buckets<C: Clock> {
    clock: C,
    limits: Limits,
    requests: Gcra<C>,
    tokens: Gcra<C>,
    token_burst: u32,
}

impl<C: Clock + Clone> Buckets<C> {
    /// Buckets for `limits` (less the headroom). Requests may burst by one second's worth (at
    /// least 1), so that calls flow evenly; tokens by ten seconds' worth.
    pub fn new(limits: Limits, clock: C) -> Buckets<C> {
        let rpm = ((limits.requests_per_minute.max(1) as f64 * HEADROOM) as u32).max(1);
        let tpm = ((limits.tokens_per_minute.max(1) as f64 * HEADROOM) as u32).max(1);
        let nz = |n: u32| NonZeroU32::new(n.max(1)).expect("at least 1");
        let token_burst = (tpm / 6).max(1);
        let requests = RateLimiter::direct_with_clock(
            Quota::per_minute(nz(rpm)).allow_burst(nz(rpm / 60)),
            clock.clone(),
        );
        let tokens = RateLimiter::direct_with_clock(
            Quota::per_minute(nz(tpm)).allow_burst(nz(token_burst)),
            clock.clone(),
        );
        Buckets {
            clock,
            limits,
            requests,
            tokens,
            token_burst,
        }
    }

    /// Buckets for `limits` that start empty, to replace buckets in use: a fresh bucket would
    /// release a whole burst at once into a provider that is already at its limit.
    pub fn drained(limits: Limits, clock: C) -> Buckets<C> {
        let b = Buckets::new(limits, clock);
        let burst = |n: u32| NonZeroU32::new(n.max(1)).expect("at least 1");
        let _ = b.tokens.check_n(burst(b.token_burst));
        let rpm = ((limits.requests_per_minute.max(1) as f64 * HEADROOM) as u32).max(1);
        let _ = b.requests.check_n(burst(rpm / 60));
        b
    }

    /// The limits these buckets were made for (before the headroom).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The most tokens one installment can take.
    pub fn token_burst(&self) -> u32 {
        self.token_burst
    }

    /// Takes `n` tokens (at most one burst), or says how long until they are there.
    pub fn try_tokens(&self, n: u32) -> Result<(), Duration> {
        let n = NonZeroU32::new(n.clamp(1, self.token_burst)).expect("at least 1");
        match self.tokens.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(self.clock.now())),
            // Unreachable after the clamp; waiting a second is a safe answer if it ever happens.
            Err(_) => Err(Duration::from_secs(1)),
        }
    }

    /// Takes one request, or says how long until one is there.
    pub fn try_request(&self) -> Result<(), Duration> {
        self.requests
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// Counters for progress and the report.
#[derive(Debug, Default, Clone, Copy)]
pub struct LimiterStats {
    /// 429s reported to the limiter.
    pub rate_limited: u64,
    /// Times the limits were lowered.
    pub cuts: u64,
    /// The limits in force now.
    pub current: Option<Limits>,
}

/// What a provider's 429 message says about its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatedLimit {
    RequestsPerMinute(u32),
    TokensPerMinute(u32),
}

/// Reads OpenAI's 429 wording: "… on tokens per min (TPM): Limit 30000, Used …".
pub fn stated_limit(message: &str) -> Option<StatedLimit> {
    static RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?i)on (requests|tokens) per min(?:ute)?\b.*?limit:? ?([\d,]+)")
            .expect("valid regex")
    });
    let c = RE.captures(message)?;
    let n: u32 = c[2].replace(',', "").parse().ok()?;
    match c[1].to_ascii_lowercase().as_str() {
        "requests" => Some(StatedLimit::RequestsPerMinute(n)),
        _ => Some(StatedLimit::TokensPerMinute(n)),
    }
}

/// The run's shared limiter.
pub struct Limiter {
    ceiling: Limits,
    state: Mutex<State>,
    queue: tokio::sync::Mutex<()>,
}

struct State {
    buckets: Arc<Buckets<DefaultClock>>,
    /// No request may start before this.
    pause_until: Option<Instant>,
    /// Why, for [`Limiter::waiting`].
    pause_reason: String,
    /// What the head of the queue waits for, and since when.
    head: Option<(Instant, Head)>,
    /// Successful calls in the last minute: (when, tokens reserved).
    successes: VecDeque<(Instant, u32)>,
    /// When the limits last changed after a 429 (down, or a step back up), and successes since.
    last_cut: Option<Instant>,
    /// When the limits were last lowered by a bare 429.
    last_cut_down: Option<Instant>,
    calm_successes: u32,
    /// The limits in force when the last 429 came: not to be exceeded again for a while.
    tripped: Option<(Instant, Limits)>,
    /// The provider's own limits, when it states them.
    provider: Option<Limits>,
    stats: LimiterStats,
    started: Instant,
}

/// What the head of the admission queue is waiting for.
#[derive(Debug, Clone, Copy)]
enum Head {
    Pause,
    Tokens { owed: u32 },
    Request,
}

/// Acquiring was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// How long a tripped rate stays a ceiling for the upward steps.
const TRIP_MEMORY: Duration = Duration::from_secs(120);
/// Calm needed before an upward step.
const CALM: Duration = Duration::from_secs(10);

impl Limiter {
    /// A limiter that never exceeds `ceiling`.
    pub fn new(ceiling: Limits) -> Limiter {
        Limiter {
            ceiling,
            state: Mutex::new(State {
                buckets: Arc::new(Buckets::new(ceiling, DefaultClock::default())),
                pause_until: None,
                pause_reason: String::new(),
                head: None,
                successes: VecDeque::new(),
                last_cut: None,
                last_cut_down: None,
                calm_successes: 0,
                tripped: None,
                provider: None,
                stats: LimiterStats::default(),
                started: Instant::now(),
            }),
            queue: tokio::sync::Mutex::new(()),
        }
    }

    /// The limits in force now.
    pub fn current(&self) -> Limits {
        self.lock().buckets.limits()
    }

    /// Counters for progress and the report.
    pub fn stats(&self) -> LimiterStats {
        let s = self.lock();
        LimiterStats {
            current: Some(s.buckets.limits()),
            ..s.stats
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until a call reserving `tokens` may be sent: no pause in force, the tokens paid
    /// (in installments if larger than a burst) and a request available. Callers are admitted
    /// in arrival order.
    pub async fn acquire(&self, tokens: u32, cancel: &CancellationToken) -> Result<(), Cancelled> {
        let _turn = tokio::select! {
            turn = self.queue.lock() => turn,
            _ = cancel.cancelled() => return Err(Cancelled),
        };
        let mut owed = tokens.max(1);
        let since = Instant::now();
        // Whatever happens (admitted, cancelled), the head of the queue is no longer waiting.
        let _clear = ClearHead(self);
        loop {
            let (pause, buckets) = {
                let state = self.lock();
                let now = Instant::now();
                (
                    state.pause_until.filter(|t| *t > now).map(|t| t - now),
                    state.buckets.clone(),
                )
            };
            if let Some(pause) = pause {
                self.set_head(since, Head::Pause);
                sleep_or_cancel(pause, cancel).await?;
                continue;
            }
            if owed > 0 {
                let installment = owed.min(buckets.token_burst());
                match buckets.try_tokens(installment) {
                    Ok(()) => owed -= installment,
                    Err(wait) => {
                        self.set_head(since, Head::Tokens { owed });
                        sleep_or_cancel(wait, cancel).await?
                    }
                }
                continue;
            }
            match buckets.try_request() {
                Ok(()) => return Ok(()),
                Err(wait) => {
                    self.set_head(since, Head::Request);
                    sleep_or_cancel(wait, cancel).await?
                }
            }
        }
    }

    fn set_head(&self, since: Instant, head: Head) {
        self.lock().head = Some((since, head));
    }

    /// What the head of the queue has been waiting for, and for how long, if a call waits.
    pub fn waiting(&self) -> Option<String> {
        let state = self.lock();
        let (since, head) = state.head?;
        let now = Instant::now();
        let waited = (now - since).as_secs();
        let limits = state.buckets.limits();
        let what = match head {
            Head::Pause => {
                let left = state
                    .pause_until
                    .filter(|t| *t > now)
                    .map_or(0, |t| (t - now).as_secs());
                format!(
                    "every call is paused for {left} s more: {}",
                    if state.pause_reason.is_empty() {
                        "the provider asked to slow down"
                    } else {
                        &state.pause_reason
                    }
                )
            }
            Head::Tokens { owed } => format!(
                "a call waits for {owed} tokens under the limit of {} tokens/min",
                limits.tokens_per_minute
            ),
            Head::Request => format!(
                "a call waits for its turn under the limit of {} requests/min",
                limits.requests_per_minute
            ),
        };
        Some(format!("the rate limiter: {what} (waiting {waited} s)"))
    }

    /// A call succeeded: learn from the provider's headers, and after a cut, raise the limits
    /// again step by step while things stay calm.
    pub fn on_success(&self, headers: &HeaderMap, reserved_tokens: u32) {
        let mut state = self.lock();
        let now = Instant::now();
        state.successes.push_back((now, reserved_tokens));
        while state
            .successes
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(60))
        {
            state.successes.pop_front();
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        // Negative and non-numeric values fail to parse as u64: ignored like absent headers.
        let num = |name: &str| header(name).and_then(|v| v.trim().parse::<u64>().ok());
        // A limit of 0 is "no limit set" (gateways), never "send nothing".
        let limit_r = num("x-ratelimit-limit-requests").filter(|v| *v > 0);
        let limit_t = num("x-ratelimit-limit-tokens").filter(|v| *v > 0);
        // A remaining count beside a limit header of 0 is as meaningless as the limit.
        let zero_limit = |name: &str| num(name) == Some(0);
        let remaining_r = num("x-ratelimit-remaining-requests")
            .filter(|_| !zero_limit("x-ratelimit-limit-requests"));
        let remaining_t =
            num("x-ratelimit-remaining-tokens").filter(|_| !zero_limit("x-ratelimit-limit-tokens"));

        // The provider's stated limits cap ours at once.
        if limit_r.is_some() || limit_t.is_some() {
            let clamp = |v: u64| v.min(u32::MAX as u64) as u32;
            let provider = Limits {
                requests_per_minute: limit_r.map_or(self.ceiling.requests_per_minute, clamp),
                tokens_per_minute: limit_t.map_or(self.ceiling.tokens_per_minute, clamp),
            };
            if state.provider != Some(provider) {
                tracing::debug!(
                    rpm = provider.requests_per_minute,
                    tpm = provider.tokens_per_minute,
                    "the provider's headers state its limits"
                );
            }
            state.provider = Some(provider);
            let current = state.buckets.limits();
            let capped = min_limits(current, provider);
            if capped != current {
                set_limits(&mut state, capped, self.ceiling);
            }
        }

        // A spent budget: pause everyone before the provider has to say no, but only for as long
        // as the buckets take to refill what is missing (they refill continuously; the reset
        // header says when they are *full* again, which can be a minute away).
        let rates = state.buckets.limits();
        let mut pause: Option<(Duration, String)> = None;
        if remaining_r == Some(0) {
            let per_request = Duration::from_secs_f64(
                60.0 / limit_r.unwrap_or(rates.requests_per_minute as u64).max(1) as f64,
            );
            let wait = header("x-ratelimit-reset-requests")
                .and_then(parse_reset)
                .map_or(per_request, |reset| reset.min(per_request));
            pause = Some((
                wait,
                "the provider's headers say no request is left until its budget refills".into(),
            ));
        }
        if let Some(remaining) = remaining_t
            && remaining < reserved_tokens as u64
        {
            let short = reserved_tokens as u64 - remaining;
            let per_minute = limit_t.unwrap_or(rates.tokens_per_minute as u64).max(1);
            let refill = Duration::from_secs_f64(short as f64 * 60.0 / per_minute as f64);
            let wait = header("x-ratelimit-reset-tokens")
                .and_then(parse_reset)
                .map_or(refill, |reset| reset.min(refill));
            if pause.as_ref().is_none_or(|(p, _)| wait > *p) {
                pause = Some((
                    wait,
                    format!(
                        "the provider's headers say {remaining} tokens are left, {short} short of one call"
                    ),
                ));
            }
        }
        if let Some((p, why)) = pause {
            extend_pause(&mut state, now + p.min(Duration::from_secs(120)), why);
        }

        // Upward steps after a cut: 5 % at a time, never past the ceiling, the provider's stated
        // limits, or (for a while) the rate that last tripped a 429.
        if let Some(cut) = state.last_cut {
            state.calm_successes += 1;
            if now - cut >= CALM && state.calm_successes >= 5 {
                let mut ceiling = state
                    .provider
                    .map_or(self.ceiling, |p| min_limits(p, self.ceiling));
                if let Some((when, at)) = state.tripped
                    && now - when < TRIP_MEMORY
                {
                    ceiling = min_limits(ceiling, scale(at, HEADROOM));
                }
                let current = state.buckets.limits();
                let step =
                    |c: u32, max: u32| ((c as f64 * 1.05).ceil() as u32).max(c + 1).min(max).max(c);
                let raised = Limits {
                    requests_per_minute: step(
                        current.requests_per_minute,
                        ceiling.requests_per_minute,
                    ),
                    tokens_per_minute: step(current.tokens_per_minute, ceiling.tokens_per_minute),
                };
                if raised != current {
                    set_limits(&mut state, raised, self.ceiling);
                }
                state.last_cut = Some(now);
                state.calm_successes = 0;
            }
        }
    }

    /// The provider said 429 to a request sent at `sent`: pause every worker until `after` (or
    /// a short default). Then lower the limits: to the limit the provider stated, or else to
    /// what actually succeeded over the last minute (never below half of the current limits at
    /// once). A 429 for a request sent before the last cut says nothing about the new limits.
    pub fn on_rate_limited(
        &self,
        after: Option<Duration>,
        stated: Option<StatedLimit>,
        sent: Instant,
    ) {
        let mut state = self.lock();
        state.stats.rate_limited += 1;
        let now = Instant::now();
        let wait = after
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(300));
        // A little jitter past the deadline: workers released together would trip it again.
        let jitter =
            wait.mul_f64(0.05 * fastrand::f64()) + Duration::from_millis(fastrand::u64(5..40));
        let why = match after {
            Some(a) => format!("the provider answered 429 and said to come back in {a:?}"),
            None => "the provider answered 429 (no Retry-After)".to_string(),
        };
        if wait >= Duration::from_secs(10) {
            tracing::info!("rate limited: {why}; every call pauses");
        }
        extend_pause(&mut state, now + wait + jitter, why);

        let current = state.buckets.limits();
        // A stated limit of 0 is a gateway's "unset", not a limit.
        let stated = stated.filter(|s| match s {
            StatedLimit::RequestsPerMinute(n) | StatedLimit::TokensPerMinute(n) => *n > 0,
        });
        if let Some(stated) = stated {
            let mut provider = state.provider.unwrap_or(self.ceiling);
            match stated {
                StatedLimit::RequestsPerMinute(n) => provider.requests_per_minute = n.max(1),
                StatedLimit::TokensPerMinute(n) => provider.tokens_per_minute = n.max(1),
            }
            state.provider = Some(provider);
            let capped = min_limits(current, provider);
            if capped != current {
                set_limits(&mut state, capped, self.ceiling);
                state.stats.cuts += 1;
            }
            return;
        }
        if state.last_cut_down.is_some_and(|t| sent <= t) {
            return;
        }
        state.last_cut_down = Some(now);
        let span = (now - state.started).as_secs_f64().clamp(1.0, 60.0);
        let (count, tokens) = state
            .successes
            .iter()
            .fold((0u64, 0u64), |(c, t), (_, n)| (c + 1, t + *n as u64));
        let measured = Limits {
            requests_per_minute: (count as f64 * 60.0 / span) as u32,
            tokens_per_minute: (tokens as f64 * 60.0 / span) as u32,
        };
        let cut = |cur: u32, seen: u32| {
            ((seen as f64 * 0.95) as u32)
                .clamp((cur / 2).max(1), ((cur as f64 * 0.9) as u32).max(1))
        };
        let lowered = Limits {
            requests_per_minute: cut(current.requests_per_minute, measured.requests_per_minute),
            tokens_per_minute: cut(current.tokens_per_minute, measured.tokens_per_minute),
        };
        if lowered != current {
            set_limits(&mut state, lowered, self.ceiling);
            state.stats.cuts += 1;
        }
        // Remember about what the provider accepted: the upward steps stop just under it.
        state.tripped = Some((now, scale(lowered, 1.0 / 0.95)));
        state.last_cut = Some(now);

        state.calm_successes = 0;
    }

    /// When the current pause ends, if one is in force.
    pub fn paused_until(&self) -> Option<Instant> {
        self.lock().pause_until.filter(|t| *t > Instant::now())
    }
}

/// Puts `limits` in force (never below [`MIN_LIMITS`], unless the configured `ceiling` itself is
/// lower), with buckets that start empty.
fn set_limits(state: &mut State, limits: Limits, ceiling: Limits) {
    let floor = min_limits(MIN_LIMITS, ceiling);
    let limits = Limits {
        requests_per_minute: limits.requests_per_minute.max(floor.requests_per_minute),
        tokens_per_minute: limits.tokens_per_minute.max(floor.tokens_per_minute),
    };
    if limits == state.buckets.limits() {
        return;
    }
    tracing::info!(
        "rate limits now {} requests/min, {} tokens/min",
        limits.requests_per_minute,
        limits.tokens_per_minute
    );
    state.buckets = Arc::new(Buckets::drained(limits, DefaultClock::default()));
}

fn extend_pause(state: &mut State, until: Instant, why: String) {
    if state.pause_until.is_none_or(|p| p < until) {
        state.pause_until = Some(until);
        state.pause_reason = why;
    }
}

/// Clears the head-of-queue wait when an `acquire` ends, however it ends.
struct ClearHead<'a>(&'a Limiter);

impl Drop for ClearHead<'_> {
    fn drop(&mut self) {
        self.0.lock().head = None;
    }
}

fn min_limits(a: Limits, b: Limits) -> Limits {
    Limits {
        requests_per_minute: a.requests_per_minute.min(b.requests_per_minute),
        tokens_per_minute: a.tokens_per_minute.min(b.tokens_per_minute),
    }
}

fn scale(l: Limits, f: f64) -> Limits {
    Limits {
        requests_per_minute: ((l.requests_per_minute as f64 * f) as u32).max(1),
        tokens_per_minute: ((l.tokens_per_minute as f64 * f) as u32).max(1),
    }
}

async fn sleep_or_cancel(wait: Duration, cancel: &CancellationToken) -> Result<(), Cancelled> {
    tokio::select! {
        _ = tokio::time::sleep(wait) => Ok(()),
        _ = cancel.cancelled() => Err(Cancelled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use reqwest::header::HeaderValue;

    fn limits(rpm: u32, tpm: u32) -> Limits {
        Limits {
            requests_per_minute: rpm,
            tokens_per_minute: tpm,
        }
    }

    #[test]
    fn requests_flow_evenly_just_under_the_limit() {
        let clock = FakeRelativeClock::default();
        // 124 rpm less 3 % headroom is 120 rpm: a burst of 2, then one every 0.5 s.
        let b = Buckets::new(limits(124, 1_000_000), clock.clone());
        assert!(b.try_request().is_ok());
        assert!(b.try_request().is_ok());
        let wait = b.try_request().unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        clock.advance(wait);
        assert!(b.try_request().is_ok());
        assert!(b.try_request().is_err());
    }

    #[test]
    fn tokens_burst_ten_seconds_and_installments_are_clamped() {
        let clock = FakeRelativeClock::default();
        // 6186 tpm less headroom is 6000 tpm: 100 tokens/s, a burst of 1000.
        let b = Buckets::new(limits(1000, 6186), clock.clone());
        assert_eq!(b.token_burst(), 1000);
        assert!(b.try_tokens(600).is_ok());
        let wait = b.try_tokens(600).unwrap_err();
        assert_eq!(wait, Duration::from_secs(2));
        clock.advance(Duration::from_secs(10));
        // Larger than the burst: one installment of a full burst passes.
        assert!(b.try_tokens(9000).is_ok());
        assert!(b.try_tokens(1).is_err());
    }

    #[test]
    fn replacement_buckets_start_empty() {
        let clock = FakeRelativeClock::default();
        let b = Buckets::drained(limits(6186, 6186), clock.clone());
        assert!(b.try_request().is_err());
        assert!(b.try_tokens(1).is_err());
        clock.advance(Duration::from_secs(1));
        assert!(b.try_request().is_ok());
        assert!(b.try_tokens(100).is_ok());
    }

    #[test]
    fn stated_limits_are_read_from_openai_messages() {
        let m = "Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29000, Requested 1500.";
        assert_eq!(stated_limit(m), Some(StatedLimit::TokensPerMinute(30000)));
        let m = "Rate limit reached for gpt-4o on requests per min (RPM): Limit 3, Used 3, Requested 1.";
        assert_eq!(stated_limit(m), Some(StatedLimit::RequestsPerMinute(3)));
        assert_eq!(stated_limit("Too many requests"), None);
    }

    #[tokio::test]
    async fn a_rate_limit_pauses_everyone_for_retry_after() {
        let l = Limiter::new(limits(6000, 10_000_000));
        let cancel = CancellationToken::new();
        l.acquire(10, &cancel).await.unwrap();
        l.on_rate_limited(Some(Duration::from_millis(300)), None, Instant::now());
        let until = l.paused_until().expect("paused");
        assert!(until > Instant::now() + Duration::from_millis(250));
        let start = Instant::now();
        l.acquire(10, &cancel).await.unwrap();
        assert!(
            start.elapsed() >= Duration::from_millis(280),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(l.stats().rate_limited, 1);
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[tokio::test]
    async fn limits_of_zero_negative_or_words_are_ignored() {
        let l = Limiter::new(limits(600, 100_000));
        for pairs in [
            &[
                ("x-ratelimit-limit-requests", "0"),
                ("x-ratelimit-limit-tokens", "0"),
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-remaining-tokens", "0"),
                ("x-ratelimit-reset-requests", "1m"),
                ("x-ratelimit-reset-tokens", "1m"),
            ][..],
            &[
                ("x-ratelimit-limit-tokens", "-1"),
                ("x-ratelimit-remaining-tokens", "-1"),
                ("x-ratelimit-reset-tokens", "0"),
            ],
            &[
                ("x-ratelimit-limit-requests", "unlimited"),
                ("x-ratelimit-remaining-requests", "n/a"),
            ],
        ] {
            l.on_success(&headers(pairs), 2000);
            assert_eq!(l.current(), limits(600, 100_000), "{pairs:?}");
            assert!(l.paused_until().is_none(), "{pairs:?}");
        }
        // A 429 stating a limit of 0 is a bare 429 (a cut by half at most), not a limit of 0.
        l.on_rate_limited(
            Some(Duration::ZERO),
            Some(StatedLimit::RequestsPerMinute(0)),
            Instant::now(),
        );
        assert_eq!(l.current().requests_per_minute, 300);
    }

    #[tokio::test]
    async fn no_limit_goes_below_the_floor() {
        let l = Limiter::new(limits(6, 5_000));
        // Bare 429s, each for a request sent after the last cut: halving every time.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(2)).await;
            l.on_rate_limited(Some(Duration::ZERO), None, Instant::now());
        }
        assert_eq!(l.current(), MIN_LIMITS);
        // Unless the configured limits are lower still.
        let low = Limiter::new(limits(1, 500));
        low.on_rate_limited(Some(Duration::ZERO), None, Instant::now());
        assert_eq!(low.current(), limits(1, 500));
    }

    #[tokio::test]
    async fn a_short_token_budget_pauses_for_the_shortfall_not_the_full_reset() {
        let l = Limiter::new(limits(10_000, 1_000_000));
        // 2,500 tokens short at 600,000 tokens/min: a quarter of a second, not the 46 s until
        // the budget is full again.
        l.on_success(
            &headers(&[
                ("x-ratelimit-limit-tokens", "600000"),
                ("x-ratelimit-remaining-tokens", "100"),
                ("x-ratelimit-reset-tokens", "46s"),
            ]),
            2600,
        );
        let pause = l.paused_until().expect("paused") - Instant::now();
        assert!(pause <= Duration::from_millis(300), "{pause:?}");
        assert!(pause >= Duration::from_millis(200), "{pause:?}");
        // A reset sooner than the refill wins.
        l.on_success(
            &headers(&[
                ("x-ratelimit-limit-requests", "60"),
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", "100ms"),
            ]),
            10,
        );
        let pause = l.paused_until().expect("paused") - Instant::now();
        assert!(pause <= Duration::from_millis(300), "{pause:?}");
    }

    #[tokio::test]
    async fn the_head_of_the_queue_says_what_it_waits_for() {
        let l = std::sync::Arc::new(Limiter::new(limits(6000, 10_000_000)));
        assert_eq!(l.waiting(), None);
        l.on_rate_limited(Some(Duration::from_secs(30)), None, Instant::now());
        let cancel = CancellationToken::new();
        let waiter = {
            let (l, cancel) = (l.clone(), cancel.clone());
            tokio::spawn(async move { l.acquire(10, &cancel).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let why = l.waiting().expect("a call waits");
        assert!(why.contains("every call is paused for"), "{why}");
        assert!(why.contains("come back in 30s"), "{why}");
        cancel.cancel();
        assert_eq!(waiter.await.unwrap(), Err(Cancelled));
        assert_eq!(l.waiting(), None, "a cancelled wait leaves no trace");
    }

    #[tokio::test]
    async fn provider_headers_and_messages_cap_the_limits() {
        let l = Limiter::new(limits(1000, 1_000_000));
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-limit-requests", HeaderValue::from_static("60"));
        h.insert(
            "x-ratelimit-limit-tokens",
            HeaderValue::from_static("50000"),
        );
        l.on_success(&h, 100);
        assert_eq!(l.current(), limits(60, 50_000));
        let mut h = HeaderMap::new();
        h.insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from_static("0"),
        );
        h.insert("x-ratelimit-reset-requests", HeaderValue::from_static("2s"));
        l.on_success(&h, 100);
        assert!(l.paused_until().is_some());
        l.on_rate_limited(
            Some(Duration::ZERO),
            Some(StatedLimit::TokensPerMinute(20_000)),
            Instant::now(),
        );
        assert_eq!(l.current(), limits(60, 20_000));
    }

    #[tokio::test]
    async fn a_bare_rate_limit_cuts_to_what_succeeded_but_at_most_by_half() {
        let l = Limiter::new(limits(6000, 10_000_000));
        let burst = Instant::now();
        l.on_rate_limited(Some(Duration::ZERO), None, burst);
        // Nothing succeeded yet: the cut is the largest allowed, to half.
        assert_eq!(l.current(), limits(3000, 5_000_000));
        // Another 429 for a request of the same burst (sent before the cut) does not cut again.
        l.on_rate_limited(Some(Duration::ZERO), None, burst);
        assert_eq!(l.current(), limits(3000, 5_000_000));
        assert_eq!(l.stats().cuts, 1);
        // A 429 for a request sent after the cut does.
        tokio::time::sleep(Duration::from_millis(5)).await;
        l.on_rate_limited(Some(Duration::ZERO), None, Instant::now());
        assert_eq!(l.current(), limits(1500, 2_500_000));
    }

    #[tokio::test]
    async fn acquire_can_be_cancelled() {
        let l = Limiter::new(limits(60, 1000));
        let cancel = CancellationToken::new();
        l.on_rate_limited(Some(Duration::from_secs(60)), None, Instant::now());

        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            c2.cancel();
        });
        assert_eq!(l.acquire(1, &cancel).await, Err(Cancelled));
    }
}
