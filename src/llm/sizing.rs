//! Reply budgets sized to the replies a model really writes.
//!
//! A request's `max_tokens` is a reservation as much as a limit: OpenAI (and the simulated
//! provider) charge it against the tokens-per-minute budget when the request is admitted, and the
//! limiter reserves it too. A brief asked with the configured 2,000 tokens uses about 200, so
//! about 40 % of a token-bound run's budget went to room nobody used. The client therefore sends
//! a budget taken from the completion sizes seen so far, per kind of reply: a high percentile,
//! widened by a margin that shrinks as observations accumulate, never under a floor (an eighth of
//! the configured budget) and never over the configured budget, which stays the ceiling. A reply
//! cut at the sized budget is asked again with the whole configured budget (the safety net in
//! the client), and its real size then raises the percentile.
//!
//! Sizes are kept per endpoint and model through the learned quirks ([`super::quirks`]), so that
//! the next run starts sized. Replies that scale with their input (a digest of many stories)
//! are recorded per unit of input (per story), and sized by the number of units asked for.
//!
//! Before any reply of a kind has been seen, the budget is what the purpose needs for an input
//! of the prompt's size ([`prior`]: a floor plus a share of the prompt), not the whole ceiling:
//! a small local model that does not stop by itself runs to its budget, so the budget *is* the
//! call's time there. A grammar-constrained reply (`json_object` with a schema) is never sized
//! below what its grammar allows ([`grammar_bound`]): the grammar ends it, and a reply cut short
//! of that is invalid JSON. A reply cut at the limit while repeating itself ([`is_looping`]) gets
//! no more room: it would only repeat itself for longer.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::quirks::Quirks;
use super::types::Purpose;

/// Observations kept per kind of reply (the newest).
const KEEP: usize = 128;
/// The percentile the budget covers.
const PERCENTILE: f64 = 0.99;
/// Before this many observations the configured budget is sent unchanged.
const MIN_OBSERVATIONS: usize = 1;
/// Observations are written through to the store for the first few, then every this many.
const PERSIST_EVERY: usize = 8;

/// What kind of reply a purpose asks for: replies of one kind have one size distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReplyKind {
    /// A brief (one-call, reduce, or a repair of either).
    Brief,
    /// Notes on a chunk or on a group of notes.
    Notes,
    /// A digest or a digest's stories, per story asked for.
    Digest,
}

impl ReplyKind {
    /// The kind of reply `purpose` asks for; `None` for calls too small to size (the ping).
    pub fn of(purpose: Purpose) -> Option<ReplyKind> {
        match purpose {
            Purpose::Brief | Purpose::Reduce | Purpose::Repair => Some(ReplyKind::Brief),
            Purpose::Map | Purpose::Collapse => Some(ReplyKind::Notes),
            Purpose::Digest | Purpose::DigestMap => Some(ReplyKind::Digest),
            Purpose::Ping => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ReplyKind::Brief => "brief",
            ReplyKind::Notes => "notes",
            ReplyKind::Digest => "digest",
        }
    }

    /// The quirks key the sizes are kept under.
    pub fn key(self) -> String {
        format!("reply_tokens:{}", self.name())
    }
}

#[derive(Debug, Default)]
struct Sizes {
    /// Tokens per unit of the newest replies, oldest first.
    seen: Vec<u32>,
    /// Observations since the last write to the store.
    unsaved: usize,
}

/// The completion sizes seen per kind of reply, and the budgets they give.
#[derive(Debug, Default)]
pub struct ReplySizes {
    state: Mutex<BTreeMap<ReplyKind, Sizes>>,
}

