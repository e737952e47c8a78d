"""Development tooling, not part of the installed package: the local Kafka and Redis launcher
(:mod:`devtools.local_services`, ``python -m devtools.services up|down|status|env``)."""
