"""Publishing a registered version: the one re-projection loop (docs/VERSIONS.md).

1. ``begin_publish``: the version joins ``preparing``; from then on the item encoder writes
   vectors for it too;
2. every item of the catalogue is read (:meth:`~learnrec.versions.registry.ModelRegistry.snapshot`)
   and re-projected with the version's ONNX item tower, in batches; a vector is written only
   where the item's content hash is still the one read (``write_vectors``), and the publisher's
   lease is renewed after every batch; progress is logged;
3. ``finish_publish`` flips ``current`` atomically; versions beyond the newest ``keep`` are
   pruned. Any failure aborts the publish (``abort_publish``) and re-raises.

The offline trainer, the online trainer (after its gate), the bootstrap, a rollback and a
restore after a wipe all publish through :func:`publish`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from learnrec.versions.registry import ItemSnapshot, ModelRegistry
    from learnrec.versions.towers import LoadedVersion

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True)
class PublishReport:
    version: str
    items: int
    written: int
    export_s: float
    project_s: float
    pruned: list[str]

    @property
    def total_s(self) -> float:
        return self.export_s + self.project_s


def publish(
    registry: ModelRegistry,
    version: str,
    *,
    batch_size: int = 512,
    keep: int | None = None,
    towers: LoadedVersion | None = None,
    on_batch: Callable[[ItemSnapshot], None] | None = None,
    export_s: float = 0.0,
) -> PublishReport:
    """Steps 1-3 for the registered ``version`` (its ``towers`` when the caller has them
    loaded already). ``on_batch`` sees every snapshot batch before its vectors are written;
    ``keep``: prune to that many published versions after the flip (None: prune nothing)."""
    started = time.perf_counter()
    registry.begin_publish(version)
    items = written = 0
    try:
        towers = towers or registry.load_version(version)
        total = registry.redis.scard(registry.keys.items())
        last_log = started
        for batch in registry.snapshot(batch_size):
            vectors = towers.item_vectors(batch.content, batch.item_ids)
            if on_batch is not None:
                on_batch(batch)
            written += registry.write_vectors(version, batch.item_ids, vectors, batch.content_hashes)
            registry.renew_lease(version)
            items += len(batch.item_ids)
            if time.perf_counter() - last_log > PROGRESS_EVERY_S:
                last_log = time.perf_counter()
                log.info("publishing %s: %d / %d items re-projected", version, items, total)
        registry.finish_publish(version)
    except BaseException:
        registry.abort_publish(version)
        raise
    project_s = time.perf_counter() - started
    pruned = registry.prune(keep) if keep is not None else []
    report = PublishReport(version, items, written, export_s, project_s, pruned)
    log.info("published %s: %d items (%d written) in %.2fs (export %.2fs); pruned %s",
             version, items, written, report.total_s, report.export_s, pruned or "none")
    return report
