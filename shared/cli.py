"""The ``learnrec`` command: one subcommand per operation.

Each component registers its subcommands in :data:`COMMANDS`; modules are imported lazily so
that ``learnrec services up`` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from shared.logs import setup_logging

# subcommand -> "module:function" taking the argparse sub-parser and returning nothing; the
# function adds its arguments and sets ``func`` with ``parser.set_defaults``.
COMMANDS: dict[str, tuple[str, str]] = {
    "services": ("shared.commands.services", "Start, stop or check local Kafka and Redis"),
    "topics": ("shared.commands.topics", "Create the Kafka topics"),
    "demo": ("demo.commands", "Run the end-to-end demo"),
    "stream": ("stream.commands", "Run the item encoder or the history updater"),
    "model": ("shared.commands.model", "Bootstrap, list, roll back, prune or abort model versions"),
    "rebuild": ("shared.commands.rebuild", "Empty Redis so the stream workers rebuild it from the logs"),
    "serve": ("serving.commands", "Run the recommendation API"),
    "train": ("trainer.commands", "Train the towers offline or online"),
    "replay": ("trainer.replay", "Prequential replay of a data set through Kafka"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="learnrec", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging (also LEARNREC_LOG_LEVEL=DEBUG; default INFO)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = next((a for a in argv if a in COMMANDS), None)
    for name, (module, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text)
        # Only the chosen subcommand's module is imported (keeps `--help` and light commands fast).
        if name == wanted:
            importlib.import_module(module).configure(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
