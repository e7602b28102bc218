//! What each server refuses or says differently, learned per endpoint and model.
//!
//! "OpenAI-compatible" servers differ in what they accept: OpenAI's reasoning models refuse
//! `temperature` and `max_tokens`; older servers refuse `max_completion_tokens`; llama.cpp
//! servers refuse `response_format: json_schema`; a llama.cpp slot or a vLLM deployment has a
//! smaller context than the model's name suggests; Ollama cuts a prompt past its `num_ctx`
//! without a word. The client learns each of these from the first refusal (or the first reply
//! that shows it), adapts every later call of the run, and, through the state store
//! ([`super::CallCache::learn`]), remembers it for that endpoint and model so that the next run
//! does not pay for the same refusal again. `hanbrief cache clear --all` forgets it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::CallCache;
use crate::config::MaxTokensField;

/// What has been learned about one endpoint and model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    /// The model refuses `temperature` (reasoning models take only their default).
    pub no_temperature: bool,
    /// The model refuses `reasoning_effort` (it does not reason).
    pub no_reasoning_effort: bool,
    /// The field the endpoint wants the reply budget in, when it refused the configured one.
    pub max_tokens_field: Option<MaxTokensField>,
    /// The structured-output mode the endpoint accepted after refusing richer ones.
    pub structured_output: Option<String>,
    /// The context size the server stated in a context error, when smaller than configured.
    pub context_window: Option<usize>,
    /// The most prompt tokens the server kept of a longer prompt it cut silently (Ollama).
    pub max_prompt_tokens: Option<usize>,
    /// The model's replies report reasoning tokens: it needs room to think.
    pub reasons: bool,
}

impl Learned {
    /// One line for the log: what the next calls do differently, or `None` if nothing.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.no_temperature {
            parts.push("no temperature".to_string());
        }
        if self.no_reasoning_effort {
            parts.push("no reasoning_effort".to_string());
        }
        if let Some(f) = self.max_tokens_field {
            parts.push(format!("the reply budget in {}", f.as_str()));
        }
        if let Some(m) = &self.structured_output {
            parts.push(format!("structured output as {m}"));
        }
        if let Some(w) = self.context_window {
            parts.push(format!("a {w}-token context"));
        }
        if let Some(p) = self.max_prompt_tokens {
            parts.push(format!("prompts under {p} tokens (longer ones are cut)"));
        }
        if self.reasons {
            parts.push("room for hidden reasoning".to_string());
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    fn apply(&mut self, key: &str, value: &str) {
        match key {
            "drop:temperature" => self.no_temperature = true,
            "drop:reasoning_effort" => self.no_reasoning_effort = true,
            "max_tokens_field" => {
                self.max_tokens_field = match value {
                    "max_tokens" => Some(MaxTokensField::MaxTokens),
                    "max_completion_tokens" => Some(MaxTokensField::MaxCompletionTokens),
                    _ => None,
                }
            }
            "structured_output" => self.structured_output = Some(value.to_string()),
            "context_window" => self.context_window = value.parse().ok().filter(|n| *n >= 64),
            "max_prompt_tokens" => self.max_prompt_tokens = value.parse().ok().filter(|n| *n >= 64),
            "reasoning" => self.reasons = true,
            // A key written by a newer hanbrief: not ours to interpret.
            _ => {}
        }
    }
}

/// The learned quirks of the client's endpoint and model, kept in memory for the run and written
/// through to the state store.
pub struct Quirks {
    endpoint: String,
    model: String,
    state: Mutex<Learned>,
    /// Everything remembered, as key/value pairs (also what [`Learned`] does not interpret:
    /// the reply sizes of [`super::sizing`]).
    rows: Mutex<BTreeMap<String, String>>,
    store: Mutex<Option<Arc<dyn CallCache>>>,
}

impl std::fmt::Debug for Quirks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quirks")
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .field("learned", &self.get())
            .finish()
    }
}

impl Quirks {
    /// Nothing learned yet about `model` at `endpoint` (the base URL: the key is never part of
    /// it).
    pub fn new(endpoint: &str, model: &str) -> Quirks {
        Quirks {
            endpoint: endpoint.to_string(),
            model: model.to_string(),
            state: Mutex::new(Learned::default()),
            rows: Mutex::new(BTreeMap::new()),
            store: Mutex::new(None),
        }
    }

