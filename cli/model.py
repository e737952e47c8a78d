"""``learnrec model bootstrap|list|rollback|prune|abort|force-publish``: inspect and change the
serving model version."""

from __future__ import annotations

import argparse
import json

from learnrec.shared.config import get_settings
from learnrec.shared.redis_client import make_redis
from learnrec.versions.registry import ModelRegistry


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("bootstrap", help="Publish the bootstrap version if no version is current")
    sub.add_parser("list", help="Show the current, preparing and published versions (JSON)")
    rollback = sub.add_parser("rollback", help="Serve an earlier version again (re-projects every item)")
    rollback.add_argument("version", nargs="?", help="default: the version published before the current one")
    prune = sub.add_parser("prune", help="Delete all but the newest published versions")
    prune.add_argument("--keep", type=int, default=3)
    abort = sub.add_parser("abort", help="Abort a version being published (default: every one whose "
                                         "publisher's lease ran out); a never-published one is deleted")
    abort.add_argument("version", nargs="?")
    sub.add_parser("force-publish", help="Publish the online trainer's next version whatever its publish gate says")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    registry = ModelRegistry.from_settings(settings, make_redis(settings))
    if args.action == "bootstrap":
        from learnrec.stream.item_encoder import load_encoder
        from learnrec.versions.bootstrap import ensure_current_version

        encoder = load_encoder(settings)
        print(ensure_current_version(settings, registry, encoder.model_id, encoder.content_dim))
    elif args.action == "list":
        versions = [vars(registry.info(v)) | {"path": str(registry.info(v).path)} for v in registry.versions()]
        print(json.dumps({"current": registry.current(), "preparing": sorted(registry.preparing()),
                          "versions": versions}, indent=2))
    elif args.action == "rollback":
        print(registry.rollback(args.version))
    elif args.action == "abort":
        if args.version is None:
            print("\n".join(registry.abort_abandoned()) or "no abandoned version")
        elif args.version not in registry.preparing():
            raise SystemExit(f"model version {args.version!r} is not being published")
        else:
            registry.abort_publish(args.version)
            print(args.version)
    elif args.action == "force-publish":
        registry.redis.set(registry.keys.model_force_publish(), "1")
        print("the trainer's next version will be published whatever the gate says")
    else:
        print("\n".join(registry.prune(args.keep)) or "nothing to prune")
    return 0
