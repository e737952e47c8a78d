# Sourced by demo.sh and test.sh (after their `set -euo pipefail`): moves to the repository root,
# sets up the virtual environment ($VENV, scripts/setup.sh), puts this checkout first on
# PYTHONPATH and, unless KAFKA_BOOTSTRAP_SERVERS and REDIS_URL are set, starts (or finds) the
# local Kafka and Redis (devtools/local_services.py) and exports their addresses.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${LEARNREC_VENV:-$HOME/.cache/learnrec/venv}"
scripts/setup.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ] || [ -z "${REDIS_URL:-}" ]; then
  env_lines="$("$VENV/bin/python" -m devtools.services up)"
  eval "$(grep '^export ' <<<"$env_lines")"
fi
echo "Kafka at $KAFKA_BOOTSTRAP_SERVERS, Redis at $REDIS_URL"
