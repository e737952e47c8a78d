"""The ``learnrec`` command: one subcommand per operation, each a module of this package
(``learnrec.cli.<subcommand>``) with a ``configure(parser)`` that adds its arguments and sets
``func``. Only the chosen subcommand's module is imported, so that light commands and
``--help`` do not pay for importing torch; the components are imported by the ``func`` they run.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from learnrec.shared.logs import setup_logging

SUBCOMMANDS: dict[str, str] = {
    "topics": "Create the Kafka topics",
    "demo": "Run the end-to-end demo",
    "stream": "Run the item encoder or the history updater",
    "model": "Bootstrap, list, roll back, prune or abort model versions",
    "rebuild": "Empty Redis so the stream workers rebuild it from the logs",
    "serve": "Run the recommendation API",
    "train": "Train the towers offline or online",
    "replay": "Prequential replay of a data set through Kafka",
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="learnrec", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging (also LEARNREC_LOG_LEVEL=DEBUG; default INFO)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = next((a for a in argv if a in SUBCOMMANDS), None)
    for name, help_text in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text)
        if name == wanted:
            importlib.import_module(f"{__package__}.{name}").configure(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    return int(args.func(args) or 0)
