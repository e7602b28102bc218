//! How long an honest call to this endpoint takes, learned from the calls that came back, and
//! the deadline after which a call is taken for hung.
//!
//! A hung call used to hold its article for the whole `request_timeout` (10 minutes by default,
//! generous because a CPU-only server can take minutes on a long prompt). A shorter fixed
//! timeout would kill those slow, honest calls; so the deadline is learned instead. Every reply
//! is one observation: seconds from sending to the whole body, the prompt's tokens, the reply's
//! tokens (hidden reasoning included) and how many requests were on the wire ahead of it. A least
//! squares fit over the newest observations gives the time of a call as a fixed part, a part per
//! prompt token (prompt processing: dominant on a CPU server), a part per reply token
//! (generation) and a part per request ahead (a server that serves one request at a time makes
//! the later ones wait); coefficients that come out negative are dropped from the fit.
//!
//! A call has two deadlines ([`Deadlines`]). The soft one is three times what the fit predicts
//! for its prompt and its whole reply budget (the longest reply it may honestly write), plus four
//! times the fit's typical error, plus a second: past it, the call is taken for hung as soon as
//! the server has answered calls sent after it (it is serving others, not this one; a server that
//! serves one request at a time never answers a later call first, so its queue is never taken
//! for a hang). The hard one is the soft one but never less than one and a half times the
//! slowest call seen: past it, the call is taken for hung without that evidence (the last calls
//! of a run have no later calls to compare with). Each cut of the same call doubles both, so an
//! honest call that was only slow gets through on the next attempt. Until enough calls have come
//! back there is no learned deadline and the configured `request_timeout` alone applies; the
//! learned ones never exceed it.
//!
//! Why not stream and time the gaps between chunks instead: reasoning models send nothing while
//! they think, llama-cpp-python's streams carry no `usage` (we would lose the server's token
//! counts, which calibrate our estimates and reveal silent prompt cuts) and answer an over-long
//! prompt with an empty 200, and a proxy that buffers (nginx's default) delivers a stream in one
//! piece at the end. A deadline over the whole reply works the same through all of them.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// When a call is taken for hung (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// Past this, hung if the server has answered calls sent after it.
    pub soft: Duration,
    /// Past this, hung.
    pub hard: Duration,
}

/// Observations kept (the newest).
const KEEP: usize = 256;
/// No learned deadline before this many replies.
const MIN_OBSERVATIONS: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Observation {
    secs: f64,
    features: [f64; FEATURES],
}

/// Fixed part, thousands of prompt tokens, thousands of reply tokens, requests ahead.
const FEATURES: usize = 4;

fn features(prompt: usize, reply: u64, ahead: usize) -> [f64; FEATURES] {
    [
        1.0,
        prompt as f64 / 1000.0,
        reply as f64 / 1000.0,
        ahead as f64,
    ]
}

#[derive(Debug, Clone, Copy)]
struct Fit {
    coef: [f64; FEATURES],
    /// Root mean square error of the fit, seconds.
    rmse: f64,
    /// The slowest call among the observations, seconds.
    slowest: f64,
}

impl Fit {
    fn predict(&self, x: &[f64; FEATURES]) -> f64 {
        self.coef
            .iter()
            .zip(x)
            .map(|(c, x)| c * x)
            .sum::<f64>()
            .max(0.0)
    }
}

#[derive(Debug, Default)]
struct State {
    seen: VecDeque<Observation>,
    fit: Option<Fit>,
}

/// The latency model of one endpoint and model, for one run.
#[derive(Debug, Default)]
pub struct Latency {
    state: Mutex<State>,
}

impl Latency {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a call that came back after `elapsed`, with `prompt` prompt tokens and `reply`
    /// reply tokens, sent while `ahead` other requests were on the wire.
    pub fn observe(&self, elapsed: Duration, prompt: usize, reply: u64, ahead: usize) {
        let mut state = self.lock();
        state.seen.push_back(Observation {
            secs: elapsed.as_secs_f64(),
            features: features(prompt, reply, ahead),
        });
        if state.seen.len() > KEEP {
            state.seen.pop_front();
        }
        state.fit = (state.seen.len() >= MIN_OBSERVATIONS)
            .then(|| fit(state.seen.iter().copied()))
            .flatten();
    }

    /// How long a call with `prompt` prompt tokens and a reply budget of `budget` tokens, sent
    /// while `ahead` requests are on the wire and already cut `cuts` times, may take before it
    /// is taken for hung; `None` while too little is known.
    pub fn deadlines(
        &self,
        prompt: usize,
        budget: u32,
        ahead: usize,
        cuts: u32,
    ) -> Option<Deadlines> {
        let fit = self.lock().fit?;
        let expected = fit.predict(&features(prompt, budget as u64, ahead));
        let soft = 3.0 * expected + 4.0 * fit.rmse + 1.0;
        let hard = soft.max(1.5 * fit.slowest);
        let scale = f64::from(1u32 << cuts.min(16));
        let d = |secs: f64| Duration::from_secs_f64((secs * scale).min(1e7));
        Some(Deadlines {
            soft: d(soft),
            hard: d(hard),
        })
    }

    /// What the model expects of a call, for messages: seconds.
    pub fn expected(&self, prompt: usize, budget: u32, ahead: usize) -> Option<f64> {
        let fit = self.lock().fit?;
        Some(fit.predict(&features(prompt, budget as u64, ahead)))
    }
}

