#!/usr/bin/env bash
# The main job: sets up, makes sure Kafka and Redis answer, runs `learnrec demo`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
export HF_HUB_OFFLINE=1
exec "$VENV/bin/learnrec" demo "$@"