    /// Loads what earlier runs learned from `store`, and writes what this run learns to it.
    pub async fn attach(&self, store: Arc<dyn CallCache>) {
        let rows = store.quirks(&self.endpoint, &self.model).await;
        {
            let mut state = self.lock();
            for (k, v) in &rows {
                state.apply(k, v);
            }
        }
        self.rows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(rows);
        *self.store.lock().unwrap_or_else(|p| p.into_inner()) = Some(store);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Learned> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of what is known now.
    pub fn get(&self) -> Learned {
        self.lock().clone()
    }

    /// The value last remembered under `key` (by this run, or an earlier one).
    pub fn recall(&self, key: &str) -> Option<String> {
        self.rows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Remembers `key = value` as it is (for values [`Learned`] does not interpret), for this
    /// run and, if a store is attached, for later ones.
    pub fn remember(&self, key: &str, value: &str) {
        self.rows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), value.to_string());
        if let Some(store) = self
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            store.learn(&self.endpoint, &self.model, key, value);
        }
    }

    /// Records `key = value`, for this run and (if a store is attached) for later ones. Returns
    /// whether it was news.
    pub fn learn(&self, key: &str, value: &str) -> bool {
        let changed = {
            let mut state = self.lock();
            let before = state.clone();
            state.apply(key, value);
            *state != before
        };
        if changed
            && let Some(store) = self
                .store
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
        {
            store.learn(&self.endpoint, &self.model, key, value);
        }
        changed
    }
}

/// Whether `model` is one of the models known to reason before answering (OpenAI's o-series and
/// gpt-5, except the chat variants), by name, with or without a gateway's `provider/` prefix.
pub fn is_reasoning_model(model: &str) -> bool {
    let name = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    let o_series = ["o1", "o3", "o4"].iter().any(|p| {
        name == *p
            || name
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('-'))
    });
    let gpt5 = name.starts_with("gpt-5") && !name.contains("chat");
    o_series || gpt5 || name.contains("reasoner")
}

/// Reply tokens to add for hidden reasoning at `effort` (`None`: the model's default, which is
/// "medium" for OpenAI's models). The figures are what a brief-sized answer needed in reports of
/// gpt-5 and o-series usage (1,000 to 1,500 reasoning tokens at the default effort for a short
/// task), with room to spare; a reply that still runs out gets one retry with twice the room.
pub fn reasoning_room(effort: Option<&str>) -> u32 {
    match effort {
        Some("none") => 0,
        Some("minimal") => 1024,
        Some("low") => 2048,
        Some("high") => 8192,
        Some("xhigh") => 16384,
        _ => 4096,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ChatReply;
    use futures::future::BoxFuture;

    /// A store in memory.
    #[derive(Default)]
    struct Memory(Mutex<Vec<(String, String, String, String)>>);

    impl CallCache for Memory {
        fn get<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Option<ChatReply>> {
            Box::pin(async { None })
        }
        fn put<'a>(&'a self, _: &'a str, _: &'a str, _: &'a ChatReply) -> BoxFuture<'a, ()> {
            Box::pin(async {})
        }
        fn forget<'a>(&'a self, _: &'a str) -> BoxFuture<'a, ()> {
            Box::pin(async {})
        }
        fn quirks<'a>(
            &'a self,
            endpoint: &'a str,
            model: &'a str,
        ) -> BoxFuture<'a, Vec<(String, String)>> {
            let rows = self
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.0 == endpoint && r.1 == model)
                .map(|r| (r.2.clone(), r.3.clone()))
                .collect();
            Box::pin(async move { rows })
        }
        fn learn(&self, endpoint: &str, model: &str, key: &str, value: &str) {
            self.0
                .lock()
                .unwrap()
                .push((endpoint.into(), model.into(), key.into(), value.into()));
        }
    }

    #[tokio::test]
    async fn learned_quirks_are_kept_per_endpoint_and_model() {
        let store = Arc::new(Memory::default());
        let q = Quirks::new("https://api.openai.com/v1", "gpt-5-mini");
        q.attach(store.clone()).await;
        assert!(q.learn("drop:temperature", "1"));
        assert!(!q.learn("drop:temperature", "1"), "not news twice");
        assert!(q.learn("max_tokens_field", "max_completion_tokens"));
        assert_eq!(store.0.lock().unwrap().len(), 2);

        let again = Quirks::new("https://api.openai.com/v1", "gpt-5-mini");
        again.attach(store.clone()).await;
        let l = again.get();
        assert!(l.no_temperature);
        assert_eq!(
            l.max_tokens_field,
            Some(MaxTokensField::MaxCompletionTokens)
        );
        assert!(l.describe().unwrap().contains("no temperature"));

        let other = Quirks::new("https://api.openai.com/v1", "gpt-4.1-mini");
        other.attach(store).await;
        assert_eq!(other.get(), Learned::default());
        assert_eq!(other.get().describe(), None);
    }

    #[test]
    fn reasoning_models_by_name() {
        for m in ["gpt-5-mini", "o3", "o4-mini", "openai/gpt-5", "o1-preview"] {
            assert!(is_reasoning_model(m), "{m}");
        }
        for m in [
            "gpt-4.1-mini",
            "gpt-5-chat-latest",
            "gemma-3-270m",
            "o1x",
            "solar-pro2",
        ] {
            assert!(!is_reasoning_model(m), "{m}");
        }
        assert!(reasoning_room(Some("low")) < reasoning_room(None));
        assert_eq!(reasoning_room(Some("none")), 0);
    }
}