/// Least squares over `seen` with non-negative coefficients for everything but the fixed part:
/// a feature whose coefficient comes out negative is dropped and the rest fitted again.
fn fit(seen: impl Iterator<Item = Observation> + Clone) -> Option<Fit> {
    let mut active = [true; FEATURES];
    loop {
        let coef = solve(seen.clone(), &active)?;
        let negative = (1..FEATURES).find(|&j| active[j] && coef[j] < 0.0);
        if let Some(j) = negative {
            active[j] = false;
            continue;
        }
        let (mut sq, mut n, mut slowest) = (0.0, 0usize, 0.0f64);
        for o in seen {
            let p: f64 = coef.iter().zip(&o.features).map(|(c, x)| c * x).sum();
            sq += (o.secs - p).powi(2);
            n += 1;
            slowest = slowest.max(o.secs);
        }
        let rmse = (sq / n.max(1) as f64).sqrt();
        return Some(Fit {
            coef,
            rmse,
            slowest,
        });
    }
}

/// The normal equations for the active features, with a whisper of ridge so that a feature that
/// never varies (every reply the same size) does not make them singular; Gaussian elimination
/// with partial pivoting.
fn solve(
    seen: impl Iterator<Item = Observation>,
    active: &[bool; FEATURES],
) -> Option<[f64; FEATURES]> {
    let idx: Vec<usize> = (0..FEATURES).filter(|&j| active[j]).collect();
    let k = idx.len();
    let mut a = vec![vec![0.0f64; k + 1]; k];
    for o in seen {
        for (r, &i) in idx.iter().enumerate() {
            for (c, &j) in idx.iter().enumerate() {
                a[r][c] += o.features[i] * o.features[j];
            }
            a[r][k] += o.features[i] * o.secs;
        }
    }
    for (r, row) in a.iter_mut().enumerate().skip(1) {
        row[r] += 1e-9 + row[r] * 1e-9;
    }
    for col in 0..k {
        let pivot = (col..k).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        let pivot_row = a[col].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (x, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    let mut coef = [0.0; FEATURES];
    for (r, &j) in idx.iter().enumerate() {
        coef[j] = a[r][k] / a[r][r];
    }
    Some(coef)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_is_cut_before_enough_replies() {
        let l = Latency::default();
        for _ in 0..MIN_OBSERVATIONS - 1 {
            l.observe(ms(300), 1000, 200, 0);
        }
        assert_eq!(l.deadlines(1000, 400, 0, 0), None);
        l.observe(ms(300), 1000, 200, 0);
        assert!(l.deadlines(1000, 400, 0, 0).is_some());
    }

    #[test]
    fn a_fast_endpoint_gets_a_short_deadline_that_grows_with_the_budget() {
        // 30 ms + 1 ms per reply token, prompts of any size: the simulated provider.
        let l = Latency::default();
        for i in 0..40u64 {
            let reply = 150 + (i * 37) % 200;
            l.observe(
                ms(30 + reply),
                500 + (i as usize * 997) % 20_000,
                reply,
                (i % 8) as usize,
            );
        }
        let d = l.deadlines(5000, 400, 4, 0).unwrap();
        // 3 × (0.03 + 0.4) + 1 ≈ 2.3 s; the slowest call seen (0.38 s) does not raise it.
        assert!(d.soft > ms(2000) && d.soft < ms(2600), "{d:?}");
        assert_eq!(d.hard, d.soft);
        assert!(l.deadlines(5000, 2000, 4, 0).unwrap().soft > d.soft + ms(4000));
        let twice = l.deadlines(5000, 400, 4, 2).unwrap().soft;
        assert!(twice.abs_diff(d.soft * 4) < ms(1), "each cut doubles it");
    }

    #[test]
    fn a_cpu_server_that_serves_one_at_a_time_gets_patience() {
        // 10 ms per prompt token, 25 ms per reply token, and each request ahead adds a whole
        // call of about 30 s.
        let l = Latency::default();
        for i in 0..24u64 {
            let prompt = 1000 + (i as usize * 311) % 2000;
            let reply = 100 + (i * 53) % 200;
            let ahead = (i % 4) as usize;
            let own = prompt as f64 * 0.010 + reply as f64 * 0.025;
            let secs = own + ahead as f64 * 30.0;
            l.observe(Duration::from_secs_f64(secs), prompt, reply, ahead);
        }
        // A call with three ahead honestly takes about 115 s: it is not cut before that.
        let d = l.deadlines(2000, 300, 3, 0).unwrap();
        assert!(d.soft > Duration::from_secs(300), "{d:?}");
        let alone = l.deadlines(2000, 300, 0, 0).unwrap();
        assert!(alone.soft > Duration::from_secs(40), "{alone:?}");
        // Without a later call answered first, the slowest call seen (about 127 s) bounds it.
        assert!(alone.hard > Duration::from_secs(180), "{alone:?}");
    }

    #[test]
    fn the_hard_deadline_is_never_under_the_slowest_call_seen() {
        let l = Latency::default();
        for i in 0..20 {
            l.observe(ms(if i == 7 { 9000 } else { 200 }), 1000, 200, 0);
        }
        let d = l.deadlines(1000, 200, 0, 0).unwrap();
        assert!(d.hard >= ms(13_500), "{d:?}");
        assert!(d.soft < d.hard, "{d:?}");
    }
}
