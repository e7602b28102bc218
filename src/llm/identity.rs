//! Which model answers: the identity that cache keys and settings fingerprints are made from.
//!
//! A model's name is not enough. A local server serves whatever file it was started with under
//! any alias (`model = "local-gguf"`), and one name can mean another model at another provider.
//! So a model is identified by the endpoint, normalised to scheme, host, port and path (never
//! the key, a user name or the query string), and by what the server's `GET {base_url}/models`
//! says about the model: `id`, `owned_by`, vLLM's `root` and `parent`, llama.cpp's `meta` (the
//! file's vocabulary, parameter count and size, but not `n_ctx`, a runtime setting), `path`
//! where a server reports one, and `created` where it is stable (OpenAI's, Ollama's modified
//! time) and not the time of the request (llama.cpp, vLLM and the servers built like them, or
//! any time within minutes of this machine's clock).
//! If the configured name is not listed but the server lists exactly one model, that one is
//! described: llama.cpp's server serves one model whatever name a request gives.
//!
//! The client asks once per run ([`super::ChatClient::identify`]); the state store keeps every
//! identity it has seen per model and output folder (`store::models`) and decides what is mixed
//! into keys: nothing for the first identity seen (so that answers cached before hanbrief knew
//! about identities keep hitting), a hash of the identity for any other. A server that does
//! not answer `/models` is described as it was last time at that endpoint.

use serde_json::{Map, Value};

/// What the store decided about the model of this run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelIdentity {
    /// What cache keys and settings fingerprints mix in: `None` for the first identity this
    /// output folder saw for the model (keys keep their old form), a hash for any other.
    pub mix: Option<String>,
    /// The description used (fetched now, or remembered from an earlier run), if any.
    pub description: Option<String>,
    /// The folder had not seen this identity before.
    pub new: bool,
    /// The folder had seen the model under another identity before (a swapped model file,
    /// another provider under the same name).
    pub changed: bool,
}

/// `base_url` reduced to what identifies a server: scheme, host, port (explicit) and path
/// (without a trailing slash). The user name, password, query and fragment are dropped: a key
/// must never be stored, and a rotated one must not look like another model. A URL that does
/// not parse is kept as written.
pub fn normalise_endpoint(base_url: &str) -> String {
    let Ok(url) = reqwest::Url::parse(base_url.trim()) else {
        return base_url.trim().trim_end_matches('/').to_string();
    };
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    let port = url
        .port_or_known_default()
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let path = url.path().trim_end_matches('/');
    format!("{}://{host}{port}{path}", url.scheme())
}

/// Servers whose `created` is the time of the request, not of the model: llama.cpp's server
/// (`std::time(0)` per request), vLLM and the servers that copied its model card (SGLang,
/// Aphrodite), TensorRT-LLM.
const REQUEST_TIME_CREATED: &[&str] =
    &["llamacpp", "vllm", "sglang", "pygmalionai", "tensorrt_llm"];

/// How close to this machine's clock a `created` must be to be taken for the time of the
/// request (a server not known to stamp it, doing so anyway) rather than the model's.
const REQUEST_TIME_WINDOW_S: u64 = 600;

/// What the `/models` list `list` says about `model`, as canonical JSON (keys sorted), or
/// `None` if it says nothing usable (not listed among several, or no known field).
pub fn describe(list: &Value, model: &str) -> Option<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    describe_at(list, model, now)
}

/// [`describe`], with the clock's reading `now` (seconds since the epoch).
fn describe_at(list: &Value, model: &str, now: u64) -> Option<String> {
    let data = list.get("data")?.as_array()?;
    let by_id = |id: &str| {
        data.iter()
            .find(|m| m.get("id").and_then(Value::as_str) == Some(id))
    };
    let entry = by_id(model)
        // Ollama lists `name:latest` for a model asked for as `name`.
        .or_else(|| (!model.contains(':')).then(|| by_id(&format!("{model}:latest")))?)
        .or_else(|| (data.len() == 1).then(|| &data[0]))?
        .as_object()?;
    let mut out = Map::new();
    for field in ["id", "owned_by", "root", "parent", "path"] {
        if let Some(v) = entry.get(field).filter(|v| !v.is_null()) {
            out.insert(field.to_string(), v.clone());
        }
    }
    if let Some(Value::Object(meta)) = entry.get("meta") {
        let mut meta = meta.clone();
        // The context the server was started with, not the model.
        meta.remove("n_ctx");
        out.insert("meta".to_string(), Value::Object(meta));
    }
    if let Some(created) = entry
        .get("created")
        .filter(|c| created_is_stable(entry, c, now))
    {
        out.insert("created".to_string(), created.clone());
    }
    (!out.is_empty()).then(|| canonical(&Value::Object(out)).to_string())
}

