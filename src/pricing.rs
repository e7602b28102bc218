//! Prices of model calls, for the cost estimates of `--dry-run`, the run report, briefs and
//! digests: per model, honest about what it does not know.
//!
//! The price of a model is, in this order: the `[pricing]` entry naming it; the `[pricing]`
//! entry `"*"` (every model of the endpoint, e.g. a server of one's own); nothing at all when
//! the endpoint is on this machine (a loopback address: the mock provider, llama.cpp, Ollama,
//! vLLM); OpenAI's list price when the model is one of [`TABLE`]; otherwise the price is
//! unknown, and costs are reported as unknown rather than as a guess. Batch calls cost half
//! ([`Tier::Batch`]), as OpenAI's Batch API does.

use std::collections::BTreeMap;

use crate::llm::Usage;

/// US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million prompt (input) tokens.
    pub input: f64,
    /// Per million completion (output) tokens, reasoning tokens included.
    pub output: f64,
}

/// How a call is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// An ordinary chat-completions call.
    Standard,
    /// A call of a batch job (OpenAI's Batch API): half the standard price.
    Batch,
}

impl Tier {
    fn factor(self) -> f64 {
        match self {
            Tier::Standard => 1.0,
            Tier::Batch => 0.5,
        }
    }
}

/// Where a model's price comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum PriceSource {
    /// `[pricing] "<model>"` in the configuration.
    Configured,
    /// `[pricing] "*"` in the configuration.
    ConfiguredDefault,
    /// The endpoint is on this machine: calls cost nothing.
    Local { host: String },
    /// OpenAI's list price, from [`TABLE`].
    Table,
}

/// OpenAI's list prices for chat models, US dollars per million tokens (standard tier; input,
/// output). Read from OpenAI's pricing page (https://platform.openai.com/docs/pricing, now
/// https://developers.openai.com/api/docs/pricing) as transcribed, with the date, by
/// https://deploybase.ai/articles/openai-pricing ("Data from OpenAI pricing page, March
/// 2026"), cross-checked against https://margindash.com/openai-model-comparison and
/// https://chatgptpricing-akr.pages.dev/api-pricing (which also lists the Batch API at half
/// these prices); consulted 2026-11-30. Prices change: `[pricing]` overrides any of them.
pub const TABLE: &[(&str, Price)] = &[
    (
        "gpt-5",
        Price {
            input: 1.25,
            output: 10.00,
        },
    ),
    (
        "gpt-5-mini",
        Price {
            input: 0.25,
            output: 2.00,
        },
    ),
    (
        "gpt-5-nano",
        Price {
            input: 0.05,
            output: 0.40,
        },
    ),
    (
        "gpt-5.1",
        Price {
            input: 1.25,
            output: 10.00,
        },
    ),
    (
        "gpt-4.1",
        Price {
            input: 2.00,
            output: 8.00,
        },
    ),
    (
        "gpt-4.1-mini",
        Price {
            input: 0.40,
            output: 1.60,
        },
    ),
    (
        "gpt-4.1-nano",
        Price {
            input: 0.10,
            output: 0.40,
        },
    ),
    (
        "gpt-4o",
        Price {
            input: 2.50,
            output: 10.00,
        },
    ),
    (
        "gpt-4o-mini",
        Price {
            input: 0.15,
            output: 0.60,
        },
    ),
    (
        "o1",
        Price {
            input: 15.00,
            output: 60.00,
        },
    ),
    (
        "o3",
        Price {
            input: 2.00,
            output: 8.00,
        },
    ),
    (
        "o3-mini",
        Price {
            input: 1.10,
            output: 4.40,
        },
    ),
    (
        "o4-mini",
        Price {
            input: 1.10,
            output: 4.40,
        },
    ),
];

/// The key of `[pricing]` that prices every model of the endpoint.
pub const ANY_MODEL: &str = "*";

/// The prices of a run: the configured entries and whether the endpoint is local.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pricing {
    configured: BTreeMap<String, Price>,
    /// The endpoint's host, when it is a loopback address.
    local_host: Option<String>,
}

impl Pricing {
    /// Prices for calls to `base_url`, with the `[pricing]` entries `configured`.
    pub fn new(configured: BTreeMap<String, Price>, base_url: &str) -> Pricing {
        Pricing {
            configured,
            local_host: loopback_host(base_url),
        }
    }

