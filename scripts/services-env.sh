# Sourced by test.sh and demo.sh: unless KAFKA_BOOTSTRAP_SERVERS and REDIS_URL are set, starts
# (or finds) the local Kafka and Redis (devtools/local_services.py) and exports their addresses.
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ] || [ -z "${REDIS_URL:-}" ]; then
  env_lines="$("$VENV/bin/python" -m devtools.services up)"
  eval "$(grep '^export ' <<<"$env_lines")"
fi
echo "Kafka at $KAFKA_BOOTSTRAP_SERVERS, Redis at $REDIS_URL"
