#!/usr/bin/env bash
# The test command: sets up, makes sure Kafka and Redis answer, runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LEARNREC_VENV:-$HOME/.cache/learnrec/venv}"
scripts/setup.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ] || [ -z "${REDIS_URL:-}" ]; then
  env_lines="$("$VENV/bin/learnrec" services up)"
  eval "$(grep '^export ' <<<"$env_lines")"
fi
echo "Kafka at $KAFKA_BOOTSTRAP_SERVERS, Redis at $REDIS_URL"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$VENV/bin/pytest" -q "$@"