    /// The price of `model` and where it comes from; `None` when it is unknown.
    pub fn price(&self, model: &str) -> Option<(Price, PriceSource)> {
        if let Some(p) = self.configured.get(model) {
            return Some((*p, PriceSource::Configured));
        }
        if let Some(p) = self.configured.get(ANY_MODEL) {
            return Some((*p, PriceSource::ConfiguredDefault));
        }
        if let Some(host) = &self.local_host {
            let free = Price {
                input: 0.0,
                output: 0.0,
            };
            return Some((free, PriceSource::Local { host: host.clone() }));
        }
        table_price(model).map(|p| (p, PriceSource::Table))
    }

    /// What `usage` of `model` cost, in US dollars; `None` when the price is unknown. No
    /// tokens cost nothing whatever the price (cache hits, unchanged articles).
    pub fn cost(&self, model: &str, usage: Usage, tier: Tier) -> Option<f64> {
        if usage.prompt_tokens == 0 && usage.completion_tokens == 0 {
            return Some(0.0);
        }
        let (p, _) = self.price(model)?;
        Some(
            (usage.prompt_tokens as f64 * p.input + usage.completion_tokens as f64 * p.output)
                * tier.factor()
                / 1_000_000.0,
        )
    }

    /// One line for people: the price of `model` and where it comes from, or how to set it.
    pub fn describe(&self, model: &str) -> String {
        match self.price(model) {
            Some((p, source)) => {
                let from = match source {
                    PriceSource::Configured => format!("[pricing] \"{model}\""),
                    PriceSource::ConfiguredDefault => "[pricing] \"*\"".to_string(),
                    PriceSource::Local { host } => {
                        return format!("{model}: free (a server on this machine, {host})");
                    }
                    PriceSource::Table => "OpenAI's list price".to_string(),
                };
                format!(
                    "{model}: ${} input + ${} output per million tokens ({from})",
                    p.input, p.output
                )
            }
            None => format!("{model}: unknown price; {}", how_to_price(model)),
        }
    }

    /// Whether the endpoint is on this machine (and so free unless priced).
    pub fn is_local(&self) -> bool {
        self.local_host.is_some()
    }
}

/// Whether `model` has an OpenAI list price in [`TABLE`].
pub fn is_listed(model: &str) -> bool {
    table_price(model).is_some()
}

/// How to price `model`: "set [pricing] …", for a sentence.
pub fn how_to_price(model: &str) -> String {
    format!(
        "set [pricing] \"{model}\" = {{ input = 0.50, output = 1.50 }} in the config (US dollars per million tokens)"
    )
}

/// A cost for people: `$0.0123`, or `cost unknown`.
pub fn usd(cost: Option<f64>) -> String {
    match cost {
        Some(c) => format!("${c:.4}"),
        None => "cost unknown".to_string(),
    }
}

/// The sum of costs: unknown as soon as one is.
pub fn sum(costs: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    costs.into_iter().try_fold(0.0, |acc, c| c.map(|c| acc + c))
}

/// OpenAI's list price of `model`: its exact id, or the id with a date suffix
/// (`gpt-4.1-mini-2025-04-14`).
fn table_price(model: &str) -> Option<Price> {
    let model = model.trim().to_ascii_lowercase();
    let find = |id: &str| TABLE.iter().find(|(m, _)| *m == id).map(|(_, p)| *p);
    find(&model).or_else(|| {
        let base = strip_date(&model)?;
        find(base)
    })
}

/// `gpt-4o-2024-08-06` → `gpt-4o`.
fn strip_date(model: &str) -> Option<&str> {
    let (base, date) = model.split_at(model.len().checked_sub(11)?);
    let date = date.strip_prefix('-')?;
    let ok = date.len() == 10
        && date.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            _ => c.is_ascii_digit(),
        });
    ok.then_some(base)
}

