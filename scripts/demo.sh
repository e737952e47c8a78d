#!/usr/bin/env bash
# The main job: sets up, makes sure Kafka and Redis answer, runs `learnrec demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LEARNREC_VENV:-$HOME/.cache/learnrec/venv}"
scripts/setup.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
source scripts/services-env.sh
export HF_HUB_OFFLINE=1
exec "$VENV/bin/learnrec" demo "$@"
