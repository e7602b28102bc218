#!/usr/bin/env bash
# hanbrief against real servers that nobody here wrote, on this machine only (127.0.0.1).
#
# Starts the two llama.cpp servers people run, both serving Gemma 3 270M: llama.cpp's own C++
# server (scripts/local-llm.sh: llama-server's code from the prebuilt PyPI wheel xllamacpp) and
# llama-cpp-python's Python server (PyPI, compiled here on first use). In front of them, a
# LiteLLM proxy (PyPI, pinned) with low requests- and tokens-per-minute limits per model. Then
# runs `hanbrief summarize` through the proxy on examples/articles, once per server, with
# hanbrief NOT told the limits (it must learn them from the proxy), and checks from what crossed
# the wire (scripts/conformance/tap.py, a recording pass-through between hanbrief and the proxy)
# that every article is written, no retry came before the limits allowed it, and 429s did not
# storm. Prints the figures as a Markdown table (BENCHMARKS.md keeps them) and stops everything
# it started.
#
#   scripts/conformance.sh
#
# Not part of `cargo test`. Needs python3 (3.10+) with venv and pip, a C/C++ compiler (for
# llama-cpp-python, about 10 minutes the first time on two cores), PyPI, and about 15 minutes on
# two cores once installed.
# Environment: HANBRIEF_CONFORMANCE_HOME (default ~/.cache/hanbrief/conformance: venvs, runs),
# HANBRIEF_CONFORMANCE_RPM (default 2) and HANBRIEF_CONFORMANCE_TPM (default 4000): the proxy's
# limits per model; HANBRIEF_CONFORMANCE_PORT (default 18100: four ports from it are used);
# HANBRIEF_LLM_THREADS (CPU threads per model server, default all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
home=${HANBRIEF_CONFORMANCE_HOME:-$HOME/.cache/hanbrief/conformance}
rpm=${HANBRIEF_CONFORMANCE_RPM:-2}
tpm=${HANBRIEF_CONFORMANCE_TPM:-4000}
base_port=${HANBRIEF_CONFORMANCE_PORT:-18100}
python_port=$base_port native_port=$((base_port + 1)) proxy_port=$((base_port + 2)) tap_port=$((base_port + 3))
llm_home=${HANBRIEF_LLM_HOME:-$HOME/.cache/hanbrief/local-llm}
model_file="$llm_home/gemma-3-270m-q4_k_m.gguf"
litellm_pin='litellm[proxy]==1.106.12'
llama_cpp_python_pin='llama-cpp-python[server]==0.3.36'
threads=${HANBRIEF_LLM_THREADS:-$(nproc 2>/dev/null || echo 2)}
run="$home/run-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run"
say() { echo "conformance: $*" >&2; }

pids=()
stop_llm=0
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$stop_llm" = 1 ]; then HANBRIEF_LLM_PORT=$native_port scripts/local-llm.sh stop >&2 || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A venv at $1 holding exactly the pinned requirement $2 (checked by `import $3`), built with
# the CMake arguments $4 where it compiles.
venv() {
  local dir=$1 pin=$2 module=$3 cmake=${4:-}
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.pin" 2>/dev/null)" = "$pin $cmake" ] &&
    "$dir/bin/python" -c "import $module" 2>/dev/null; then
    return
  fi
  say "installing $pin into $dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q --upgrade pip >&2
  # --no-cache-dir: a wheel cached from a build with other flags must not be reused.
  CMAKE_ARGS="$cmake" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc 2>/dev/null || echo 2) \
    "$dir/bin/pip" install -q --no-cache-dir "$pin" >&2
  echo "$pin $cmake" >"$dir/.pin"
}

# How llama-cpp-python is compiled. Not -march=native: a CPU that advertises AMX inside a VM
# whose kernel does not enable it (seen on a 2-core cloud VM) makes native builds die on the
# first request (a general protection fault in libggml-cpu). AVX2 + FMA is what x86-64 machines
# of the last decade have; other architectures keep llama.cpp's defaults.
if [ "$(uname -m)" = x86_64 ]; then
  cmake_args="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
else
  cmake_args=""
fi

# Waits up to $2 seconds for $1 to answer.
wait_for() {
  local url=$1 seconds=$2
  for _ in $(seq $((seconds * 2))); do
    curl -sf --max-time 2 "$url" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}