/// The host of `base_url` when it is this machine: `localhost`, `127.0.0.0/8` or `::1`.
fn loopback_host(base_url: &str) -> Option<String> {
    let url = reqwest::Url::parse(base_url).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    let local = match host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost" || host.ends_with(".localhost"),
    };
    local.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(p: u64, c: u64) -> Usage {
        Usage {
            prompt_tokens: p,
            completion_tokens: c,
            ..Default::default()
        }
    }

    const OPENAI: &str = "https://api.openai.com/v1";

    #[test]
    fn known_models_have_their_own_prices() {
        let p = Pricing::new(BTreeMap::new(), OPENAI);
        let cost = |m: &str| p.cost(m, usage(1_000_000, 1_000_000), Tier::Standard);
        assert_eq!(cost("gpt-4.1"), Some(10.0));
        assert_eq!(cost("gpt-4o"), Some(12.5));
        assert_eq!(cost("gpt-4.1-mini"), Some(2.0));
        assert_eq!(cost("o3"), Some(10.0));
        assert_eq!(cost("gpt-5-nano"), Some(0.45));
        assert_eq!(cost("llama3"), None, "unknown, not a guess");
        // A dated snapshot is its model; a longer name is not.
        assert_eq!(cost("gpt-4o-2024-08-06"), Some(12.5));
        assert_eq!(cost("gpt-4o-mini-2024-07-18"), Some(0.75));
        assert_eq!(cost("gpt-4o-audio-preview"), None);
        assert_eq!(cost("openai/gpt-4.1-mini"), None);
    }

    #[test]
    fn batch_costs_half() {
        let p = Pricing::new(BTreeMap::new(), OPENAI);
        let u = usage(2_000_000, 1_000_000);
        assert_eq!(p.cost("gpt-4.1", u, Tier::Standard), Some(12.0));
        assert_eq!(p.cost("gpt-4.1", u, Tier::Batch), Some(6.0));
    }

    #[test]
    fn configured_prices_win_and_loopback_is_free() {
        let mut configured = BTreeMap::new();
        configured.insert(
            "gpt-4.1".to_string(),
            Price {
                input: 1.0,
                output: 1.0,
            },
        );
        let p = Pricing::new(configured.clone(), OPENAI);
        assert_eq!(
            p.cost("gpt-4.1", usage(1_000_000, 0), Tier::Standard),
            Some(1.0)
        );
        assert_eq!(p.price("gpt-4.1").unwrap().1, PriceSource::Configured);

        for url in [
            "http://127.0.0.1:8787/v1",
            "http://localhost:11434/v1",
            "http://[::1]:8000/v1",
        ] {
            let local = Pricing::new(BTreeMap::new(), url);
            assert!(local.is_local(), "{url}");
            assert_eq!(
                local.cost("gpt-4.1-mini", usage(5000, 500), Tier::Standard),
                Some(0.0)
            );
            assert!(
                local.describe("x").contains("free"),
                "{}",
                local.describe("x")
            );
        }
        // On this machine, a configured price still wins (a proxy that forwards to a paid API).
        let local = Pricing::new(configured, "http://127.0.0.1:4000/v1");
        assert_eq!(
            local.cost("gpt-4.1", usage(1_000_000, 0), Tier::Standard),
            Some(1.0)
        );

        let mut any = BTreeMap::new();
        any.insert(
            ANY_MODEL.to_string(),
            Price {
                input: 0.0,
                output: 0.0,
            },
        );
        let lan = Pricing::new(any, "http://10.0.0.5:8000/v1");
        assert_eq!(
            lan.cost("Qwen/Qwen2.5-7B", usage(100, 100), Tier::Standard),
            Some(0.0)
        );
        assert!(!lan.is_local());
    }

    #[test]
    fn no_tokens_cost_nothing_even_unpriced_and_sums_stay_honest() {
        let p = Pricing::new(BTreeMap::new(), "https://example.com/v1");
        assert_eq!(p.cost("mystery", usage(0, 0), Tier::Standard), Some(0.0));
        assert_eq!(p.cost("mystery", usage(1, 0), Tier::Standard), None);
        assert!(p.describe("mystery").contains("[pricing] \"mystery\""));
        assert_eq!(sum([Some(1.0), Some(0.5)]), Some(1.5));
        assert_eq!(sum([Some(1.0), None]), None);
        assert_eq!(usd(None), "cost unknown");
        assert_eq!(usd(Some(0.00481)), "$0.0048");
    }
}