/// Whether an entry's `created` describes the model rather than the request: not for the
/// servers that stamp the request time, known by `owned_by` or by the fields only they send
/// (llama.cpp's `meta`, vLLM's `root` and `permission`), nor for a time within minutes of
/// `now` (another server stamping the request: keeping it would make every run a new model;
/// dropping the date of a model made minutes ago costs at most one more pass).
fn created_is_stable(entry: &Map<String, Value>, created: &Value, now: u64) -> bool {
    let owner = entry.get("owned_by").and_then(Value::as_str).unwrap_or("");
    let near_now = created
        .as_u64()
        .is_some_and(|c| c.abs_diff(now) < REQUEST_TIME_WINDOW_S);
    !near_now
        && !REQUEST_TIME_CREATED.contains(&owner.to_ascii_lowercase().as_str())
        && !["meta", "root", "permission"]
            .iter()
            .any(|k| entry.contains_key(*k))
}

/// `value` with every object's keys sorted (serde_json keeps insertion order here), so that
/// the same description always hashes the same.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// The hash mixed into keys for `model` at `endpoint` described as `description`.
pub fn mix(model: &str, endpoint: &str, description: Option<&str>) -> String {
    let canonical = serde_json::json!({
        "v": "hanbrief.model/1",
        "model": model,
        "endpoint": endpoint,
        "description": description,
    });
    blake3::hash(canonical.to_string().as_bytes())
        .to_hex()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_keep_scheme_host_port_and_path_only() {
        assert_eq!(
            normalise_endpoint("https://user:sk-secret@API.openai.com/v1/?api-version=1#x"),
            "https://api.openai.com:443/v1"
        );
        assert_eq!(
            normalise_endpoint("http://127.0.0.1:8088/v1"),
            "http://127.0.0.1:8088/v1"
        );
        assert_eq!(
            normalise_endpoint("http://localhost/v1/"),
            normalise_endpoint("http://LOCALHOST:80/v1")
        );
        assert_ne!(
            normalise_endpoint("http://127.0.0.1:8088/v1"),
            normalise_endpoint("http://127.0.0.1:8089/v1")
        );
        assert_eq!(normalise_endpoint("not a url/"), "not a url");
    }

    #[test]
    fn llama_cpp_is_described_by_its_file_not_its_context_or_the_clock() {
        let served = |n_ctx: u64, created: u64, size: u64| {
            json!({"object": "list", "data": [{
                "id": "gemma-3-270m", "object": "model", "created": created, "owned_by": "llamacpp",
                "meta": {"n_ctx": n_ctx, "n_params": 268098176, "size": size, "n_vocab": 262144}
            }]})
        };
        let a = describe(&served(8192, 1, 246587904), "local-gguf").expect("the only model");
        assert_eq!(
            a,
            describe(&served(4096, 2, 246587904), "local-gguf").unwrap()
        );
        assert_ne!(
            a,
            describe(&served(8192, 1, 999), "local-gguf").unwrap(),
            "a swapped file"
        );
        assert!(!a.contains("n_ctx") && !a.contains("created"), "{a}");
    }

    #[test]
    fn the_configured_model_is_picked_from_several_and_stable_created_is_kept() {
        let list = json!({"object": "list", "data": [
            {"id": "gpt-4.1-mini", "object": "model", "created": 1744316542, "owned_by": "system"},
            {"id": "llama3.2:latest", "object": "model", "created": 1718000000, "owned_by": "library"}
        ]});
        let d = describe(&list, "gpt-4.1-mini").unwrap();
        assert_eq!(
            d,
            r#"{"created":1744316542,"id":"gpt-4.1-mini","owned_by":"system"}"#
        );
        assert!(describe(&list, "llama3.2").unwrap().contains("1718000000"));
        assert_eq!(describe(&list, "gpt-5"), None, "not listed among several");
        assert_eq!(describe(&json!({"error": "no"}), "m"), None);
        // vLLM stamps `created` with the request time.
        let vllm = json!({"data": [{"id": "q", "created": 5, "owned_by": "vllm", "root": "/m/q", "permission": []}]});
        assert_eq!(
            describe(&vllm, "q").unwrap(),
            r#"{"id":"q","owned_by":"vllm","root":"/m/q"}"#
        );
        // A server we do not know that stamps the request time too: the time is dropped.
        let stamped = |t: u64| json!({"data": [{"id": "x", "created": t, "owned_by": "acme"}]});
        let now = 1_800_000_000;
        assert_eq!(
            describe_at(&stamped(now - 3), "x", now),
            describe_at(&stamped(now - 1), "x", now + 2)
        );
        assert!(
            describe_at(&stamped(now - 86_400), "x", now)
                .unwrap()
                .contains("created")
        );
    }

    #[test]
    fn the_hash_depends_on_every_part() {
        let base = mix("m", "http://a:80/v1", Some("{}"));
        assert_eq!(base, mix("m", "http://a:80/v1", Some("{}")));
        assert_ne!(base, mix("n", "http://a:80/v1", Some("{}")));
        assert_ne!(base, mix("m", "http://b:80/v1", Some("{}")));
        assert_ne!(base, mix("m", "http://a:80/v1", None));
    }
}
