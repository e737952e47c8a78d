"""``learnrec serve``: run the recommendation API on uvicorn (uvloop + httptools, with the protocol
that answers a shed request in the turn that reads it: :mod:`learnrec.serving.http_protocol`)."""

from __future__ import annotations

import argparse

import uvicorn

from learnrec.shared.config import get_settings


def configure(parser: argparse.ArgumentParser) -> None:
    settings = get_settings()
    parser.add_argument("--host", default=settings.serving.host)
    parser.add_argument("--port", type=int, default=settings.serving.port)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes; each holds its own index (memory grows with the count)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from learnrec.serving.http_protocol import SheddingHttpProtocol

    uvicorn.run(
        "learnrec.serving.asgi:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http=SheddingHttpProtocol,
        access_log=False,
        log_config=None,
    )
    return 0
