"""Fuzz the HTTP API from its OpenAPI schema (schemathesis) against a live server with a model.

    python -m devtools.services up   # a real Redis
    python -m bench.api_fuzz --examples 200

Sets up a catalogue under a fresh Redis prefix (items with categories and attributes, users
with histories, the content-projected bootstrap version published over them), starts the real
API on uvicorn, and for every operation sends ``--examples`` schema-valid requests and as many
schema-violating ones (hypothesis, through schemathesis's strategies). Counts per operation:
requests, answers per status, server errors (5xx) and 4xx answers without a ``detail`` saying
what is wrong. Writes ``bench/results/api-fuzz.json``; exits 1 when either count is not 0.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from learnrec.shared.config import Settings, get_settings
from learnrec.shared.redis_client import make_redis
from learnrec.shared.redis_keys import RedisKeys
from learnrec.versions.bootstrap import export_content_projected
from learnrec.versions.registry import ModelRegistry

RESULTS = Path(__file__).resolve().parent / "results"
CONTENT_DIM = 16
CATEGORIES = ["lenses", "bags", "tripods"]


def seed_catalogue(settings: Settings, n_items: int = 200, n_users: int = 20) -> str:
    """Items, histories and a published version under ``settings``' prefix; returns the version."""
    client = make_redis(settings)
    keys = RedisKeys.from_settings(settings)
    rng = np.random.default_rng(0)
    content = rng.standard_normal((n_items, CONTENT_DIM)).astype(np.float32)
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    pipe = client.pipeline()
    for n in range(n_items):
        pipe.hset(keys.item(f"item-{n}"), mapping={
            "title": f"item {n}", "content": content[n].tobytes(), "content_hash": f"h{n}",
            "category": CATEGORIES[n % 3], "attributes": json.dumps({"colour": ["red", "blue"][n % 2]}),
        })
        pipe.sadd(keys.items(), f"item-{n}")
    for u in range(n_users):
        pipe.rpush(keys.history(f"user-{u}"), *(f"item-{(u * 7 + j) % n_items}" for j in range(5)))
    pipe.execute()
    registry = ModelRegistry.from_settings(settings, client)
    folder = export_content_projected(settings.versions.model_dir / "fuzz-bootstrap", "fuzz-encoder", CONTENT_DIM, 8,
                                      seed=0, max_history=settings.stream.history_length)
    version = registry.register(folder).version
    registry.publish(version)
    return version


class Server:
    """The real app on uvicorn in a thread."""

    def __init__(self, settings: Settings, port: int) -> None:
        from learnrec.serving.api import create_app

        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz").status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("the server did not become ready")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def says_what_is_wrong(response) -> bool:
    """A JSON ``detail`` (the API's own answers), or a plain-text reason (the HTTP server's, for
    a request it cannot parse, such as a request line over its limit)."""
    content_type = response.headers.get("content-type") or [""]  # schemathesis: name -> values
    if str(content_type[0] if isinstance(content_type, list) else content_type).startswith("text/plain"):
        return bool(response.text.strip())
    try:
        return bool(response.json().get("detail"))
    except (ValueError, AttributeError):
        return False


def fuzz_operation(operation, mode: GenerationMode, url: str, examples: int) -> dict:
    """Send up to ``examples`` generated requests of one operation: requests, statuses, server
    errors, 4xx without a reason, and the first 10 such failures."""
    statuses: Counter[int] = Counter()
    silent = 0
    failures: list[dict] = []

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case) -> None:
        nonlocal silent
        response = case.call(base_url=url)
        statuses[response.status_code] += 1
        unexplained = 400 <= response.status_code < 500 and not says_what_is_wrong(response)
        silent += unexplained
        if (response.status_code >= 500 or unexplained) and len(failures) < 10:
            failures.append({"status": response.status_code, "request": case.as_curl_command()[:500],
                             "body": response.text[:500]})

    try:
        send()
    except Unsatisfiable:  # nothing in the operation can violate the schema (no parameters)
        pass
    return {
        "requests": sum(statuses.values()),
        "statuses": {str(s): c for s, c in sorted(statuses.items())},
        "server_errors": sum(c for s, c in statuses.items() if s >= 500),
        "client_errors_without_reason": silent,
        "failures": failures,
    }


def fuzz(url: str, examples: int, progress: bool = True) -> dict:
    """``{"METHOD /path (mode)": fuzz_operation(...)}`` for every operation, both modes."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    report: dict[str, dict] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            name = f"{operation.method.upper()} {operation.path} ({mode.value})"
            report[name] = fuzz_operation(operation, mode, url, examples)
            if progress:
                print(name, json.dumps({k: v for k, v in report[name].items() if k != "failures"}), flush=True)
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="requests per operation and mode")
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--out", type=Path, default=RESULTS / "api-fuzz.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as models:
        cfg = get_settings().replace(redis_prefix=f"fuzz-{secrets.token_hex(4)}",
                                                model_dir=Path(models))
        version = seed_catalogue(cfg)
        try:
            with Server(cfg, args.port) as server:
                report = fuzz(server.url, args.examples)
        finally:
            client = make_redis(cfg)
            stale = list(client.scan_iter(match=f"{cfg.connection.redis_prefix}:*", count=1000))
            if stale:
                client.delete(*stale)
    result = {
        "schemathesis": schemathesis.SCHEMATHESIS_VERSION,
        "model_version": version,
        "examples_per_operation_and_mode": args.examples,
        "requests": sum(r["requests"] for r in report.values()),
        "server_errors": sum(r["server_errors"] for r in report.values()),
        "client_errors_without_reason": sum(r["client_errors_without_reason"] for r in report.values()),
        "operations": report,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['requests']} requests: {result['server_errors']} server errors, "
          f"{result['client_errors_without_reason']} 4xx without a reason")
    if result["server_errors"] or result["client_errors_without_reason"]:
        sys.exit(1)
    return result


if __name__ == "__main__":
    main()
