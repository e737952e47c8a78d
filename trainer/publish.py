"""Publish the trainer's model as a new version (protocol of :mod:`shared.model_versions`).

1. export both towers to ONNX into ``{model_dir}/{version}/`` and register the folder;
2. ``begin_publish``; re-project every item's content embedding with the new (ONNX) item tower,
   in batches, writing vectors guarded by the item's content hash; progress is logged;
3. ``finish_publish`` flips ``{p}:model:current`` atomically; then versions beyond the newest
   ``keep`` are pruned.

The snapshot read in step 2 is every item's content, so the trainer's
:class:`~trainer.content.ContentTable` is refreshed from it on the way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from shared.model.onnx_export import export_version, new_version_id
from shared.model.towers import LearnModel
from shared.model_versions import ModelRegistry
from trainer.content import ContentTable

log = logging.getLogger(__name__)


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


def publish_model(
    model: LearnModel,
    registry: ModelRegistry,
    encoder: str,
    *,
    batch_size: int = 1024,
    keep: int = 3,
    content: ContentTable | None = None,
    source: str = "online",
) -> PublishReport:
    """Export, re-project every item, flip ``current``, prune. Returns what it did."""
    started = time.perf_counter()
    version = new_version_id()
    export_version(model, registry.model_dir / version, {"encoder": encoder, "source": source})
    registry.register(registry.model_dir / version)
    exported = time.perf_counter()
    registry.begin_publish(version)
    items = written = 0
    try:
        tower = registry.load_version(version)
        total = registry.redis.scard(registry.keys.items())
        last_log = exported
        for batch in registry.snapshot(batch_size):
            if content is not None and len(batch.item_ids):
                content.update(batch.item_ids, batch.content)
            vectors = tower.item_vectors(batch.content)
            written += registry.write_vectors(version, batch.item_ids, vectors, batch.content_hashes)
            items += len(batch.item_ids)
            if time.perf_counter() - last_log > 5:
                last_log = time.perf_counter()
                log.info("publishing %s: %d / %d items re-projected", version, items, total)
        registry.finish_publish(version)
    except BaseException:
        registry.abort_publish(version)
        raise
    projected = time.perf_counter()
    pruned = registry.prune(keep)
    report = PublishReport(version, items, written, exported - started, projected - exported, pruned)
    log.info(
        "published %s: %d items (%d written) in %.2fs (export %.2fs); pruned %s",
        version, items, written, report.total_s, report.export_s, pruned or "none",
    )
    return report