impl ReplySizes {
    /// Starts from what earlier runs recorded in `quirks`.
    pub fn load(&self, quirks: &Quirks) {
        let mut state = self.lock();
        for kind in [ReplyKind::Brief, ReplyKind::Notes, ReplyKind::Digest] {
            if let Some(text) = quirks.recall(&kind.key()) {
                let seen: Vec<u32> = text
                    .split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .collect();
                let skip = seen.len().saturating_sub(KEEP);
                state.entry(kind).or_default().seen = seen[skip..].to_vec();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ReplyKind, Sizes>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The reply budget to send for a reply of `purpose` covering `units` units of input (1 but
    /// for digests) in a prompt of `prompt_tokens`, when the caller allows at most `ceiling` and
    /// a grammar would end the reply within `grammar` tokens (0: no grammar).
    pub fn budget(
        &self,
        purpose: Purpose,
        units: u32,
        prompt_tokens: usize,
        ceiling: u32,
        grammar: u32,
    ) -> u32 {
        let Some(kind) = ReplyKind::of(purpose) else {
            return ceiling;
        };
        let state = self.lock();
        let budget = match state
            .get(&kind)
            .filter(|s| s.seen.len() >= MIN_OBSERVATIONS)
        {
            Some(sizes) => sized(&sizes.seen, units.max(1), ceiling),
            None => prior(kind, prompt_tokens, ceiling),
        };
        budget.max(grammar).min(ceiling).max(1)
    }

    /// Records a complete reply of `tokens` (reasoning excluded) to a request of `purpose`
    /// covering `units` units; writes the sizes through to `quirks` now and then.
    pub fn observe(&self, purpose: Purpose, units: u32, tokens: u64, quirks: &Quirks) {
        let Some(kind) = ReplyKind::of(purpose) else {
            return;
        };
        if tokens == 0 {
            return;
        }
        let per_unit = tokens.div_ceil(units.max(1) as u64).min(u32::MAX as u64) as u32;
        let save = {
            let mut state = self.lock();
            let sizes = state.entry(kind).or_default();
            sizes.seen.push(per_unit);
            if sizes.seen.len() > KEEP {
                let drop = sizes.seen.len() - KEEP;
                sizes.seen.drain(..drop);
            }
            sizes.unsaved += 1;
            if sizes.seen.len() <= PERSIST_EVERY || sizes.unsaved >= PERSIST_EVERY {
                sizes.unsaved = 0;
                Some(join(&sizes.seen))
            } else {
                None
            }
        };
        if let Some(value) = save {
            quirks.remember(&kind.key(), &value);
        }
    }

    /// Writes sizes not yet written (the client is going away).
    pub fn flush(&self, quirks: &Quirks) {
        let pending: Vec<(ReplyKind, String)> = {
            let mut state = self.lock();
            state
                .iter_mut()
                .filter(|(_, s)| s.unsaved > 0)
                .map(|(k, s)| {
                    s.unsaved = 0;
                    (*k, join(&s.seen))
                })
                .collect()
        };
        for (kind, value) in pending {
            quirks.remember(&kind.key(), &value);
        }
    }
}

fn join(seen: &[u32]) -> String {
    seen.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The budget for `units` units from per-unit sizes `seen` (not empty): the 99th percentile
/// (nearest rank: the largest of fewer than 100), times a margin of 15 % plus one part in the
/// number of observations (2.15× after one reply, 1.25× after ten), plus 16 tokens of slack;
/// at least an eighth of `ceiling` (and 64 tokens), at most `ceiling`.
fn sized(seen: &[u32], units: u32, ceiling: u32) -> u32 {
    let mut sorted = seen.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let rank = ((n as f64 * PERCENTILE).ceil() as usize).clamp(1, n);
    let high = sorted[rank - 1] as f64 * units as f64;
    let margin = 1.15 + 1.0 / n as f64;
    let budget = (high * margin).ceil() + 16.0;
    let floor = (ceiling / 8).max(64).min(ceiling);
    (budget.min(u32::MAX as f64) as u32).clamp(floor, ceiling)
}

/// The budget before any reply of `kind` has been seen: what the purpose needs whatever its
/// input (the JSON frame and a title for a brief, a few lines of notes) plus a share of the
/// prompt (a bilingual brief of a 1,000-token article is about 400-700 tokens from a hosted
/// model; notes on a chunk a fraction of it). Digests keep their ceiling.
fn prior(kind: ReplyKind, prompt_tokens: usize, ceiling: u32) -> u32 {
    let (floor, per_token) = match kind {
        ReplyKind::Brief => (500.0, 0.5),
        ReplyKind::Notes => (150.0, 0.25),
        ReplyKind::Digest => return ceiling,
    };
    let need = (floor + per_token * prompt_tokens as f64).ceil();
    (need.min(u32::MAX as f64) as u32).min(ceiling)
}

/// The most tokens a reply that follows `schema` under a grammar can take, estimated for a
/// tokenizer that is not ours: every string at its `maxLength` (Korean at one token a character,
/// which Gemma's and Llama's tokenizers stay under for Hangul; English, a field named "en", at
/// one token for three characters), every list at its `maxItems`, and a few tokens of JSON
/// around each value.
pub fn grammar_bound(schema: &serde_json::Value) -> u32 {
    fn walk(v: &serde_json::Value, english: bool) -> f64 {
        const FRAME: f64 = 6.0;
        match v["type"].as_str() {
            Some("string") => {
                let max = v["maxLength"].as_f64().unwrap_or(16.0);
                FRAME + if english { max / 3.0 } else { max }
            }
            Some("array") => {
                let n = v["maxItems"].as_f64().unwrap_or(1.0);
                FRAME + n * walk(&v["items"], english)
            }
            Some("object") => v["properties"].as_object().map_or(FRAME, |props| {
                props.iter().map(|(k, p)| walk(p, k == "en")).sum::<f64>() + FRAME
            }),
            _ => FRAME,
        }
    }
    walk(schema, false).ceil().min(u32::MAX as f64) as u32
}

/// Length in characters of the repeated pieces [`is_looping`] looks for.
const NGRAM: usize = 12;

/// Whether a reply cut off at the token limit was repeating itself rather than still writing
/// something new: in its last third, at least half of the 12-character pieces already appeared
/// earlier in the reply. A real summary repeats names and short phrases, not most of a third
/// of itself; a looping model (the same sentence, the same list item, a run of blank lines)
/// repeats nearly all of it. Short replies are never called loops.
pub fn is_looping(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() < 8 * NGRAM {
        return false;
    }
    let tail_start = chars.len() * 2 / 3;
    let mut seen = std::collections::HashSet::new();
    let mut repeated = 0usize;
    let mut tail = 0usize;
    for (i, window) in chars.windows(NGRAM).enumerate() {
        let fresh = seen.insert(window);
        if i >= tail_start {
            tail += 1;
            if !fresh {
                repeated += 1;
            }
        }
    }
    tail > 0 && repeated * 2 >= tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_follow_the_replies_within_floor_and_ceiling() {
        // One reply of 200 tokens: 200 × 2.15 + 16.
        assert_eq!(sized(&[200], 1, 2000), 446);
        // A hundred replies of 150..=249: the 99th is 248, times 1.16, plus 16.
        let seen: Vec<u32> = (150..250).collect();
        assert_eq!(
            sized(&seen, 1, 2000),
            (248.0 * (1.15 + 1.0 / 100.0f64)).ceil() as u32 + 16
        );
        // Never over the configured budget, never under an eighth of it.
        assert_eq!(sized(&[5000], 1, 2000), 2000);
        assert_eq!(sized(&[3], 1, 2000), 250);
        assert_eq!(sized(&[3], 1, 100), 64);
        // Per unit: a digest of 10 stories at about 150 tokens a story.
        assert_eq!(
            sized(&[150; 20], 10, 6000),
            (1500.0 * (1.15 + 1.0 / 20.0f64)).ceil() as u32 + 16
        );
    }

    #[test]
    fn sizes_are_kept_per_kind_and_remembered() {
        let quirks = Quirks::new("http://127.0.0.1:1/v1", "m");
        let sizes = ReplySizes::default();
        assert_eq!(
            sizes.budget(Purpose::Brief, 1, 1000, 2000, 0),
            1000,
            "nothing seen yet: what a 1,000-token prompt needs"
        );
        sizes.observe(Purpose::Brief, 1, 180, &quirks);
        sizes.observe(Purpose::Repair, 1, 220, &quirks);
        assert_eq!(
            sizes.budget(Purpose::Reduce, 1, 1000, 2000, 0),
            sized(&[180, 220], 1, 2000)
        );
        assert_eq!(
            sizes.budget(Purpose::Map, 1, 4000, 700, 0),
            700,
            "notes are their own kind (nothing seen: 150 + 4,000/4, capped)"
        );
        assert_eq!(sizes.budget(Purpose::Ping, 1, 10, 16, 0), 16);
        assert_eq!(
            quirks.recall("reply_tokens:brief").as_deref(),
            Some("180 220")
        );

        let again = ReplySizes::default();
        again.load(&quirks);
        assert_eq!(
            again.budget(Purpose::Brief, 1, 1000, 2000, 0),
            sized(&[180, 220], 1, 2000)
        );
    }

    #[test]
    fn only_the_newest_observations_count() {
        let quirks = Quirks::new("http://127.0.0.1:1/v1", "m");
        let sizes = ReplySizes::default();
        for _ in 0..KEEP {
            sizes.observe(Purpose::Map, 1, 900, &quirks);
        }
        for _ in 0..KEEP {
            sizes.observe(Purpose::Map, 1, 100, &quirks);
        }
        assert_eq!(
            sizes.budget(Purpose::Map, 1, 1000, 2000, 0),
            sized(&[100; KEEP], 1, 2000)
        );
        sizes.flush(&quirks);
        let kept = quirks.recall("reply_tokens:notes").unwrap();
        assert_eq!(kept.split_whitespace().count(), KEEP);
        assert!(kept.split_whitespace().all(|n| n == "100"));
    }

    #[test]
    fn before_any_reply_the_budget_follows_the_input_under_the_ceiling() {
        let sizes = ReplySizes::default();
        assert_eq!(sizes.budget(Purpose::Brief, 1, 400, 3000, 0), 700);
        assert_eq!(sizes.budget(Purpose::Brief, 1, 3000, 3000, 0), 2000);
        assert_eq!(sizes.budget(Purpose::Brief, 1, 10_000, 3000, 0), 3000);
        assert_eq!(sizes.budget(Purpose::Map, 1, 400, 500, 0), 250);
        assert_eq!(sizes.budget(Purpose::Digest, 5, 400, 6000, 0), 6000);
    }

    #[test]
    fn a_grammar_bounded_reply_is_never_sized_below_its_grammar() {
        let quirks = Quirks::new("http://127.0.0.1:1/v1", "m");
        let sizes = ReplySizes::default();
        for _ in 0..20 {
            sizes.observe(Purpose::Brief, 1, 200, &quirks);
        }
        assert!(sizes.budget(Purpose::Brief, 1, 400, 3000, 0) < 400);
        assert_eq!(sizes.budget(Purpose::Brief, 1, 400, 3000, 1400), 1400);
        // …within the ceiling the user set.
        assert_eq!(sizes.budget(Purpose::Brief, 1, 400, 1000, 1400), 1000);
        let bound = grammar_bound(&crate::brief::content_schema_bounded());
        assert!((500..4000).contains(&bound), "{bound}");
    }

    #[test]
    fn a_reply_that_repeats_itself_is_looping() {
        let sentence = "서울시는 지하철 요금을 150원 올린다고 밝혔다. ";
        let looping = format!(
            "{{\"title\": {{\"ko\": \"지하철 요금 인상\", \"en\": \"Fares rise\"}}, \"summary\": {{\"ko\": \"{}",
            sentence.repeat(30)
        );
        assert!(is_looping(&looping));
        assert!(is_looping(&format!(
            "요약: 요금이 오른다.{}",
            "\n".repeat(400)
        )));
        assert!(is_looping(
            &"- The city raises fares by 150 won.\n".repeat(20)
        ));
    }

    #[test]
    fn a_reply_still_making_progress_is_not_looping() {
        let progressing = "{\"title\": {\"ko\": \"서울 지하철 요금 150원 인상\", \"en\": \"Seoul raises subway fares by 150 won\"}, \
            \"summary\": {\"ko\": \"서울시는 내년 1월부터 지하철 기본요금을 1,400원에서 1,550원으로 올린다. \
            교통공사의 누적 적자를 줄이려는 조치로, 시는 노후 전동차 교체와 역사 안전시설 보강에 인상분을 쓰겠다고 밝혔다. \
            시민단체는 물가가 오르는 시기에 공공요금까지 오르면 부담이 크다며 반발했다.\", \
            \"en\": \"Seoul will raise the basic subway fare from 1,400 to 1,550 won in January to cut the \
            transit operator's deficit; the city says the money goes to replacing old trains and \
            station safety, while civic groups object to higher public fees as prices rise.\"}, \
            \"key_points\": [{\"ko\": \"기본요금 150원 인상\", \"en\": \"Basic fare up 150 won\"}, \
            {\"ko\": \"버스 요금은 하반기에 다시 논의\", \"en\": \"Bus fares to be discussed again later in the year\"}";
        assert!(!is_looping(progressing));
        assert!(!is_looping("짧은 답"));
    }
}
