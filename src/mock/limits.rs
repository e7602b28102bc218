//! The simulated provider's rate limits: two continuously refilled token buckets (requests and
//! tokens) that may go into debt, and the OpenAI-style `x-ratelimit-*` and `retry-after` headers
//! they produce.

use tokio::time::Instant;

use super::MockConfig;

/// A continuously refilled bucket that may go into debt.
#[derive(Debug)]
pub(super) struct Bucket {
    pub(super) rate: f64,
    pub(super) capacity: f64,
    pub(super) level: f64,
    pub(super) last: Instant,
}

impl Bucket {
    pub(super) fn new(per_minute: f64, capacity: f64, now: Instant) -> Bucket {
        Bucket {
            rate: per_minute / 60.0,
            capacity,
            level: capacity,
            last: now,
        }
    }

    pub(super) fn refill(&mut self, now: Instant) {
        self.level = (self.level + (now - self.last).as_secs_f64() * self.rate).min(self.capacity);
        self.last = now;
    }

    /// Seconds until `n` fits (0 if it fits now).
    pub(super) fn wait_for(&self, n: f64) -> f64 {
        let need = n.min(self.capacity);
        ((need - self.level) / self.rate).max(0.0)
    }

    pub(super) fn reset_secs(&self) -> f64 {
        ((self.capacity - self.level) / self.rate).max(0.0)
    }
}

pub(super) struct Limits {
    pub(super) requests: Bucket,
    pub(super) tokens: Bucket,
    /// Until when the last 429's Retry-After runs, and when it was sent.
    pub(super) blocked: Option<(Instant, Instant)>,
    pub(super) rng: fastrand::Rng,
}

pub(super) fn limit_headers(
    config: &MockConfig,
    l: &Limits,
    retry: Option<f64>,
) -> Vec<(&'static str, String)> {
    let mut h = Vec::new();
    if config.rate_limit_headers {
        let remaining = |b: &Bucket, limit: u32| {
            ((b.level.max(0.0) / b.capacity) * limit as f64).floor() as u64
        };
        h.push((
            "x-ratelimit-limit-requests",
            config.requests_per_minute.to_string(),
        ));
        h.push((
            "x-ratelimit-limit-tokens",
            config.tokens_per_minute.to_string(),
        ));
        h.push((
            "x-ratelimit-remaining-requests",
            remaining(&l.requests, config.requests_per_minute).to_string(),
        ));
        h.push((
            "x-ratelimit-remaining-tokens",
            remaining(&l.tokens, config.tokens_per_minute).to_string(),
        ));
        h.push((
            "x-ratelimit-reset-requests",
            format!("{:.3}s", l.requests.reset_secs()),
        ));
        h.push((
            "x-ratelimit-reset-tokens",
            format!("{:.3}s", l.tokens.reset_secs()),
        ));
    }
    if let Some(wait) = retry {
        h.push(("retry-after", (wait.ceil() as u64).max(1).to_string()));
        h.push((
            "retry-after-ms",
            ((wait * 1000.0).ceil() as u64).to_string(),
        ));
    }
    h
}
