//! One rate limiter for every call of a run: requests per minute and tokens per minute, with
//! governor's GCRA doing the arithmetic, and three things governor does not do:
//!
//! - **Fair admission.** governor is not FIFO; waiting workers are served in arrival order
//!   through a fair `tokio` mutex, so only the head of the queue ever sleeps on the buckets and
//!   many workers never wake at once.
//! - **A shared pause.** A 429 with `Retry-After` (or a provider header saying the budget is
//!   spent) pauses *every* worker until then, plus a little jitter.
//! - **Adaptation.** The configured limits are a ceiling, not a belief. The provider's
//!   `x-ratelimit-limit-*` headers lower them at once; a 429 without headers cuts them to the
//!   throughput that was actually accepted over the last minute; calm periods raise them again
//!   step by step. So a run whose config is too optimistic converges to the real limits instead
//!   of storming.
//!
//! A call reserves its prompt tokens plus its `max_tokens` before it is sent (as OpenAI counts
//! it). A reservation larger than the bucket's burst is clamped to the burst: such a call waits
//! for a full bucket and then goes, rather than failing.

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
    /// Buckets for `limits`. Requests may burst by one second's worth (at least 1), so that
    /// calls flow evenly; tokens by a whole minute's worth, as providers allow, so that one
    /// large call is never starved.
    pub fn new(limits: Limits, clock: C) -> Buckets<C> {
        let rpm = limits.requests_per_minute.max(1);
        let tpm = limits.tokens_per_minute.max(1);
        let nz = |n: u32| NonZeroU32::new(n.max(1)).expect("at least 1");
        let requests = RateLimiter::direct_with_clock(
            Quota::per_minute(nz(rpm)).allow_burst(nz(rpm / 60)),
            clock.clone(),
        );
        let tokens = RateLimiter::direct_with_clock(
            Quota::per_minute(nz(tpm)).allow_burst(nz(tpm)),
            clock.clone(),
        );
        Buckets {
            clock,
            limits: Limits {
                requests_per_minute: rpm,
                tokens_per_minute: tpm,
            },
            requests,
            tokens,
            token_burst: tpm,
        }
    }

    /// The limits these buckets enforce.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Takes `n` tokens (clamped to the burst), or says how long until they are there.
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

/// Why the limiter let a worker wait, for the stats.
#[derive(Debug, Default, Clone, Copy)]
pub struct LimiterStats {
    /// 429s reported to the limiter.
    pub rate_limited: u64,
    /// Times the limits were lowered.
    pub cuts: u64,
    /// The limits in force now.
    pub current: Option<Limits>,
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
    /// Calls admitted in the last minute: (when, tokens reserved).
    window: VecDeque<(Instant, u32)>,
    /// When the limits were last lowered by a 429, and successes since.
    last_cut: Option<Instant>,
    calm_successes: u32,
    /// The provider's own limits, when its headers state them.
    provider: Option<Limits>,
    stats: LimiterStats,
    started: Instant,
}

/// Acquiring was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

