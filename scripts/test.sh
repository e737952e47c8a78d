#!/usr/bin/env bash
# The test command: sets up, makes sure Kafka and Redis answer, runs the whole suite.
set -euo pipefail
source "$(dirname "$0")/env.sh"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$VENV/bin/pytest" -q "$@"
