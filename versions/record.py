"""The durable record of the published versions: what a wiped Redis is rebuilt from.

``{model_dir}/published-{prefix}.json`` holds the published versions (oldest first, with their
folders) and the current one; it is rewritten (atomically) at every flip and prune
(docs/VERSIONS.md, "Redis lost").
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from learnrec.versions.registry import ModelRegistry

log = logging.getLogger(__name__)


def path_of(registry: ModelRegistry) -> Path:
    """The record file of the registry's Redis prefix, in its model folder."""
    return registry.model_dir / f"published-{re.sub(r'[^A-Za-z0-9._-]', '_', registry.keys.prefix)}.json"


def write(registry: ModelRegistry) -> None:
    """Write the published versions (oldest first, with their folders) and the current one
    to :func:`path_of`, atomically: a wiped Redis loses its keys, not this file."""
    record = {"current": registry.current(),
              "versions": [{"version": v, "path": str(registry.info(v).path)} for v in registry.versions()]}
    path = path_of(registry)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def restore(registry: ModelRegistry, encoder: str, content_dim: int) -> str | None:
    """After a wipe: register the recorded versions whose folders still exist and publish the
    recorded current one (re-projecting whatever items Redis has). Returns it, or None when
    there is no record, its current version's folder is gone, or it was made for another
    content ``encoder`` / ``content_dim``."""
    path = path_of(registry)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    current = record.get("current")
    folders = {v["version"]: Path(v["path"]) for v in record.get("versions", [])}
    meta_file = folders.get(current or "", Path("/nonexistent")) / "meta.json"
    if not meta_file.is_file():
        return None
    meta = json.loads(meta_file.read_text())
    if (meta.get("encoder"), int(meta.get("content_dim", -1))) != (encoder, content_dim):
        log.warning("recorded version %s is for encoder %s, not %s: not restored", current, meta.get("encoder"), encoder)
        return None
    for order, (version, folder) in enumerate(folders.items()):
        if (folder / "meta.json").is_file() and version != current:
            registry.register(folder)
            registry.redis.zadd(registry.keys.model_versions(), {version: order})
    registry.register(folders[current])
    registry.publish(current)
    log.warning("restored model version %s as current from %s", current, path)
    return current