impl Limiter {
    /// A limiter that never exceeds `ceiling`.
    pub fn new(ceiling: Limits) -> Limiter {
        Limiter {
            ceiling,
            state: Mutex::new(State {
                buckets: Arc::new(Buckets::new(ceiling, DefaultClock::default())),
                pause_until: None,
                window: VecDeque::new(),
                last_cut: None,
                calm_successes: 0,
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

    /// Waits until a call reserving `tokens` may be sent: no pause in force, a request and the
    /// tokens available. Callers are admitted in arrival order.
    pub async fn acquire(&self, tokens: u32, cancel: &CancellationToken) -> Result<(), Cancelled> {
        let _turn = tokio::select! {
            turn = self.queue.lock() => turn,
            _ = cancel.cancelled() => return Err(Cancelled),
        };
        let mut tokens_paid = false;
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
                sleep_or_cancel(pause, cancel).await?;
                continue;
            }
            // Tokens first, then the request; once paid, tokens are not taken again.
            if !tokens_paid {
                match buckets.try_tokens(tokens) {
                    Ok(()) => tokens_paid = true,
                    Err(wait) => {
                        sleep_or_cancel(wait, cancel).await?;
                        continue;
                    }
                }
            }
            match buckets.try_request() {
                Ok(()) => break,
                Err(wait) => sleep_or_cancel(wait, cancel).await?,
            }
        }
        let mut state = self.lock();
        let now = Instant::now();
        state.window.push_back((now, tokens));
        while state
            .window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(60))
        {
            state.window.pop_front();
        }
        Ok(())
    }

    /// A call succeeded: learn from the provider's headers, and raise the limits again after a
    /// calm period following a cut.
    pub fn on_success(&self, headers: &HeaderMap) {
        let mut state = self.lock();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let num = |name: &str| header(name).and_then(|v| v.trim().parse::<u64>().ok());

        // The provider's stated limits cap ours at once.
        let limit_r = num("x-ratelimit-limit-requests");
        let limit_t = num("x-ratelimit-limit-tokens");
        if limit_r.is_some() || limit_t.is_some() {
            let provider = Limits {
                requests_per_minute: limit_r.map_or(self.ceiling.requests_per_minute, |v| {
                    v.min(u32::MAX as u64) as u32
                }),
                tokens_per_minute: limit_t.map_or(self.ceiling.tokens_per_minute, |v| {
                    v.min(u32::MAX as u64) as u32
                }),
            };
            state.provider = Some(provider);
            let current = state.buckets.limits();
            let capped = min_limits(current, provider);
            if capped != current {
                state.buckets = Arc::new(Buckets::new(capped, DefaultClock::default()));
            }
        }

        // A spent budget: pause everyone until it resets, before the provider has to say no.
        let now = Instant::now();
        let mut pause = None;
        if num("x-ratelimit-remaining-requests") == Some(0)
            && let Some(reset) = header("x-ratelimit-reset-requests").and_then(parse_reset)
        {
            pause = Some(reset);
        }
        if let (Some(remaining), Some(reset)) = (
            num("x-ratelimit-remaining-tokens"),
            header("x-ratelimit-reset-tokens").and_then(parse_reset),
        ) {
            let typical = state.window.back().map_or(0, |(_, t)| *t as u64);
            if remaining < typical {
                pause = Some(pause.map_or(reset, |p: Duration| p.max(reset)));
            }
        }
        if let Some(p) = pause {
            extend_pause(&mut state, now + p.min(Duration::from_secs(120)));
        }

        // Additive increase after a cut: a tenth of the ceiling per calm stretch.
        if state.last_cut.is_some() {
            state.calm_successes += 1;
            let current = state.buckets.limits();
            let calm_for = state.last_cut.map_or(Duration::ZERO, |t| now - t);
            let ceiling = state
                .provider
                .map_or(self.ceiling, |p| min_limits(p, self.ceiling));
            if calm_for > Duration::from_secs(20)
                && state.calm_successes >= 10
                && current != ceiling
            {
                let step = |c: u32, max: u32| (c + (max / 10).max(1)).min(max);
                let raised = Limits {
                    requests_per_minute: step(
                        current.requests_per_minute,
                        ceiling.requests_per_minute,
                    ),
                    tokens_per_minute: step(current.tokens_per_minute, ceiling.tokens_per_minute),
                };
                state.buckets = Arc::new(Buckets::new(raised, DefaultClock::default()));
                state.last_cut = Some(now);
                state.calm_successes = 0;
            }
        }
    }

    /// The provider said 429: pause every worker until `after` (or a short default), and unless
    /// the provider told us its limits, cut ours to what it actually accepted over the last
    /// minute.
    pub fn on_rate_limited(&self, after: Option<Duration>) {
        let mut state = self.lock();
        state.stats.rate_limited += 1;
        let now = Instant::now();
        let wait = after
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(300));
        // A little jitter past the deadline: workers released together would trip it again.
        let jitter =
            wait.mul_f64(0.05 * fastrand::f64()) + Duration::from_millis(fastrand::u64(0..50));
        extend_pause(&mut state, now + wait + jitter);

        // Several 429s from one burst are one signal: cut at most once per second.
        if state
            .last_cut
            .is_some_and(|t| now - t < Duration::from_secs(1))
        {
            return;
        }
        let current = state.buckets.limits();
        let elapsed = (now - state.started).as_secs_f64().clamp(1.0, 60.0);
        let (count, tokens) = state
            .window
            .iter()
            .fold((0u64, 0u64), |(c, t), (_, n)| (c + 1, t + *n as u64));
        // What went through, per minute, with a little room below it.
        let accepted_r = (count as f64 * 60.0 / elapsed * 0.9) as u32;
        let accepted_t = (tokens as f64 * 60.0 / elapsed * 0.9) as u32;
        let cut = Limits {
            requests_per_minute: accepted_r
                .clamp(1, (current.requests_per_minute as f64 * 0.9) as u32)
                .max((current.requests_per_minute / 2).max(1)),
            tokens_per_minute: accepted_t
                .clamp(1, (current.tokens_per_minute as f64 * 0.9) as u32)
                .max((current.tokens_per_minute / 2).max(1)),
        };
        if cut != current {
            state.buckets = Arc::new(Buckets::new(cut, DefaultClock::default()));
            state.stats.cuts += 1;
        }
        state.last_cut = Some(now);
        state.calm_successes = 0;
    }

