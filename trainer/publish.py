"""Publish the trainer's model as a new version (protocol of :mod:`learnrec.shared.model_versions`).

1. :func:`export_candidate`: export both towers (and the ID table) to ONNX into
   ``{model_dir}/{version}/`` and register the folder; nothing serves it yet;
2. the caller's gate (:mod:`learnrec.trainer.gate`) decides; a held candidate is discarded;
3. :func:`publish_version`: ``begin_publish``; re-project every item's content embedding with
   the new (ONNX) item tower, in batches, writing vectors guarded by the item's content hash;
   progress is logged; ``finish_publish`` flips ``{p}:model:current`` atomically; then versions
   beyond the newest ``keep`` are pruned.

The snapshot read in step 3 is every item's content, so the trainer's
:class:`~learnrec.trainer.content.ContentTable` is refreshed from it on the way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from learnrec.shared.model.onnx_export import export_version, new_version_id
from learnrec.shared.model.towers import LearnModel
from learnrec.shared.model_versions import ModelRegistry
from learnrec.shared.version_towers import LoadedVersion
from learnrec.trainer.content import ContentTable

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


def export_candidate(model: LearnModel, registry: ModelRegistry, encoder: str, id_items: Sequence[str] = (),
                     source: str = "online") -> LoadedVersion:
    """Export ``model`` as a new registered (not published) version; returns its towers."""
    version = new_version_id()
    export_version(model, registry.model_dir / version, {"encoder": encoder, "source": source}, id_items)
    registry.register(registry.model_dir / version)
    return registry.load_version(version)


def publish_version(
    registry: ModelRegistry,
    tower: LoadedVersion,
    *,
    batch_size: int = 1024,
    keep: int = 3,
    content: ContentTable | None = None,
    export_s: float = 0.0,
) -> PublishReport:
    """Re-project every item under the registered version ``tower``, flip ``current``, prune."""
    version = tower.info.version
    started = time.perf_counter()
    registry.begin_publish(version)
    items = written = 0
    try:
        total = registry.redis.scard(registry.keys.items())
        last_log = started
        catalogue: set[str] = set()
        for batch in registry.snapshot(batch_size):
            if content is not None and len(batch.item_ids):
                content.update(batch.item_ids, batch.content)
                catalogue.update(batch.item_ids)
            vectors = tower.item_vectors(batch.content, batch.item_ids)
            written += registry.write_vectors(version, batch.item_ids, vectors, batch.content_hashes)
            registry.renew_lease(version)
            items += len(batch.item_ids)
            if time.perf_counter() - last_log > 5:
                last_log = time.perf_counter()
                log.info("publishing %s: %d / %d items re-projected", version, items, total)
        registry.finish_publish(version)
        if content is not None:
            content.keep_only(catalogue)
    except BaseException:
        registry.abort_publish(version)
        raise
    projected = time.perf_counter()
    pruned = registry.prune(keep)
    report = PublishReport(version, items, written, export_s, projected - started, pruned)
    log.info(
        "published %s: %d items (%d written) in %.2fs (export %.2fs); pruned %s",
        version, items, written, report.total_s, report.export_s, pruned or "none",
    )
    return report


def publish_model(model: LearnModel, registry: ModelRegistry, encoder: str, *, id_items: Sequence[str] = (),
                  batch_size: int = 1024, keep: int = 3, content: ContentTable | None = None,
                  source: str = "online") -> PublishReport:
    """Export and publish at once (no gate): offline versions, benchmarks."""
    started = time.perf_counter()
    tower = export_candidate(model, registry, encoder, id_items, source)
    return publish_version(registry, tower, batch_size=batch_size, keep=keep, content=content,
                           export_s=time.perf_counter() - started)
