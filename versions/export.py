"""A trained model (torch) becomes a version: exported to ONNX into ``{model_dir}/{version}/``
and registered (:func:`register_model`), then published (:func:`publish_model`, with no gate:
offline versions, benchmarks). The online trainer registers a candidate, gates it
(:mod:`learnrec.trainer.gate`), then publishes it with :func:`learnrec.versions.publish.publish`.
Imports torch: serving never needs this module."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from learnrec.shared.model import checkpoint
from learnrec.shared.model.onnx_export import export_version, new_version_id
from learnrec.shared.model.towers import LearnModel
from learnrec.versions.publish import PublishReport, publish
from learnrec.versions.registry import ItemSnapshot, ModelRegistry
from learnrec.versions.towers import LoadedVersion


def register_model(model: LearnModel, registry: ModelRegistry, encoder: str, id_items: Sequence[str] = (),
                   source: str = "online") -> LoadedVersion:
    """Export ``model`` as a new registered (not published) version; returns its towers."""
    version = new_version_id()
    export_version(model, registry.model_dir / version, {"encoder": encoder, "source": source}, id_items)
    registry.register(registry.model_dir / version)
    return registry.load_version(version)


def export_checkpoint(path: Path, model_dir: Path, encoder: str, source: str) -> Path:
    """A trainer checkpoint file exported as a version folder under ``model_dir``; returns it."""
    model, extra = checkpoint.load(path)
    out_dir = Path(model_dir) / new_version_id()
    export_version(model, out_dir, {"encoder": encoder, "source": source}, extra.get("id_items", ()))
    return out_dir


def publish_model(model: LearnModel, registry: ModelRegistry, encoder: str, *, id_items: Sequence[str] = (),
                  batch_size: int = 1024, keep: int = 3, source: str = "online",
                  on_batch: Callable[[ItemSnapshot], None] | None = None) -> PublishReport:
    """Register and publish at once (no gate)."""
    started = time.perf_counter()
    towers = register_model(model, registry, encoder, id_items, source)
    return publish(registry, towers.info.version, batch_size=batch_size, keep=keep, towers=towers,
                   on_batch=on_batch, export_s=time.perf_counter() - started)