    /// When the current pause ends, if one is in force.
    pub fn paused_until(&self) -> Option<Instant> {
        self.lock().pause_until.filter(|t| *t > Instant::now())
    }
}

fn extend_pause(state: &mut State, until: Instant) {
    if state.pause_until.is_none_or(|p| p < until) {
        state.pause_until = Some(until);
    }
}

fn min_limits(a: Limits, b: Limits) -> Limits {
    Limits {
        requests_per_minute: a.requests_per_minute.min(b.requests_per_minute),
        tokens_per_minute: a.tokens_per_minute.min(b.tokens_per_minute),
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
    fn requests_flow_evenly_at_the_configured_rate() {
        let clock = FakeRelativeClock::default();
        let b = Buckets::new(limits(120, 1_000_000), clock.clone());
        // Burst of one second's worth (2), then one every 0.5 s.
        assert!(b.try_request().is_ok());
        assert!(b.try_request().is_ok());
        let wait = b.try_request().unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        clock.advance(wait);
        assert!(b.try_request().is_ok());
        assert!(b.try_request().is_err());
    }

    #[test]
    fn tokens_burst_a_minute_and_oversize_calls_are_clamped() {
        let clock = FakeRelativeClock::default();
        let b = Buckets::new(limits(1000, 6000), clock.clone());
        assert!(b.try_tokens(2500).is_ok());
        assert!(b.try_tokens(2500).is_ok());
        let wait = b.try_tokens(2500).unwrap_err();
        // 1000 tokens left, 1500 more needed at 100 tokens/s.
        assert_eq!(wait, Duration::from_secs(15));
        clock.advance(Duration::from_secs(60));
        // Larger than the whole bucket: clamped, so it passes on a full bucket.
        assert!(b.try_tokens(9000).is_ok());
        assert!(b.try_tokens(1).is_err());
    }

    #[tokio::test]
    async fn a_rate_limit_pauses_everyone_for_retry_after() {
        let l = Limiter::new(limits(6000, 10_000_000));
        let cancel = CancellationToken::new();
        l.acquire(10, &cancel).await.unwrap();
        l.on_rate_limited(Some(Duration::from_millis(300)));
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

    #[tokio::test]
    async fn provider_headers_cap_the_limits() {
        let l = Limiter::new(limits(1000, 1_000_000));
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-limit-requests", HeaderValue::from_static("60"));
        h.insert(
            "x-ratelimit-limit-tokens",
            HeaderValue::from_static("50000"),
        );
        l.on_success(&h);
        assert_eq!(l.current(), limits(60, 50_000));
        let mut h = HeaderMap::new();
        h.insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from_static("0"),
        );
        h.insert("x-ratelimit-reset-requests", HeaderValue::from_static("2s"));
        l.on_success(&h);
        assert!(l.paused_until().is_some());
    }

    #[tokio::test]
    async fn a_rate_limit_without_headers_cuts_the_limits() {
        let l = Limiter::new(limits(6000, 10_000_000));
        l.on_rate_limited(Some(Duration::ZERO));
        let cut = l.current();
        assert!(
            cut.requests_per_minute <= 5400 && cut.requests_per_minute >= 3000,
            "{cut:?}"
        );
        // A second 429 from the same burst does not cut again.
        l.on_rate_limited(Some(Duration::ZERO));
        assert_eq!(l.current(), cut);
        assert_eq!(l.stats().cuts, 1);
    }

    #[tokio::test]
    async fn acquire_can_be_cancelled() {
        let l = Limiter::new(limits(60, 1000));
        let cancel = CancellationToken::new();
        l.on_rate_limited(Some(Duration::from_secs(60)));
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            c2.cancel();
        });
        assert_eq!(l.acquire(1, &cancel).await, Err(Cancelled));
    }
}