venv "$home/litellm-venv" "$litellm_pin" litellm.proxy.proxy_server
venv "$home/llama-cpp-python-venv" "$llama_cpp_python_pin" llama_cpp.server "$cmake_args"
say "building hanbrief (release)"
cargo build --release --locked -q
bin=$PWD/target/release/hanbrief

# 1. llama.cpp's C++ server (scripts/local-llm.sh installs it on first use, and the model file).
if curl -sf --max-time 2 "http://127.0.0.1:$native_port/v1/models" >/dev/null 2>&1; then
  say "a server already answers on port $native_port: using it, and leaving it running"
else
  stop_llm=1
fi
HANBRIEF_LLM_PORT=$native_port scripts/local-llm.sh start >&2

# 2. llama-cpp-python's server, same model file. --chat_format gemma: the GGUF has no chat
# template; that format drops system messages (the local recipe folds them into the user turn).
"$home/llama-cpp-python-venv/bin/python" -m llama_cpp.server --model "$model_file" \
  --model_alias gemma-3-270m --host 127.0.0.1 --port "$python_port" --n_ctx 8192 \
  --chat_format gemma --interrupt_requests false --n_threads "$threads" \
  >"$run/llama-cpp-python.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$python_port/v1/models" 180 ||
  { say "llama-cpp-python's server did not start; see $run/llama-cpp-python.log"; exit 1; }

# 3. LiteLLM in front of both: per-model limits, enforced per calendar minute by its
# usage-based routing (requests counted as they arrive, tokens as replies come back).
key="sk-conformance-$RANDOM$RANDOM"
cat >"$run/litellm.yaml" <<EOF
model_list:
  - model_name: gemma-python
    litellm_params:
      model: openai/gemma-3-270m
      api_base: http://127.0.0.1:$python_port/v1
      api_key: none
      rpm: $rpm
      tpm: $tpm
      timeout: 900
  - model_name: gemma-native
    litellm_params:
      model: openai/gemma-3-270m
      api_base: http://127.0.0.1:$native_port/v1
      api_key: none
      rpm: $rpm
      tpm: $tpm
      timeout: 900
router_settings:
  routing_strategy: usage-based-routing-v2
  enable_pre_call_checks: true
litellm_settings:
  request_timeout: 900
EOF
# Its own copy of model prices: no fetch from GitHub at start.
LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_MASTER_KEY=$key "$home/litellm-venv/bin/litellm" --config "$run/litellm.yaml" \
  --host 127.0.0.1 --port "$proxy_port" >"$run/litellm.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$proxy_port/health/liveliness" 180 ||
  { say "LiteLLM did not start; see $run/litellm.log"; exit 1; }

# 4. The tap between hanbrief and the proxy.
python3 scripts/conformance/tap.py "$tap_port" "http://127.0.0.1:$proxy_port" "$run/wire.jsonl" \
  >"$run/tap.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$tap_port/health/liveliness" 30 ||
  { say "the tap did not start; see $run/tap.log"; exit 1; }

# 5. hanbrief through the proxy, once per server, with the local recipe's settings (which say
# nothing of the proxy's limits: 600 requests and 10 M tokens a minute) and two calls in flight.
reports=()
for model in gemma-python gemma-native; do
  say "summarizing examples/articles through LiteLLM with $model (log: $run/$model.log)"
  status=0
  HANBRIEF_CONFORMANCE_KEY=$key \
    HANBRIEF_ENDPOINT__BASE_URL="http://127.0.0.1:$tap_port/v1" \
    HANBRIEF_ENDPOINT__MODEL=$model \
    HANBRIEF_ENDPOINT__API_KEY_ENV=HANBRIEF_CONFORMANCE_KEY \
    HANBRIEF_LIMITS__MAX_IN_FLIGHT=2 \
    "$bin" --config examples/providers/local-llama.toml summarize examples/articles \
    -o "$run/out-$model" >"$run/$model.log" 2>&1 || status=$?
  say "$model: hanbrief exited $status"
  reports+=("$model=$run/out-$model/_report.json")
done

# 6. The verdict, from the wire.
say "figures (limits per model: $rpm requests and $tpm tokens a minute); run folder: $run"
python3 scripts/conformance/check.py "$run/wire.jsonl" "$rpm" "$tpm" "${reports[@]}"
