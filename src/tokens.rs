//! Token counting with tiktoken-rs, and what we know about models' tokenizers and windows.
//!
//! Counts are exact for OpenAI models counted with their own encoding and estimates for every
//! other model (a llama.cpp or vLLM server has its own tokenizer). Estimates are made safe in two
//! ways: a configured margin on every budget, and a [`Calibration`] that learns, from the
//! `usage.prompt_tokens` each server reports, how its counts compare to ours.

use std::sync::atomic::{AtomicU64, Ordering};

use tiktoken_rs::CoreBPE;

/// A tiktoken encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    O200kBase,
    Cl100kBase,
}

impl Encoding {
    /// Parses an encoding name as written in config.
    pub fn from_name(name: &str) -> Option<Encoding> {
        match name {
            "o200k_base" => Some(Encoding::O200kBase),
            "cl100k_base" => Some(Encoding::Cl100kBase),
            _ => None,
        }
    }

    /// The name as written in config.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }
}

/// The encoding for a model, and whether counts with it are exact (the model is an OpenAI model
/// tiktoken knows) or estimates (anything else, counted with o200k_base).
pub fn encoding_for_model(model: &str) -> (Encoding, bool) {
    // Azure and OpenRouter prefix or decorate names: "openai/gpt-4o-mini".
    let bare = model.rsplit('/').next().unwrap_or(model);
    match tiktoken_rs::tokenizer::get_tokenizer(bare) {
        Some(tiktoken_rs::tokenizer::Tokenizer::O200kBase) => (Encoding::O200kBase, true),
        Some(tiktoken_rs::tokenizer::Tokenizer::Cl100kBase) => (Encoding::Cl100kBase, true),
        _ => (Encoding::O200kBase, false),
    }
}

/// The context window of a known OpenAI model.
pub fn context_window_for(model: &str) -> Option<usize> {
    let bare = model.rsplit('/').next().unwrap_or(model);
    tiktoken_rs::tokenizer::get_tokenizer(bare)?;
    let n = tiktoken_rs::model::get_context_size(bare)?;
    // tiktoken-rs answers 4096 for names it does not know precisely; newer families are larger.
    if bare.starts_with("gpt-4.1") {
        return Some(1_047_576);
    }
    if bare.starts_with("gpt-5") {
        return Some(400_000);
    }
    Some(n)
}

/// Counts tokens with one encoding. Cheap to copy; the BPE tables are loaded once per process.
#[derive(Clone, Copy)]
pub struct Tokenizer {
    bpe: &'static CoreBPE,
    encoding: Encoding,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("encoding", &self.encoding)
            .finish()
    }
}

impl Tokenizer {
    /// The tokenizer for an encoding (the first call loads its tables: ~0.2 s for o200k_base).
    pub fn new(encoding: Encoding) -> Tokenizer {
        let bpe = match encoding {
            Encoding::O200kBase => tiktoken_rs::o200k_base_singleton(),
            Encoding::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
        };
        Tokenizer { bpe, encoding }
    }

    /// Which encoding this is.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Number of tokens in `text` (special-token text counts as ordinary text).
    pub fn count(&self, text: &str) -> usize {
        self.bpe.count_ordinary(text)
    }

    /// Tokens of a chat request as the server sees it: each message's content plus the few
    /// tokens of framing per message that OpenAI's chat format adds.
    pub fn count_messages<'a>(&self, contents: impl IntoIterator<Item = &'a str>) -> usize {
        contents
            .into_iter()
            .map(|c| self.count(c) + MESSAGE_OVERHEAD)
            .sum::<usize>()
            + REPLY_PRIMING
    }
}

/// Tokens OpenAI's chat format spends per message around its content.
pub const MESSAGE_OVERHEAD: usize = 4;
/// Tokens that prime the assistant's reply.
pub const REPLY_PRIMING: usize = 3;

/// What a server's own token counts are, relative to ours: learnt from `usage.prompt_tokens`.
///
/// The ratio starts at 1.0 and follows the largest recent observation upwards at once (being
/// too optimistic costs a failed call) and downwards slowly (being too cautious only costs a
/// few extra chunks).
#[derive(Debug)]
pub struct Calibration {
    ratio_bits: AtomicU64,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            ratio_bits: AtomicU64::new(1.0f64.to_bits()),
        }
    }
}

impl Calibration {
    /// Server tokens per counted token, as learnt so far.
    pub fn ratio(&self) -> f64 {
        f64::from_bits(self.ratio_bits.load(Ordering::Relaxed))
    }

    /// Records one call: `counted` by us, `reported` by the server.
    pub fn observe(&self, counted: usize, reported: u64) {
        if counted < 32 || reported == 0 {
            return; // tiny prompts are all framing: nothing to learn
        }
        let seen = reported as f64 / counted as f64;
        let _ = self
            .ratio_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let old = f64::from_bits(bits);
                let new = if seen > old {
                    seen
                } else {
                    old * 0.9 + seen * 0.1
                };
                Some(new.clamp(0.25, 4.0).to_bits())
            });
    }

    /// Our count scaled to the server's, rounded up.
    pub fn server_tokens(&self, counted: usize) -> usize {
        (counted as f64 * self.ratio()).ceil() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_pick_the_encoding() {
        assert_eq!(
            encoding_for_model("gpt-4o-mini"),
            (Encoding::O200kBase, true)
        );
        assert_eq!(encoding_for_model("gpt-4"), (Encoding::Cl100kBase, true));
        assert_eq!(
            encoding_for_model("openai/gpt-4.1-mini"),
            (Encoding::O200kBase, true)
        );
        assert_eq!(
            encoding_for_model("gemma-3-270m"),
            (Encoding::O200kBase, false)
        );
        assert_eq!(context_window_for("gpt-4o"), Some(128_000));
        assert_eq!(context_window_for("llama3"), None);
    }

    #[test]
    fn counts_korean_text() {
        let t = Tokenizer::new(Encoding::O200kBase);
        let n = t.count("정부는 올해 반도체 수출이 12% 늘었다고 밝혔다.");
        assert!((8..=30).contains(&n), "{n}");
        assert_eq!(t.count(""), 0);
        assert_eq!(
            t.count_messages(["a", "b"]),
            2 + 2 * MESSAGE_OVERHEAD + REPLY_PRIMING
        );
    }

    #[test]
    fn calibration_rises_fast_and_falls_slowly() {
        let c = Calibration::default();
        c.observe(1000, 1300);
        assert!((c.ratio() - 1.3).abs() < 1e-9);
        c.observe(1000, 1000);
        assert!(c.ratio() > 1.25 && c.ratio() < 1.3);
        c.observe(10, 1000); // too small to learn from
        assert!(c.ratio() < 1.3);
        assert_eq!(Calibration::default().server_tokens(100), 100);
    }
}
